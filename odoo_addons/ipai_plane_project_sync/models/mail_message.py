"""Plane comments shown in a task's chatter keep their Plane id (one message per comment)."""

from odoo import fields, models


class MailMessage(models.Model):
    _inherit = "mail.message"

    plane_comment_id = fields.Char(index="btree_not_null", readonly=True, copy=False)

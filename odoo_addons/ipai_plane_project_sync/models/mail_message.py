"""A chatter message and its Plane comment: one each way, linked by the comment's id."""

from odoo import fields, models


class MailMessage(models.Model):
    _name = "mail.message"
    _inherit = ["mail.message", "plane.sync.guard"]
    _plane_sync_fields = frozenset({"plane_comment_id", "plane_comment_pending"})

    plane_comment_id = fields.Char(index="btree_not_null", readonly=True, copy=False)
    #: Typed in a linked task's chatter and not yet a Plane comment (the task's comment job sends
    #: every such message of the task, oldest first).
    plane_comment_pending = fields.Boolean(index="btree_not_null", readonly=True, copy=False)

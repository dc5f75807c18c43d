"""The pure mapping helpers: both payload shapes, lossy priorities, stage groups."""

from odoo.tests import BaseCase, tagged

from ..mapping import (
    guess_state_group,
    html_key,
    learned_names,
    plane_identifier,
    plane_values,
    priority_to_odoo,
    priority_to_plane,
)

ODOO18 = ("0", "1")
ODOO19 = ("0", "1", "2", "3")


@tagged("post_install", "-at_install")
class TestMapping(BaseCase):
    def test_webhook_and_api_shapes_normalize_alike(self):
        webhook = {
            "state": {"id": "s1", "name": "Todo", "group": "unstarted"},
            "labels": [{"id": "l2", "name": "b"}, {"id": "l1", "name": "a"}],
            "assignees": [{"id": "u1", "email": "Jane@Example.com"}],
            "parent": None, "description_html": None, "name": "x",
        }
        api = {"state": "s1", "labels": ["l1", "l2"], "assignees": ["u1"], "parent": None,
               "description_html": "", "name": "x"}
        self.assertEqual(plane_values(webhook), plane_values(api))
        self.assertEqual(plane_values({"id": "only"}), {})
        labels, members, states = learned_names(webhook)
        self.assertEqual(labels, {"l1": "a", "l2": "b"})
        self.assertEqual(members, {"u1": "jane@example.com"})
        self.assertEqual(states, {"s1": {"name": "Todo", "group": "unstarted"}})

    def test_priorities_round_trip_without_ping_pong(self):
        for keys in (ODOO18, ODOO19):
            for odoo in keys:
                self.assertEqual(priority_to_odoo(priority_to_plane(odoo, keys), keys), odoo)
        # Lossy on 18: Plane's medium is Odoo's Low, and Low goes back as low, not medium.
        self.assertEqual(priority_to_odoo("medium", ODOO18), "0")
        self.assertEqual(priority_to_odoo("urgent", ODOO18), "1")
        self.assertEqual(priority_to_odoo("urgent", ODOO19), "3")
        self.assertEqual(priority_to_odoo(None, ODOO19), "0")

    def test_stage_names_guess_their_group(self):
        self.assertEqual(guess_state_group("New"), "backlog")
        self.assertEqual(guess_state_group("To Do"), "unstarted")
        self.assertEqual(guess_state_group("In Progress"), "started")
        self.assertEqual(guess_state_group("Done"), "completed")
        self.assertEqual(guess_state_group("Cancelled"), "cancelled")
        self.assertEqual(guess_state_group("Archive shelf", fold=True), "completed")

    def test_identifiers_and_html_keys(self):
        self.assertEqual(plane_identifier("Marketing Launch"), "ML")
        self.assertEqual(plane_identifier("Marketing Launch", {"ML"}), "ML2")
        self.assertEqual(plane_identifier("Ops"), "OPS")
        self.assertEqual(plane_identifier("!!!"), "ODOO")
        self.assertEqual(html_key("<p><br></p>"), "")
        self.assertEqual(html_key("<p>a</p>\n  <p>b</p>"), html_key("<p>a</p><p>b</p>"))

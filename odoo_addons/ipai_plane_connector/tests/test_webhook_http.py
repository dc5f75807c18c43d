"""Real signed POSTs to /plane/webhook through Odoo's HTTP stack."""

import json
import os
import uuid
from unittest.mock import patch

from odoo.tests import tagged

from ..controllers import main
from .common import TEST_WEBHOOK_SECRET, PlaneEmulatorCase, issue_body, signed_headers


def _vault_database(name: str, secrets: dict[str, str]) -> str:
    """A real database with Supabase Vault's ``vault.decrypted_secrets`` view shape; its DSN."""
    import psycopg2
    from odoo.sql_db import connection_info_for

    info = dict(connection_info_for("postgres")[1])
    admin = psycopg2.connect(**info)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    info["database"] = name
    conn = psycopg2.connect(**info)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA vault")
        cur.execute("CREATE TABLE vault.decrypted_secrets (name text, decrypted_secret text)")
        cur.executemany("INSERT INTO vault.decrypted_secrets VALUES (%s, %s)",
                        list(secrets.items()))
    conn.close()
    return psycopg2.extensions.make_dsn(**{"dbname" if k == "database" else k: v
                                           for k, v in info.items() if v is not None})


def _drop_database(name: str) -> None:
    import psycopg2
    from odoo.sql_db import connection_info_for

    admin = psycopg2.connect(**connection_info_for("postgres")[1])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


@tagged("post_install", "-at_install")
class TestWebhookEndpoint(PlaneEmulatorCase):
    def test_accepted_once_then_duplicates_ignored(self):
        body = issue_body(name="Accepted once")
        headers = signed_headers(body)
        first = self.post_webhook(body, headers)
        self.assertEqual(first.status_code, 200, first.text)
        self.assertEqual(first.json()["status"], "accepted")
        rows = self.deliveries()
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows.delivery_id, headers["X-Plane-Delivery"])
        self.assertEqual(rows.state, "received")
        self.assertEqual(rows.payload, body.decode())
        self.assertEqual((rows.event, rows.action), ("issue", "created"))

        again = self.post_webhook(body, headers)
        self.assertEqual(again.status_code, 200)
        self.assertEqual(again.json()["status"], "duplicate")
        self.assertEqual(again.json()["duplicate_of"], "delivery_id")

        # Plane's retry: a new X-Plane-Delivery, byte-identical body and signature.
        retry = self.post_webhook(body, signed_headers(body))
        self.assertEqual(retry.status_code, 200)
        self.assertEqual(retry.json()["status"], "duplicate")
        self.assertEqual(retry.json()["duplicate_of"], "fingerprint")
        self.assertEqual(len(self.deliveries()), 1)

    def test_v2_event_id_dedupes_a_changed_body(self):
        item_id = str(uuid.uuid4())

        def post_v2(delivery):
            # v2 bodies carry the delivery id, so a retry's bytes differ: event_id catches it.
            body = json.dumps({
                "version": "v2", "event": "workitem.updated", "event_id": "evt-42",
                "delivery_id": delivery, "data": {"id": item_id},
            }).encode()
            headers = signed_headers(body, delivery_id=delivery, event="workitem.updated")
            return self.post_webhook(body, headers).json()

        self.assertEqual(post_v2(str(uuid.uuid4()))["status"], "accepted")
        self.assertEqual(post_v2(str(uuid.uuid4()))["duplicate_of"], "event_id")
        self.assertEqual(len(self.deliveries()), 1)

    def test_bad_or_missing_signature_rejected(self):
        body = issue_body()
        headers = signed_headers(body, secret="plane_wh_" + "00" * 16)
        bad = self.post_webhook(body, headers)
        self.assertEqual(bad.status_code, 401)
        self.assertEqual(bad.json()["status"], "rejected")
        unsigned = dict(signed_headers(body))
        del unsigned["X-Plane-Signature"]
        self.assertEqual(self.post_webhook(body, unsigned).status_code, 401)
        # One flipped byte after signing.
        headers = signed_headers(body)
        self.assertEqual(self.post_webhook(body.replace(b"Item", b"Itex"), headers).status_code,
                         401)
        self.assertFalse(self.deliveries())

    def test_oversized_body_rejected(self):
        self.env["ir.config_parameter"].sudo().set_param("plane.webhook_max_body", "2048")
        body = issue_body(name="x" * 4096)
        response = self.post_webhook(body, signed_headers(body))
        self.assertEqual(response.status_code, 413)
        self.assertFalse(self.deliveries())
        small = issue_body(name="small")
        self.assertEqual(self.post_webhook(small, signed_headers(small)).status_code, 200)

    def test_malformed_json_rejected_after_signature(self):
        body = b'{"event": "issue", "action": '
        response = self.post_webhook(body, signed_headers(body))
        self.assertEqual(response.status_code, 400)
        self.assertFalse(self.deliveries())

    def test_refusals_before_the_signature_look_the_same(self):
        """Unknown database, addon not installed there, secret unset or unusable, bad
        signature: one answer, so nothing about the server's databases leaks out."""
        params = self.env["ir.config_parameter"].sudo()
        body = issue_body()
        answers = {}
        with self.capture_refusals():
            answers["unknown database"] = self.post_webhook(
                body, signed_headers(body), query="?db=plane_no_such_database")
            with patch.object(main, "Registry", lambda name: {}):
                answers["addon not installed"] = self.post_webhook(body, signed_headers(body))
            answers["bad signature"] = self.post_webhook(
                body, signed_headers(body, secret="plane_wh_" + "00" * 16))
            params.set_param("plane.webhook_secret_ref", "env:PLANE_TEST_UNSET_SECRET")
            answers["secret unresolvable"] = self.post_webhook(body, signed_headers(body))
            params.set_param("plane.webhook_secret_ref", "")
            answers["secret not configured"] = self.post_webhook(body, signed_headers(body))
        seen = {why: (r.status_code, r.headers["Content-Type"], r.content)
                for why, r in answers.items()}
        self.assertEqual(len(set(seen.values())), 1, seen)
        self.assertEqual(answers["bad signature"].status_code, 401)
        self.assertEqual(answers["bad signature"].json(), {"status": "rejected"})
        self.assertFalse(self.deliveries())

    def test_unusable_secret_logs_once_per_interval(self):
        # A reference of its own: the limiter's memory outlives a test.
        ref = f"env:PLANE_TEST_UNSET_{uuid.uuid4().hex[:8].upper()}"
        self.env["ir.config_parameter"].sudo().set_param("plane.webhook_secret_ref", ref)
        body = issue_body()
        with self.capture_refusals() as records:
            for _ in range(5):
                self.assertEqual(self.post_webhook(body, signed_headers(body)).status_code, 401)
        errors = [r for r in records if r.levelname == "ERROR"]
        self.assertEqual(len(errors), 1, [r.getMessage() for r in records])
        self.assertIn(ref, errors[0].getMessage(), "the operator learns which reference")

    def test_vault_secret_is_resolved_once_for_many_posts(self):
        """A vault: reference costs a database connection per resolution: 50 deliveries, one
        vault query (the worker's cache, per database, 60 s)."""
        from plane_connector import secrets

        name = f"plane_vault_{uuid.uuid4().hex[:8]}"
        dsn = _vault_database(name, {"plane_webhook_secret": TEST_WEBHOOK_SECRET})
        self.addCleanup(_drop_database, name)
        queried = []
        real = secrets._RESOLVERS["vault"]

        def counting(ref, vault_dsn):
            queried.append(str(ref))
            return real(ref, vault_dsn)

        with patch.dict(secrets._RESOLVERS, {"vault": counting}), \
                patch.dict(os.environ, {"PLANE_VAULT_DSN": dsn}):
            self.env["ir.config_parameter"].sudo().set_param(
                "plane.webhook_secret_ref", "vault:plane_webhook_secret")
            for n in range(50):
                body = issue_body(name=f"vault {n}")
                response = self.post_webhook(body, signed_headers(body))
                self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(queried, ["vault:plane_webhook_secret"])
        self.assertEqual(len(self.deliveries()), 50)

    def test_database_from_query_parameter(self):
        body = issue_body(name="multi-db")
        ok = self.post_webhook(body, signed_headers(body), query=f"?db={self.env.cr.dbname}")
        self.assertEqual(ok.status_code, 200, ok.text)
        self.assertEqual(ok.json()["status"], "accepted")
        other = issue_body(name="nowhere")
        with self.capture_refusals():
            missing = self.post_webhook(other, signed_headers(other),
                                        query="?db=plane_no_such_database")
        self.assertEqual(missing.status_code, 401)
        self.assertEqual(len(self.deliveries()), 1)

    def test_chunked_bodies_are_read_up_to_the_limit(self):
        self.env["ir.config_parameter"].sudo().set_param("plane.webhook_max_body", "4096")

        def chunked(data, size=1000):
            for start in range(0, len(data), size):
                yield data[start:start + size]

        small = issue_body(name="chunked")
        ok = self.post_webhook(chunked(small), signed_headers(small))
        self.assertEqual(ok.status_code, 200, ok.text)
        self.assertEqual(ok.json()["status"], "accepted")
        big = issue_body(name="x" * 65536)
        refused = self.post_webhook(chunked(big), signed_headers(big))
        self.assertEqual(refused.status_code, 413)
        self.assertEqual(len(self.deliveries()), 1)
        # A Content-Length larger than the limit is refused before anything is read.
        headers = dict(signed_headers(big), **{"Content-Length": str(len(big))})
        self.assertEqual(self.post_webhook(big, headers).status_code, 413)

    def test_purged_delivery_replayed_under_a_fresh_id_is_refused(self):
        """X-Plane-Delivery is not signed: after the done row is purged, a captured delivery
        sent again with a new id must still be a duplicate (its body fingerprint is kept)."""
        body = issue_body(name="captured")
        first = self.post_webhook(body, signed_headers(body))
        self.assertEqual(first.json()["status"], "accepted")
        v2 = json.dumps({"version": "v2", "event": "workitem.updated", "event_id": "evt-77",
                         "delivery_id": str(uuid.uuid4()), "data": {"id": str(uuid.uuid4())}})
        v2_first = self.post_webhook(v2.encode(), signed_headers(v2.encode(),
                                                                event="workitem.updated"))
        self.assertEqual(v2_first.json()["status"], "accepted")
        rows = self.deliveries()
        self.env.cr.execute(
            "UPDATE plane_webhook_delivery SET state = 'done', "
            "received_at = received_at - interval '40 days' WHERE id IN %s", (tuple(rows.ids),))
        self.assertEqual(self.env["plane.webhook.delivery"]._plane_purge_done(), 2)
        self.assertFalse(self.deliveries())
        kept = self.env["plane.webhook.delivery.fingerprint"].search([])
        self.assertEqual(len(kept), 2)
        replay = self.post_webhook(body, signed_headers(body))
        self.assertEqual(replay.status_code, 200)
        self.assertEqual(replay.json()["status"], "duplicate")
        self.assertEqual(replay.json()["duplicate_of"], "fingerprint")
        # A v2 body carries its delivery id, so a replay's bytes may differ: the event id holds.
        again = v2.replace('"delivery_id": "', '"delivery_id": "0')
        replay_v2 = self.post_webhook(again.encode(), signed_headers(
            again.encode(), event="workitem.updated"))
        self.assertEqual(replay_v2.json()["duplicate_of"], "event_id")
        self.assertFalse(self.deliveries(), "no new row for either replay")
        # Fingerprints age out after their own, longer retention.
        self.env["ir.config_parameter"].sudo().set_param(
            "plane.webhook_fingerprint_retention_days", "60")
        self.env.cr.execute("UPDATE plane_webhook_delivery_fingerprint "
                            "SET received_at = received_at - interval '30 days'")
        self.env["plane.webhook.delivery"]._plane_purge_done()
        self.assertFalse(self.env["plane.webhook.delivery.fingerprint"].search([]))

    def test_accepted_delivery_reaches_the_event_hook_once(self):
        item_id = str(uuid.uuid4())
        body = issue_body(item_id, action="updated", state_group="completed")
        self.assertEqual(self.post_webhook(body, signed_headers(body)).status_code, 200)
        seen = []
        model = type(self.env["plane.connector"])
        with patch.object(model, "_plane_handle_event", autospec=True,
                          side_effect=lambda _self, e, a, p: seen.append((e, a, p)) or True):
            self.env["plane.connector"]._cron_process_deliveries()
            self.env["plane.connector"]._cron_process_deliveries()
        self.assertEqual(len(seen), 1)
        event, action, payload = seen[0]
        self.assertEqual((event, action), ("issue", "updated"))
        self.assertEqual(payload["data"]["id"], item_id)
        self.assertEqual(self.deliveries().state, "done")

    def test_two_secrets_while_rotating(self):
        new_secret = "plane_wh_" + "7a" * 16
        self.env["ir.config_parameter"].sudo().set_param(
            "plane.webhook_secret_ref",
            "env:PLANE_TEST_WEBHOOK_SECRET, env:PLANE_TEST_WEBHOOK_SECRET_NEW",
        )
        with patch.dict("os.environ", {"PLANE_TEST_WEBHOOK_SECRET_NEW": new_secret}):
            old_body, new_body = issue_body(name="old"), issue_body(name="new")
            self.assertEqual(self.post_webhook(old_body, signed_headers(old_body)).status_code,
                             200)
            self.assertEqual(self.post_webhook(new_body, signed_headers(
                new_body, secret=new_secret)).status_code, 200)
        self.assertEqual(len(self.deliveries()), 2)

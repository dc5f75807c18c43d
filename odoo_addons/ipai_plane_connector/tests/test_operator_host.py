"""Issue 21 (items 3 and 8): a database admin must not be able to send server secrets to a
host of their choosing, nor add a trust anchor to the connection to the operator's host.

The "attacker" is a loopback server the admin controls; every test counts what reached it."""

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest.mock import patch

from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged

from ..caches import forget_clients
from ..settings import API_KEY_REF, BASE_URL, CA_BUNDLE
from .common import API_KEY_ENV, TEST_WEBHOOK_SECRET, WEBHOOK_SECRET_ENV, PlaneEmulatorCase
from .test_security import operator


def attacker_tls(directory: str) -> tuple[str, ssl.SSLContext]:
    """A certificate authority of the attacker's (its PEM path) and a server context with a
    certificate it issued for 127.0.0.1. Made with ``cryptography`` (an Odoo requirement):
    the emulator's TLS mode needs ``trustme``, which Odoo's environment does not have."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def build(subject, issuer, key, signer, *, ca):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
            ]), critical=False).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("attacker CA", "attacker CA", ca_key, ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = build("127.0.0.1", "attacker CA", leaf_key, ca_key, ca=False)
    ca_path = os.path.join(directory, "ca.pem")
    with open(ca_path, "wb") as fh:
        fh.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain, key_path = os.path.join(directory, "leaf.pem"), os.path.join(directory, "leaf.key")
    with open(chain, "wb") as fh:
        fh.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as fh:
        fh.write(leaf_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key_path)
    return ca_path, context


class AttackerHost:
    """A loopback HTTP(S) server that answers like Plane's users/me/ and keeps what reached
    it; with ``tls``, TLS with a certificate from the attacker's own CA (``ca_bundle``)."""

    def __init__(self, *, tls: bool = False) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                received.append((self.command, self.path, dict(self.headers.items()),
                                 self.rfile.read(length)))
                body = b'{"id": "%s", "display_name": "attacker"}' % str(uuid.uuid4()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = _any  # noqa: N815 - stdlib names

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            context = None

            def get_request(self):
                sock, address = super().get_request()
                if self.context is not None:
                    sock.settimeout(10)
                    # The handshake runs in the handler's thread (a failed one must not stop
                    # the accept loop): see finish_request.
                    sock = self.context.wrap_socket(sock, server_side=True,
                                                    do_handshake_on_connect=False)
                return sock, address

            def finish_request(self, request, client_address):
                if self.context is not None:
                    try:
                        request.do_handshake()
                    except (ssl.SSLError, OSError):
                        return  # the client refused our certificate: no request was made
                super().finish_request(request, client_address)

        self._dir = tempfile.TemporaryDirectory(prefix="plane-attacker-")
        self.ca_bundle = None
        self._server = Server(("127.0.0.1", 0), Handler)
        if tls:
            self.ca_bundle, self._server.context = attacker_tls(self._dir.name)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()


@tagged("post_install", "-at_install")
class TestOperatorHost(PlaneEmulatorCase):
    def setUp(self):
        super().setUp()
        self.addCleanup(forget_clients)
        self.params = self.env["ir.config_parameter"].sudo()
        self.attacker = AttackerHost()
        self.addCleanup(self.attacker.close)

    def _attack(self, ref, *expected):
        """A database admin points plane.base_url at their host and names ``ref`` as the API
        key reference: saving is refused, and a reference already stored (before this rule)
        is refused by Test connection and by every request. Returns every error text."""
        self.params.set_param(BASE_URL.param, self.attacker.url)
        texts = []
        with self.assertRaises(ValidationError) as saved:
            self.env["res.config.settings"].create(
                {"plane_api_key_ref": ref, "plane_base_url": self.attacker.url})
        texts.append(str(saved.exception))
        self.params.set_param(API_KEY_REF.param, ref)
        check = self.env["plane.health.check"]._plane_run_check()
        self.assertFalse(check.ok, check.message)
        texts.append(check.message)
        with self.assertRaises(UserError) as used:
            self.connector._plane_request("GET", "users/me/")
        texts.append(str(used.exception))
        for text in texts:
            self.assertIn("refused", text)
            for part in expected:
                self.assertIn(part, text)
        return texts

    def _assert_clean(self, texts, *secrets):
        for text in texts:
            for secret in secrets:
                self.assertNotIn(secret, text)

    def test_default_options_send_no_server_secret_to_the_admins_host(self):
        """3(a): with no operator option, env:PLANE_VAULT_DSN, any vault: name or keyring:
        entry were admitted and sent to the database's base URL."""
        password = "pw" + uuid.uuid4().hex
        dsn = f"postgresql://vault:{password}@127.0.0.1:9/postgres"
        texts = []
        with patch.dict(os.environ, {"PLANE_VAULT_DSN": dsn}):
            texts += self._attack("env:PLANE_VAULT_DSN", "never read as a secret")
            texts += self._attack("vault:stripe_live_key", "plane_secret_vault_allow")
            texts += self._attack("keyring:login/root", "plane_secret_keyring_allow")
        self._assert_clean(texts, password, dsn)
        self.assertEqual(self.attacker.received, [])

    def test_an_operator_secret_option_pins_the_host(self):
        """3(b): the operator set only the webhook secret reference (or only the token key);
        the admin named that variable as the API key and their host as the base URL."""
        texts = []
        # Plane Cloud, the operator's host when they set no plane_base_url, is the emulator
        # here: nothing leaves the loopback.
        with patch.object(BASE_URL, "default", self.emulator.base_url), \
                operator(plane_webhook_secret_ref=f"env:{WEBHOOK_SECRET_ENV}"):
            texts += self._attack(f"env:{WEBHOOK_SECRET_ENV}", "operator's own settings")
            # A reference of the database's own still works, on the operator's host only.
            self.params.set_param(API_KEY_REF.param, f"env:{API_KEY_ENV}")
            config = self.connector._plane_config()
            self.assertEqual(config["base_url"], self.emulator.base_url)
            self.assertIn("base_url", config["operator"])
            me = self.connector._plane_request("GET", "users/me/")
            self.assertEqual(me["id"], self.emulator.user["id"])
            settings = self.env["res.config.settings"].create({})
            self.assertTrue(settings.plane_base_url_operator)
        with patch.object(BASE_URL, "default", self.emulator.base_url), \
                operator(plane_oauth_token_key_ref="env:PLANE_TEST_TOKEN_KEY"):  # noqa: S106
            self.assertEqual(self.connector._plane_config()["base_url"], self.emulator.base_url)
            forget_clients()
            me = self.connector._plane_request("GET", "users/me/")
            self.assertEqual(me["id"], self.emulator.user["id"])
        self._assert_clean(texts, TEST_WEBHOOK_SECRET)
        self.assertEqual(self.attacker.received, [])

    def test_each_setting_may_carry_its_own_pattern(self):
        with operator(plane_secret_api_key_ref_allow="env:PLANE_TEST_API_*"):  # noqa: S106
            texts = self._attack(f"env:{WEBHOOK_SECRET_ENV}", "plane_secret_api_key_ref_allow")
            self.params.set_param(BASE_URL.param, self.emulator.base_url)
            self.params.set_param(API_KEY_REF.param, f"env:{API_KEY_ENV}")
            me = self.connector._plane_request("GET", "users/me/")
            self.assertEqual(me["id"], self.emulator.user["id"])
            # The webhook secret reference is not bound by the API key's pattern.
            self.env["res.config.settings"].create(
                {"plane_webhook_secret_ref": f"env:{WEBHOOK_SECRET_ENV}"})
            page = self.env["res.config.settings"].create({}).plane_secret_policy
            self.assertIn("api_key_ref: env:PLANE_TEST_API_*", page)
        self._assert_clean(texts, TEST_WEBHOOK_SECRET)
        self.assertEqual(self.attacker.received, [])

    def test_database_ca_bundle_does_not_count_on_the_operators_host(self):
        """8: the operator pins the host and the key; the admin adds the CA of a server that
        stands where the operator's host should be (a network position, a DNS answer)."""
        import plane_connector

        mitm = AttackerHost(tls=True)
        self.addCleanup(mitm.close)
        # E.g. an attachment's file in the filestore, at a path the admin can predict.
        self.params.set_param(CA_BUNDLE.param, mitm.ca_bundle)
        texts = []
        with operator(plane_base_url=mitm.url, plane_api_key_ref=f"env:{API_KEY_ENV}"):
            config = self.connector._plane_config()
            self.assertEqual((config["base_url"], config["ca_bundle"]), (mitm.url, ""))
            settings = self.env["res.config.settings"].create({})
            self.assertTrue(settings.plane_ca_bundle_operator)
            check = self.env["plane.health.check"]._plane_run_check()
            self.assertFalse(check.ok, check.message)
            self.assertIn("certificate", check.message)
            texts.append(check.message)
            with self.assertRaises(plane_connector.TransportError) as used:
                self.connector._plane_request("GET", "users/me/")
            texts.append(str(used.exception))
        self.assertEqual(mitm.received, [], "no request reached the server the CA vouches for")
        self._assert_clean(texts, self.emulator.api_key)
        # The operator's own CA setting still counts on the operator's host.
        with operator(plane_base_url=mitm.url, plane_api_key_ref=f"env:{API_KEY_ENV}",
                      plane_ca_bundle=mitm.ca_bundle):
            self.env["plane.health.check"]._plane_run_check()
        self.assertTrue(mitm.received)

    def test_ca_bundle_errors_do_not_tell_whether_a_path_exists(self):
        sent = len(self.emulator.requests)
        saved, checked = set(), set()
        for path in ("/nonexistent/plane-ca.pem", "/etc/passwd", "/etc", "relative/ca.pem"):
            with self.assertRaises(UserError) as caught:
                self.env["res.config.settings"].create({"plane_ca_bundle": path})
            saved.add(str(caught.exception))
            self.params.set_param(CA_BUNDLE.param, path)
            check = self.env["plane.health.check"]._plane_run_check()
            self.assertFalse(check.ok)
            checked.add(check.message)
        self.assertEqual(len(saved), 1, saved)
        self.assertEqual(len(checked), 1, checked)
        for text in saved | checked:
            self.assertNotIn("/etc", text)
            self.assertNotIn("No such file", text)
        self.assertEqual(len(self.emulator.requests), sent)

"""Token encryption at rest and the single-flight refresh of the token stores."""

from __future__ import annotations

import base64
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from plane_connector.oauth import (
    MemoryTokenStore,
    PostgresTokenStore,
    ReauthorizeError,
    TokenCipher,
    TokenSet,
)
from plane_connector.oauth import decode_key as decode_key_text

ACCESS = "pln_" + "a1" * 24
REFRESH = "pln_refresh_" + "b2" * 24


class Refresher:
    """Counts refreshes; each returns a new token set good for an hour."""

    def __init__(self, hold: float = 0.0) -> None:
        self.calls = 0
        self.hold = hold
        self._lock = threading.Lock()

    def __call__(self, tokens: TokenSet) -> TokenSet:
        with self._lock:
            self.calls += 1
            n = self.calls
        if self.hold:
            time.sleep(self.hold)  # widens the race window; nothing asserts on timing
        return TokenSet(
            access_token=f"pln_{n:048d}",
            refresh_token=f"pln_refresh_{n:048d}",
            expires_at=time.time() + 3600,
            scope=tokens.scope,
        )


def expiring(seconds: float = 10.0) -> TokenSet:
    return TokenSet(ACCESS, expires_at=time.time() + seconds, refresh_token=REFRESH, scope="read")


def run_threads(n: int, target: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:  # noqa: BLE001 - collected and asserted on by the caller
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


# -- encryption --------------------------------------------------------------------------------


def test_cipher_round_trip_random_nonce_and_row_binding() -> None:
    cipher = TokenCipher(b"k" * 32)
    a = cipher.encrypt(ACCESS, "t/conn/access")
    b = cipher.encrypt(ACCESS, "t/conn/access")
    assert a != b and a.startswith(f"v1.{cipher.key_id}.")
    assert ACCESS not in a
    assert cipher.decrypt(a, "t/conn/access") == ACCESS
    with pytest.raises(ValueError, match="another row"):
        cipher.decrypt(a, "t/other/access")
    prefix, blob = a.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(blob))
    raw[20] ^= 1
    tampered = f"{prefix}.{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    with pytest.raises(ValueError, match="failed authentication"):
        cipher.decrypt(tampered, "t/conn/access")
    with pytest.raises(ValueError, match="another key"):
        TokenCipher(b"z" * 32).decrypt(a, "t/conn/access")


def test_key_text_forms_and_bad_key_error_hides_value() -> None:
    raw = bytes(range(32))
    assert decode_key_text(raw.hex()) == raw
    assert decode_key_text(base64.b64encode(raw).decode()) == raw
    assert decode_key_text(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert len(decode_key_text(TokenCipher.generate_key())) == 32
    with pytest.raises(ValueError) as err:
        decode_key_text("c2hvcnQta2V5", "env:SHORT")
    assert "env:SHORT" in str(err.value) and "c2hvcnQta2V5" not in str(err.value)


def test_token_set_repr_hides_tokens() -> None:
    tokens = expiring()
    assert ACCESS not in repr(tokens) and REFRESH not in repr(tokens)
    assert "read" in repr(tokens)


# -- memory store ------------------------------------------------------------------------------


def test_fresh_token_is_returned_without_refresh() -> None:
    store, refresher = MemoryTokenStore(), Refresher()
    store.save("c", expiring(3600))
    assert store.get_valid_token("c", refresher, margin=60).access_token == ACCESS
    assert refresher.calls == 0


def test_threads_seeing_an_expiring_token_cause_one_refresh() -> None:
    store, refresher = MemoryTokenStore(), Refresher(hold=0.05)
    store.save("c", expiring(10))
    results = run_threads(16, lambda: store.get_valid_token("c", refresher, margin=60))
    assert refresher.calls == 1
    assert {r.access_token for r in results} == {f"pln_{1:048d}"}


def test_rejected_token_is_refreshed_once_by_all_threads() -> None:
    store, refresher = MemoryTokenStore(), Refresher(hold=0.05)
    store.save("c", expiring(3600))
    results = run_threads(8, lambda: store.get_valid_token("c", refresher, reject=ACCESS))
    assert refresher.calls == 1
    assert all(r.access_token != ACCESS for r in results)


def test_missing_token_and_dead_grant_ask_for_reauthorization() -> None:
    store = MemoryTokenStore()
    with pytest.raises(ReauthorizeError, match="authorize the Plane app"):
        store.get_valid_token("nothing", Refresher())
    calls = []

    def dead(tokens: TokenSet) -> TokenSet:
        calls.append(1)
        raise ReauthorizeError("grant revoked: re-authorize", status=400)

    store.save("c", expiring(0))
    with pytest.raises(ReauthorizeError):
        store.get_valid_token("c", dead)
    with pytest.raises(ReauthorizeError, match="needs re-authorization"):
        store.get_valid_token("c", dead)
    assert len(calls) == 1  # the dead grant is not replayed
    store.save("c", expiring(3600))  # a new authorization clears the mark
    assert store.get_valid_token("c", dead).access_token == ACCESS


# -- PostgreSQL store --------------------------------------------------------------------------


def test_tokens_are_encrypted_at_rest(
    connect: Callable[[], Any], token_table: str, key_ref: str
) -> None:
    store = PostgresTokenStore(connect, key_ref=key_ref, table=token_table)
    store.save("odoo", expiring(3600))
    conn = connect()
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {token_table}")
        row = cur.fetchone()
        cur.execute(f"SELECT {token_table}::text FROM {token_table}")
        as_text = cur.fetchone()[0]
    conn.close()
    assert row is not None
    for secret in (ACCESS, REFRESH, ACCESS[4:], REFRESH[12:]):
        assert secret not in as_text
    loaded = store.load("odoo")
    assert loaded is not None
    assert (loaded.access_token, loaded.refresh_token) == (ACCESS, REFRESH)
    assert loaded.expires_at is not None and abs(loaded.expires_at - (time.time() + 3600)) < 60
    # Another key cannot read it, and says so without showing anything secret.
    other = PostgresTokenStore(connect, cipher=TokenCipher(b"o" * 32), table=token_table)
    with pytest.raises(ValueError, match="another key"):
        other.load("odoo")
    store.close()
    other.close()


def test_postgres_threads_refresh_once(
    connect: Callable[[], Any], token_table: str, key_ref: str
) -> None:
    store = PostgresTokenStore(connect, key_ref=key_ref, table=token_table)
    store.save("odoo", expiring(10))
    refresher = Refresher(hold=0.05)
    results = run_threads(12, lambda: store.get_valid_token("odoo", refresher, margin=60))
    assert refresher.calls == 1
    assert {r.access_token for r in results} == {f"pln_{1:048d}"}
    conn = connect()
    with conn.cursor() as cur:
        cur.execute(f"SELECT refresh_count FROM {token_table} WHERE name = 'odoo'")
        assert cur.fetchone()[0] == 1
    conn.close()
    store.close()


def test_postgres_stores_in_one_process_share_the_row_lock(
    connect: Callable[[], Any], token_table: str, key_ref: str
) -> None:
    # Two store objects = two connections, as two Odoo workers have: only the row lock
    # serializes them.
    stores = [PostgresTokenStore(connect, key_ref=key_ref, table=token_table) for _ in range(4)]
    stores[0].save("odoo", expiring(10))
    refresher = Refresher(hold=0.05)
    counter = iter(range(1000))
    lock = threading.Lock()

    def call() -> TokenSet:
        with lock:
            store = stores[next(counter) % len(stores)]
        return store.get_valid_token("odoo", refresher, margin=60)

    results = run_threads(8, call)
    assert refresher.calls == 1, results
    assert len({r.access_token for r in results}) == 1
    for s in stores:
        s.close()


def test_postgres_dead_grant_is_remembered_across_workers(
    connect: Callable[[], Any], token_table: str, key_ref: str
) -> None:
    a = PostgresTokenStore(connect, key_ref=key_ref, table=token_table)
    b = PostgresTokenStore(connect, key_ref=key_ref, table=token_table)
    a.save("odoo", expiring(0))

    def dead(tokens: TokenSet) -> TokenSet:
        raise ReauthorizeError("Plane refused the refresh_token grant (invalid_grant)", status=400)

    with pytest.raises(ReauthorizeError):
        a.get_valid_token("odoo", dead)
    with pytest.raises(ReauthorizeError, match="needs re-authorization"):
        b.get_valid_token("odoo", Refresher())
    assert b.needs_reauthorization("odoo")
    a.save("odoo", expiring(3600))
    assert b.needs_reauthorization("odoo") is None
    a.close()
    b.close()


def test_no_token_in_logs(
    connect: Callable[[], Any],
    token_table: str,
    key_ref: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = PostgresTokenStore(connect, key_ref=key_ref, table=token_table)
    store.save("odoo", expiring(10))
    tokens = store.get_valid_token("odoo", Refresher(), margin=60)
    text = caplog.text + repr(store) + repr(tokens)
    for secret in (ACCESS, REFRESH, tokens.access_token, tokens.refresh_token or "x" * 40):
        assert secret not in text
    assert "refreshed OAuth token" in caplog.text
    store.close()


def test_early_refresh_does_not_hold_up_other_threads() -> None:
    # Inside the margin the old token still works: while one thread refreshes, the others keep
    # using it instead of queueing (the async client's worker threads depend on this).
    store = MemoryTokenStore()
    store.save("c", expiring(120))
    started, release = threading.Event(), threading.Event()

    def slow(tokens: TokenSet) -> TokenSet:
        started.set()
        assert release.wait(30)
        return TokenSet("pln_" + "9" * 48, expires_at=time.time() + 3600)

    refreshing = threading.Thread(target=lambda: store.get_valid_token("c", slow, margin=300))
    refreshing.start()
    assert started.wait(30)
    got: list[TokenSet] = []
    other = threading.Thread(
        target=lambda: got.append(store.get_valid_token("c", slow, margin=300))
    )
    other.start()
    other.join(30)
    assert got and got[0].access_token == ACCESS  # served at once, refresh still in flight
    # A token the server refused is never served; that caller waits for the refresh.
    waiter: list[TokenSet] = []
    rejecting = threading.Thread(
        target=lambda: waiter.append(store.get_valid_token("c", slow, margin=300, reject=ACCESS))
    )
    rejecting.start()
    release.set()
    refreshing.join(30)
    rejecting.join(30)
    assert waiter and waiter[0].access_token == "pln_" + "9" * 48
    stored = store.load("c")
    assert stored is not None and stored.access_token == "pln_" + "9" * 48


class OdooLikeCursor:
    """The shape of an Odoo cursor (``db_connect(db).cursor()``): execute/fetchone/commit/
    rollback/close/closed on one object, no ``cursor()`` method."""

    def __init__(self, conn: Any) -> None:
        self._cnx = conn
        self._obj = conn.cursor()

    def execute(self, query: str, params: Any = None) -> None:
        self._obj.execute(query, params)

    def fetchone(self) -> Any:
        return self._obj.fetchone()

    def commit(self) -> None:
        self._cnx.commit()

    def rollback(self) -> None:
        self._cnx.rollback()

    def close(self) -> None:
        self._cnx.close()

    @property
    def closed(self) -> bool:
        return bool(self._cnx.closed)


def test_postgres_store_accepts_odoo_style_cursors(
    connect: Callable[[], Any], token_table: str, key_ref: str
) -> None:
    stores = [
        PostgresTokenStore(lambda: OdooLikeCursor(connect()), key_ref=key_ref, table=token_table)
        for _ in range(2)
    ]
    stores[0].save("odoo", expiring(10))
    refresher = Refresher(hold=0.05)
    turns = itertools.count()  # next() is atomic: threads alternate between the two stores
    results = run_threads(
        6, lambda: stores[next(turns) % 2].get_valid_token("odoo", refresher, margin=60)
    )
    assert refresher.calls == 1 and len({r.access_token for r in results}) == 1
    for s in stores:
        s.close()

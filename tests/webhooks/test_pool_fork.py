"""A pooled PostgreSQL store used across ``fork()``: the child opens its own connections and leaves
the parent's alone (a shared socket would mix both processes' transactions)."""

from __future__ import annotations

import os

from plane_connector.dedupe import PostgresDeliveryStore

from .test_stores import make_delivery


def _backend(store: PostgresDeliveryStore) -> int:
    with store._connect() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def test_a_forked_child_does_not_use_the_parents_pooled_connection(pg_dsn, pg_table) -> None:
    store = PostgresDeliveryStore.from_dsn(pg_dsn, table=pg_table, pool_size=2)
    assert store.claim(make_delivery(1)).claimed
    parent = _backend(store)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its backend, claim, and leave without cleanup
        code = 1
        try:
            child = _backend(store)
            os.write(write, str(child).encode())
            code = 0 if store.claim(make_delivery(2)).claimed else 1
        finally:
            os._exit(code)
    os.close(write)
    child = int(os.read(read, 64).decode())
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child != parent
    # The parent's idle connection survived the child and is still the one in use.
    assert store.claim(make_delivery(3)).claimed
    assert _backend(store) == parent
    assert store.counts()["received"] == 3

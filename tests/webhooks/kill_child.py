"""Child process for the SIGKILL tests: receive deliveries, then process them, pausing on demand.

At the chosen point it prints ``at:<point>`` and blocks reading stdin, so the parent can kill it
exactly there (no sleeps). Points: claim-before-commit, claim-after-commit, process-in-handler,
process-before-commit, process-after-commit. ``--nth`` picks which occurrence pauses.

usage: kill_child.py SPEC_JSON   (see test_kill.py for the keys)
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import psycopg2
from plane_connector.dedupe import PostgresDeliveryStore, SQLiteDeliveryStore

sys.path.insert(0, __file__.rsplit("/", 2)[0])  # tests/, for the effects helper
from plane_connector.webhooks import WebhookReceiver  # noqa: E402

from webhooks.effects import PgEffects, SqliteEffects  # noqa: E402

_seen: dict[str, int] = {}
SPEC: dict[str, Any] = {}


def point(name: str) -> None:
    _seen[name] = _seen.get(name, 0) + 1
    if name == SPEC["pause"] and _seen[name] == SPEC["nth"]:
        print(f"at:{name}", flush=True)
        sys.stdin.readline()


class PausingSQLiteStore(SQLiteDeliveryStore):
    claiming = False

    @contextlib.contextmanager
    def _transaction(self, conn: Any = None) -> Iterator[Any]:
        with super()._transaction(conn) as c:
            yield c
            if self.claiming and conn is None:
                point("claim-before-commit")


def main() -> int:
    SPEC.update(json.loads(sys.argv[1]))
    if SPEC["kind"] == "pg":
        dsn = SPEC["dsn"]

        @contextlib.contextmanager
        def connect() -> Iterator[Any]:
            conn = psycopg2.connect(dsn, application_name=SPEC["app"])
            try:
                with conn.cursor() as cur:
                    yield cur
                point("claim-before-commit")
                conn.commit()
            finally:
                conn.close()

        store: Any = PostgresDeliveryStore(connect, table=SPEC["table"])
        effects: Any = PgEffects(dsn, SPEC["table"].rsplit(".", 1)[0])
        effects_app = SPEC["app"]
    else:
        store = PausingSQLiteStore(SPEC["path"])
        effects = SqliteEffects(store)
        effects_app = None

    receiver = WebhookReceiver(store, SPEC["secret"])
    store.claiming = True
    for item in SPEC["deliveries"]:
        status, answer = receiver.handle(item["headers"], item["body"].encode())
        assert status == 200, answer
        point("claim-after-commit")
    store.claiming = False

    if effects_app is not None:
        _orig = psycopg2.connect

        def tagged(*a: Any, **kw: Any) -> Any:
            kw.setdefault("application_name", effects_app)
            return _orig(*a, **kw)

        psycopg2.connect = tagged  # the processing transaction is findable in pg_stat_activity

    def fail(delivery: Any) -> bool:
        point("process-in-handler")  # after the handler's effect insert, before it returns
        return False

    effects.process(store, fail, before_commit=lambda: point("process-before-commit"))
    point("process-after-commit")
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

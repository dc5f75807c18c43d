"""One "Odoo worker" for the multi-process single-flight test.

Usage: python _worker.py BASE_URL CLIENT_ID DSN TABLE NAME
(the client secret and token key come through env:PLANE_TEST_CLIENT_SECRET and
env:PLANE_TEST_TOKEN_KEY). Prints ``ready``, waits for a line on stdin so that every worker
starts at once, then asks for a token and prints its SHA-256 (never the token).
"""

from __future__ import annotations

import hashlib
import sys

import psycopg2
from plane_connector.oauth import OAuthApp, PostgresTokenStore, token_provider


def main() -> int:
    base_url, client_id, dsn, table, name = sys.argv[1:6]
    app = OAuthApp(base_url, client_id, "env:PLANE_TEST_CLIENT_SECRET")
    store = PostgresTokenStore(
        lambda: psycopg2.connect(dsn), key_ref="env:PLANE_TEST_TOKEN_KEY", table=table
    )
    provider = token_provider(app, store, name, margin=60)
    store.load(name)  # connect before the start line, so the race is on the refresh only
    print("ready", flush=True)
    sys.stdin.readline()
    token = provider(False)
    print(hashlib.sha256(token.encode()).hexdigest(), flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

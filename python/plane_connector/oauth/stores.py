"""Where token sets live: the single-flight refresh protocol, in memory and in PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from plane_connector import ConfigError
from plane_connector.oauth.cipher import TokenCipher
from plane_connector.oauth.tokens import ReauthorizeError, TokenSet

if TYPE_CHECKING:
    from plane_connector.secrets import SecretPolicy


_log = logging.getLogger("plane_connector.oauth")


# Refresh this long before expiry so a request never leaves with a token about to die.
DEFAULT_MARGIN = 300.0
# While another thread refreshes, a token with at least this long left is still handed out.
SERVE_FLOOR = 30.0


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")


Refresher = Callable[[TokenSet], TokenSet]


class TokenStore(Protocol):
    """Where token sets live, one per connection name (a user grant or an app installation)."""

    def load(self, name: str) -> TokenSet | None: ...

    def save(self, name: str, tokens: TokenSet) -> None: ...

    def delete(self, name: str) -> None: ...

    def get_valid_token(
        self,
        name: str,
        refresh: Refresher,
        *,
        margin: float = DEFAULT_MARGIN,
        reject: str | None = None,
    ) -> TokenSet: ...


class _Txn(Protocol):
    def load(self) -> tuple[TokenSet | None, str | None]: ...

    def save(self, tokens: TokenSet) -> None: ...

    def mark_reauthorize(self, reason: str) -> None: ...


class _SingleFlightStore:
    """The refresh protocol shared by the stores: cheap read, then lock, re-check, refresh.

    While one thread refreshes early (inside the margin), the other threads of the process keep
    using the old token, which still works, instead of queueing behind the refresh. Besides
    latency this matters for the async client: its hooks run on the client's own worker threads,
    and a worker parked behind the refresh cannot drive the refresh's own HTTP request.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._flight = threading.Condition()
        # name -> the token being replaced by the refresh in flight in this process (at most
        # one per name: the other threads serve it or wait, they never queue on the store).
        self._inflight: dict[str, TokenSet] = {}

    def _read(self, name: str) -> tuple[TokenSet | None, str | None]:
        raise NotImplementedError

    def _exclusive(self, name: str) -> contextlib.AbstractContextManager[_Txn]:
        raise NotImplementedError

    def get_valid_token(
        self,
        name: str,
        refresh: Refresher,
        *,
        margin: float = DEFAULT_MARGIN,
        reject: str | None = None,
    ) -> TokenSet:
        """A token that is good for at least ``margin`` seconds, refreshing it if needed.

        ``reject`` is an access token the server just refused (a 401): it is refreshed unless
        another thread or worker has already replaced it. Raises :class:`ReauthorizeError`
        when no token is stored or the grant is dead.
        """
        while True:
            with self._flight:
                while name in self._inflight:
                    replacing = self._inflight[name]
                    if self._servable(replacing, reject):
                        return replacing
                    self._flight.wait()  # a refused or dying token: wait for the new one
            tokens, reauth = self._read(name)
            if self._usable(name, tokens, reauth, margin, reject):
                assert tokens is not None
                return tokens
            assert tokens is not None
            with self._flight:
                if name in self._inflight:
                    continue  # another thread started the refresh meanwhile
                self._inflight[name] = tokens
            break
        try:
            return self._refresh_locked(name, refresh, margin, reject)
        finally:
            with self._flight:
                self._inflight.pop(name, None)
                self._flight.notify_all()

    def _refresh_locked(
        self, name: str, refresh: Refresher, margin: float, reject: str | None
    ) -> TokenSet:
        with self._exclusive(name) as txn:
            # Another thread or worker may have refreshed while we waited for the lock.
            tokens, reauth = txn.load()
            if self._usable(name, tokens, reauth, margin, reject):
                assert tokens is not None
                return tokens
            assert tokens is not None
            try:
                new = refresh(tokens)
            except ReauthorizeError as exc:
                # Remember it (committed) so other workers fail fast instead of replaying a
                # dead grant.
                txn.mark_reauthorize(str(exc))
                dead = exc
            else:
                txn.save(new)
                _log.info("refreshed OAuth token for %r (expires in %s)", name, _ttl(new, self))
                return new
        raise dead

    def _servable(self, tokens: TokenSet, reject: str | None) -> bool:
        """Still accepted by Plane for a request about to leave (not refused, not expiring)."""
        if reject is not None and hmac.compare_digest(tokens.access_token, reject):
            return False
        return not tokens.expires_within(SERVE_FLOOR, now=self.clock())

    def _usable(
        self,
        name: str,
        tokens: TokenSet | None,
        reauth: str | None,
        margin: float,
        reject: str | None,
    ) -> bool:
        if tokens is None:
            raise ReauthorizeError(
                f"no OAuth token stored for {name!r}: authorize the Plane app first", status=401
            )
        if reauth:
            raise ReauthorizeError(
                f"the OAuth grant for {name!r} needs re-authorization: {reauth}", status=401
            )
        if reject is not None and hmac.compare_digest(tokens.access_token, reject):
            return False
        return not tokens.expires_within(margin, now=self.clock())


def _ttl(tokens: TokenSet, store: _SingleFlightStore) -> str:
    if tokens.expires_at is None:
        return "never"
    return f"{tokens.expires_at - store.clock():.0f}s"


class MemoryTokenStore(_SingleFlightStore):
    """Process-local store for tests and single-process tools (threads single-flight too)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self._rows: dict[str, tuple[TokenSet, str | None]] = {}
        self._lock = threading.Lock()  # the rows; held only for a moment
        self._refresh_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryTokenStore(names={sorted(self._rows)!r})"

    def load(self, name: str) -> TokenSet | None:
        with self._lock:
            row = self._rows.get(name)
        return row[0] if row else None

    def save(self, name: str, tokens: TokenSet) -> None:
        with self._lock:
            self._rows[name] = (tokens, None)

    def delete(self, name: str) -> None:
        with self._lock:
            self._rows.pop(name, None)

    def _read(self, name: str) -> tuple[TokenSet | None, str | None]:
        with self._lock:
            return self._rows.get(name, (None, None))

    @contextlib.contextmanager
    def _exclusive(self, name: str) -> Iterator[_Txn]:
        store = self

        class Txn:
            def load(self) -> tuple[TokenSet | None, str | None]:
                return store._read(name)

            def save(self, tokens: TokenSet) -> None:
                store.save(name, tokens)

            def mark_reauthorize(self, reason: str) -> None:
                with store._lock:
                    if name in store._rows:
                        store._rows[name] = (store._rows[name][0], reason)

        with self._refresh_lock:
            yield Txn()


class PostgresTokenStore(_SingleFlightStore):
    """Encrypted token rows in PostgreSQL; refresh serialized across workers by a row lock.

    ``connect`` returns a new DB-API connection (psycopg2) owned by the store, or a new Odoo
    cursor (``odoo.sql_db.db_connect(dbname).cursor()``): the store commits on its own, so never
    hand it the request's ``env.cr``. Columns
    ``access_token_encrypted`` / ``refresh_token_encrypted`` hold AES-256-GCM ciphertext; the
    key comes from ``key_ref``.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        key_ref: str | None = None,
        cipher: TokenCipher | None = None,
        key_policy: SecretPolicy | None = None,
        table: str = "plane_oauth_token",
        lock_timeout: float = 60.0,
        create: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _IDENTIFIER.match(table):
            raise ConfigError(f"bad token table name {table!r}")
        if cipher is None:
            if not key_ref:
                raise ConfigError(
                    "PostgresTokenStore needs key_ref (the token encryption key's reference)"
                )
            cipher = TokenCipher.from_ref(key_ref, policy=key_policy)
        self._cipher = cipher
        self.table = table
        self._lock_timeout_ms = int(lock_timeout * 1000)
        super().__init__(clock)
        # A DB-API connection carries one transaction, so each is used by one thread at a time.
        # Reads get their own so they never wait behind a refresh holding the row lock.
        self._writes = _Connection(connect)
        self._reads = _Connection(connect)
        if create:
            self.ensure_schema()

    def __repr__(self) -> str:
        return f"PostgresTokenStore(table={self.table!r}, cipher={self._cipher!r})"

    def close(self) -> None:
        """Close this process's connections (they are re-opened on next use)."""
        self._writes.close()
        self._reads.close()

    def ensure_schema(self) -> None:
        """Create the token table if it does not exist."""
        with self._cursor() as cur:
            cur.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {self.table} (
                    name varchar PRIMARY KEY,
                    kind varchar NOT NULL,
                    access_token_encrypted text NOT NULL,
                    refresh_token_encrypted text,
                    token_type varchar NOT NULL,
                    scope text,
                    expires_at timestamp,
                    app_installation_id varchar,
                    workspace_slug varchar,
                    reauthorize_reason text,
                    refresh_count integer NOT NULL,
                    updated_at timestamp NOT NULL
                )
                """
            )

    def load(self, name: str) -> TokenSet | None:
        return self._read(name)[0]

    def save(self, name: str, tokens: TokenSet) -> None:
        """Store a token set (a new authorization clears any re-authorize mark)."""
        with self._cursor() as cur:
            self._upsert(cur, name, tokens, refreshed=False)

    def delete(self, name: str) -> None:
        with self._cursor() as cur:
            cur.execute(f"DELETE FROM {self.table} WHERE name = %s", (name,))

    def needs_reauthorization(self, name: str) -> str | None:
        """The reason the grant must be re-authorized, or None."""
        return self._read(name)[1]

    # -- internals -------------------------------------------------------------------------

    def _cursor(self, *, lock: bool = False) -> contextlib.AbstractContextManager[Any]:
        return self._writes.transaction(self._lock_timeout_ms if lock else None)

    def _read(self, name: str) -> tuple[TokenSet | None, str | None]:
        with self._reads.transaction() as cur:
            return self._select(cur, name, for_update=False)

    @contextlib.contextmanager
    def _exclusive(self, name: str) -> Iterator[_Txn]:
        store = self
        with self._cursor(lock=True) as cur:

            class Txn:
                def load(self) -> tuple[TokenSet | None, str | None]:
                    return store._select(cur, name, for_update=True)

                def save(self, tokens: TokenSet) -> None:
                    store._upsert(cur, name, tokens, refreshed=True)

                def mark_reauthorize(self, reason: str) -> None:
                    cur.execute(
                        f"UPDATE {store.table} SET reauthorize_reason = %s, updated_at = %s "
                        "WHERE name = %s",
                        (reason[:500], _utcnow(), name),
                    )

            yield Txn()

    def _select(
        self, cur: Any, name: str, *, for_update: bool
    ) -> tuple[TokenSet | None, str | None]:
        cur.execute(
            "SELECT access_token_encrypted, refresh_token_encrypted, token_type, scope, "
            "expires_at, app_installation_id, workspace_slug, reauthorize_reason "
            f"FROM {self.table} WHERE name = %s" + (" FOR UPDATE" if for_update else ""),
            (name,),
        )
        row = cur.fetchone()
        if row is None:
            return None, None
        access, refresh, token_type, scope, expires_at, inst, slug, reauth = row
        tokens = TokenSet(
            access_token=self._cipher.decrypt(access, self._aad(name, "access")),
            refresh_token=self._cipher.decrypt(refresh, self._aad(name, "refresh"))
            if refresh
            else None,
            token_type=token_type,
            scope=scope,
            expires_at=_to_epoch(expires_at),
            app_installation_id=inst,
            workspace_slug=slug,
        )
        return tokens, reauth

    def _upsert(self, cur: Any, name: str, tokens: TokenSet, *, refreshed: bool) -> None:
        access = self._cipher.encrypt(tokens.access_token, self._aad(name, "access"))
        refresh = (
            self._cipher.encrypt(tokens.refresh_token, self._aad(name, "refresh"))
            if tokens.refresh_token
            else None
        )
        cur.execute(
            f"""
            INSERT INTO {self.table} AS t (name, kind, access_token_encrypted,
                refresh_token_encrypted, token_type, scope, expires_at, app_installation_id,
                workspace_slug, reauthorize_reason, refresh_count, updated_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, %s, %s)
            ON CONFLICT (name) DO UPDATE SET
                kind = EXCLUDED.kind,
                access_token_encrypted = EXCLUDED.access_token_encrypted,
                refresh_token_encrypted = EXCLUDED.refresh_token_encrypted,
                token_type = EXCLUDED.token_type,
                scope = EXCLUDED.scope,
                expires_at = EXCLUDED.expires_at,
                app_installation_id = EXCLUDED.app_installation_id,
                workspace_slug = EXCLUDED.workspace_slug,
                reauthorize_reason = NULL,
                refresh_count = t.refresh_count + EXCLUDED.refresh_count,
                updated_at = EXCLUDED.updated_at
            """,
            (
                name,
                tokens.kind,
                access,
                refresh,
                tokens.token_type,
                tokens.scope,
                _from_epoch(tokens.expires_at),
                tokens.app_installation_id,
                tokens.workspace_slug,
                1 if refreshed else 0,
                _utcnow(),
            ),
        )

    def _aad(self, name: str, column: str) -> str:
        return f"{self.table}/{name}/{column}"


class _Connection:
    """One DB-API connection of this process, used by one thread at a time.

    Re-opened after a fork: the parent's socket belongs to the parent.
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._conn: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                with contextlib.suppress(Exception):
                    self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def transaction(self, lock_timeout_ms: int | None = None) -> Iterator[Any]:
        with self._lock:
            if self._conn is None or self._pid != os.getpid() or self._conn.closed:
                self._conn = self._connect()
                self._pid = os.getpid()
            conn = self._conn
            try:
                conn.rollback()  # start clean: SET TRANSACTION must come first
                # An Odoo cursor (db_connect(db).cursor()) is its own connection and cursor.
                cur = conn.cursor() if callable(getattr(conn, "cursor", None)) else conn
                # READ COMMITTED so a row locked and updated by another worker is re-read
                # (REPEATABLE READ, Odoo's default, would raise a serialization failure).
                cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                if lock_timeout_ms is not None:
                    cur.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
                yield cur
                conn.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.rollback()
                raise


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _from_epoch(value: float | None) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value, dt.timezone.utc).replace(tzinfo=None)


def _to_epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc).timestamp()

"""Virtual keys in PostgreSQL, for several instances: hashed as in SQLite, looked up only in memory.

Every instance keeps all keys in a dict by hash, and a thread reloads what changed every `refresh` seconds
(rows carry the database's own time of their last change; a full reload every minute catches anything a
slow transaction committed behind the cursor). So a call never waits for PostgreSQL: a key created or
revoked on one instance works, or stops working, on every other one within `refresh` seconds plus one query
(documented as at most 5 s), and at once on the instance that made the change. While PostgreSQL is down the
keys already loaded keep working; a key never seen is refused, like any unknown key. Creating or revoking a
key needs the database and fails with 503 while it is down.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from typing import Any, Unpack

from ..errors import GatewayError
from ..postgres import Database, DatabaseError
from .keys import INSERT_COLUMNS, KEY_PREFIX, KeyLimits, VirtualKey, hash_key, key_from_row, new_key, row_values

log = logging.getLogger("llm_scope.access")
REFRESH_SECONDS = 2.0
FULL_RELOAD_SECONDS = 60.0
SLACK_SECONDS = 30.0  # rows changed this long before the last reload are read again: commits land late

MIGRATIONS = [
    """
    CREATE TABLE virtual_keys (
        id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, hint TEXT NOT NULL, owner TEXT NOT NULL,
        models TEXT, budget_daily_usd DOUBLE PRECISION, budget_monthly_usd DOUBLE PRECISION, rpm INTEGER,
        tpm INTEGER, created DOUBLE PRECISION NOT NULL, revoked DOUBLE PRECISION,
        updated DOUBLE PRECISION NOT NULL DEFAULT extract(epoch from clock_timestamp())
    );
    CREATE INDEX virtual_keys_updated ON virtual_keys(updated);
    """,
]
_NOW = "extract(epoch from clock_timestamp())"


class KeyStoreUnavailable(GatewayError, status=503, type="service_unavailable", code="key_store_unavailable"):
    """Managing keys (create, list, get, revoke) needs PostgreSQL; a lookup never does (keys are in memory)."""


class PostgresKeyStore:
    def __init__(self, url: str, *, refresh: float = REFRESH_SECONDS) -> None:
        self.db = Database(url, component="keys", migrations=MIGRATIONS)
        self.refresh = refresh
        self._by_hash: dict[str, VirtualKey] = {}
        self._since: float | None = None  # database time of the last reload; None: reload everything
        self._last_full = 0.0
        self._loaded_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_warning = 0.0

    # --- the cache ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the keys (if the database answers) and keep them fresh on a thread until `close`."""
        self.reload()
        self._thread = threading.Thread(target=self._refresh_loop, name="llm-scope-keys", daemon=True)
        self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh):
            self.reload()

    def reload(self) -> bool:
        """Read the keys changed since the last reload (all of them now and then); False if the database is down."""
        full = self._since is None or time.monotonic() - self._last_full > FULL_RELOAD_SECONDS
        try:
            now = self.db.query(f"SELECT {_NOW} AS now")[0]["now"]
            since = self._since
            if full or since is None:
                rows = self.db.query("SELECT * FROM virtual_keys")
            else:
                rows = self.db.query("SELECT * FROM virtual_keys WHERE updated >= ?", [since - SLACK_SECONDS])
        except DatabaseError as exc:
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                log.warning("virtual keys: %s; the keys already loaded keep working", exc)
            return False
        if full:
            self._last_full = time.monotonic()
            fresh = {row["hash"]: key_from_row(row) for row in rows}
            self._by_hash = {digest: key for digest, key in fresh.items() if key.revoked is None}
        else:
            for row in rows:
                self._remember(row["hash"], key_from_row(row))
        self._since = float(now)
        self._loaded_at = time.monotonic()
        return True

    def stale(self) -> str | None:
        """Keys are as of the last reload; past a few refreshes without one, an unknown key may be a new one."""
        if time.monotonic() - self._loaded_at <= 3 * self.refresh:
            return None
        return "the shared key store is unreachable, so keys created recently are not known to this instance yet"

    def _remember(self, digest: str, key: VirtualKey) -> None:
        # One dict operation each (atomic under the GIL): the request path reads the dict without a lock.
        if key.revoked is None:
            self._by_hash[digest] = key
        else:
            self._by_hash.pop(digest, None)

    def lookup(self, plaintext: str) -> VirtualKey | None:
        """The active key for a presented secret, from memory only."""
        if not plaintext.startswith(KEY_PREFIX):
            return None
        return self._by_hash.get(hash_key(plaintext))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.db.close()

    # --- management (admin API and CLI, never a request path) ------------------------------------------

    def create(self, owner: str, **limits: Unpack[KeyLimits]) -> tuple[VirtualKey, str]:
        key, plaintext = new_key(owner, **limits)
        digest = hash_key(plaintext)
        self._write(
            f"INSERT INTO virtual_keys ({INSERT_COLUMNS}, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {_NOW})",
            [*row_values(key, digest)],
        )
        self._remember(digest, key)
        return key, plaintext

    def revoke(self, key_id: str) -> bool:
        rows = self._read(
            f"UPDATE virtual_keys SET revoked = ?, updated = {_NOW} WHERE id = ? AND revoked IS NULL RETURNING *",
            [time.time(), key_id],
        )
        for row in rows:
            self._remember(row["hash"], key_from_row(row))
        return bool(rows)

    def list(self, *, include_revoked: bool = False) -> builtins.list[VirtualKey]:
        where = "" if include_revoked else " WHERE revoked IS NULL"
        return [key_from_row(row) for row in self._read(f"SELECT * FROM virtual_keys{where} ORDER BY created")]

    def get(self, key_id: str) -> VirtualKey | None:
        rows = self._read("SELECT * FROM virtual_keys WHERE id = ?", [key_id])
        return key_from_row(rows[0]) if rows else None

    def _read(self, sql: str, params: builtins.list[Any] | None = None) -> builtins.list[dict[str, Any]]:
        try:
            return self.db.query(sql, params or [])
        except DatabaseError as exc:
            raise KeyStoreUnavailable(f"The shared key store is unavailable: {exc}") from None

    def _write(self, sql: str, params: builtins.list[Any]) -> None:
        try:
            self.db.execute(sql, params)
        except DatabaseError as exc:
            raise KeyStoreUnavailable(f"The shared key store is unavailable: {exc}") from None

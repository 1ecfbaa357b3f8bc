"""PostgreSQL, the shared state of several gateway instances: the one module that imports psycopg.

`Database` is one synchronous connection behind a lock, opened on first use and reopened after a failure, so
a database that is down when an instance starts (or goes away later) costs a failed call to whoever asked,
never the instance. Callers run it on their own threads; nothing on a request path calls it.

SQL comes in with `?` placeholders, as the SQLite store writes it, so the read queries are shared; rows come
back as dicts, with SUM()'s NUMERIC results as the int or float SQLite would have returned.

Each component (traces, keys) has an ordered list of migrations, applied on first connection in one
transaction under an advisory lock: instances starting together apply each one exactly once.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

# Any fixed 64-bit number, the same in every instance: pg_advisory_xact_lock takes it as the lock's name.
MIGRATION_LOCK = 0x6C6C_6D73_636F_7065  # "llmscope"
CONNECT_TIMEOUT = 3  # seconds: a down database answers callers quickly, they retry later
STATEMENT_TIMEOUT_MS = 30_000

_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS llm_scope_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


class DatabaseError(Exception):
    """Any failure talking to PostgreSQL; `unavailable` when it could not be reached at all."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def safe_url(url: str) -> str:
    """The URL without its password, for logs and as a name."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@functools.cache
def _psycopg() -> Any:
    """psycopg, imported on first use: ~125 ms and ~25 MB that an instance without DATABASE_URL never pays."""
    import psycopg
    from psycopg.adapt import Loader

    class NumberLoader(Loader):
        """NUMERIC (what SUM of a BIGINT column returns) as an int when whole, else a float, never a Decimal."""

        def load(self, data: Any) -> int | float:
            text = bytes(data).decode()
            try:
                return int(text)
            except ValueError:
                return float(text)

    psycopg.adapters.register_loader("numeric", NumberLoader)
    return psycopg


def _placeholders(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class Database:
    def __init__(self, url: str, *, component: str, migrations: Sequence[str]) -> None:
        self.url = url
        self.name = safe_url(url)
        self.component = component
        self.migrations = list(migrations)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None

    # --- connection --------------------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        pg = _psycopg()
        try:
            conn: psycopg.Connection[Any] = pg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                application_name=f"llm-scope-{self.component}",
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except pg.Error as exc:
            raise DatabaseError(f"PostgreSQL at {self.name} is unreachable: {_reason(exc)}", unavailable=True) from None
        try:
            self._migrate(conn)
        except pg.Error as exc:
            conn.close()
            raise DatabaseError(f"migrating {self.component} in PostgreSQL failed: {_reason(exc)}") from None
        self._conn = conn
        return conn

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(_MIGRATIONS_TABLE)
            row = conn.execute(
                "SELECT version FROM llm_scope_migrations WHERE component = %s", (self.component,)
            ).fetchone()
            version = row[0] if row else 0
            for script in self.migrations[version:]:
                conn.execute(script.encode())  # bytes: several statements, no parameters
            if len(self.migrations) > version:
                conn.execute(
                    "INSERT INTO llm_scope_migrations (component, version) VALUES (%s, %s) "
                    "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                    (self.component, len(self.migrations)),
                )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection, locked for the caller; errors become DatabaseError and drop a broken connection."""
        with self._lock:
            try:
                yield self._connection()
            except _psycopg().Error as exc:
                broken = isinstance(exc, _psycopg().OperationalError)
                if self._conn is not None and (broken or self._conn.closed or self._conn.broken):
                    self._conn.close()
                    self._conn = None
                raise DatabaseError(f"PostgreSQL at {self.name}: {_reason(exc)}", unavailable=broken) from None

    # --- statements ---------------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(_placeholders(sql), list(params))
            if cur.description is None:
                return []
            names = [column.name for column in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(_placeholders(sql), list(params))
            return cur.rowcount

    def transaction(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run statements in one transaction; returns each one's row count (a SELECT's first value)."""
        counts: list[int] = []
        with self.connection() as conn, conn.transaction(), conn.cursor() as cur:
            for sql, params in statements:
                cur.execute(_placeholders(sql), list(params))
                row = cur.fetchone() if cur.description is not None else None
                counts.append(int(row[0]) if row is not None else cur.rowcount)
        return counts


def _reason(exc: BaseException) -> str:
    """The server's or libpq's own words, first line only (they never hold the password)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

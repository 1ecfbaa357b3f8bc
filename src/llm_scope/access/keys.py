"""Virtual keys per person or team, stored hashed in SQLite and shown in full exactly once.

Keys are 32 random URL-safe characters behind a recognisable prefix, so a plain SHA-256 is enough to store
them (there is nothing to brute-force); lookups are cached briefly so the hot path rarely touches disk, and
a revocation takes effect within `cache_ttl` seconds on every worker.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypedDict, Unpack

KEY_PREFIX = "sk-ls-"

SCHEMA = """
CREATE TABLE IF NOT EXISTS virtual_keys (
    id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, hint TEXT NOT NULL, owner TEXT NOT NULL,
    models TEXT, budget_daily_usd REAL, budget_monthly_usd REAL, rpm INTEGER, tpm INTEGER,
    created REAL NOT NULL, revoked REAL
);
"""


@dataclass(frozen=True)
class VirtualKey:
    id: str
    owner: str
    hint: str  # first characters, to recognise a key in lists without revealing it
    models: tuple[str, ...] | None = None  # None: every model
    budget_daily_usd: float | None = None
    budget_monthly_usd: float | None = None
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute
    created: float = 0.0
    revoked: float | None = None

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out["models"] = list(self.models) if self.models is not None else None
        return out


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def key_from_row(row: Mapping[str, Any] | sqlite3.Row) -> VirtualKey:
    """A key from its `virtual_keys` row, which has the same columns in SQLite and PostgreSQL."""
    models = json.loads(row["models"]) if row["models"] else None
    return VirtualKey(
        id=row["id"],
        owner=row["owner"],
        hint=row["hint"],
        models=tuple(models) if models is not None else None,
        budget_daily_usd=row["budget_daily_usd"],
        budget_monthly_usd=row["budget_monthly_usd"],
        rpm=row["rpm"],
        tpm=row["tpm"],
        created=row["created"],
        revoked=row["revoked"],
    )


class Keys(Protocol):
    """Where virtual keys live: `KeyStore` (SQLite, one instance) or `pgkeys.PostgresKeyStore` (shared)."""

    def start(self) -> None: ...

    def lookup(self, plaintext: str) -> VirtualKey | None: ...

    def stale(self) -> str | None:
        """Why a key may be unknown here though it exists (the shared store unreachable), or None."""
        ...

    def create(self, owner: str, **limits: Unpack[KeyLimits]) -> tuple[VirtualKey, str]: ...

    def list(self, *, include_revoked: bool = False) -> list[VirtualKey]: ...

    def get(self, key_id: str) -> VirtualKey | None: ...

    def revoke(self, key_id: str) -> bool: ...

    def close(self) -> None: ...


class KeyLimits(TypedDict, total=False):
    """What a key may do, as `create` takes it (each unset one is no limit)."""

    models: list[str] | None
    budget_daily_usd: float | None
    budget_monthly_usd: float | None
    rpm: int | None
    tpm: int | None


def new_key(owner: str, **limits: Unpack[KeyLimits]) -> tuple[VirtualKey, str]:
    """A fresh key and its plaintext, for any store to keep (by its hash only)."""
    models = limits.get("models")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(24)
    key = VirtualKey(
        id="key_" + secrets.token_hex(6),
        owner=owner,
        hint=plaintext[:10] + "…",
        models=tuple(models) if models is not None else None,
        budget_daily_usd=limits.get("budget_daily_usd"),
        budget_monthly_usd=limits.get("budget_monthly_usd"),
        rpm=limits.get("rpm"),
        tpm=limits.get("tpm"),
        created=time.time(),
    )
    return key, plaintext


INSERT_COLUMNS = "id, hash, hint, owner, models, budget_daily_usd, budget_monthly_usd, rpm, tpm, created"


def row_values(key: VirtualKey, digest: str) -> tuple[Any, ...]:
    """A new key's row in INSERT_COLUMNS order, the same in SQLite and PostgreSQL (only the hash is stored)."""
    models = json.dumps(list(key.models)) if key.models is not None else None
    return (key.id, digest, key.hint, key.owner, models, key.budget_daily_usd, key.budget_monthly_usd, key.rpm,
            key.tpm, key.created)  # fmt: skip


class KeyStore:
    def __init__(self, path: Path, *, cache_ttl: float = 5.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout=5000")  # first: workers open the same file at the same moment
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self.cache_ttl = cache_ttl
        self._cache: dict[str, tuple[float, VirtualKey | None]] = {}

    def start(self) -> None:
        """Nothing to load: lookups read the file (cached for `cache_ttl`)."""

    def stale(self) -> str | None:
        return None

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def create(self, owner: str, **limits: Unpack[KeyLimits]) -> tuple[VirtualKey, str]:
        """Returns the key and its plaintext; the plaintext is never stored and cannot be shown again."""
        key, plaintext = new_key(owner, **limits)
        with self._lock:
            self.db.execute(
                f"INSERT INTO virtual_keys ({INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row_values(key, hash_key(plaintext)),
            )
        return key, plaintext

    def list(self, *, include_revoked: bool = False) -> list[VirtualKey]:
        where = "" if include_revoked else " WHERE revoked IS NULL"
        with self._lock:
            rows = self.db.execute(f"SELECT * FROM virtual_keys{where} ORDER BY created").fetchall()
        return [key_from_row(r) for r in rows]

    def get(self, key_id: str) -> VirtualKey | None:
        with self._lock:
            row = self.db.execute("SELECT * FROM virtual_keys WHERE id = ?", (key_id,)).fetchone()
        return key_from_row(row) if row else None

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            cur = self.db.execute(
                "UPDATE virtual_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), key_id)
            )
        self._cache.clear()
        return cur.rowcount > 0

    def lookup(self, plaintext: str) -> VirtualKey | None:
        """The active key for a presented secret, or None; cached for `cache_ttl` seconds."""
        if not plaintext.startswith(KEY_PREFIX):
            return None
        digest = hash_key(plaintext)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.cache_ttl:
            return hit[1]
        with self._lock:
            row = self.db.execute("SELECT * FROM virtual_keys WHERE hash = ? AND revoked IS NULL", (digest,)).fetchone()
        key = key_from_row(row) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, key)
        return key

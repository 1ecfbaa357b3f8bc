"""One writer at a time on a SQLite file shared by several processes, woken the moment the lock frees.

Every gateway worker's trace helper writes to the same local store. SQLite lets one connection write at a
time, and a connection that finds the write lock taken waits in its busy handler, which polls: it sleeps
1, 2, 5, 10, … up to 100 ms between tries, whatever the holder is doing. With several helpers committing
batches, much of their time went to those sleeps (`python -m bench.writers`; docs/scaling.md). A blocking
`flock` on a file beside the database queues the writers in the kernel instead, which wakes the next
one as soon as the holder lets go. SQLite's own locking is unchanged underneath and still decides what is
safe: the flock only orders the writers that take it, and SQLite's busy timeout stays the fallback for
anything that doesn't (an older llm-scope, the `sqlite3` shell, a file system without flock).

The kernel drops the lock when its holder dies (kill -9 included), so a killed helper never wedges the
others. Within one process a `threading.Lock` comes first, as flock does not order threads that share
the file descriptor.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("llm_scope.tracing")


class WriteLock:
    """`with lock:` around a write transaction. Re-entrant it is not: take it once per transaction."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + "-writelock")
        self._thread = threading.Lock()
        self._fd: int | None = None
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # a read-only directory: SQLite's busy handler alone, as before
            log.warning("no write lock beside %s (%s); writers will poll SQLite's lock", db_path, exc)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._thread:
            locked = self._take()
            try:
                yield
            finally:
                if locked and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _take(self) -> bool:
        if self._fd is None:
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # blocks without the GIL; EINTR is retried by Python
        except OSError:  # e.g. a network file system that refuses flock: SQLite's busy handler still guards
            return False
        return True

    def close(self) -> None:
        with self._thread:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

"""Giving a worker's freed memory back to the system: glibc's `malloc_trim(0)`, rate-limited, when malloc
holds a lot of freed memory.

Why: a coding agent's calls carry 15-150 KB bodies, read, parsed, sent up and handed over; Python frees them
within the call, but glibc keeps the freed pages of its heap (bodies under its dynamic mmap threshold, which
climbs to 32 MB after the first big free) for reuse, so a worker that peaked at ~100 MB stays there long after
(docs/PERFORMANCE.md, issue 20's memory section). A fixed `MALLOC_MMAP_THRESHOLD_` gave it back but cost
~0.3 ms of CPU a call (every big body mmapped, faulted in and unmapped); trimming instead costs one walk of
the heap at most every `every` seconds, and only when `mallinfo2` says at least `free_mb` of freed memory
sits in malloc's arenas, so an idle worker, or one serving short calls, never trims at all.

ctypes is loaded once the RSS grew by `free_mb` over the first check's, not at import: it costs ~1 MB of RSS
that a worker serving short calls should not carry. Not glibc (musl, macOS) or glibc before 2.33 (no
mallinfo2): `check` does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


def _rss() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Heap:
    """glibc's malloc, as far as it says: bytes in use and freed-but-held, and the trim."""

    def __init__(self) -> None:
        import ctypes  # here, not at import: see the module's docstring
        import ctypes.util

        class MallInfo2(ctypes.Structure):
            _fields_ = [
                (name, ctypes.c_size_t)
                for name in (
                    "arena", "ordblks", "smblks", "hblks", "hblkhd",
                    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
                )
            ]  # fmt: skip

        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name)  # raises OSError where there is none
        self._info: Any = libc.mallinfo2  # raises AttributeError off glibc >= 2.33
        self._info.restype = MallInfo2
        self._info.argtypes = []
        self._trim: Any = libc.malloc_trim
        self._trim.argtypes = [ctypes.c_size_t]
        self._trim.restype = ctypes.c_int

    def usage(self) -> tuple[int, int]:
        """(bytes in use, bytes freed but held) in malloc's arenas; mmapped chunks are neither."""
        info = self._info()
        return int(info.uordblks), int(info.fordblks)

    def account(self) -> dict[str, int]:
        """glibc's own account of its heap, for the helper's memory probe: in use (arena and mmapped
        chunks), freed but kept, and the arena's size."""
        info = self._info()
        return {
            "malloc_in_use": int(info.uordblks + info.hblkhd),
            "malloc_free_kept": int(info.fordblks),
            "malloc_arena": int(info.arena),
        }

    def trim(self) -> None:
        self._trim(0)


def glibc_heap() -> Heap | None:
    """glibc's heap, or None where it is not glibc >= 2.33."""
    try:
        return Heap()
    except (OSError, AttributeError, TypeError):
        return None


class Trimmer:
    """At most one `malloc_trim(0)` per `every` seconds, and only when `free_mb` or more is freed but held."""

    def __init__(self, every: float = 0.25, free_mb: float = 4.0, heap: Callable[[], Heap | None] = glibc_heap) -> None:
        self.every = every
        self.free = int(free_mb * (1 << 20))
        self._make_heap = heap
        self._heap: Heap | None = None
        self._tried = False
        self._start: int | None = None  # RSS at the first check
        self._last: float | None = None  # when the last trim ran (the caller's clock)
        self.trims = 0
        self.released = 0  # bytes malloc held free before each trim, summed (an upper bound on what went back)

    def check(self, now: float) -> bool:
        """Trim if due (`now` on any monotonic clock, in seconds); True when a trim ran."""
        if self._last is not None and now - self._last < self.every:
            return False
        if not self._tried:
            rss = _rss()
            if self._start is None:
                self._start = rss
            if rss is not None and self._start is not None and rss - self._start < self.free:
                return False  # not grown since the first check: no ctypes yet (see the module's docstring)
            self._tried = True
            self._heap = self._make_heap()
        heap = self._heap
        if heap is None:
            return False
        _, held = heap.usage()
        if held < self.free:
            return False
        self._last = now
        heap.trim()
        self.trims += 1
        self.released += held
        return True

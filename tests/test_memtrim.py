"""The worker's malloc_trim: on glibc itself, no stand-in; the clock is the caller's, so no timing here."""

from __future__ import annotations

import pytest

from llm_scope.memtrim import Heap, Trimmer, glibc_heap

HEAP = glibc_heap()
needs_glibc = pytest.mark.skipif(HEAP is None, reason="not glibc >= 2.33 (no mallinfo2): the trimmer is off there")


def _rss() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * 4096


def _held_in_holes(mb: int) -> list[bytes]:
    """Freed memory malloc cannot give back by itself: 100 KB bodies (under the mmap threshold, so on the
    heap), all freed but every 20th, which pins the heap's top; returns the survivors."""
    bodies = [bytes(100_000) + bytes([i % 251]) for i in range(mb * 10)]
    return bodies[::20]


@needs_glibc
def test_a_trim_gives_back_what_malloc_held() -> None:
    made: list[Heap | None] = []

    def counted() -> Heap | None:
        made.append(glibc_heap())
        return made[-1]

    trimmer = Trimmer(every=1.0, free_mb=8.0, heap=counted)
    assert not trimmer.check(0.0) and made == []  # not grown since: ctypes not even loaded
    kept = _held_in_holes(48)
    assert HEAP is not None
    _, held = HEAP.usage()
    assert held >= 30 << 20
    before = _rss()
    assert trimmer.check(100.0)
    assert trimmer.trims == 1 and trimmer.released >= 30 << 20
    assert before - _rss() >= 20 << 20  # the pages went back to the system
    assert len(kept) == 24


@needs_glibc
def test_at_most_one_trim_per_period() -> None:
    trimmer = Trimmer(every=10.0, free_mb=0.0)  # anything held is enough: only the period stops it
    assert trimmer.check(0.0)
    assert not trimmer.check(5.0)
    assert not trimmer.check(9.99)
    assert trimmer.check(10.0)
    assert trimmer.trims == 2


@needs_glibc
def test_no_trim_while_little_is_held() -> None:
    assert HEAP is not None
    _, held = HEAP.usage()
    trimmer = Trimmer(every=0.0, free_mb=(held >> 20) + 1024)  # a GB more than malloc holds now
    assert not trimmer.check(0.0)
    assert not trimmer.check(1.0)
    assert trimmer.trims == 0


def test_without_glibc_it_does_nothing() -> None:
    made: list[Heap | None] = []

    def none() -> Heap | None:
        made.append(None)
        return None

    trimmer = Trimmer(every=0.0, free_mb=0.0, heap=none)
    assert not trimmer.check(0.0)
    assert not trimmer.check(1.0)
    assert made == [None]  # looked for once, not on every check

"""Runs of blocks kept by their first block, within a budget: one index for the trace helper's three caches.

A coding agent's next call starts with the previous call's messages, so the screen (`screen.CleanBlocks`), the
body reader (`bodyblocks.BodyBlocks`) and each exporter's input cache (`inputruns.InputRuns`) each keep, per
array, the run of blocks the last call carried, and pass the next call's array up to that run's end in one
compare. Each looks its candidates up by the run's first block (a few conversations may start alike: the same
system prompt), takes the longest that matches, and keeps the extended run in place of the one it extended.
What is shared, and kept here: at most `per_first` runs a first block (the oldest goes), at most `budget` of
their costs in all (the least recently used go), a run dropped by identity (two runs may be equal).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

R = TypeVar("R")


class RunIndex(Generic[R]):
    """Runs by their first block's key, least recently used first; `size` is the sum of their costs."""

    def __init__(self, budget: int, per_first: int, first: Callable[[R], Hashable], cost: Callable[[R], int]) -> None:
        self.budget = budget
        self.per_first = per_first
        self.size = 0
        self._first = first
        self._cost = cost
        self._lru: OrderedDict[int, R] = OrderedDict()  # by id: runs are lists or objects without a hash
        self._by_first: dict[Hashable, list[R]] = {}

    def __len__(self) -> int:
        return len(self._lru)

    def alike(self, first: Hashable) -> Sequence[R]:
        """The runs kept that start with the block keyed `first`, oldest first."""
        return self._by_first.get(first, ())

    def used(self, run: R) -> None:
        self._lru.move_to_end(id(run))

    def keep(self, run: R, replaces: R | None = None) -> None:
        """Keep `run`, in place of the run it extends (the conversation's last call) where that is still kept."""
        if replaces is not None and self._lru.get(id(replaces)) is replaces:
            self.drop(replaces)
        first = self._first(run)
        alike = self._by_first.get(first)
        if alike is not None and len(alike) >= self.per_first:
            self.drop(alike[0])
        self._by_first.setdefault(first, []).append(run)
        self._lru[id(run)] = run
        self.size += self._cost(run)
        while self.size > self.budget and len(self._lru) > 1:
            self.drop(next(iter(self._lru.values())))

    def drop(self, run: R) -> None:
        del self._lru[id(run)]
        self.size -= self._cost(run)
        first = self._first(run)
        alike = self._by_first[first]
        del alike[next(i for i, kept in enumerate(alike) if kept is run)]
        if not alike:
            del self._by_first[first]

    def clear(self) -> None:
        self._lru.clear()
        self._by_first.clear()
        self.size = 0

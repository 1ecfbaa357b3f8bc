"""Every reach into a library's private internals, fenced here, each behind a version guard.

Three fast paths lean on details no library promises: uvicorn's request cycle keeps its transport in a
`transport` attribute (swapped so a whole answer leaves in one write), prometheus_client's histogram child
keeps `_upper_bounds`, `_sum` and `_buckets` (written in one go when queued calls are folded in), and the
standard library's JSON module has a C `c_make_encoder` (one encoder for every call instead of one per call).
Each is taken only on the versions it was measured and tested on (`TESTED`); on any other the caller falls
back to the public API, slower and correct, and tests/test_internals.py fails so that someone re-checks the
reach before widening the guard. A leaf module: it imports nothing of ours and no third-party package.
"""

from __future__ import annotations

import bisect
import json
import sys
from collections.abc import Callable
from functools import cache
from importlib import metadata
from typing import Any, Final

TESTED: Final = {"uvicorn": ("0.54.0",), "prometheus_client": ("0.26.0",)}
TESTED_PYTHONS: Final = ((3, 11), (3, 12), (3, 13))


@cache
def installed(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def tested(distribution: str) -> bool:
    return installed(distribution) in TESTED[distribution]


def uvicorn_request_cycle(server_send: Any) -> Any | None:
    """The uvicorn request cycle behind `send`, whose `transport` may be swapped; None anywhere else (another
    server, a middleware in between, an untested uvicorn)."""
    if not tested("uvicorn"):
        return None
    cycle = getattr(server_send, "__self__", None)
    return cycle if getattr(cycle, "transport", None) is not None else None


def histogram_parts(child: Any) -> tuple[list[float], Any, list[Any]] | None:
    """A histogram child's (upper bounds, sum, per-bucket counters), to be written as `observe` would leave
    them; None where the internals are not the tested ones (the caller then observes each value)."""
    if not tested("prometheus_client"):
        return None
    try:
        bounds, total, buckets = child._upper_bounds, child._sum, child._buckets
    except AttributeError:
        return None
    if len(bounds) != len(buckets) or not hasattr(total, "inc"):
        return None
    return list(bounds), total, list(buckets)


def shared_json_encoder(*, version: tuple[int, int] | None = None) -> Callable[[Any], str] | None:
    """json.dumps(value, ensure_ascii=False, default=str) through one C encoder made once, or None.

    json.dumps builds a JSONEncoder, a closure and a C encoder on every call, most of its ~2.3 µs on a short
    message list (measured; ~0.6 µs this way). It skips the check for circular references, so a cycle ends in
    RecursionError rather than ValueError: unencodable either way.
    """
    if (version or sys.version_info[:2]) not in TESTED_PYTHONS:
        return None
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return None
    encode = make(None, str, json.encoder.encode_basestring, None, ": ", ", ", False, False, True)
    join = "".join
    return lambda value: join(encode(value, 0))


class FoldedHistogram:
    """One histogram child's observations since the last fold: their sum and how many fell in each bucket.

    Written into the child as `observe` would have left it (prometheus_client keeps a sum and per-bucket
    counts: private attributes, reached through `internals` on the tested version only; tests/test_metrics.py
    reads the result back through a scrape), with one lock round per bucket touched instead of two per
    observation. On any other version the values are kept and observed one by one at the fold.
    """

    __slots__ = ("bounds", "child", "counts", "parts", "total", "values")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.parts = histogram_parts(child)
        self.bounds: list[float] = self.parts[0] if self.parts is not None else []
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.values: list[float] = []

    def add(self, value: float) -> None:
        if self.parts is None:
            self.values.append(value)
            return
        self.total += value
        if value == value:  # NaN falls in no bucket, as with observe
            self.counts[bisect.bisect_left(self.bounds, value)] += 1  # the first bucket with value <= bound

    def write(self) -> None:
        if self.parts is None:
            for value in self.values:
                self.child.observe(value)
            return
        _, total, buckets = self.parts
        total.inc(self.total)
        for bucket, count in zip(buckets, self.counts, strict=True):
            if count:
                bucket.inc(count)


def fold_observation(folded: dict[Any, FoldedHistogram], child: Any, value: float) -> None:
    histogram = folded.get(child)
    if histogram is None:
        histogram = folded[child] = FoldedHistogram(child)
    histogram.add(value)

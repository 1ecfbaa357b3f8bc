"""The fenced reaches into libraries' private parts: each holds on the tested versions, and each falls back
to the public API, correctly, when its guard says no. When a dependency is upgraded the version checks fail
first: re-check the reach (these tests say how) before adding the new version to `internals.TESTED`."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram

from llm_scope import internals
from llm_scope.internals import FoldedHistogram as _Folded


@pytest.mark.parametrize("distribution", sorted(internals.TESTED))
def test_the_installed_versions_are_the_tested_ones(distribution: str) -> None:
    assert internals.tested(distribution), (
        f"{distribution} {internals.installed(distribution)} is not a version the fenced fast path was tested on"
    )


def test_uvicorns_request_cycle_still_keeps_its_transport() -> None:
    # What uvicorn 0.54's httptools and h11 protocols do: the cycle's bound `send`, a `transport` attribute.
    from uvicorn.protocols.http.h11_impl import RequestResponseCycle as H11Cycle
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as HttptoolsCycle

    for cycle_class in (HttptoolsCycle, H11Cycle):
        assert "transport" in cycle_class.__init__.__code__.co_names, cycle_class
        assert callable(cycle_class.send)


class _Cycle:
    def __init__(self) -> None:
        self.transport = object()

    async def send(self, message: Any) -> None:
        return None


def test_request_cycle_guard() -> None:
    cycle = _Cycle()
    assert internals.uvicorn_request_cycle(cycle.send) is cycle
    assert internals.uvicorn_request_cycle(lambda message: None) is None  # not a bound method of a cycle
    cycle.transport = None  # type: ignore[assignment]
    assert internals.uvicorn_request_cycle(cycle.send) is None


def _histogram() -> Any:
    return Histogram("h", "h", buckets=(0.1, 1.0, 10.0), registry=CollectorRegistry())


def _samples(histogram: Any) -> dict[str, float]:
    (metric,) = histogram.collect()
    return {f"{s.name}{s.labels.get('le', '')}": s.value for s in metric.samples if not s.name.endswith("_created")}


VALUES = [0.05, 0.1, 0.5, 1.0, 3.0, 10.0, 50.0, math.nan, 0.0]


def test_folding_through_the_private_parts_reads_as_observe() -> None:
    folded, observed = _histogram(), _histogram()
    parts = internals.histogram_parts(folded)
    assert parts is not None and parts[0] == [0.1, 1.0, 10.0, math.inf]
    batch = _Folded(folded)
    for value in VALUES:
        batch.add(value)
        observed.observe(value)
    batch.write()
    assert json.dumps(_samples(folded)) == json.dumps(_samples(observed))


def test_folding_falls_back_to_observe_off_the_tested_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # The guard reads the installed version: pretend an untested one is installed.
    monkeypatch.setitem(internals.TESTED, "prometheus_client", ("0.0.0",))
    folded, observed = _histogram(), _histogram()
    assert internals.histogram_parts(folded) is None
    batch = _Folded(folded)
    for value in VALUES:
        batch.add(value)
        observed.observe(value)
    batch.write()
    assert json.dumps(_samples(folded)) == json.dumps(_samples(observed))


def test_histogram_parts_refuse_what_is_not_a_histogram() -> None:
    assert internals.histogram_parts(object()) is None


@pytest.mark.parametrize(
    "value",
    [
        [{"role": "user", "content": "café ☃"}],
        {"a": 1, "b": [1.5, None, True], "c": {"d": "e"}},
        "plain",
        {"when": object()},  # default=str
        [math.nan, math.inf],
    ],
)
def test_the_shared_json_encoder_writes_what_json_dumps_writes(value: Any) -> None:
    shared = internals.shared_json_encoder()
    assert shared is not None
    assert shared(value) == json.dumps(value, ensure_ascii=False, default=str)


def test_the_json_encoder_guard_falls_back_on_an_untested_python() -> None:
    assert internals.shared_json_encoder(version=(3, 99)) is None

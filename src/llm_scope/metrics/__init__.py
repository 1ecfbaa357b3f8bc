"""Every Prometheus metric the gateway exposes, defined in one place (the only prometheus_client user).

Labels stay bounded: route, model names from the config, provider, status, error type, and the client
tools attribution knows by name (any other tool counts as "other"); never users, sessions or keys.
With several workers, prometheus_client's multiprocess mode aggregates across them: the CLI points
PROMETHEUS_MULTIPROC_DIR at a directory it cleans on start, and the scrape endpoint merges every worker's
files.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ..errors import GatewayError
from ..internals import FoldedHistogram as _Folded
from ..internals import fold_observation as _observe
from ..types import CallRecord, Deployment
from .serving import multiprocess_dir

log = logging.getLogger("llm_scope.metrics")

PREFIX = "llm_scope"
# Resolve sub-millisecond gateway overhead as well as minute-long generations.
OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300, 600)
TPS_BUCKETS = (1, 5, 10, 20, 40, 60, 80, 100, 150, 200, 300, 500, 1000)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Model names become label values; past this many distinct ones (wildcard routes take any name), "other".
MAX_MODEL_LABELS = 200


TOKEN_DIRECTIONS = ("input", "output", "cached", "cache_write", "reasoning")


@dataclass(frozen=True)
class _Series:
    requests: Any
    duration: Any
    upstream: Any
    overhead: Any
    ttft: Any
    tps: Any
    tokens: tuple[Any, ...]


class _FoldFirst:
    """A collector that yields nothing but folds pending calls in, registered first so every scrape of the
    registry (the metrics port's thread included) sees every call answered before it."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        self._metrics.fold()
        return iter(())


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, *, clients: Collection[str] = ()) -> None:
        """`clients`: the client names that may be label values (accounting.clients.KNOWN_CLIENTS)."""
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        # Finished calls wait here (a deque: appends and pops are atomic across threads) until `fold`.
        self._calls: collections.deque[CallRecord] = collections.deque()
        self._fold_lock = threading.Lock()
        self._sums: tuple[dict[Any, float], dict[Any, _Folded]] = ({}, {})  # folded, not written yet
        self._unwritten = 0  # calls in `_sums`
        r.register(_FoldFirst(self))
        model = ["route", "model", "provider"]
        counter, gauge, histogram = self._counter, self._gauge, self._histogram
        self.requests = counter(
            "requests",
            "Requests by route, model, provider, status and error type",
            ["route", "requested_model", "model", "provider", "status_code", "error_type"],
        )
        self.duration = histogram("request_duration_seconds", "Total request latency as the client saw it", model)
        self.upstream = histogram("upstream_duration_seconds", "Time spent waiting on the upstream", model)
        self.overhead = histogram(
            "overhead_seconds", "Gateway overhead: total latency minus upstream time", ["route"], OVERHEAD_BUCKETS
        )
        self.ttft = histogram("time_to_first_token_seconds", "Time to first token of streamed answers", model)
        self.tps = histogram(
            "output_tokens_per_second",
            "Output tokens per second of generation time",
            ["model", "provider"],
            TPS_BUCKETS,
        )
        self.tokens = counter(
            "tokens", "Tokens by direction (input, output, cached, reasoning)", ["direction", "model", "provider"]
        )
        self.client_requests = counter(
            "client_requests",
            "Requests by client tool (claude-code, codex, cursor, openai-python, ...; other tools as other)",
            ["client", "route"],
        )
        self.client_tokens = counter(
            "client_tokens",
            "Tokens by client tool and direction (input, output, cached, cache_write, reasoning)",
            ["client", "direction"],
        )
        self.cost = counter("cost_usd", "Spend in USD from the price table", ["model", "provider"])
        self.in_flight = gauge("in_flight_requests", "Requests being served", "livesum", ["route"])
        self.in_flight_streams = gauge("in_flight_streams", "Streams being relayed", "livesum")
        self.upstream_failures = counter(
            "upstream_failures", "Upstream failures per deployment", ["deployment", "provider", "kind"]
        )
        self.trace_queue = gauge("trace_queue_depth", "Trace records waiting in memory", "livesum")
        self.trace_backlog = gauge(
            "trace_outbox_backlog",
            "Outbox rows not yet acknowledged by their exporter (Langfuse, OTLP): one per exporter per call",
            "livemax",
        )
        self.trace_exported = counter(
            "trace_exported", "Traces acknowledged by an exporter (Langfuse, OTLP), counted once per exporter"
        )
        self.trace_export_failures = counter("trace_export_failures", "Failed export attempts (Langfuse, OTLP)")
        self.trace_lost = counter("trace_records_lost", "Trace records dropped (must stay 0)")
        self.trace_spilled = counter("trace_records_spilled", "Trace records written to the spill file (helper behind)")
        self.trace_spill_pending = gauge("trace_spill_pending", "Trace records in the spill file", "livesum")
        self.trace_helper_restarts = counter(
            "trace_helper_restarts", "Times the trace helper process died and was started again"
        )
        self.trace_ship_backlog = gauge(
            "trace_ship_backlog",
            "Traces stored locally and not yet shipped to PostgreSQL (DATABASE_URL)",
            "livemax",  # the workers share one local store: each reports the same rows
        )
        self.trace_ship_failures = counter("trace_ship_failures", "Failed attempts to ship traces to PostgreSQL")
        self.budget_alerts = counter(
            "budget_alerts",
            "Budget alert webhooks by threshold (80, 100 percent) and outcome (delivered, failed: retried later)",
            ["threshold", "outcome"],
        )
        self.overload_rejections = counter(
            "overload_rejections", "API calls refused with 503 because the gateway was at capacity", ["route"]
        )
        # What `sync_pipeline` and `sync_shipping` published last, by counter: they publish the increase.
        self._seen: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._models: set[str] = set()
        self._children: dict[tuple[str, str, str, str, int, str], _Series] = {}
        self._clients = frozenset(clients)
        self._client_children: dict[tuple[str | None, str], tuple[Any, tuple[Any, ...]]] = {}

    # Every metric is named under PREFIX and registered in this registry (which multiprocess mode merges).

    def _counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(f"{PREFIX}_{name}", doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, mode: Literal["livesum", "livemax"], labels: Sequence[str] = ()) -> Gauge:
        """`mode`: how multiprocess mode merges the workers' values (live ones only: a dead worker's are gone)."""
        return Gauge(f"{PREFIX}_{name}", doc, labels, multiprocess_mode=mode, registry=self.registry)

    def _histogram(
        self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        return Histogram(f"{PREFIX}_{name}", doc, labels, buckets=buckets, registry=self.registry)

    def _model_label(self, name: str) -> str:
        """A bounded label value: names a client made up must not mint series without limit."""
        if name in self._models:
            return name
        with self._lock:
            if len(self._models) >= MAX_MODEL_LABELS:
                return "other"
            self._models.add(name)
        return name

    # --- observation -----------------------------------------------------------------------------------

    def observe_call(self, record: CallRecord) -> None:
        """Everything known when the call ends (cost comes later, from the trace helper), only queued here:
        `fold` writes the queued calls into the metrics, 0.05 s later (the app's ticker) or before a
        scrape, whichever is first. Per call that is a deque append on the request path and a few additions in
        the fold, against the dozen locked increments and bucket walks observing each call cost (5.5 µs)."""
        self._calls.append(record)

    def fold(self, most: int | None = None) -> bool:
        """Queued calls into the metrics, all or at most `most` (whether some are left): the app's ticker folds
        slices, as a quarter second's calls at once stalled the loop a millisecond at c1 (docs/scaling.md). The
        slices' sums go into the metrics once the queue is empty (or 4,096 calls on), not after every slice."""
        with self._fold_lock:
            calls, (counts, folded) = self._calls, self._sums
            left = len(calls) if most is None else min(most, len(calls))
            self._unwritten += left
            while left > 0:
                left -= 1
                record = calls.popleft()  # there: only this, under the lock, takes calls out
                try:
                    self._fold_call(record, counts, folded)
                except Exception:  # one odd record must not keep the others out
                    log.exception("recording metrics for trace %s failed", record.trace_id)
            if most is not None and calls and self._unwritten < 4096:
                return True
            for child, amount in counts.items():
                child.inc(amount)
            for histogram in folded.values():
                histogram.write()
            self._sums, self._unwritten = ({}, {}), 0
            return bool(calls)

    def _fold_call(self, record: CallRecord, counts: dict[Any, float], folded: dict[Any, _Folded]) -> None:
        if record.provider:  # resolved to a configured deployment
            requested = self._model_label(record.requested_model)
            model = self._model_label(record.resolved_model or record.requested_model)
        else:  # rejected before routing: the name is whatever the client sent, never a label value
            requested = "unknown" if record.requested_model else ""
            model = "unknown"
        provider = record.provider or "none"
        series = self._series(record.route, requested, model, provider, record.status_code, record.error_type or "")
        observe = functools.partial(_observe, folded)
        counts[series.requests] = counts.get(series.requests, 0) + 1
        duration = record.duration
        observe(series.duration, duration)
        if record.upstream_latency is not None:
            observe(series.upstream, record.upstream_latency)
            observe(series.overhead, max(0.0, duration - record.upstream_latency))
        if record.completion_start_time is not None:
            observe(series.ttft, max(0.0, record.completion_start_time - record.start_time))
            generating = record.end_time - record.completion_start_time
            if record.usage.output and generating > 0:
                observe(series.tps, record.usage.output / generating)
        usage = record.usage
        by_client, client_tokens = self._client_series(record.client, record.route)
        counts[by_client] = counts.get(by_client, 0) + 1
        for child, client_child, count in zip(
            series.tokens,
            client_tokens,
            (usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning),
            strict=True,
        ):
            if count:
                counts[child] = counts.get(child, 0) + count
                counts[client_child] = counts.get(client_child, 0) + count

    def _client_series(self, client: str | None, route: str) -> tuple[Any, tuple[Any, ...]]:
        key = (client, route)
        found = self._client_children.get(key)
        if found is None:
            label = (client if client in self._clients else "other") if client else "unknown"
            if len(self._client_children) > 20_000:
                self._client_children.clear()
            found = (
                self.client_requests.labels(label, route),
                tuple(self.client_tokens.labels(label, d) for d in TOKEN_DIRECTIONS),
            )
            self._client_children[key] = found
        return found

    def _series(self, route: str, requested: str, model: str, provider: str, status: int, error: str) -> _Series:
        """The label children one call touches, looked up once per label set (labels() takes a lock and
        builds a key each time; a call touched a dozen of them)."""
        key = (route, requested, model, provider, status, error)
        found = self._children.get(key)
        if found is None:
            if len(self._children) > 20_000:
                self._children.clear()
            found = _Series(
                requests=self.requests.labels(route, requested, model, provider, str(status), error),
                duration=self.duration.labels(route, model, provider),
                upstream=self.upstream.labels(route, model, provider),
                overhead=self.overhead.labels(route),
                ttft=self.ttft.labels(route, model, provider),
                tps=self.tps.labels(model, provider),
                tokens=tuple(self.tokens.labels(d, model, provider) for d in TOKEN_DIRECTIONS),
            )
            self._children[key] = found
        return found

    def upstream_failure(self, deployment: Deployment, exc: GatewayError) -> None:
        """Every failed attempt, retried or not, counts against its deployment."""
        kind = "timeout" if exc.status == 504 else "rate_limited" if exc.status == 429 else "error"
        self.upstream_failures.labels(deployment.model_name, deployment.provider, kind).inc()

    def budget_alert(self, threshold: int, delivered: bool) -> None:
        self.budget_alerts.labels(str(threshold), "delivered" if delivered else "failed").inc()

    def add_cost(self, spent: Iterable[tuple[str, str, float]]) -> None:
        """USD by (model, provider), as the trace helper priced a batch of calls."""
        for model, provider, usd in spent:
            self.cost.labels(self._model_label(model), provider or "none").inc(usd)

    def sync_pipeline(
        self,
        *,
        queue_depth: int,
        backlog: int,
        lost: int,
        export_failures: int,
        exported: int,
        helper_restarts: int = 0,
        spilled: int = 0,
        spill_pending: int = 0,
    ) -> None:
        """Mirror the pipeline's own counters (it counts; we publish the increase since last time)."""
        with self._lock:
            self.trace_queue.set(queue_depth)
            self.trace_backlog.set(backlog)
            self.trace_spill_pending.set(spill_pending)
            for name, counter, value in (
                ("lost", self.trace_lost, lost),
                ("export_failures", self.trace_export_failures, export_failures),
                ("exported", self.trace_exported, exported),
                ("helper_restarts", self.trace_helper_restarts, helper_restarts),
                ("spilled", self.trace_spilled, spilled),
            ):
                seen = self._seen[name]
                if value > seen:
                    counter.inc(value - seen)
                    self._seen[name] = value

    def sync_shipping(self, *, backlog: int, failures: int) -> None:
        """Mirror the trace helper's shipping to PostgreSQL (a helper that restarts counts failures anew)."""
        with self._lock:
            self.trace_ship_backlog.set(backlog)
            seen = self._seen["ship_failures"]
            if failures > seen:
                self.trace_ship_failures.inc(failures - seen)
            self._seen["ship_failures"] = failures

    # --- exposition ------------------------------------------------------------------------------------

    def scrape_registry(self) -> CollectorRegistry:
        """In multiprocess mode, a fresh registry that merges every worker's files; else our own."""
        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return registry
        return self.registry

    def render(self) -> bytes:
        self.fold()  # in multiprocess mode the merged view reads files: this worker's calls must be in them
        return generate_latest(self.scrape_registry())

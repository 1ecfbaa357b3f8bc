"""The composition root: `create_app(settings)` wires config, providers, gateway, tracing and routes.

No import-time side effects: everything is built here and kept in one typed `AppState` (`app.state`), so
tests run several gateways side by side in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.applications import Starlette

from . import __version__
from .access.limits import Limits, MemoryLimits, Windows
from .access.reconcile import RECONCILE_SECONDS, ReconciledLimits
from .accounting.clients import KNOWN_CLIENTS
from .accounting.cost import Prices, compute_cost, models_for_provider, price_table, prices_resolver
from .apis import FAMILIES, ApiFamily
from .gateway.handle import Gateway
from .gateway.routing import Router
from .http import admin, api, handlers, insight, system, ui
from .http import keys as keys_api
from .http.auth import Auth
from .http.entry import Admission, EntryLayer
from .http.handlers import Handlers
from .http.state import AppState
from .memtrim import Trimmer
from .metrics import Metrics
from .metrics.serving import mark_worker_dead, multiprocess_dir, serve_metrics
from .model_config import ModelConfig, effective_settings, load_model_config
from .parts import build_egress, build_keys, build_limits, build_pipeline, secrets_of
from .providers.anthropic_compat import AnthropicCompatProvider
from .providers.base import Provider
from .providers.litellm_adapter import LiteLLMProvider
from .providers.mock import MockProvider
from .providers.openai_compat import OpenAICompatProvider
from .providers.upstream_http import UpstreamHTTP
from .settings import Settings
from .tracing.alerts import BudgetAlerts
from .tracing.handoff import TraceHandoff
from .types import CallRecord

log = logging.getLogger("llm_scope")
# How often finished calls are folded into the metrics (scrapes fold first): the most a scrape of another
# worker's counts (multiprocess mode) can lag behind. Often, so the records queued for it die young: at
# 0.25 s at c1 most of them outlived a GC pass, which then scanned them (docs/PERFORMANCE.md).
METRICS_FOLD_SECONDS = 0.05
FOLD_SLICE = 16  # calls folded between two turns of the loop: ~0.05 ms, the most a request waits on a fold


class ObservedRecorder:
    """Finished calls go to the metrics (queued, folded in every 0.05 s), the key's budget counters,
    and the trace pipeline, whose helper process prices, logs, stores and exports them in batches."""

    def __init__(
        self,
        metrics: Metrics,
        pipeline: TraceHandoff,
        limits: Limits,
        prices_for: Callable[[CallRecord], Prices | None],
    ) -> None:
        self.metrics = metrics
        self.pipeline = pipeline
        self.limits = limits
        self.prices_for = prices_for
        self._pending: set[asyncio.Task[None]] = set()

    def submit(self, record: CallRecord) -> None:
        self.metrics.observe_call(record)  # a queue append: the fold logs a record it cannot count
        if record.key_id is not None:
            # Priced now (the helper would price it later the same way) so the budget is current.
            record.cost = compute_cost(record.usage, self.prices_for(record))
            cost = record.cost.total if record.cost and record.cost.total else 0.0
            task = asyncio.get_running_loop().create_task(
                self.limits.record(record.key_id, record.usage.total, cost, Windows.now())
            )
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        self.pipeline.submit(record)


def create_app(
    settings: Settings, *, model_config: ModelConfig | None = None, families: Sequence[ApiFamily] = FAMILIES
) -> EntryLayer:
    """The gateway, wired. `families` are the API families it serves (`apis.FAMILIES`; a test may add one)."""
    config = model_config or load_model_config(settings)
    settings = effective_settings(settings, config)  # general_settings.master_key, Langfuse callbacks, …
    router = Router(config.deployments, config.aliases, config.hidden_aliases)
    metrics = Metrics(clients=KNOWN_CLIENTS)
    pipeline = build_pipeline(settings, config, metrics)
    keys = build_keys(settings)
    limits = build_limits(settings)
    prices_for = prices_resolver(config.price_overrides)
    alerts = BudgetAlerts(
        settings.budget_webhook_url,
        pipeline,
        keys.list,
        interval=settings.budget_alert_interval,
        observe=metrics.budget_alert,
    )
    http = UpstreamHTTP(egress=build_egress(settings))
    providers: dict[str, Provider] = {
        "openai": OpenAICompatProvider(http, families),
        "anthropic": AnthropicCompatProvider(http, families),
        "mock": MockProvider(families),
        "litellm": LiteLLMProvider(families),
    }
    gateway = Gateway(
        router,
        providers,
        ObservedRecorder(metrics, pipeline, limits, prices_for),
        timeout=settings.upstream_timeout,
        connect_timeout=settings.connect_timeout,
        secrets=secrets_of(settings, config),
        debug=settings.debug_mode,
        policy=config.policy,
        on_upstream_failure=metrics.upstream_failure,
    )

    def sync_metrics() -> None:
        s = pipeline.stats
        metrics.sync_pipeline(
            queue_depth=pipeline.queue_depth,
            backlog=s.backlog,
            lost=s.lost,
            export_failures=s.export_failures,
            exported=s.exported,
            helper_restarts=pipeline.helper_restarts,
            spilled=pipeline.spill.spilled,
            spill_pending=pipeline.spill.pending,
        )
        if settings.database_url:
            metrics.sync_shipping(backlog=pipeline.ship_backlog, failures=pipeline.ship_failures)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pipeline.start()
        await asyncio.get_running_loop().run_in_executor(None, keys.start)
        counters = limits.inner if isinstance(limits, ReconciledLimits) else limits
        if isinstance(counters, MemoryLimits):
            await _seed_spend(pipeline, counters)
        alerts.start()
        reconciler = None
        if isinstance(limits, ReconciledLimits):
            reconciler = asyncio.create_task(_reconcile(pipeline, limits))
        metrics_server = _start_metrics_server(settings, metrics)
        syncer = asyncio.create_task(_every(1.0, sync_metrics))
        folder = asyncio.create_task(_fold_every(METRICS_FOLD_SECONDS, metrics))
        trimmer = _start_trimmer(settings.malloc_trim_s)
        log.info("llm-scope %s: %d model routes from %s", __version__, len(config.deployments), config.source)
        if config.unavailable:
            names = ", ".join(sorted({d.model_name for d in config.unavailable}))
            log.warning("unavailable as configured (calls answer 503; GET /ready lists why): %s", names)
        # Everything allocated at start-up is long-lived; keep it out of every future full GC pass.
        gc.collect()
        gc.freeze()
        state.lifecycle.started = True
        try:
            yield
        finally:
            syncer.cancel()
            folder.cancel()
            if trimmer is not None:
                trimmer.cancel()
            if reconciler is not None:
                reconciler.cancel()
            alerts.stop()
            await gateway.aclose()
            await pipeline.stop()
            await limits.aclose()
            await asyncio.get_running_loop().run_in_executor(None, keys.close)
            sync_metrics()
            metrics.fold()
            if metrics_server is not None:
                metrics_server.shutdown()
            mark_worker_dead(os.getpid())

    routes = [
        *system.routes,
        *handlers.routes,
        *api.routes,
        *insight.routes,
        *admin.routes,
        *keys_api.routes,
        *ui.routes,
    ]
    if settings.metrics_on_main_port:
        routes.append(system.metrics_route)
    web = Starlette(
        routes=routes,
        exception_handlers={404: system.http_exception, 405: system.http_exception},
        lifespan=lifespan,
    )
    api_handlers = Handlers(gateway, limits, settings.max_body_bytes, metrics.in_flight_streams)
    state = AppState(
        settings=settings,
        gateway=gateway,
        pipeline=pipeline,
        keys=keys,
        limits=limits,
        metrics=metrics,
        sync_metrics=sync_metrics,
        model_list=_model_lister(router),
        prices_for=prices_for,
        unavailable=[
            {"model_name": d.model_name, "reason": d.unavailable} for d in config.deployments if d.unavailable
        ],
        budget_alerts=alerts,
    )
    return EntryLayer(
        web,
        state,
        auth=Auth(settings.master_key, keys),
        families=families,
        serve=api_handlers.serve,
        in_flight=metrics.in_flight,
        admission=Admission(
            settings.max_concurrency if settings.max_concurrency > 0 else sys.maxsize,
            settings.max_queue,
            metrics.overload_rejections,
            traces_behind=pipeline.behind if settings.trace_overflow == "backpressure" else None,
        )
        if settings.max_concurrency > 0 or settings.trace_overflow == "backpressure"
        else None,
        cors_origins=settings.cors_origin_list,
    )


async def _reconcile(pipeline: TraceHandoff, limits: ReconciledLimits) -> None:
    """Budgets follow every instance's spend: the shared store's per-key sums, every couple of seconds."""

    async def spend_since(since: float) -> dict[str, float]:
        return await pipeline.read(pipeline.store.spend_by_key, since)

    while True:
        await limits.reconcile(spend_since)
        await asyncio.sleep(RECONCILE_SECONDS)


async def _seed_spend(pipeline: TraceHandoff, limits: MemoryLimits) -> None:
    """After a restart, budgets continue from what the local store says each key spent."""
    w = Windows.now()
    now = time.time()
    month_start, day_start = now - _seconds_into_month(), now - (86400 - w.to_next_day)
    month = await pipeline.read(pipeline.local.spend_by_key, month_start)
    day = await pipeline.read(pipeline.local.spend_by_key, day_start)
    for key_id, spent in month.items():
        limits.seed(key_id, w.day, day.get(key_id, 0.0), w.month, spent)


def _seconds_into_month() -> float:
    now = time.gmtime()
    return (now.tm_mday - 1) * 86400 + now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec


def _start_metrics_server(settings: Settings, metrics: Metrics) -> Any:
    """The separate metrics port; with several workers the CLI's parent process serves it instead."""
    if not settings.metrics_port or multiprocess_dir():
        return None
    try:
        return serve_metrics(settings.metrics_port, settings.metrics_host, metrics.registry)
    except OSError as exc:
        log.warning(
            "metrics port %d unavailable (%s); /metrics stays on the main port", settings.metrics_port, exc.strerror
        )
        return None


def _start_trimmer(every: float) -> asyncio.Task[None] | None:
    """The worker's freed memory back to the system, at most every `every` s (memtrim: why, and its cost)."""
    if every <= 0:
        return None
    trimmer = Trimmer(every=every)
    return asyncio.create_task(_every(max(every, 0.1), lambda: trimmer.check(time.monotonic())))


async def _every(seconds: float, fn: Any) -> None:
    while True:
        await asyncio.sleep(seconds)
        fn()


async def _fold_every(seconds: float, metrics: Metrics) -> None:
    while True:
        await asyncio.sleep(seconds)
        more = metrics.fold(FOLD_SLICE)
        while more:
            await asyncio.sleep(0)  # what came in on the sockets meanwhile runs before the next slice
            more = metrics.fold(FOLD_SLICE)


def _model_lister(router: Router) -> Callable[[], list[dict[str, Any]]]:
    cache: list[dict[str, Any]] = []

    def model_list() -> list[dict[str, Any]]:
        if not cache:
            created = int(time.time())
            names = dict.fromkeys(router.names)
            for d in router.wildcards:
                if d.provider != "mock" and d.model_name.endswith("/*"):
                    prefix = d.model_name[:-1]
                    names.update(dict.fromkeys(prefix + m for m in models_for_provider(d.provider, price_table())))
            cache.extend({"id": n, "object": "model", "created": created, "owned_by": "llm-scope"} for n in names)
        return cache

    return model_list

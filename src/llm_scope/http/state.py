"""The running gateway's parts as the HTTP layer sees them: one typed object, read through one accessor.

`create_app` builds an `AppState` and attaches it to the Starlette app; every route reads it with
`state_of(request)`, the entry layer holds it as `EntryLayer.state`, and tests reach the parts through
`app.state` as before. Typed and frozen instead of loose attributes and lambdas on Starlette's `app.state`:
mypy checks every read, a reader finds every part in one place, and nothing swaps a part at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request

from ..access.keys import Keys
from ..access.limits import Limits
from ..gateway.handle import Gateway
from ..metrics import Metrics
from ..settings import Settings
from ..tracing.handoff import TraceHandoff
from ..tracing.insight import Pricing

# The one attribute of Starlette's `app.state` this package sets.
_ATTRIBUTE = "llm_scope"


@dataclass
class Lifecycle:
    """What changes after start-up: whether the lifespan has finished starting (until then, not ready)."""

    started: bool = False


@dataclass(frozen=True)
class AppState:
    settings: Settings  # as effective: env, then the config's general_settings and callbacks
    gateway: Gateway
    pipeline: TraceHandoff  # the trace hand-off: records in, the store read through it
    keys: Keys
    limits: Limits
    metrics: Metrics
    sync_metrics: Callable[[], None]  # brings the trace and shipping gauges up to date (before a scrape)
    model_list: Callable[[], list[dict[str, Any]]]  # /v1/models' entries, built on first use
    prices_for: Pricing  # a call's prices (config model_info, then LiteLLM's table), as budgets use them
    unavailable: list[dict[str, str]]  # deployments the config leaves unavailable, and why
    budget_alerts: Any = None  # tracing.alerts.BudgetAlerts: what it has sent, for tests and the log
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    ui_assets: dict[str, Any] = field(default_factory=dict)  # the dashboard's files, loaded on first request

    def readiness(self) -> list[str]:
        """Why the gateway should not get traffic yet; empty when it should."""
        problems = []
        pipeline = self.pipeline
        if not self.lifecycle.started:
            problems.append("starting up")
        if not pipeline.ready:
            problems.append("local trace store is not open")
        elif self.lifecycle.started and pipeline.helper_pid is None:
            problems.append(
                "trace helper is not running (it is restarted with backoff; the log says why): calls are still "
                "served and their traces held"
            )
        elif pipeline.store_failing:
            problems.append(
                "local trace store cannot write (disk full, read-only or locked): calls are still served and "
                "their traces held until it can"
            )
        return problems

    def lag(self) -> dict[str, Any]:
        """What /ready reports beside its verdict: how far shipping to PostgreSQL is behind. Never a reason to
        be taken out of a load balancer: calls succeed while PostgreSQL is down, and traces wait locally."""
        if not self.settings.database_url:
            return {}
        pipeline = self.pipeline
        return {"postgres": {"traces_waiting": pipeline.ship_backlog, "ship_failures": pipeline.ship_failures}}


def attach(app: Starlette, state: AppState) -> None:
    setattr(app.state, _ATTRIBUTE, state)


def state_of(request: Request) -> AppState:
    """The gateway's state, for a route Starlette serves (the API calls get theirs bound at start-up)."""
    state: AppState = getattr(request.app.state, _ATTRIBUTE)
    return state

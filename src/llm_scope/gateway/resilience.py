"""Retries, fallbacks and cooldowns, configured like LiteLLM's router (`router_settings`, `fallbacks`).

A call is tried on the deployments of its model name in rotation, then on each fallback model name, with
exponential backoff and jitter between attempts. Only failures before the first byte reaches the client
are retried: connection errors, timeouts, 429 and 5xx. A deployment that keeps failing is cooled down
(skipped) for a while, unless every deployment of the name is cooling, in which case all are tried.
"""

from __future__ import annotations

import time
from collections import deque

from ..errors import GatewayError
from ..model_config import RetryPolicy
from ..types import Deployment

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504, 529})


def is_retryable(exc: GatewayError) -> bool:
    return exc.status in RETRYABLE_STATUS


def deployment_key(d: Deployment) -> tuple[str, str | None, str]:
    return (d.provider, d.api_base, d.model)


class Cooldowns:
    """Recent failures per deployment; in-process state (each worker judges its own upstreams)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._failures: dict[tuple[str, str | None, str], deque[float]] = {}
        self._until: dict[tuple[str, str | None, str], float] = {}

    def failed(self, d: Deployment) -> bool:
        """Record a failure; returns True when this one put the deployment into cooldown."""
        if self.policy.allowed_fails <= 0 or self.policy.cooldown_time <= 0:
            return False
        key, now = deployment_key(d), time.monotonic()
        window = self._failures.setdefault(key, deque())
        window.append(now)
        while window and window[0] < now - self.policy.cooldown_time:
            window.popleft()
        if len(window) >= self.policy.allowed_fails:
            self._until[key] = now + self.policy.cooldown_time
            window.clear()
            return True
        return False

    def succeeded(self, d: Deployment) -> None:
        if self._failures:  # nearly always empty: no key to build
            self._failures.pop(deployment_key(d), None)

    def cooling(self, d: Deployment) -> bool:
        until = self._until.get(deployment_key(d))
        if until is None:
            return False
        if until <= time.monotonic():
            del self._until[deployment_key(d)]
            return False
        return True

    def order(self, candidates: list[Deployment]) -> list[Deployment]:
        """Healthy deployments first, in rotation order; cooling ones only if nothing else is left."""
        if not self._until:  # nothing cooling down, the usual case
            return candidates
        healthy = [d for d in candidates if not self.cooling(d)]
        return healthy or candidates


class Balancer:
    """`routing_strategy` beyond simple-shuffle (the router's even rotation): `least-busy` tries the
    deployment with the fewest calls in flight first, `latency-based-routing` the one that has answered
    fastest lately (time to the response head, smoothed; one not yet measured goes first, to measure it).
    Ties keep rotation order. In-process state, like the cooldowns."""

    SMOOTHING = 0.3  # weight of the newest latency sample

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        self._busy: dict[tuple[str, str | None, str], int] = {}
        self._latency: dict[tuple[str, str | None, str], float] = {}

    def order(self, candidates: list[Deployment]) -> list[Deployment]:
        table: dict[tuple[str, str | None, str], float] | dict[tuple[str, str | None, str], int]
        table = self._busy if self.strategy == "least-busy" else self._latency
        return sorted(candidates, key=lambda d: table.get(deployment_key(d), 0))

    def started(self, d: Deployment) -> None:
        key = deployment_key(d)
        self._busy[key] = self._busy.get(key, 0) + 1

    def answered(self, d: Deployment, seconds: float) -> None:
        key = deployment_key(d)
        old = self._latency.get(key)
        self._latency[key] = seconds if old is None else old + self.SMOOTHING * (seconds - old)

    def ended(self, d: Deployment) -> None:
        key = deployment_key(d)
        left = self._busy.get(key, 0) - 1
        if left > 0:
            self._busy[key] = left
        else:
            self._busy.pop(key, None)

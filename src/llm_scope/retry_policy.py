"""Retries, backoff, cooldowns and fallbacks: what LiteLLM's `router_settings` (and the same names under
`litellm_settings`) say, read into one frozen policy the gateway follows.

Apart from `model_config.py` (the model list) because the gateway reads only this; `model_config` re-exports it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RetryPolicy:
    num_retries: int = 2  # extra attempts after the first, across deployments and fallbacks
    backoff_base: float = 0.1  # seconds; doubled each attempt, with ±50% jitter
    backoff_max: float = 5.0
    allowed_fails: int = 3  # failures within `cooldown_time` before a deployment is cooled down
    cooldown_time: float = 30.0
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    default_fallbacks: tuple[str, ...] = ()  # for every name without fallbacks of its own
    routing_strategy: str = "simple-shuffle"  # or "least-busy", "latency-based-routing"

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        delay: float = min(self.backoff_max, self.backoff_base * 2.0**attempt) * random.uniform(0.5, 1.5)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def fallbacks_for(self, name: str) -> list[str]:
        return self.fallbacks.get(name) or [f for f in self.default_fallbacks if f != name]


def parse_policy(router_settings: Mapping[str, Any], litellm_settings: Mapping[str, Any], where: str) -> RetryPolicy:
    """Read LiteLLM's names; `router_settings` wins over `litellm_settings`."""
    merged = {**litellm_settings, **router_settings}
    defaults = RetryPolicy()

    def number(name: str, default: float) -> float:
        value = merged.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{where}: '{name}' must be a non-negative number")
        return float(value)

    fallbacks: dict[str, list[str]] = {}
    raw = merged.get("fallbacks") or []
    if not isinstance(raw, list):
        raise ValueError(f"{where}: 'fallbacks' must be a list like [{{'gpt-4o': ['gpt-4o-mini']}}]")
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError(f"{where}: each 'fallbacks' entry must map a model name to a list of names")
        for name, targets in item.items():
            targets = [targets] if isinstance(targets, str) else targets
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise ValueError(f"{where}: fallbacks for '{name}' must be a list of model names")
            fallbacks.setdefault(str(name), []).extend(targets)
    default = merged.get("default_fallbacks") or []
    if not isinstance(default, list) or not all(isinstance(t, str) for t in default):
        raise ValueError(f"{where}: 'default_fallbacks' must be a list of model names")
    return RetryPolicy(
        num_retries=int(number("num_retries", defaults.num_retries)),
        backoff_base=number("retry_after", defaults.backoff_base) or defaults.backoff_base,
        allowed_fails=int(number("allowed_fails", defaults.allowed_fails)),
        cooldown_time=0.0 if merged.get("disable_cooldowns") is True else number("cooldown_time", 30.0),
        fallbacks=fallbacks,
        default_fallbacks=tuple(default),
    )

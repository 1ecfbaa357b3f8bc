"""Cost in USD from LiteLLM's maintained price table, with per-model overrides from the config.

The table is read from the JSON file LiteLLM ships rather than by importing LiteLLM (2 s, ~300 MB),
and loaded once on first use.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from ..types import CallRecord, Cost, Usage

Prices = dict[str, Any]


_KEPT = ("litellm_provider", "mode")


@cache
def price_table() -> dict[str, Prices]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    for location in spec.submodule_search_locations:
        path = Path(location) / "model_prices_and_context_window_backup.json"
        if path.is_file():
            data = json.loads(path.read_text())
            data.pop("sample_spec", None)
            # Only what pricing reads (every rate, the provider, the mode): 2.3 MB held in each helper and in
            # each worker with virtual keys, instead of 4.4 MB with the context windows and feature flags.
            return {
                k: {f: x for f, x in v.items() if "cost" in f or f in _KEPT}
                for k, v in data.items()
                if isinstance(v, dict)
            }
    return {}


def lookup_prices(model: str, provider: str, table: dict[str, Prices]) -> Prices | None:
    """Find a model's prices the way LiteLLM keys them: `provider/model`, then the bare model name."""
    prices = table.get(f"{provider}/{model}")
    if prices is None:
        prices = table.get(model)
    if prices is None and "/" in model:
        prices = table.get(model.rsplit("/", 1)[1])
    return prices


def compute_cost(usage: Usage, prices: Prices | None) -> Cost | None:
    """Each bucket at its own rate from LiteLLM's price fields; None = unknown price (never $0).

    Cache reads at `cache_read_input_token_cost`, cache writes at `cache_creation_input_token_cost` (1-hour
    writes at `cache_creation_input_token_cost_above_1hr`), reasoning at `output_cost_per_reasoning_token`;
    a bucket whose own rate the table lacks is billed at its side's base rate, as the provider would.
    """
    if not prices or (prices.get("input_cost_per_token") is None and prices.get("output_cost_per_token") is None):
        return None
    per_in = _rate(prices, "input_cost_per_token", 0.0)
    per_out = _rate(prices, "output_cost_per_token", 0.0)
    if not (usage.cache_read or usage.cache_write or usage.reasoning):  # most calls: two buckets, two rates
        input_cost, output_cost = round(usage.input * per_in, 10), round(usage.output * per_out, 10)
        return Cost(input_cost, output_cost, round(input_cost + output_cost, 10))
    per_read = _rate(prices, "cache_read_input_token_cost", per_in)
    per_write = _rate(prices, "cache_creation_input_token_cost", per_in)
    per_write_1h = _rate(prices, "cache_creation_input_token_cost_above_1hr", per_write)
    per_reasoning = _rate(prices, "output_cost_per_reasoning_token", per_out)
    write_1h = min(usage.cache_write_1h, usage.cache_write)
    uncached = max(0, usage.input - usage.cache_read - usage.cache_write)
    read_cost = round(usage.cache_read * per_read, 10)
    write_1h_cost = round(write_1h * per_write_1h, 10)
    write_cost = round((usage.cache_write - write_1h) * per_write + write_1h_cost, 10)
    input_cost = round(uncached * per_in + read_cost + write_cost, 10)
    reasoning = min(usage.reasoning, usage.output)
    reasoning_cost = round(reasoning * per_reasoning, 10)
    output_cost = round((usage.output - reasoning) * per_out + reasoning_cost, 10)
    return Cost(
        input=input_cost,
        output=output_cost,
        total=round(input_cost + output_cost, 10),
        cache_read=read_cost,
        cache_write=write_cost,
        reasoning=reasoning_cost,
        cache_write_1h=write_1h_cost,
    )


def _rate(prices: Prices, name: str, default: float) -> float:
    value = prices.get(name)
    return float(value) if value is not None else default


def models_for_provider(provider: str, table: dict[str, Prices]) -> list[str]:
    """Chat models LiteLLM knows for a provider, for listing wildcard routes in /v1/models."""
    out = []
    for key, info in table.items():
        if info.get("litellm_provider") == provider and info.get("mode") == "chat":
            out.append(key.split("/", 1)[1] if key.startswith(provider + "/") else key)
    return sorted(out)


def prices_resolver(overrides: dict[str, Prices]) -> Callable[[CallRecord], Prices | None]:
    """Prices for a call: the model list's own `model_info` first (wildcards too), then LiteLLM's table."""
    # model_info on a wildcard entry ("*", "openai/*") prices every name that entry serves.
    patterns = sorted((n for n in overrides if "*" in n), key=lambda n: len(n.replace("*", "")), reverse=True)

    def configured_prices(name: str) -> Prices | None:
        if name in overrides:
            return overrides[name]
        return next((overrides[p] for p in patterns if fnmatch.fnmatchcase(name, p)), None)

    def prices_for(record: CallRecord) -> Prices | None:
        return configured_prices(record.requested_model) or lookup_prices(
            record.resolved_model, record.provider, price_table()
        )

    return prices_for

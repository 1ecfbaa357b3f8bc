"""What the prompt cache is worth, in USD: saved by cache reads against the list price, and paid on top of it
for cache writes.

A cache read is billed at `cache_read_input_token_cost` instead of `input_cost_per_token` (a tenth of it at
Anthropic, a half or a quarter at OpenAI), so each read token saves the difference; a cache write is billed
at `cache_creation_input_token_cost` (1.25x the input price at Anthropic for 5 minutes, 2x for an hour), so
each written token costs the difference more than an uncached one. Rates the table lacks fall back as
`compute_cost` bills them: a missing read or write rate is the input rate (nothing saved, nothing extra).
"""

from __future__ import annotations

from typing import NamedTuple

from .cost import Prices


class CacheValue(NamedTuple):
    saved: float  # USD the cache reads did not cost, against the list input price
    write_premium: float  # USD the cache writes cost beyond the list input price

    @property
    def net(self) -> float:
        return round(self.saved - self.write_premium, 10)


def cache_value(cache_read: int, cache_write: int, prices: Prices | None, cache_write_1h: int = 0) -> CacheValue | None:
    """None when the model has no input price: unknown, not zero."""
    if not prices or prices.get("input_cost_per_token") is None:
        return None
    per_in = float(prices["input_cost_per_token"])
    per_read = _rate(prices, "cache_read_input_token_cost", per_in)
    per_write = _rate(prices, "cache_creation_input_token_cost", per_in)
    per_write_1h = _rate(prices, "cache_creation_input_token_cost_above_1hr", per_write)
    write_1h = min(cache_write_1h, cache_write)
    return CacheValue(
        saved=round(cache_read * (per_in - per_read), 10),
        write_premium=round((cache_write - write_1h) * (per_write - per_in) + write_1h * (per_write_1h - per_in), 10),
    )


def _rate(prices: Prices, name: str, default: float) -> float:
    value = prices.get(name)
    return float(value) if value is not None else default

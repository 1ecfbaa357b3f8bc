"""What the prompt cache saved and what its writes cost on top, per model's LiteLLM price fields."""

from __future__ import annotations

import pytest

from llm_scope.accounting.cache import CacheValue, cache_value

SONNET = {  # Anthropic: reads at a tenth, 5-minute writes at 1.25x, 1-hour writes at 2x the input price
    "input_cost_per_token": 3e-6,
    "output_cost_per_token": 15e-6,
    "cache_read_input_token_cost": 3e-7,
    "cache_creation_input_token_cost": 3.75e-6,
    "cache_creation_input_token_cost_above_1hr": 6e-6,
}
MINI = {"input_cost_per_token": 1.5e-7, "output_cost_per_token": 6e-7, "cache_read_input_token_cost": 7.5e-8}


@pytest.mark.parametrize(
    ("read", "write", "write_1h", "prices", "expected"),
    [
        (1_000_000, 0, 0, SONNET, CacheValue(saved=2.7, write_premium=0.0)),
        (0, 1_000_000, 0, SONNET, CacheValue(saved=0.0, write_premium=0.75)),
        (0, 1_000_000, 400_000, SONNET, CacheValue(saved=0.0, write_premium=0.6 * 0.75 + 0.4 * 3.0)),
        (1_000_000, 0, 0, MINI, CacheValue(saved=0.075, write_premium=0.0)),  # OpenAI: half price, writes free
        (1_000, 1_000, 0, {"input_cost_per_token": 1e-6}, CacheValue(0.0, 0.0)),  # no cache rates: as uncached
        (1_000, 0, 0, {"output_cost_per_token": 1e-6}, None),  # no input price: unknown
        (1_000, 0, 0, None, None),  # unpriced model: unknown, not $0
    ],
)
def test_cache_value(read: int, write: int, write_1h: int, prices: dict[str, float] | None, expected: object) -> None:
    got = cache_value(read, write, prices, write_1h)
    if expected is None:
        assert got is None
    else:
        assert isinstance(expected, CacheValue) and got is not None
        assert got.saved == pytest.approx(expected.saved) and got.write_premium == pytest.approx(expected.write_premium)


def test_net_is_saved_less_the_write_premium() -> None:
    assert CacheValue(saved=2.7, write_premium=0.75).net == pytest.approx(1.95)

"""Cost from LiteLLM's real price table: prices are read from the table, expectations computed here."""

from __future__ import annotations

import pytest

from llm_scope.accounting.cost import Prices, compute_cost, lookup_prices, models_for_provider, price_table
from llm_scope.accounting.usage import anthropic_usage, openai_usage
from llm_scope.types import Cost, Usage

# (provider, model) pairs that the pinned LiteLLM table prices, across both native wire formats.
PRICED = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
]


@pytest.fixture(scope="module")
def table() -> dict[str, Prices]:
    t = price_table()
    assert len(t) > 100, "LiteLLM's model_prices_and_context_window_backup.json was not found"
    return t


def rate(prices: Prices, key: str, fallback: str = "input_cost_per_token") -> float:
    value = prices.get(key)
    return float(value if value is not None else prices[fallback])


def expected_cost(usage: Usage, prices: Prices) -> tuple[float, float]:
    """What the bill should be, from first principles: each input token billed once at its own rate."""
    uncached = usage.input - usage.cache_read - usage.cache_write
    input_cost = (
        uncached * float(prices["input_cost_per_token"])
        + usage.cache_read * rate(prices, "cache_read_input_token_cost")
        + usage.cache_write * rate(prices, "cache_creation_input_token_cost")
    )
    return input_cost, usage.output * float(prices["output_cost_per_token"])


def test_price_table_is_loaded_once_and_clean(table: dict[str, Prices]) -> None:
    assert price_table() is table
    assert "sample_spec" not in table
    assert all(isinstance(v, dict) for v in table.values())


def test_price_table_keeps_every_rate_of_litellms_file_and_only_what_pricing_reads(table: dict[str, Prices]) -> None:
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.submodule_search_locations
    raw = json.loads(
        (Path(spec.submodule_search_locations[0]) / "model_prices_and_context_window_backup.json").read_text()
    )
    for name, prices in table.items():
        wanted = {f: v for f, v in raw[name].items() if "cost" in f or f in ("litellm_provider", "mode")}
        assert prices == wanted, name
    assert "max_input_tokens" in raw["gpt-4o"] and "max_input_tokens" not in table["gpt-4o"]


@pytest.mark.parametrize(("provider", "model"), PRICED)
def test_priced_models_have_positive_rates(table: dict[str, Prices], provider: str, model: str) -> None:
    prices = lookup_prices(model, provider, table)
    assert prices is not None, f"{provider}/{model} missing from the price table"
    assert prices["litellm_provider"] == provider and prices["mode"] == "chat"
    assert float(prices["input_cost_per_token"]) > 0 and float(prices["output_cost_per_token"]) > 0
    assert float(prices["cache_read_input_token_cost"]) < float(prices["input_cost_per_token"])


@pytest.mark.parametrize(("provider", "model"), PRICED)
@pytest.mark.parametrize(
    "usage",
    [
        pytest.param(Usage(input=1_000_000, output=0, total=1_000_000), id="1M-input"),
        pytest.param(Usage(input=0, output=1_000_000, total=1_000_000), id="1M-output"),
        pytest.param(Usage(input=1234, output=567, total=1801), id="mixed"),
        pytest.param(Usage(input=2006, output=300, total=2306, cache_read=1920), id="cached"),
        pytest.param(Usage(input=5000, output=10, total=5010, cache_read=3000, cache_write=1500), id="read-and-write"),
    ],
)
def test_compute_cost_against_the_table(table: dict[str, Prices], provider: str, model: str, usage: Usage) -> None:
    prices = lookup_prices(model, provider, table)
    assert prices is not None
    want_in, want_out = expected_cost(usage, prices)
    cost = compute_cost(usage, prices)
    assert cost is not None
    assert cost.input == pytest.approx(want_in, rel=1e-6, abs=1e-9)
    assert cost.output == pytest.approx(want_out, rel=1e-6, abs=1e-9)
    assert cost.total == pytest.approx(want_in + want_out, rel=1e-6, abs=1e-9)


def test_openai_cached_tokens_billed_at_cache_read_rate(table: dict[str, Prices]) -> None:
    prices = lookup_prices("gpt-4o-mini", "openai", table)
    assert prices is not None
    per_in = float(prices["input_cost_per_token"])
    per_read = float(prices["cache_read_input_token_cost"])
    usage = openai_usage(
        {"prompt_tokens": 1000, "completion_tokens": 0, "prompt_tokens_details": {"cached_tokens": 800}}
    )
    cost = compute_cost(usage, prices)
    assert cost is not None
    assert cost.input == pytest.approx(200 * per_in + 800 * per_read)
    uncached = compute_cost(Usage(input=1000), prices)
    assert uncached is not None and cost.input < uncached.input


def test_anthropic_cache_reads_and_writes_billed_at_their_rates(table: dict[str, Prices]) -> None:
    prices = lookup_prices("claude-sonnet-4-5", "anthropic", table)
    assert prices is not None
    usage = anthropic_usage(
        {"input_tokens": 10, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 500, "output_tokens": 40}
    )
    cost = compute_cost(usage, prices)
    assert cost is not None
    want = (
        10 * float(prices["input_cost_per_token"])
        + 2000 * float(prices["cache_read_input_token_cost"])
        + 500 * float(prices["cache_creation_input_token_cost"])
    )
    assert cost.input == pytest.approx(want)
    assert cost.output == pytest.approx(40 * float(prices["output_cost_per_token"]))


def test_cache_write_without_a_write_rate_falls_back_to_input_rate(table: dict[str, Prices]) -> None:
    prices = lookup_prices("gpt-4o", "openai", table)
    assert prices is not None and prices.get("cache_creation_input_token_cost") is None
    cost = compute_cost(Usage(input=100, cache_write=100), prices)
    assert cost is not None and cost.input == pytest.approx(100 * float(prices["input_cost_per_token"]))


def test_bigger_model_costs_more(table: dict[str, Prices]) -> None:
    usage = Usage(input=1000, output=1000, total=2000)
    small = compute_cost(usage, lookup_prices("gpt-4o-mini", "openai", table))
    big = compute_cost(usage, lookup_prices("gpt-4o", "openai", table))
    assert small is not None and big is not None and big.total > small.total > 0


@pytest.mark.parametrize(
    "prices",
    [
        pytest.param(None, id="not-in-table"),
        pytest.param({}, id="empty"),
        pytest.param({"mode": "chat", "litellm_provider": "openai"}, id="rates-missing"),
        pytest.param({"input_cost_per_token": None, "output_cost_per_token": None}, id="rates-null"),
    ],
)
def test_unknown_price_is_none_not_free(prices: Prices | None) -> None:
    assert compute_cost(Usage(input=10, output=10, total=20), prices) is None


def test_unknown_model_is_not_in_the_table(table: dict[str, Prices]) -> None:
    assert lookup_prices("no-such-model-xyz", "openai", table) is None
    assert compute_cost(Usage(input=10), lookup_prices("no-such-model-xyz", "openai", table)) is None


def test_zero_usage_costs_zero(table: dict[str, Prices]) -> None:
    assert compute_cost(Usage(), lookup_prices("gpt-4o", "openai", table)) == Cost(0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("model", "provider", "expected_key"),
    [
        pytest.param("m", "prov", "prov/m", id="provider-prefixed-key-first"),
        pytest.param("bare", "prov", "bare", id="bare-model-key"),
        pytest.param("org/deep", "prov", "deep", id="last-path-segment"),
        pytest.param("x", "prov", None, id="absent"),
    ],
)
def test_lookup_prices_order(model: str, provider: str, expected_key: str | None) -> None:
    table: dict[str, Prices] = {
        "prov/m": {"input_cost_per_token": 1.0},
        "m": {"input_cost_per_token": 2.0},
        "bare": {"input_cost_per_token": 3.0},
        "deep": {"input_cost_per_token": 4.0},
    }
    found = lookup_prices(model, provider, table)
    assert found is (table[expected_key] if expected_key else None)


def test_lookup_prices_in_the_real_table(table: dict[str, Prices]) -> None:
    assert lookup_prices("gpt-4o", "azure", table) is table["azure/gpt-4o"]
    assert lookup_prices("gpt-4o", "openai", table) is table["gpt-4o"]
    assert lookup_prices("claude-haiku-4-5", "anthropic", table) is table["claude-haiku-4-5"]


def test_models_for_provider(table: dict[str, Prices]) -> None:
    openai_models = models_for_provider("openai", table)
    assert {"gpt-4o", "gpt-4o-mini"} <= set(openai_models)
    assert "text-embedding-3-small" not in openai_models  # embeddings are not chat models
    assert openai_models == sorted(openai_models)
    anthropic_models = models_for_provider("anthropic", table)
    assert {"claude-sonnet-4-5", "claude-haiku-4-5"} <= set(anthropic_models)
    assert not any(m.startswith("gpt-") for m in anthropic_models)
    azure_models = models_for_provider("azure", table)
    assert "gpt-4o" in azure_models and not any(m.startswith("azure/") for m in azure_models)
    assert models_for_provider("no-such-provider", table) == []


def test_listed_zero_rates_are_free_not_unknown() -> None:
    prices: Prices = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "cache_read_input_token_cost": 0}
    cost = compute_cost(Usage(input=1000, cache_read=1000), prices)
    assert cost is not None and cost.input == 0.0
    free = compute_cost(Usage(input=10, output=10), {"input_cost_per_token": 0, "output_cost_per_token": 0.0})
    assert free == Cost(0.0, 0.0, 0.0)


def test_zero_cache_read_rate_in_the_real_table(table: dict[str, Prices]) -> None:
    """Some models list free cache reads; those tokens must cost nothing, not the full input rate."""
    free_reads = [
        p
        for p in table.values()
        if p.get("cache_read_input_token_cost") == 0 and float(p.get("input_cost_per_token") or 0) > 0
    ]
    if not free_reads:
        pytest.skip("no model in this LiteLLM table lists a zero cache-read rate")
    prices = free_reads[0]
    cost = compute_cost(Usage(input=100, cache_read=100), prices)
    assert cost is not None and cost.input == 0.0


# --- each bucket at its own rate, kept per call ------------------------------------------------------------

# A made-up price list, so each expectation below is arithmetic on round numbers.
LIST = {
    "input_cost_per_token": 3e-6,
    "output_cost_per_token": 15e-6,
    "cache_read_input_token_cost": 0.3e-6,
    "cache_creation_input_token_cost": 3.75e-6,
    "cache_creation_input_token_cost_above_1hr": 6e-6,
    "output_cost_per_reasoning_token": 20e-6,
}


@pytest.mark.parametrize(
    ("usage", "prices", "want"),
    [
        # Anthropic, 20 fresh + 100 read + 30 written (10 of them for an hour) in, 40 out.
        (
            Usage(input=150, output=40, cache_read=100, cache_write=30, cache_write_1h=10),
            LIST,
            Cost(
                input=20 * 3e-6 + 100 * 0.3e-6 + 20 * 3.75e-6 + 10 * 6e-6,
                output=40 * 15e-6,
                total=20 * 3e-6 + 100 * 0.3e-6 + 20 * 3.75e-6 + 10 * 6e-6 + 40 * 15e-6,
                cache_read=100 * 0.3e-6,
                cache_write=20 * 3.75e-6 + 10 * 6e-6,
                cache_write_1h=10 * 6e-6,
            ),
        ),
        # Without a 1-hour rate, 1-hour writes cost what 5-minute writes cost.
        (
            Usage(input=30, cache_write=30, cache_write_1h=30),
            {k: v for k, v in LIST.items() if k != "cache_creation_input_token_cost_above_1hr"},
            Cost(input=30 * 3.75e-6, total=30 * 3.75e-6, cache_write=30 * 3.75e-6, cache_write_1h=30 * 3.75e-6),
        ),
        # OpenAI reasoning: part of the completion, at its own rate where the table has one...
        (
            Usage(input=25, output=30, cache_read=8, reasoning=12),
            LIST,
            Cost(
                input=17 * 3e-6 + 8 * 0.3e-6,
                output=18 * 15e-6 + 12 * 20e-6,
                total=17 * 3e-6 + 8 * 0.3e-6 + 18 * 15e-6 + 12 * 20e-6,
                cache_read=8 * 0.3e-6,
                reasoning=12 * 20e-6,
            ),
        ),
        # ...and at the output rate where it has none.
        (
            Usage(output=30, reasoning=12),
            {"input_cost_per_token": 1e-6, "output_cost_per_token": 4e-6},
            Cost(output=30 * 4e-6, total=30 * 4e-6, reasoning=12 * 4e-6),
        ),
        # Unpriced: unknown, never $0.
        (Usage(input=10, output=10), {"mode": "chat"}, None),
    ],
    ids=["anthropic-1h", "no-1h-rate", "openai-reasoning-rate", "reasoning-at-output-rate", "unpriced"],
)
def test_cost_per_bucket(usage: Usage, prices: Prices, want: Cost | None) -> None:
    got = compute_cost(usage, prices)
    if want is None:
        assert got is None
        return
    assert got is not None
    for field in Cost.__slots__:
        assert getattr(got, field) == pytest.approx(getattr(want, field), abs=1e-12), field
    details = got.details(usage)
    assert sum(v for k, v in details.items() if k != "total") == pytest.approx(got.total)


def test_sonnet_1h_writes_priced_from_litellms_table(table: dict[str, Prices]) -> None:
    prices = lookup_prices("claude-sonnet-4-5", "anthropic", table)
    assert prices is not None and prices.get("cache_creation_input_token_cost_above_1hr") is not None
    usage = anthropic_usage(
        {
            "input_tokens": 20,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 10},
            "output_tokens": 40,
        }
    )
    assert (usage.cache_write, usage.cache_write_1h) == (30, 10)
    cost = compute_cost(usage, prices)
    assert cost is not None
    assert cost.cache_write_1h == pytest.approx(10 * float(prices["cache_creation_input_token_cost_above_1hr"]))
    assert cost.cache_write == pytest.approx(
        20 * float(prices["cache_creation_input_token_cost"]) + cost.cache_write_1h
    )

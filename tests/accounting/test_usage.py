"""Usage normalisation from each wire format's own fields, table-tested."""

from __future__ import annotations

from typing import Any

import pytest

from llm_scope.accounting.usage import anthropic_usage, merge, openai_usage
from llm_scope.types import Usage


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, Usage(), id="none"),
        pytest.param("12 tokens", Usage(), id="not-a-dict"),
        pytest.param({}, Usage(), id="empty"),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            Usage(input=10, output=5, total=15),
            id="plain",
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 5},
            Usage(input=10, output=5, total=15),
            id="total-missing-is-summed",
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 18},
            Usage(input=10, output=5, total=18),
            id="reported-total-kept",
        ),
        pytest.param(
            {
                "prompt_tokens": 2006,
                "completion_tokens": 300,
                "total_tokens": 2306,
                "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0},
            },
            Usage(input=2006, output=300, total=2306, cache_read=1920, reasoning=256),
            id="cached-and-reasoning-details",
        ),
        pytest.param(
            {
                "prompt_tokens": 100,
                "completion_tokens": 7,
                "total_tokens": 107,
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            },
            Usage(input=100, output=7, total=107),
            id="details-null",
        ),
        pytest.param(
            {
                "prompt_tokens": 100,
                "completion_tokens": 7,
                "cache_read_input_tokens": 40,
                "cache_creation_input_tokens": 30,
            },
            Usage(input=100, output=7, total=107, cache_read=40, cache_write=30),
            id="litellm-anthropic-style-cache-fields",
        ),
        pytest.param(
            {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 64}},
            Usage(input=100, output=7, total=107, cache_read=64),
            id="details-cached-tokens",
        ),
        pytest.param(
            {"prompt_tokens": "10", "completion_tokens": 5.0, "total_tokens": True},
            Usage(input=0, output=0, total=0),
            id="non-int-values-ignored",
        ),
        pytest.param(
            {"prompt_tokens": -3, "completion_tokens": 4},
            Usage(input=0, output=4, total=4),
            id="negative-ignored",
        ),
    ],
)
def test_openai_usage(raw: Any, expected: Usage) -> None:
    assert openai_usage(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, Usage(), id="none"),
        pytest.param([], Usage(), id="not-a-dict"),
        pytest.param(
            {"input_tokens": 25, "output_tokens": 10},
            Usage(input=25, output=10, total=35),
            id="plain",
        ),
        pytest.param(
            # input_tokens excludes cache reads and writes: the normalised input adds them back.
            {
                "input_tokens": 12,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 200,
                "output_tokens": 50,
            },
            Usage(input=1212, output=50, total=1262, cache_read=1000, cache_write=200),
            id="cache-read-and-write-added-back",
        ),
        pytest.param(
            {"input_tokens": 3, "cache_read_input_tokens": None, "cache_creation_input_tokens": 0, "output_tokens": 1},
            Usage(input=3, output=1, total=4),
            id="cache-null-or-zero",
        ),
        pytest.param(
            {"input_tokens": 472, "output_tokens": 1},
            Usage(input=472, output=1, total=473),
            id="message-start-partial",
        ),
        pytest.param({"output_tokens": 15}, Usage(output=15, total=15), id="message-delta-partial"),
    ],
)
def test_anthropic_usage(raw: Any, expected: Usage) -> None:
    assert anthropic_usage(raw) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param(Usage(), Usage(), Usage(), id="empty"),
        pytest.param(
            # Anthropic stream: message_start reports input (and a token of output), message_delta the output.
            anthropic_usage({"input_tokens": 12, "cache_read_input_tokens": 100, "output_tokens": 1}),
            anthropic_usage({"output_tokens": 42}),
            Usage(input=112, output=42, total=154, cache_read=100),
            id="anthropic-start-then-delta",
        ),
        pytest.param(
            Usage(input=10, output=5, total=15, cache_read=4, cache_write=2, reasoning=3),
            Usage(),
            Usage(input=10, output=5, total=15, cache_read=4, cache_write=2, reasoning=3),
            id="empty-second-keeps-first",
        ),
        pytest.param(
            Usage(input=10, output=5, total=15),
            Usage(input=11, output=6, total=17, reasoning=2),
            Usage(input=11, output=6, total=17, reasoning=2),
            id="later-report-wins",
        ),
        pytest.param(
            Usage(input=10, total=10),
            Usage(output=5, total=5),
            Usage(input=10, output=5, total=15),
            id="total-never-below-input-plus-output",
        ),
        pytest.param(
            Usage(input=10, output=5, total=99),
            Usage(output=6),
            Usage(input=10, output=6, total=99),
            id="larger-reported-total-kept",
        ),
    ],
)
def test_merge(a: Usage, b: Usage, expected: Usage) -> None:
    assert merge(a, b) == expected


def test_usage_details_for_langfuse_are_disjoint_buckets() -> None:
    usage = openai_usage(
        {
            "prompt_tokens": 50,
            "completion_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 30},
            "completion_tokens_details": {"reasoning_tokens": 8},
        }
    )
    # Langfuse sums every key holding "input" (or "output"): 20 + 30 is the prompt, 12 + 8 the completion.
    assert usage.details() == {
        "input": 20,
        "input_cached_tokens": 30,
        "output": 12,
        "output_reasoning_tokens": 8,
        "total": 70,
    }
    assert openai_usage({"prompt_tokens": 1, "completion_tokens": 1}).details() == {"input": 1, "output": 1, "total": 2}


def test_anthropic_cache_writes_split_by_lifetime() -> None:
    raw = {
        "input_tokens": 20,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 30,
        "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 10},
        "output_tokens": 40,
    }
    usage = anthropic_usage(raw)
    assert usage == Usage(input=150, output=40, total=190, cache_read=100, cache_write=30, cache_write_1h=10)
    assert usage.details() == {
        "input": 20,
        "input_cached_tokens": 100,
        "input_cache_creation_5m": 20,
        "input_cache_creation_1h": 10,
        "output": 40,
        "total": 190,
    }
    # Without the split (older API versions, LiteLLM's translation) writes are one bucket.
    plain = anthropic_usage({k: v for k, v in raw.items() if k != "cache_creation"})
    assert plain.details()["input_cache_creation"] == 30
    # A message_delta that repeats nothing about the cache keeps what message_start said.
    assert merge(usage, anthropic_usage({"output_tokens": 41})).cache_write_1h == 10

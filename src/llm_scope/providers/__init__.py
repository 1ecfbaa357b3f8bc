"""Providers: one module each behind the `Provider` protocol, chosen by one table."""

from __future__ import annotations

from ..model_config import OPENAI_COMPATIBLE

ANTHROPIC_COMPATIBLE = frozenset({"anthropic"})
ANTHROPIC_APIS = frozenset({"messages", "count_tokens"})


def provider_kind(api: str, provider: str) -> str:
    """Which implementation serves a call: native passthrough when the upstream speaks the client's
    format, the mock for mock models, LiteLLM's translation for everything else."""
    if provider == "mock":
        return "mock"
    if api in ANTHROPIC_APIS:
        return "anthropic" if provider in ANTHROPIC_COMPATIBLE else "litellm"
    if provider in OPENAI_COMPATIBLE:
        return "openai"
    return "litellm"

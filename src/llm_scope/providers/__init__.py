"""Providers: one module each behind the `Provider` protocol, chosen by one table."""

from __future__ import annotations

from ..apis import ApiFamily
from ..model_config import OPENAI_COMPATIBLE

ANTHROPIC_COMPATIBLE = frozenset({"anthropic"})


def provider_kind(family: ApiFamily, provider: str) -> str:
    """Which implementation serves a call: native passthrough when the upstream speaks the family's format,
    the mock for mock models, LiteLLM's translation for everything else."""
    if provider == "mock":
        return "mock"
    if family.anthropic:
        return "anthropic" if provider in ANTHROPIC_COMPATIBLE else "litellm"
    if provider in OPENAI_COMPATIBLE:
        return "openai"
    return "litellm"

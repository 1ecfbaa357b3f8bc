"""Providers: one module each behind the `Provider` protocol, chosen by one table."""

from __future__ import annotations

from ..config import OPENAI_COMPATIBLE


def provider_kind(provider: str) -> str:
    """Which implementation serves a LiteLLM provider prefix: the registry as a plain table."""
    if provider == "mock":
        return "mock"
    if provider in OPENAI_COMPATIBLE:
        return "openai"
    return "litellm"

"""Scrub secrets from anything the gateway emits: logs, traces, error bodies.

Two nets: the exact secret values the gateway holds (provider keys, master key), and patterns of
well-known key formats, so a key a client pasted into a prompt or an upstream echoed in an error is
caught too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"

_KEY_PATTERNS = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"  # a key starts at a word boundary, so "task-lf-..." is not a Langfuse key
    r"sk-ant-[A-Za-z0-9_\-]{8,}"  # Anthropic
    r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"  # OpenAI and OpenAI-style (incl. our sk-ls- keys)
    r"|sk-lf-[A-Za-z0-9\-]{8,}|pk-lf-[A-Za-z0-9\-]{8,}"  # Langfuse
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API key
    r"|gsk_[A-Za-z0-9]{20,}"  # Groq
    r"|xai-[A-Za-z0-9]{20,}"  # xAI
    r")"
    r"|(?<=[Bb]earer )[A-Za-z0-9_\-\.=]{12,}"  # any bearer token in text
)

SECRET_FIELDS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "api_key",
        "apikey",
        "secret",
        "password",
        "aws_secret_access_key",
        "aws_session_token",
        "vertex_credentials",
        "client_secret",
        "access_token",
        "refresh_token",
        "cookie",
        "set-cookie",
    }
)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_PATTERNS.sub(REDACTED, text)


def redact_headers(headers: Iterable[tuple[str, str]], secrets: Iterable[str] = ()) -> dict[str, str]:
    secrets = list(secrets)
    return {k: REDACTED if k.lower() in SECRET_FIELDS else redact_text(v, secrets) for k, v in headers}


def redact_value(value: Any, secrets: Iterable[str] = ()) -> Any:
    """Deep copy of a JSON-like value with secret fields blanked and key-shaped strings masked."""
    secrets = secrets if isinstance(secrets, list | tuple) else list(secrets)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and k.lower() in SECRET_FIELDS and v else redact_value(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(v, secrets) for v in value]
    return value

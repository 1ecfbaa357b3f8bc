"""The Provider seam: what the gateway needs from anything that can answer a chat completion.

A provider returns the upstream's answer as bytes in the wire format of the API it was called for (whole,
or as SSE chunks) and raises
`GatewayError` for every failure, so the gateway never sees a third-party exception.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..apis import FAMILIES, ApiFamily, ApiName, by_name
from ..types import Deployment


@dataclass
class UpstreamResponse:
    """An upstream answer: `body` for a whole response, `chunks` for a stream (raw SSE bytes)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: AsyncIterator[bytes] | None = None
    close: Callable[[], Awaitable[None]] | None = None  # releases the upstream connection early

    async def aclose(self) -> None:
        if self.close is not None:
            await self.close()


@dataclass(frozen=True, slots=True)
class Received:
    """The request body as the client sent it (`raw`) and as it parsed (`body`, never changed in place): a
    passthrough sends `raw`, or splices into it, instead of re-serializing (providers/upstream_body.py)."""

    raw: bytes
    body: dict[str, Any]


@dataclass(frozen=True)
class CallOptions:
    """Per-call knobs the gateway resolves from settings and the deployment."""

    timeout: float
    connect_timeout: float
    headers: dict[str, str] = field(default_factory=dict)  # extra client headers worth passing on
    received: Received | None = None  # the client's body, for a passthrough to send as it came


class Provider(Protocol):
    """Answers `api` (an API family's name, a key of `apis.BY_NAME`) in that family's wire format."""

    async def call(
        self, api: ApiName, deployment: Deployment, body: dict[str, Any], options: CallOptions
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class FamilyProvider:
    """What every provider starts from: the families it answers, by the name `call` gets (a runtime-made
    family answers like the table's), and nothing to release unless it holds a connection pool."""

    def __init__(self, families: Iterable[ApiFamily] = FAMILIES) -> None:
        self.families = by_name(families)

    async def aclose(self) -> None:
        return None


# Upstream response headers worth passing back to clients (rate limits, request ids for support).
FORWARDED_RESPONSE_HEADERS = ("x-request-id", "request-id", "openai-processing-ms", "openai-version", "retry-after")
FORWARDED_RESPONSE_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")


def pick_response_headers(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers.items():
        lower = key.lower()
        if lower in FORWARDED_RESPONSE_HEADERS or lower.startswith(FORWARDED_RESPONSE_PREFIXES):
            out[lower] = value
    return out

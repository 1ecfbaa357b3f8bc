"""Translation through LiteLLM for providers that speak neither OpenAI's nor Anthropic's format.

LiteLLM is imported on first use (importing it loads ~2,800 modules in ~2 s), so a gateway that only
passes bytes through starts fast and small. Its answers are re-serialized to OpenAI-format bytes here
so the gateway's stream tap sees one format whatever the provider.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from ..errors import OPENAI_TYPES_BY_STATUS, GatewayError, UpstreamError, UpstreamTimeout
from ..types import Deployment
from .base import CallOptions, UpstreamResponse

_litellm: ModuleType | None = None


def load_litellm() -> ModuleType:
    """Import LiteLLM once, with its network-touching start-up behaviour switched off."""
    global _litellm  # a process-wide import cache, like sys.modules itself
    if _litellm is None:
        # Before import: use the bundled price table instead of fetching it from GitHub at import time.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        litellm.drop_params = True
        _litellm = litellm
    return _litellm


class LiteLLMProvider:
    async def aclose(self) -> None:
        return None

    async def chat(self, deployment: Deployment, body: dict[str, Any], options: CallOptions) -> UpstreamResponse:
        litellm = await asyncio.to_thread(load_litellm) if _litellm is None else _litellm
        kwargs = {k: v for k, v in body.items() if k not in ("model", "metadata")}
        kwargs.update({k: v for k, v in deployment.params.items() if not k.startswith("mock_")})
        if deployment.api_base:
            kwargs["api_base"] = deployment.api_base
        if deployment.api_key:
            kwargs["api_key"] = deployment.api_key
        if deployment.api_version:
            kwargs["api_version"] = deployment.api_version
        kwargs["timeout"] = options.timeout
        kwargs["max_retries"] = 0
        try:
            result = await litellm.acompletion(model=deployment.litellm_model, **kwargs)
        except Exception as exc:
            raise translate_error(exc) from None
        if not body.get("stream"):
            return UpstreamResponse(
                headers={"content-type": "application/json"}, body=result.model_dump_json(exclude_none=True).encode()
            )
        return UpstreamResponse(headers={"content-type": "text/event-stream"}, chunks=_sse(result))


async def _sse(stream: Any) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream:
            yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
    except Exception as exc:
        raise translate_error(exc) from None
    yield b"data: [DONE]\n\n"


def translate_error(exc: BaseException) -> GatewayError:
    """LiteLLM's exceptions carry the upstream status; map them like the passthrough maps HTTP."""
    if isinstance(exc, GatewayError):
        return exc
    name = type(exc).__name__
    message = str(getattr(exc, "message", None) or exc) or name
    status = getattr(exc, "status_code", None)
    if name == "Timeout" or isinstance(exc, asyncio.TimeoutError) or status == 408:
        return UpstreamTimeout(f"upstream timed out: {message}")
    if name == "APIConnectionError" or not isinstance(status, int):
        return UpstreamError(f"upstream failed: {message}")
    if status >= 500:
        return UpstreamError(f"upstream failed with HTTP {status}: {message}")
    code = "rate_limit_exceeded" if status == 429 else f"upstream_{status}"
    return GatewayError(
        message, status=status, type=OPENAI_TYPES_BY_STATUS.get(status, "invalid_request_error"), code=code
    )

"""Translation through LiteLLM for providers that speak neither OpenAI's nor Anthropic's format.

LiteLLM is imported on first use (importing it loads ~2,800 modules in ~2 s), so a gateway that only
passes bytes through starts fast and small. Its answers are re-serialized to OpenAI-format bytes here
so the gateway's stream tap sees one format whatever the provider.
"""

from __future__ import annotations

import asyncio
import json
import logging
import operator
import os
import re
import traceback
from collections.abc import AsyncIterator, Iterable
from types import ModuleType
from typing import Any

from ..apis import FAMILIES, ApiFamily, ApiName, by_name
from ..errors import OPENAI_TYPES_BY_STATUS, GatewayError, UpstreamError, UpstreamTimeout
from ..model_config import OPENAI_COMPATIBLE
from ..types import Deployment
from .base import CallOptions, UpstreamResponse

log = logging.getLogger("llm_scope.providers")
_litellm: ModuleType | None = None
# Where LiteLLM's message turns from what went wrong into how it went wrong: a Python traceback, chained
# exceptions, a prefilled bug-report link. Clients get the part before; the log gets everything.
_INTERNALS = re.compile(
    r"Traceback \(most recent call last\)|During handling of the above exception|The above exception was the"
    r"|This looks like a bug in LiteLLM|https://github\.com/BerriAI/litellm/issues|Give Feedback / Get Help"
)
_FILE_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/]?(?:[\w.+~@-]+[\\/])+[\w.+~@-]+\.(?:py[cdiwx]?|so|pyd)\b")
_HINT = re.compile(r"\s*Handle with `litellm\.\w+`\.?")
MAX_MESSAGE = 1000
DEFAULT_API_BASES: dict[str, str] = {
    "anthropic": "https://api.anthropic.com",
    **{name: base for name, base in OPENAI_COMPATIBLE.items() if base},
}


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
        # Translate Anthropic Messages to chat/completions, which every OpenAI-compatible server speaks.
        litellm.use_chat_completions_url_for_anthropic_messages = True
        _litellm = litellm
    return _litellm


class LiteLLMProvider:
    def __init__(self, families: Iterable[ApiFamily] = FAMILIES) -> None:
        self.families = by_name(families)

    async def aclose(self) -> None:
        return None

    async def call(
        self, api: ApiName, deployment: Deployment, body: dict[str, Any], options: CallOptions
    ) -> UpstreamResponse:
        litellm = await asyncio.to_thread(load_litellm) if _litellm is None else _litellm
        kwargs = {k: v for k, v in body.items() if k not in ("model", "metadata")}
        kwargs.update({k: v for k, v in deployment.params.items() if not k.startswith("mock_")})
        # Always explicit: left unset, LiteLLM and the SDKs under it read ANTHROPIC_BASE_URL / OPENAI_BASE_URL,
        # which users export to point their tools at this gateway, and the gateway would call itself.
        api_base = deployment.api_base or DEFAULT_API_BASES.get(deployment.provider)
        if api_base:
            kwargs["api_base"] = api_base
        if deployment.api_key:
            kwargs["api_key"] = deployment.api_key
        if deployment.api_version:
            kwargs["api_version"] = deployment.api_version
        kwargs["timeout"] = options.timeout
        model = deployment.litellm_model
        stream = bool(body.get("stream"))
        family = self.families[api]
        try:
            if family.litellm == "token_counter":  # synchronous, and counts OpenAI-format messages
                count = litellm.token_counter(model=model, messages=_as_openai_messages(body))
                return _json({"input_tokens": count})
            if family.litellm == "acompletion":  # it retries on its own; the gateway's policy does that
                kwargs["max_retries"] = 0
            result = await operator.attrgetter(family.litellm)(litellm)(model=model, **kwargs)
        except Exception as exc:
            raise failure(exc, deployment) from None
        if not stream:
            return _json(result if isinstance(result, dict) else json.loads(result.model_dump_json(exclude_none=True)))
        if family.litellm_stream == "anthropic":
            events = _anthropic_sse(result, deployment)
        else:
            events = _sse(result, deployment, family.litellm_stream == "chat")
        return UpstreamResponse(headers={"content-type": "text/event-stream"}, chunks=events)


def _json(data: Any) -> UpstreamResponse:
    return UpstreamResponse(headers={"content-type": "application/json"}, body=json.dumps(data).encode())


def _as_openai_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    system = body.get("system")
    messages = list(body.get("messages") or [])
    if system:
        text = system if isinstance(system, str) else " ".join(str(b.get("text", "")) for b in system)
        messages.insert(0, {"role": "system", "content": text})
    return messages


async def _sse(stream: Any, deployment: Deployment, done: bool) -> AsyncIterator[bytes]:
    """Chat chunks (and Responses events) as OpenAI sends them; chat streams end with [DONE]."""
    try:
        async for chunk in stream:
            event = getattr(chunk, "type", None) if not done else None
            prefix = f"event: {event}\n".encode() if isinstance(event, str) else b""
            yield prefix + b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
    except Exception as exc:
        raise failure(exc, deployment) from None
    if done:
        yield b"data: [DONE]\n\n"


async def _anthropic_sse(stream: Any, deployment: Deployment) -> AsyncIterator[bytes]:
    """LiteLLM yields Anthropic events either already encoded or as dicts."""
    try:
        async for chunk in stream:
            if isinstance(chunk, bytes | bytearray):
                yield _clean_error_event(bytes(chunk)) if chunk.startswith(b"event: error") else bytes(chunk)
            elif isinstance(chunk, dict):
                if chunk.get("type") == "error" and isinstance(chunk.get("error"), dict):
                    chunk = {
                        **chunk,
                        "error": {**chunk["error"], "message": clean_message(str(chunk["error"].get("message", "")))},
                    }
                yield f"event: {chunk.get('type')}\ndata: {json.dumps(chunk)}\n\n".encode()
            else:
                yield str(chunk).encode()
    except Exception as exc:
        raise failure(exc, deployment) from None


def _clean_error_event(event: bytes) -> bytes:
    """LiteLLM's own mid-stream `error` event carries its exception text: the same cleaning as any error."""
    head, sep, data = event.partition(b"data: ")
    try:
        payload = json.loads(data)
        error = payload["error"]
        error["message"] = clean_message(str(error.get("message", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return event
    return head + sep + json.dumps(payload).encode() + b"\n\n"


def failure(exc: BaseException, deployment: Deployment) -> GatewayError:
    """The whole story (traceback, LiteLLM's own text) goes to our log; the client gets `translate_error`'s.

    A failure inside LiteLLM itself is a warning an operator should see; an upstream's error answer, which
    LiteLLM merely relays, is routine and only logged at debug level."""
    if isinstance(exc, GatewayError):
        return exc
    raw = str(getattr(exc, "message", None) or exc)
    internal = _INTERNALS.search(raw) is not None
    if internal or log.isEnabledFor(logging.DEBUG):
        detail = "".join(traceback.format_exception(exc))
        if deployment.api_key:
            detail = detail.replace(deployment.api_key, "[REDACTED]")
        log.log(
            logging.WARNING if internal else logging.DEBUG,
            "LiteLLM failed for %s (%s): %s",
            deployment.model_name,
            deployment.litellm_model,
            detail,
        )
    return translate_error(exc)


def clean_message(raw: str) -> str:
    """What went wrong, without how: no traceback, file paths, bug-report link or LiteLLM handling hint."""
    cut = _INTERNALS.search(raw)
    text = raw[: cut.start()] if cut else raw
    text = _HINT.sub("", _FILE_PATH.sub("<file>", text))
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def translate_error(exc: BaseException) -> GatewayError:
    """LiteLLM's exceptions carry the upstream status; map them like the passthrough maps HTTP."""
    if isinstance(exc, GatewayError):
        return exc
    name = type(exc).__name__
    message = clean_message(str(getattr(exc, "message", None) or exc)) or name
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

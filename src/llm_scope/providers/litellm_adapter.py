"""Translation through LiteLLM for providers that speak neither OpenAI's nor Anthropic's format.

LiteLLM is imported on first use (importing it loads ~2,800 modules in ~2 s), so a gateway that only
passes bytes through starts fast and small. Its answers are re-serialized to OpenAI-format bytes here
so the gateway's stream tap sees one format whatever the provider.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import operator
import os
import re
import traceback
from collections.abc import AsyncGenerator, AsyncIterator
from types import ModuleType
from typing import Any

from ..apis import ApiName
from ..errors import OPENAI_TYPES_BY_STATUS, GatewayError, UpstreamError, UpstreamTimeout
from ..model_config import OPENAI_COMPATIBLE
from ..types import Deployment
from .base import CallOptions, FamilyProvider, UpstreamResponse

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


class LiteLLMProvider(FamilyProvider):
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
            if family.litellm == "anthropic.messages.acreate":  # streams may need the chat translation (below)
                result = await _messages(litellm, model, stream, kwargs)
            else:
                result = await operator.attrgetter(family.litellm)(litellm)(model=model, **kwargs)
        except Exception as exc:
            raise failure(exc, deployment) from None
        if not stream:
            return _json(result if isinstance(result, dict) else json.loads(result.model_dump_json(exclude_none=True)))
        if family.litellm_stream == "anthropic":
            events = _anthropic_sse(result, deployment)
        else:
            events = _sse(result, deployment, family.litellm_stream == "chat")
        head = await _head(events)
        return UpstreamResponse(
            headers={"content-type": "text/event-stream"}, chunks=_chain(head, events), close=events.aclose
        )


async def _messages(litellm: ModuleType, model: str, stream: bool, kwargs: dict[str, Any]) -> Any:
    """LiteLLM streams Messages natively (Bedrock /invoke, Vertex Claude, …) only with its proxy package's imports
    (fastapi, soundfile, …), which the runtime set leaves out: there the stream fails on its first read with
    "No module named 'fastapi'". Where that import fails, streams take LiteLLM's chat translation to the same
    provider instead (Anthropic SSE rebuilt from chat chunks, usage included); whole answers stay native."""
    if stream and not _native_messages_streams():
        from litellm.llms.anthropic.pass_through.adapters.handler import (
            LiteLLMMessagesToCompletionTransformationHandler as Adapter,
        )

        return await Adapter.async_anthropic_messages_handler(model=model, **kwargs)
    return await litellm.anthropic.messages.acreate(model=model, **kwargs)


@functools.cache
def _native_messages_streams() -> bool:
    try:
        import litellm.llms.anthropic.pass_through.messages.streaming_iterator  # noqa: F401
    except ImportError:
        return False
    return True


async def _head(events: AsyncGenerator[bytes, None]) -> list[bytes]:
    """Read a stream's first event (past a Messages stream's `message_start`) before answering.

    LiteLLM sends some streamed requests (Gemini's, Vertex's) only when its stream is first read, so without
    this an upstream's refusal would reach the client as a 200 whose body is an error event, with no chance for
    the gateway to retry or fall back. A refusal read here raises with its status instead. The chat and
    Responses streams raise it; the Messages translation turns it into an `error` event, mapped back here."""
    head: list[bytes] = []
    try:
        async for chunk in events:
            head.append(chunk)
            if not chunk.startswith(b"event: message_start"):
                break
    except BaseException:
        await events.aclose()
        raise
    if head and head[-1].startswith(b"event: error"):
        await events.aclose()
        raise _error_event_failure(head[-1])
    return head


async def _chain(head: list[bytes], events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in head:
        yield chunk
    async for chunk in events:
        yield chunk


# An Anthropic error type's status; `api_error` says nothing, so LiteLLM's exception name decides there.
_STATUS_BY_ANTHROPIC_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "timeout_error": 504,
    "overloaded_error": 503,
}
_STATUS_BY_LITELLM_ERROR = {
    "BadRequestError": 400,
    "ContextWindowExceededError": 400,
    "AuthenticationError": 401,
    "PermissionDeniedError": 403,
    "NotFoundError": 404,
    "RateLimitError": 429,
    "Timeout": 504,
    "ServiceUnavailableError": 503,
    "InternalServerError": 500,
}
_LITELLM_ERROR_NAME = re.compile(r"litellm\.(\w+):")


def _error_event_failure(event: bytes) -> GatewayError:
    """The Messages translation's `error` event as the exception it stood for."""
    try:
        error = json.loads(event.partition(b"data: ")[2])["error"]
        kind, message = str(error.get("type", "")), clean_message(str(error.get("message", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return UpstreamError("upstream failed: an unreadable error event")
    status = _STATUS_BY_ANTHROPIC_TYPE.get(kind) or next(
        (_STATUS_BY_LITELLM_ERROR[n] for n in _LITELLM_ERROR_NAME.findall(message) if n in _STATUS_BY_LITELLM_ERROR),
        502,
    )
    if status == 504:
        return UpstreamTimeout(f"upstream timed out: {message}")
    return _by_status(status, message)


def _json(data: Any) -> UpstreamResponse:
    return UpstreamResponse(headers={"content-type": "application/json"}, body=json.dumps(data).encode())


def _as_openai_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    system = body.get("system")
    messages = list(body.get("messages") or [])
    if system:
        text = system if isinstance(system, str) else " ".join(str(b.get("text", "")) for b in system)
        messages.insert(0, {"role": "system", "content": text})
    return messages


async def _sse(stream: Any, deployment: Deployment, done: bool) -> AsyncGenerator[bytes, None]:
    """Chat chunks (and Responses events) as OpenAI sends them; chat streams end with [DONE]."""
    try:
        async for chunk in stream:
            event = getattr(chunk, "type", None) if not done else None
            # LiteLLM's event types are str Enums, whose f-string form is "ResponsesAPIStreamEvents.X": the name
            # on the wire is the value ("response.created").
            event = getattr(event, "value", event)
            prefix = f"event: {event}\n".encode() if isinstance(event, str) else b""
            yield prefix + b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
    except Exception as exc:
        raise failure(exc, deployment) from None
    if done:
        yield b"data: [DONE]\n\n"


async def _anthropic_sse(stream: Any, deployment: Deployment) -> AsyncGenerator[bytes, None]:
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
    return _by_status(status, message)


def _by_status(status: int, message: str) -> GatewayError:
    if status >= 500:
        return UpstreamError(f"upstream failed with HTTP {status}: {message}")
    code = "rate_limit_exceeded" if status == 429 else f"upstream_{status}"
    return GatewayError(
        message, status=status, type=OPENAI_TYPES_BY_STATUS.get(status, "invalid_request_error"), code=code
    )

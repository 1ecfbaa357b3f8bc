"""A fake Amazon Bedrock runtime on loopback: Converse, ConverseStream, and Anthropic Messages over InvokeModel
and InvokeModelWithResponseStream, behind a real SigV4 check.

What LiteLLM sends and parses for Bedrock is what the gateway depends on, so the fake speaks the service's
own wire: JSON for the whole answers, ``application/vnd.amazon.eventstream`` binary frames for streams
(``tests/fakes/aws.py``), errors as ``x-amzn-ErrorType`` plus ``{"message": ...}``. Every request must carry a
valid SigV4 signature for ``ACCESS_KEY``/``SECRET_KEY`` in ``REGION`` (service ``bedrock``), or it gets the
403 AWS answers.

Answers follow ``tests/fakes/wire.py``: the reply is ``fake_reply(last user text)``; Converse reports
``inputTokens`` = FAKE_PROMPT_TOKENS (the uncached part, as Bedrock does), ``cacheReadInputTokens`` =
FAKE_CACHED_TOKENS, ``cacheWriteInputTokens`` = FAKE_CACHE_CREATION_TOKENS and ``outputTokens`` = the reply's
word count; the Anthropic answers carry ``wire.anthropic_usage`` and, on a stream's last event,
``amazon-bedrock-invocationMetrics`` with the same numbers. The FAKE_* tokens of ``upstream.py`` apply
(FAKE_ERROR_<status> answers that status with its Bedrock exception name), and ``BEDROCK_STREAM_THROTTLED``
makes a stream end, after its first two events, in a ``throttlingException`` exception message.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from typing import Any

from aiohttp import web

from . import aws, wire
from .upstream import RECORD, SEQ, Behaviour, FakeUpstream

ACCESS_KEY = "AKIAFAKEBEDROCK00001"
SECRET_KEY = "fake-bedrock-secret-key-0123456789abcdefgh"
REGION = "us-west-2"
EVENTSTREAM = "application/vnd.amazon.eventstream"
STREAM_THROTTLED = "BEDROCK_STREAM_THROTTLED"
THROTTLED_FRAME = aws.exception(
    "throttlingException", b'{"message": "Too many tokens, please wait before trying again."}'
)
# Bedrock's exception names by HTTP status (the InvokeModel / Converse API references).
ERRORS: dict[int, str] = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def error_response(status: int, error_type: str, message: str) -> web.Response:
    headers = {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return web.json_response({"message": message}, status=status, headers=headers)


def converse_usage(output_tokens: int) -> dict[str, int]:
    cached, written = wire.FAKE_CACHED_TOKENS, wire.FAKE_CACHE_CREATION_TOKENS
    return {
        "inputTokens": wire.FAKE_PROMPT_TOKENS,
        "outputTokens": output_tokens,
        "totalTokens": wire.FAKE_PROMPT_TOKENS + cached + written + output_tokens,
        "cacheReadInputTokens": cached,
        "cacheWriteInputTokens": written,
    }


def converse_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            texts = [b["text"] for b in message.get("content") or [] if isinstance(b, dict) and "text" in b]
            if texts:
                return " ".join(texts)
    return ""


_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


class FakeBedrock(FakeUpstream):
    """A FakeUpstream (recording, FAKE_* tokens, disconnect tracking) with Bedrock's routes instead."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = {ACCESS_KEY: SECRET_KEY}

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/model/{model_id}/converse", self._converse)
        app.router.add_post("/model/{model_id}/converse-stream", self._converse)
        app.router.add_post("/model/{model_id}/invoke", self._invoke)
        app.router.add_post("/model/{model_id}/invoke-with-response-stream", self._invoke)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    # ------------------------------------------------------------------------------------------- plumbing

    def _refusal(self, request: web.Request) -> web.Response | None:
        rec = request[RECORD]
        url = request.rel_url
        refused = aws.check_sigv4(
            request.method, url.raw_path, url.raw_query_string, rec.headers, rec.body, self.credentials,
            region=REGION, service="bedrock",
        )  # fmt: skip
        return None if refused is None else error_response(403, refused.error_type, refused.message)

    async def _early(self, request: web.Request, beh: Behaviour, stream: bool) -> web.StreamResponse | None:
        """Signature first (AWS checks it before anything else), then the asked-for slowness and errors."""
        if (refused := self._refusal(request)) is not None:
            return refused
        if beh.slow:
            await asyncio.sleep(beh.slow)
        if beh.error_status is not None:
            status = beh.error_status
            name = ERRORS.get(status, "InternalServerException")
            return error_response(status, name, f"fake bedrock says {status}")
        return await self._prelude(request, replace(beh, slow=None), stream, wire.openai_error)

    async def _eventstream(self, request: web.Request, frames: list[bytes], beh: Behaviour) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": EVENTSTREAM})
        await resp.prepare(request)
        delay = self.chunk_delay if beh.chunk_delay is None else beh.chunk_delay
        for i, data in enumerate(frames):
            if beh.fault == "drop" and i == 2:
                self._close(request)
                return resp
            if beh.fault == "hang" and i == 1:
                await self._hang(request)
            if i and delay:
                await asyncio.sleep(delay)
            await resp.write(data)
        await resp.write_eof()
        return resp

    @staticmethod
    async def _unknown(request: web.Request) -> web.StreamResponse:
        return error_response(404, "UnknownOperationException", f"no operation at {request.method} {request.path}")

    # ------------------------------------------------------------------------------------------- Converse

    async def _converse(self, request: web.Request) -> web.StreamResponse:
        body = self._body(request)
        stream = request.path.endswith("-stream")
        beh = self._behaviour(converse_user_text(body))
        if (early := await self._early(request, beh, stream)) is not None:
            return early
        limit = (body.get("inferenceConfig") or {}).get("maxTokens")
        answer = wire.decide_answer(converse_user_text(body), None, limit)
        usage = converse_usage(answer.completion_tokens)
        if not stream:
            message = {"role": "assistant", "content": [{"text": answer.text}]}
            return web.json_response(
                {"output": {"message": message}, "stopReason": _STOP[answer.finish], "usage": usage,
                 "metrics": {"latencyMs": 42}}
            )  # fmt: skip
        frames = converse_frames(answer, self._chunks(beh))
        if STREAM_THROTTLED in converse_user_text(body):
            frames = [*frames[:2], THROTTLED_FRAME]
        return await self._eventstream(request, frames, beh)

    # ------------------------------------------------------------------------------------ Anthropic invoke

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        body = self._body(request)
        stream = request.path.endswith("-stream")
        beh = self._behaviour(wire.last_user_text(body.get("messages")))
        if (early := await self._early(request, beh, stream)) is not None:
            return early
        if body.get("anthropic_version") != "bedrock-2023-05-31" or "model" in body or "stream" in body:
            message = "Malformed input request: anthropic_version must be bedrock-2023-05-31; no model or stream"
            return error_response(400, "ValidationException", message)
        answer = wire.anthropic_answer(body)
        rid = f"msg_bdrk_{request[SEQ]:06d}"
        model = request.match_info["model_id"]
        if not stream:
            usage = wire.anthropic_usage(answer.completion_tokens)
            headers = {
                "X-Amzn-Bedrock-Input-Token-Count": str(usage["input_tokens"]),
                "X-Amzn-Bedrock-Output-Token-Count": str(usage["output_tokens"]),
            }
            return web.json_response(wire.anthropic_message(rid, model, answer), headers=headers)
        frames = invoke_frames(rid, model, answer, self._chunks(beh))
        if STREAM_THROTTLED in wire.last_user_text(body.get("messages")):
            frames = [*frames[:2], THROTTLED_FRAME]
        return await self._eventstream(request, frames, beh)


def converse_frames(answer: wire.Answer, n_chunks: int) -> list[bytes]:
    """ConverseStream's events, each payload padded with ``p`` as the service pads them."""

    def ev(name: str, payload: dict[str, Any]) -> bytes:
        return aws.event(name, json.dumps({**payload, "p": "abcdefgh"}).encode())

    deltas = [
        ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
        for piece in wire.split_chunks(answer.text or "", n_chunks)
    ]
    return [
        ev("messageStart", {"role": "assistant"}),
        *deltas,
        ev("contentBlockStop", {"contentBlockIndex": 0}),
        ev("messageStop", {"stopReason": _STOP[answer.finish]}),
        ev("metadata", {"usage": converse_usage(answer.completion_tokens), "metrics": {"latencyMs": 42}}),
    ]


def invoke_frames(rid: str, model: str, answer: wire.Answer, n_chunks: int) -> list[bytes]:
    """InvokeModelWithResponseStream: each Anthropic event base64-encoded in a ``chunk`` event's ``bytes``."""
    events = []
    for sse in wire.anthropic_stream(rid, model, answer, n_chunks):
        data = json.loads(sse.partition("data: ")[2])
        if data["type"] != "ping":  # Bedrock does not relay Anthropic's pings
            events.append(data)
    usage = wire.anthropic_usage(answer.completion_tokens)
    events[-1]["amazon-bedrock-invocationMetrics"] = {
        "inputTokenCount": usage["input_tokens"],
        "outputTokenCount": usage["output_tokens"],
        "invocationLatency": 420,
        "firstByteLatency": 42,
        "cacheReadInputTokenCount": usage["cache_read_input_tokens"],
        "cacheWriteInputTokenCount": usage["cache_creation_input_tokens"],
    }
    frames = []
    for data in events:
        encoded = base64.b64encode(json.dumps(data).encode()).decode()
        frames.append(aws.event("chunk", json.dumps({"bytes": encoded, "p": "abcd"}).encode()))
    return frames


def start_fake_bedrock(**kwargs: Any) -> FakeBedrock:
    fake = FakeBedrock(**kwargs)
    fake.start()
    return fake

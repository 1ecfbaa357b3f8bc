"""A fake Gemini API (Google AI Studio) and Vertex AI publisher-model endpoint on loopback.

``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse`` with an API key (the
``key`` query parameter or the ``x-goog-api-key`` header, both as Google accepts them), and the same two
methods under ``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}`` with a bearer token that
the fake's own OAuth endpoint (``POST /token``, ``google_oauth.py``) issued to a service account it trusts;
any other Authorization is Google's 401 UNAUTHENTICATED. Answers are ``GenerateContentResponse`` objects; a
stream is SSE whose every event is one of them, and carries ``usageMetadata`` throughout, complete on the last
event, as the service sends it.

Claude on Vertex: ``publishers/anthropic/models/{model}:rawPredict`` and ``:streamRawPredict`` (same token),
whose bodies are Anthropic Messages without ``model`` and with ``anthropic_version: vertex-2023-10-16``; the
answers are Anthropic's (``wire.anthropic_message`` / ``anthropic_stream``), errors too, except a 429, which
Vertex's own quota answers in Google's shape (RESOURCE_EXHAUSTED).

Numbers (see ``tests/fakes/wire.py``): the reply is ``fake_reply(last user text)``; ``promptTokenCount`` =
FAKE_PROMPT_TOKENS + GEMINI_CACHED_TOKENS (the whole prompt, cache included, as Gemini counts it),
``cachedContentTokenCount`` = GEMINI_CACHED_TOKENS, ``candidatesTokenCount`` = the reply's word count,
``thoughtsTokenCount`` = GEMINI_THOUGHT_TOKENS (billed as output, on top of the candidates). FAKE_* tokens of
``upstream.py`` apply; FAKE_ERROR_<status> answers Google's error object with that status.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from aiohttp import web

from . import wire
from .google_oauth import TOKEN_PATH, TokenIssuer
from .upstream import RECORD, SEQ, FakeUpstream

GEMINI_KEY = "AIzaFakeGeminiKey-0123456789abcdefghijk"
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
GEMINI_CACHED_TOKENS = 4
GEMINI_THOUGHT_TOKENS = 5
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


def google_error(status: int, message: str, reason: str | None = None) -> web.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return web.json_response({"error": error}, status=status)


def user_text(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents") or []):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            texts = [p["text"] for p in content.get("parts") or [] if isinstance(p, dict) and "text" in p]
            if texts:
                return " ".join(texts)
    return ""


def usage_metadata(candidates: int | None) -> dict[str, Any]:
    """Whole counts when `candidates` is given (the last event); the prompt side alone before that."""
    prompt = wire.FAKE_PROMPT_TOKENS + GEMINI_CACHED_TOKENS
    usage: dict[str, Any] = {"promptTokenCount": prompt, "totalTokenCount": prompt}
    if candidates is not None:
        usage.update(
            candidatesTokenCount=candidates,
            thoughtsTokenCount=GEMINI_THOUGHT_TOKENS,
            cachedContentTokenCount=GEMINI_CACHED_TOKENS,
            totalTokenCount=prompt + candidates + GEMINI_THOUGHT_TOKENS,
            promptTokensDetails=[{"modality": "TEXT", "tokenCount": prompt}],
            cacheTokensDetails=[{"modality": "TEXT", "tokenCount": GEMINI_CACHED_TOKENS}],
        )
    return usage


def response(rid: str, model: str, text: str, finish: str | None, usage: dict[str, Any]) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": rid}


def claude_body_problem(body: dict[str, Any], stream: bool) -> str | None:
    """What Vertex's rawPredict refuses in an Anthropic body: the Vertex version, the model named in the URL only,
    and `stream` agreeing with the method (streamRawPredict)."""
    if body.get("anthropic_version") != VERTEX_ANTHROPIC_VERSION:
        return f"anthropic_version: must be {VERTEX_ANTHROPIC_VERSION!r} on Vertex AI"
    if "model" in body:
        return "model: Extra inputs are not permitted"
    if bool(body.get("stream")) != stream:
        return "stream: must be true with streamRawPredict and absent or false with rawPredict"
    return None


class FakeGemini(FakeUpstream):
    """A FakeUpstream (recording, FAKE_* tokens, disconnect tracking) with Gemini's and Vertex's routes, and
    Google's OAuth token endpoint for the Vertex ones (`oauth`: trust a service account, read issued tokens)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.oauth = TokenIssuer()

    @property
    def token_uri(self) -> str:
        return self.url + TOKEN_PATH

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        publishers = "/v1/projects/{project}/locations/{location}/publishers"
        app.router.add_post("/v1beta/models/{call}", self._studio)
        app.router.add_post(publishers + "/google/models/{call}", self._vertex)
        app.router.add_post(publishers + "/anthropic/models/{call}", self._vertex_claude)
        app.router.add_post(TOKEN_PATH, self.oauth.handle)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    @staticmethod
    async def _unknown(request: web.Request) -> web.StreamResponse:
        return google_error(404, f"The requested URL {request.path} was not found on this server.")

    async def _studio(self, request: web.Request) -> web.StreamResponse:
        key = request.query.get("key") or request[RECORD].headers.get("x-goog-api-key")
        if key != GEMINI_KEY:
            return google_error(400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
        return await self._generate(request)

    def _unauthenticated(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request[RECORD].headers.get("authorization", "").partition(" ")
        if scheme == "Bearer" and self.oauth.valid(token):
            return None
        message = (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other"
            " valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
        )
        return google_error(401, message, "ACCESS_TOKEN_TYPE_UNSUPPORTED")

    async def _vertex(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._unauthenticated(request)) is not None:
            return refused
        return await self._generate(request)

    async def _vertex_claude(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._unauthenticated(request)) is not None:
            return refused
        model, _, method = request.match_info["call"].partition(":")
        if method not in ("rawPredict", "streamRawPredict"):
            return google_error(404, f"Method {method!r} not found for publishers/anthropic/models/{model}.")
        body = self._body(request)
        stream = method == "streamRawPredict"
        if (problem := claude_body_problem(body, stream)) is not None:
            error = {"type": "error", "error": {"type": "invalid_request_error", "message": problem}}
            return web.json_response(error, status=400)
        beh = self._behaviour(wire.last_user_text(body.get("messages")))
        if beh.error_status == 429:  # Vertex's own quota refuses it before the model sees it
            quota = "aiplatform.googleapis.com/online_prediction_requests_per_base_model"
            return google_error(429, f"Quota exceeded for {quota}.", "RATE_LIMIT_EXCEEDED")
        if (early := await self._prelude(request, beh, stream, wire.anthropic_error)) is not None:
            return early
        rid = f"msg_vrtx_fake_{request[SEQ]:06d}"
        answer = wire.anthropic_answer(body)
        if not stream:
            return web.json_response(wire.anthropic_message(rid, model, answer))
        return await self._stream(request, wire.anthropic_stream(rid, model, answer, self._chunks(beh)), beh)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["call"].partition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            return google_error(404, f"Method {method!r} not found for models/{model}.")
        stream = method == "streamGenerateContent"
        if stream and request.query.get("alt") != "sse":  # without alt=sse Google streams one JSON array
            return google_error(400, "the fake streams only with alt=sse")
        body = self._body(request)
        beh = self._behaviour(user_text(body))
        if beh.slow:
            await asyncio.sleep(beh.slow)
        if beh.error_status is not None:
            return google_error(beh.error_status, f"fake gemini says {beh.error_status}")
        if (early := await self._prelude(request, replace(beh, slow=None), stream, wire.openai_error)) is not None:
            return early
        config = body.get("generationConfig") or {}
        limit = config.get("maxOutputTokens", config.get("max_output_tokens"))
        answer = wire.decide_answer(user_text(body), None, limit)
        rid = f"gemini-fake-{request[SEQ]:06d}"
        finish = _FINISH[answer.finish]
        if not stream:
            return web.json_response(
                response(rid, model, answer.text or "", finish, usage_metadata(answer.completion_tokens))
            )
        pieces = wire.split_chunks(answer.text or "", self._chunks(beh))
        frames = [
            response(rid, model, piece, None if i < len(pieces) - 1 else finish, usage_metadata(None))
            for i, piece in enumerate(pieces)
        ]
        frames[-1]["usageMetadata"] = usage_metadata(answer.completion_tokens)
        return await self._stream(request, [f"data: {json.dumps(f)}\r\n\r\n" for f in frames], beh)


def start_fake_gemini(**kwargs: Any) -> FakeGemini:
    fake = FakeGemini(**kwargs)
    fake.start()
    return fake

"""OpenAI-compatible routes: parse, one call into the gateway, serialize."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import jsoncodec
from ..access.keys import VirtualKey
from ..access.limits import admit
from ..errors import GatewayError, InvalidRequest, PayloadTooLarge
from ..gateway.handle import ROUTE_NAMES, CallContext, Gateway
from ..providers.base import Api
from .auth import KEY_SCOPE
from .middleware import START_KEY, TRACE_ID_KEY
from .responses import RawResponse, StreamResponse, error_response, json_response

SESSION_HEADERS = ("x-session-id", "x-claude-code-session-id", "x-codex-session-id", "session-id")


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is {int(declared)} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequest("Request body is empty; expected a JSON object", code="invalid_json")
    try:
        return jsoncodec.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}", code="invalid_json") from None


def call_context(request: Request, route: str, body: Any) -> CallContext:
    headers = request.headers
    start_wall, _ = request.scope.get(START_KEY, (time.time(), 0.0))
    metadata = body.get("metadata") if isinstance(body, dict) else None
    session = next((headers[h] for h in SESSION_HEADERS if h in headers), None)
    if session is None and isinstance(metadata, dict) and isinstance(metadata.get("session_id"), str):
        session = metadata["session_id"]
    user = headers.get("x-user-id")
    if user is None and isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        user, inner_session = split_metadata_user(metadata["user_id"])
        session = session or inner_session
    agent = headers.get("user-agent")
    return CallContext(
        trace_id=request.scope[TRACE_ID_KEY],
        route=route,
        start_time=start_wall,
        user_id=user,
        session_id=session,
        client=agent.split(" ")[0][:80] if agent else None,
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
    )


def split_metadata_user(value: str) -> tuple[str, str | None]:
    """Claude Code 2.x sends `metadata.user_id` as a JSON string {"device_id", "account_uuid", "session_id"}:
    the user is the account (or, without one, the device), not the whole string, which changes every session."""
    if not value.startswith("{"):
        return value, None
    try:
        data = json.loads(value)
    except ValueError:
        return value, None
    if not isinstance(data, dict):
        return value, None
    user = data.get("account_uuid") or data.get("device_id")
    session = data.get("session_id")
    return (str(user) if user else value), (session if isinstance(session, str) and session else None)


def validate_chat(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object", code="invalid_type")
    model = body.get("model")
    if model is None:
        raise InvalidRequest("Missing required parameter: 'model'", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "Invalid type for 'model': expected a non-empty string", param="model", code="invalid_type"
        )
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest(
            "Missing required parameter: 'messages'", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "Invalid type for 'messages': expected a non-empty array of message objects",
            param="messages",
            code="invalid_type",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"Invalid value for 'messages[{i}]': expected an object with a string 'role'",
                param=f"messages[{i}]",
                code="invalid_type",
            )
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise InvalidRequest("Invalid type for 'stream': expected a boolean", param="stream", code="invalid_type")
    return body


def validate_input(body: Any) -> dict[str, Any]:
    """Responses and embeddings: a model and an `input`."""
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object", code="invalid_type")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        code = "missing_required_parameter" if model is None else "invalid_type"
        raise InvalidRequest("Missing or invalid parameter: 'model' (a non-empty string)", param="model", code=code)
    if body.get("input") is None and not body.get("previous_response_id"):
        raise InvalidRequest("Missing required parameter: 'input'", param="input", code="missing_required_parameter")
    return body


async def serve(
    request: Request,
    api: Api,
    validate: Callable[[Any], dict[str, Any]],
    *,
    anthropic: bool = False,
    forward: tuple[str, ...] = (),
) -> Response:
    """Parse, one call into the gateway, serialize: the same for every API family."""
    gateway: Gateway = request.app.state.gateway
    route = ROUTE_NAMES[api]
    body: Any = None
    try:
        body = await read_json(request, request.app.state.settings.max_body_bytes)
        ctx = call_context(request, route, body)
        body = validate(body)
    except GatewayError as exc:
        gateway.record_failure(call_context(request, route, None), body if isinstance(body, dict) else None, exc, api)
        return error_response(exc, anthropic=anthropic)
    headers = {h: request.headers[h] for h in forward if h in request.headers}
    try:
        virtual: VirtualKey | None = request.scope.get(KEY_SCOPE)
        if virtual is not None:
            ctx.key_id = virtual.id
            ctx.user_id = request.headers.get("x-user-id") or virtual.owner  # the owner beats body hints
            if not virtual.allows(body["model"]):
                raise GatewayError(
                    f"This key may not use model '{body['model']}'",
                    status=403,
                    type="permission_error",
                    code="model_not_allowed",
                    param="model",
                )
            await admit(request.app.state.limits, virtual)
    except GatewayError as exc:
        gateway.record_failure(ctx, body, exc, api)
        return error_response(exc, anthropic=anthropic)
    try:
        result = await gateway.call(ctx, api, body, headers)
    except GatewayError as exc:
        return error_response(exc, anthropic=anthropic)
    if result.stream is not None:
        return StreamResponse(result.status, result.stream, result.headers)
    return RawResponse(result.status, result.body, result.headers, after=result.finish)


async def chat_completions(request: Request) -> Response:
    return await serve(request, "chat", validate_chat)


async def responses(request: Request) -> Response:
    return await serve(request, "responses", validate_input)


async def embeddings(request: Request) -> Response:
    return await serve(request, "embeddings", validate_input)


async def list_models(request: Request) -> RawResponse:
    models = request.app.state.model_list()
    virtual: VirtualKey | None = request.scope.get(KEY_SCOPE)
    if virtual is not None and virtual.models is not None:  # a key sees the models it may use
        models = [m for m in models if virtual.allows(m["id"])]
    return json_response({"object": "list", "data": models})


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/responses", responses, methods=["POST"]),
    Route("/responses", responses, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/models", list_models, methods=["GET"]),
]

"""The API handlers: every API family (chat completions, Messages, count_tokens, Responses, embeddings) is
served by the one `Handlers.serve`: parse, one call into the gateway, serialize.

Each family is an `ApiFamily` row (validation, error shape, forwarded headers): the OpenAI-format ones are in
`APIS` here, Anthropic's in `anthropic.py`. The calls arrive from `entry.EntryLayer` as an `Incoming` (no
Starlette request on that path); `/v1/models` and the small JSON bodies of the read/admin API still go
through Starlette.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive

from .. import jsoncodec
from ..access.keys import VirtualKey
from ..access.limits import Limits, admit
from ..accounting.clients import attribute, subagent_of
from ..errors import GatewayError, InvalidRequest, PayloadTooLarge
from ..gateway.handle import ROUTE_NAMES, CallContext, Gateway
from ..providers.base import ApiName
from .auth import KEY_SCOPE
from .entry import ClientGone, Incoming
from .responses import RawResponse, StreamResponse, error_response, json_response
from .state import state_of

# Codex sends `session_id` (underscore) and, in later versions, `session-id`.
SESSION_HEADERS = ("x-session-id", "x-claude-code-session-id", "x-codex-session-id", "session-id", "session_id")


async def read_json(request: Request, limit: int) -> Any:
    """A small JSON body for the non-API routes (scores, admin)."""
    return parse_body(await read_body(request.receive, request.headers.get("content-length"), limit))


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The body straight off ASGI `receive`, refused early when it announces too much."""
    _check_declared(declared, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _check_declared(declared: str | None, limit: int) -> None:
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is {int(declared)} bytes; the limit is {limit} bytes")


def parse_body(raw: bytes) -> Any:
    if not raw.strip():
        raise InvalidRequest("Request body is empty; expected a JSON object", code="invalid_json")
    try:
        return jsoncodec.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}", code="invalid_json") from None


def call_context(incoming: Incoming, route: str, body: Any) -> CallContext:
    headers = incoming.headers
    metadata = body.get("metadata") if isinstance(body, dict) else None
    session = next((headers[h] for h in SESSION_HEADERS if h in headers), None)
    if session is None and isinstance(metadata, dict) and isinstance(metadata.get("session_id"), str):
        session = metadata["session_id"]
    user = headers.get("x-user-id")
    if user is None and isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        user, inner_session = split_metadata_user(metadata["user_id"])
        session = session or inner_session
    client = attribute(headers)
    return CallContext(
        trace_id=incoming.trace_id,
        route=route,
        start_time=incoming.start_time,
        user_id=user,
        session_id=session,
        client=client.name,
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
        client_version=client.version,
        subagent=subagent_of(headers),
    )


# Claude Code 1.x: "user_<device hash>_account_<account uuid or empty>_session_<session uuid>".
_LEGACY_CLAUDE_USER = re.compile(r"user_([0-9a-fA-F]+)_account_([0-9a-fA-F-]*)_session_([0-9a-fA-F-]+)")


def split_metadata_user(value: str) -> tuple[str, str | None]:
    """Claude Code 2.x sends `metadata.user_id` as a JSON string {"device_id", "account_uuid", "session_id"},
    1.x as "user_<device>_account_<uuid>_session_<uuid>": the user is the account (or, without one, the
    device), not the whole string, which changes every session."""
    if not value.startswith("{"):
        if value.startswith("user_") and (legacy := _LEGACY_CLAUDE_USER.fullmatch(value)):
            device, account, session = legacy.groups()
            return account or device, session
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
    return check_common_types(body)


def check_common_types(body: dict[str, Any]) -> dict[str, Any]:
    """`stream` a boolean and `tools` an array wherever they appear: anything else is the client's error (a
    `"tools": true` reached the mock's and the providers' loops and came back as a 500)."""
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise InvalidRequest("Invalid type for 'stream': expected a boolean", param="stream", code="invalid_type")
    if "tools" in body and not isinstance(body["tools"], list | None):
        raise InvalidRequest("Invalid type for 'tools': expected an array", param="tools", code="invalid_type")
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
    return check_common_types(body)


@dataclass(frozen=True)
class ApiFamily:
    """One API route family: how to validate its body, which error shape it speaks, what goes upstream."""

    api: ApiName
    validate: Callable[[Any], dict[str, Any]]
    anthropic: bool = False
    forward: tuple[str, ...] = ()  # client headers the upstream must see (anthropic-beta)


class Handlers:
    """The API routes' handlers, bound to the gateway, limits and body limit they serve with."""

    def __init__(self, gateway: Gateway, limits: Limits, max_body_bytes: int, streams: Any = None) -> None:
        self.gateway = gateway
        self.limits = limits
        self.max_body_bytes = max_body_bytes
        self.streams = streams  # the in-flight streams gauge

    def for_api(self, spec: ApiFamily) -> Callable[[Incoming], Awaitable[ASGIApp]]:
        async def handle(incoming: Incoming) -> ASGIApp:
            return await self.serve(incoming, spec)

        return handle

    async def serve(self, incoming: Incoming, spec: ApiFamily) -> ASGIApp:
        """Parse, one call into the gateway, serialize: the same for every API family."""
        gateway = self.gateway
        api = spec.api
        route = ROUTE_NAMES[api]
        body: Any = None
        try:
            body = parse_body(
                await read_body(incoming.receive, incoming.headers.get("content-length"), self.max_body_bytes)
            )
            ctx = call_context(incoming, route, body)
            body = spec.validate(body)
        except GatewayError as exc:
            failed = call_context(incoming, route, None)
            gateway.record_failure(failed, body if isinstance(body, dict) else None, exc, api)
            return error_response(exc, anthropic=spec.anthropic)
        headers = {h: incoming.headers[h] for h in spec.forward if h in incoming.headers}
        virtual = incoming.virtual_key
        if virtual is not None:
            try:
                ctx.key_id = virtual.id
                ctx.user_id = incoming.headers.get("x-user-id") or virtual.owner  # the owner beats body hints
                if not virtual.allows(body["model"]):
                    raise GatewayError(
                        f"This key may not use model '{body['model']}'",
                        status=403,
                        type="permission_error",
                        code="model_not_allowed",
                        param="model",
                    )
                await admit(self.limits, virtual)
            except GatewayError as exc:
                gateway.record_failure(ctx, body, exc, api)
                return error_response(exc, anthropic=spec.anthropic)
        try:
            result = await gateway.call(ctx, api, body, headers)
        except GatewayError as exc:
            return error_response(exc, anthropic=spec.anthropic)
        if result.stream is not None:
            return StreamResponse(result.status, result.stream, result.headers, self.streams)
        return RawResponse(result.status, result.body, result.headers, after=result.finish)


async def list_models(request: Request) -> RawResponse:
    models = state_of(request).model_list()
    virtual: VirtualKey | None = request.scope.get(KEY_SCOPE)
    if virtual is not None and virtual.models is not None:  # a key sees the models it may use
        models = [m for m in models if virtual.allows(m["id"])]
    return json_response({"object": "list", "data": models})


CHAT = ApiFamily("chat", validate_chat)
RESPONSES = ApiFamily("responses", validate_input)
EMBEDDINGS = ApiFamily("embeddings", validate_input)
APIS = {
    "/v1/chat/completions": CHAT,
    "/chat/completions": CHAT,
    "/v1/responses": RESPONSES,
    "/responses": RESPONSES,
    "/v1/embeddings": EMBEDDINGS,
    "/embeddings": EMBEDDINGS,
}

routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/models", list_models, methods=["GET"]),
]

"""The API handler: every API family (chat completions, Messages, count_tokens, Responses, embeddings) is
served by the one `Handlers.serve`: parse, one call into the gateway, serialize.

What differs by family (validation, error shape, forwarded headers, route name) is the family's row in
`apis/`. The calls arrive from `entry.EntryLayer` as an `Incoming` with their row (no Starlette request on
that path); `/v1/models` and the small JSON bodies of the read/admin API still go through Starlette.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive

from .. import jsoncodec
from ..access.keys import VirtualKey
from ..access.limits import Limits, admit
from ..accounting.clients import attribute, subagent_of
from ..apis import ApiFamily
from ..errors import GatewayError, InvalidRequest, PayloadTooLarge
from ..gateway.handle import CallContext, Gateway
from .auth import KEY_SCOPE
from .entry import ClientGone, Incoming
from .responses import RawResponse, StreamResponse, error_response, json_response
from .state import state_of

# Bodies from this size on reach the trace helper as their bytes, not as parsed messages: a coding agent's
# (50-200 KB) then costs the gateway a copy instead of a pickle. A short call's parsed input pickles cheaper
# than the helper would read it back from bytes.
RAW_INPUT_MIN = 8192
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


class Handlers:
    """The API routes' handlers, bound to the gateway, limits and body limit they serve with."""

    def __init__(self, gateway: Gateway, limits: Limits, max_body_bytes: int, streams: Any = None) -> None:
        self.gateway = gateway
        self.limits = limits
        self.max_body_bytes = max_body_bytes
        self.streams = streams  # the in-flight streams gauge

    async def serve(self, incoming: Incoming, family: ApiFamily) -> ASGIApp:
        """Parse, one call into the gateway, serialize: the same for every API family."""
        gateway = self.gateway
        route = family.route
        body: Any = None
        try:
            raw = await read_body(incoming.receive, incoming.headers.get("content-length"), self.max_body_bytes)
            body = parse_body(raw)
            ctx = call_context(incoming, route, body)
            if len(raw) >= RAW_INPUT_MIN:
                ctx.body_bytes = raw  # the trace helper reads the input from these (see types.RawInput)
            parsed, body = body, family.validate(body)
            if body is parsed:  # what `raw` says, member for member: a passthrough may send `raw` itself
                ctx.received = raw
        except GatewayError as exc:
            failed = call_context(incoming, route, None)
            gateway.record_failure(failed, body if isinstance(body, dict) else None, exc, family)
            return error_response(exc, anthropic=family.anthropic)
        headers = {h: incoming.headers[h] for h in family.forward if h in incoming.headers}
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
                gateway.record_failure(ctx, body, exc, family)
                return error_response(exc, anthropic=family.anthropic)
        try:
            result = await gateway.call(ctx, family, body, headers)
        except GatewayError as exc:
            return error_response(exc, anthropic=family.anthropic)
        if result.stream is not None:
            return StreamResponse(result.status, result.stream, result.headers, self.streams)
        return RawResponse(result.status, result.body, result.headers, after=result.finish)


async def list_models(request: Request) -> RawResponse:
    models = state_of(request).model_list()
    virtual: VirtualKey | None = request.scope.get(KEY_SCOPE)
    if virtual is not None and virtual.models is not None:  # a key sees the models it may use
        models = [m for m in models if virtual.allows(m["id"])]
    return json_response({"object": "list", "data": models})


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/models", list_models, methods=["GET"]),
]

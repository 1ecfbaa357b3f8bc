"""Admin API for virtual keys, behind the master key (a virtual key cannot manage keys)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..access.key_request import parse_key_request
from ..access.keys import Keys
from ..errors import GatewayError, NotFound
from .auth import KEY_SCOPE
from .handlers import read_json
from .responses import error_response, json_response
from .state import state_of


def require_master(request: Request) -> Keys:
    state = state_of(request)
    if state.settings.master_key is None:
        raise GatewayError(
            "Key management needs LLM_SCOPE_MASTER_KEY to be set",
            status=403,
            type="permission_error",
            code="master_key_required",
        )
    if request.scope.get(KEY_SCOPE) is not None:
        raise GatewayError("Only the master key can manage keys", status=403, type="permission_error", code="forbidden")
    return state.keys


async def create_key(request: Request) -> Response:
    try:
        store = require_master(request)
        fields = parse_key_request(await read_json(request, 64 * 1024))
        # On a thread: with DATABASE_URL this is a round trip to PostgreSQL (503 while it is down).
        key, plaintext = await run_in_threadpool(lambda: store.create(**fields))
    except GatewayError as exc:
        return error_response(exc)
    return json_response({**key.public(), "key": plaintext}, status=201)


async def list_keys(request: Request) -> Response:
    try:
        store = require_master(request)
        found = await run_in_threadpool(store.list)
    except GatewayError as exc:
        return error_response(exc)
    return json_response({"data": [k.public() for k in found]})


async def revoke_key(request: Request) -> Response:
    try:
        store = require_master(request)
        if not await run_in_threadpool(store.revoke, request.path_params["key_id"]):
            raise NotFound(f"No active key with id '{request.path_params['key_id']}'")
    except GatewayError as exc:
        return error_response(exc)
    return json_response({"id": request.path_params["key_id"], "revoked": True})


routes = [
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
]

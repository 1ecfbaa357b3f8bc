"""Admin API for virtual keys, behind the master key (a virtual key cannot manage keys)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..access.key_request import parse_key_request
from ..access.keys import KeyStore
from ..errors import GatewayError, NotFound
from .auth import KEY_SCOPE
from .openai import read_json
from .responses import error_response, json_response


def _require_master(request: Request) -> KeyStore:
    if request.app.state.settings.master_key is None:
        raise GatewayError(
            "Key management needs LLM_SCOPE_MASTER_KEY to be set",
            status=403,
            type="permission_error",
            code="master_key_required",
        )
    if request.scope.get(KEY_SCOPE) is not None:
        raise GatewayError("Only the master key can manage keys", status=403, type="permission_error", code="forbidden")
    store: KeyStore = request.app.state.keys
    return store


async def create_key(request: Request) -> Response:
    try:
        store = _require_master(request)
        fields = parse_key_request(await read_json(request, 64 * 1024))
    except GatewayError as exc:
        return error_response(exc)
    key, plaintext = store.create(**fields)
    return json_response({**key.public(), "key": plaintext}, status=201)


async def list_keys(request: Request) -> Response:
    try:
        store = _require_master(request)
    except GatewayError as exc:
        return error_response(exc)
    return json_response({"data": [k.public() for k in store.list()]})


async def revoke_key(request: Request) -> Response:
    try:
        store = _require_master(request)
        if not store.revoke(request.path_params["key_id"]):
            raise NotFound(f"No active key with id '{request.path_params['key_id']}'")
    except GatewayError as exc:
        return error_response(exc)
    return json_response({"id": request.path_params["key_id"], "revoked": True})


routes = [
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
]

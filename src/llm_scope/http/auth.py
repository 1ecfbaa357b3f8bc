"""The key gate: when a master key is set, every route needs it or a virtual key; `/health` stays open.

Keys are compared in constant time and never echoed back or logged.

A browser cannot send a Bearer header when it navigates, so the dashboard signs in once with
`/ui?key=<master key>`: the page swaps that for an HttpOnly, SameSite=Strict cookie holding a token derived
from the key (not the key itself), and the cookie is accepted for reads (GET/HEAD) only.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

from starlette.types import Scope

from ..access.keys import KEY_PREFIX, Keys, VirtualKey
from ..errors import AuthenticationFailed, GatewayError

OPEN_PATHS = frozenset({"/health", "/ready"})
UI_PATH = "/ui"
UI_COOKIE = "llm_scope_ui"
READ_METHODS = frozenset({"GET", "HEAD"})
KEY_SCOPE = "llm_scope.virtual_key"  # the VirtualKey a request authenticated with, if any
MODEL_ROUTE_PREFIXES = (
    "/v1/chat/",
    "/chat/",
    "/v1/messages",
    "/v1/responses",
    "/responses",
    "/v1/embeddings",
    "/embeddings",
    "/v1/models",
    "/models",
)


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip().decode("latin-1")
        if name == b"x-api-key":
            return value.strip().decode("latin-1")
    return None


def ui_token(master_key: str) -> str:
    """The dashboard cookie's value: derived from the master key, so the cookie never carries the key."""
    return hmac.new(master_key.encode(), b"llm-scope dashboard session", hashlib.sha256).hexdigest()


def cookie(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for header, value in headers:
        if header == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, found = part.strip().partition("=")
                if key == name:
                    return found
    return None


def _is_model_route(path: str) -> bool:
    """Routes a virtual key may call; the traces, dashboard, metrics and admin stay master-key only."""
    return path.startswith(MODEL_ROUTE_PREFIXES)


class Auth:
    """Master key or virtual key. With no master key set the gateway is open (loopback only, see cli), but a
    virtual key presented anyway is still recognised, so its owner, budget and limits apply."""

    def __init__(self, master_key: str | None, keys: Keys | None = None) -> None:
        self.master_key = master_key.encode() if master_key else None
        self.ui_token = ui_token(master_key).encode() if master_key else None
        self.keys = keys

    def decide(self, scope: Scope) -> VirtualKey | GatewayError | None:
        """None: let it through; a VirtualKey: through, as that key; a GatewayError: refuse with it."""
        if scope["path"] in OPEN_PATHS or scope["method"] == "OPTIONS":
            return None
        key = presented_key(scope["headers"])
        if self.master_key is not None and key is not None and hmac.compare_digest(key.encode(), self.master_key):
            return None
        virtual = self.keys.lookup(key) if self.keys is not None and key else None
        if virtual is not None and _is_model_route(scope["path"]):
            return virtual
        if self.master_key is None and (virtual is not None or not (key and key.startswith(KEY_PREFIX))):
            return None  # open gateway; but a revoked or unknown sk-ls- key still fails
        if key is None and scope["method"] in READ_METHODS:
            session = cookie(scope["headers"], UI_COOKIE)
            if session is not None and self.ui_token and hmac.compare_digest(session.encode(), self.ui_token):
                return None
            if scope["path"] == UI_PATH:
                key = parse_qs(scope["query_string"].decode("latin-1")).get("key", [None])[0]
                if key is not None and hmac.compare_digest(key.encode(), self.master_key):
                    return None
        if virtual is not None:
            return GatewayError(
                "This key may only call model endpoints", status=403, type="permission_error", code="forbidden"
            )
        message = "Missing API key" if key is None else "Invalid API key"
        if key is not None and key.startswith(KEY_PREFIX) and self.keys is not None and (why := self.keys.stale()):
            message += f" ({why})"
        if scope["path"].startswith(UI_PATH) and key is None:
            message += ": open /ui?key=<master key> once to sign in to the dashboard"
        return AuthenticationFailed(message)

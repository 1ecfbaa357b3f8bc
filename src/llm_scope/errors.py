"""The gateway's error tree and its wire shapes.

Every failure a client can see is a `GatewayError`; third-party exceptions are translated into one at the
single boundary that sees them (providers), so handlers only ever serialize.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict, Unpack


class ErrorKind(TypedDict, total=False):
    """What sets an error apart, given on a subclass's line or on one error raised (None: the class's own)."""

    status: int | None
    type: str | None  # OpenAI's error `type`
    code: str | None
    anthropic_type: str | None  # when the status alone would pick the wrong Anthropic type


def _take(target: object, kind: ErrorKind) -> None:
    for name, value in kind.items():
        if value is not None:
            setattr(target, name, value)


class GatewayError(Exception):
    """A failure with the HTTP status and OpenAI error `type`/`code` a client should get."""

    status = 500
    type = "api_error"
    code: str | None = None
    anthropic_type: str | None = None

    def __init_subclass__(cls, **kind: Unpack[ErrorKind]) -> None:
        """An error kind is declared on its class line (`class RateLimited(GatewayError, status=429, ...)`):
        one row per kind, set by the same code that lets one raised error override it."""
        super().__init_subclass__()
        _take(cls, kind)

    def __init__(
        self, message: str, *, param: str | None = None, retry_after: float | None = None, **kind: Unpack[ErrorKind]
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after
        _take(self, kind)

    def openai_body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def anthropic_body(self) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {
                "type": self.anthropic_type or _ANTHROPIC_TYPES.get(self.status, "api_error"),
                "message": self.message,
            },
        }


class InvalidRequest(GatewayError, status=400, type="invalid_request_error", code="invalid_request"):
    """The request itself is wrong: sending it again unchanged will not help."""


class AuthenticationFailed(GatewayError, status=401, type="authentication_error", code="invalid_api_key"):
    """No key, or one this gateway does not know."""


class ModelNotFound(GatewayError, status=404, type="invalid_request_error", code="model_not_found"):
    """No deployment serves the model name (`model_not_found` is OpenAI's own code for it)."""


class NotFound(GatewayError, status=404, type="invalid_request_error", code="not_found"):
    """A trace, session, key or path that is not there."""


class PayloadTooLarge(GatewayError, status=413, type="invalid_request_error", code="request_too_large"):
    """A body over the gateway's size limit (`max_body_bytes`)."""


class DeploymentUnavailable(
    GatewayError, status=503, type="api_error", code="deployment_unavailable", anthropic_type="api_error"
):
    """Every deployment of the name is unusable as configured (an unset `os.environ/NAME`, an unknown
    provider): 503, because the gateway is misconfigured, not the client's key (401) or request (400).
    Anthropic's type for 503 is `overloaded_error`, which clients retry as load; this is `api_error`."""


class UpstreamError(GatewayError, status=502, type="upstream_error", code="bad_gateway"):
    """The upstream answered with an error, failed, or could not be reached."""


class UpstreamTimeout(UpstreamError, status=504, type="timeout_error", code="upstream_timeout"):
    """The upstream did not answer, or stalled mid-stream, within the call's timeout."""


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
    529: "overloaded_error",
}

# OpenAI's `type` for a given upstream 4xx, so clients' retry logic keeps working through the gateway.
OPENAI_TYPES_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def upstream_status_error(status: int, raw: bytes, host: str, retry_after: str | None) -> GatewayError:
    """Keep the upstream's own message; 4xx keep their status, 5xx become 502."""
    message = _error_message(raw) or f"upstream {host} answered HTTP {status}"
    retry = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
    if status >= 500:
        return UpstreamError(f"upstream {host} failed with HTTP {status}: {message}", retry_after=retry)
    code = "rate_limit_exceeded" if status == 429 else f"upstream_{status}"
    return GatewayError(
        message,
        status=status,
        type=OPENAI_TYPES_BY_STATUS.get(status, "invalid_request_error"),
        code=code,
        retry_after=retry,
    )


def _error_message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw[:500].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return raw[:500].decode("utf-8", "replace").strip()

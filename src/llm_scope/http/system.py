"""Liveness, readiness, and errors for paths and methods that don't exist (in OpenAI's shape)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from ..apis import anthropic_shaped
from ..errors import GatewayError, NotFound
from .responses import RawResponse, error_response, json_response
from .state import state_of


async def health(request: Request) -> RawResponse:
    return json_response({"status": "healthy"})


async def ready(request: Request) -> RawResponse:
    """Deployments the config leaves unavailable (an unset `os.environ/NAME`) are listed, but keep the
    gateway ready: the rest of its models serve, as in LiteLLM Proxy."""
    state = state_of(request)
    problems = state.readiness()
    extra = {"unavailable_deployments": state.unavailable} if state.unavailable else {}
    lag = state.lag()
    if problems:
        return json_response({"status": "not_ready", "reasons": problems, **extra, **lag}, status=503)
    return json_response({"status": "ready", **extra, **lag})


async def metrics(request: Request) -> RawResponse:
    """Prometheus text format; never traced or counted as a request."""
    state = state_of(request)
    state.sync_metrics()
    from ..metrics import CONTENT_TYPE

    return RawResponse(200, state.metrics.render(), {"content-type": CONTENT_TYPE})


async def http_exception(request: Request, exc: Exception) -> RawResponse:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    anthropic = anthropic_shaped(request.url.path)
    if status == 404:
        return error_response(NotFound(f"Unknown path: {request.method} {request.url.path}"), anthropic=anthropic)
    if status == 405:
        return error_response(
            anthropic=anthropic,
            exc=GatewayError(
                f"Method {request.method} is not allowed on {request.url.path}",
                status=405,
                type="invalid_request_error",
                code="method_not_allowed",
            ),
        )
    return error_response(GatewayError(str(getattr(exc, "detail", "error")), status=status))


metrics_route = Route("/metrics", metrics, methods=["GET"])

routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
]

"""Read API for team questions: /api/sessions, /api/sessions/{id}, /api/usage (whole, or `group_by`), and
/api/unpriced-models; each takes /api/traces' filters (user, client, model, from/to, …), and `format=csv`.

Thin handlers: parse, one query on the store's thread (tracing/insight.py), serialize.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import GatewayError, InvalidRequest, NotFound
from ..tracing import insight, queries
from .api import trace_filter
from .csvout import csv_response
from .responses import error_response, json_response
from .state import state_of


def _choice(request: Request, name: str, allowed: Any, default: str | None) -> str | None:
    value = request.query_params.get(name) or default
    if value is not None and value not in allowed:
        raise InvalidRequest(f"Invalid '{name}': expected one of {', '.join(sorted(allowed))}", param=name)
    return value


def _format(request: Request) -> str:
    return _choice(request, "format", ("json", "csv"), "json") or "json"


def _pricing(request: Request) -> insight.Pricing:
    """The gateway's prices (the config's model_info, then LiteLLM's table), for what the cache saved."""
    return state_of(request).prices_for


async def _run(request: Request, query: Callable[..., Any], *args: Any) -> Any:
    pipeline = state_of(request).pipeline
    await pipeline.flush()  # read-your-writes: a call just answered is counted
    return await pipeline.read(query, pipeline.store, *args)


async def sessions(request: Request) -> Response:
    try:
        f = trace_filter(request)
        sort = _choice(request, "sort", insight.SESSION_SORTS, "last_call") or "last_call"
        descending = (_choice(request, "order", ("asc", "desc"), "desc") or "desc") == "desc"
        derive = (_choice(request, "derive", ("0", "1", "false", "true"), "0") or "0") in ("1", "true")
        fmt = _format(request)
    except GatewayError as exc:
        return error_response(exc)
    found = await _run(request, insight.list_sessions, f, sort, descending, derive, _pricing(request))
    return csv_response(found["data"], "sessions.csv") if fmt == "csv" else json_response(found)


async def session(request: Request) -> Response:
    session_id = request.path_params["session_id"]
    try:
        f = trace_filter(request)
        fmt = _format(request)
    except GatewayError as exc:
        return error_response(exc)
    found = await _run(request, insight.get_session, session_id, f, _pricing(request))
    if found is None:
        return error_response(NotFound(f"No session with id '{session_id}'"))
    return csv_response(found["turns"], "session.csv") if fmt == "csv" else json_response(found)


async def usage(request: Request) -> Response:
    """`group_by` client|user|model|key|session: one row per group and the total; without it, the
    dashboard's usage (by model, user, day, day and model, and the total)."""
    try:
        f = trace_filter(request)
        group_by = _choice(request, "group_by", insight.GROUPS, None)
        fmt = _format(request)
        if fmt == "csv" and group_by is None:
            raise InvalidRequest("format=csv needs 'group_by'", param="format")
    except GatewayError as exc:
        return error_response(exc)
    if group_by is None:
        return json_response(await _run(request, queries.usage, f))
    found = await _run(request, insight.usage_by, f, group_by, _pricing(request))
    return csv_response(found["data"], f"usage-by-{group_by}.csv") if fmt == "csv" else json_response(found)


async def unpriced(request: Request) -> Response:
    try:
        f = trace_filter(request)
        fmt = _format(request)
    except GatewayError as exc:
        return error_response(exc)
    found = await _run(request, insight.unpriced_models, f)
    return csv_response(found["data"], "unpriced-models.csv") if fmt == "csv" else json_response(found)


routes = [
    Route("/api/sessions", sessions, methods=["GET"]),
    Route("/api/sessions/{session_id:path}", session, methods=["GET"]),
    Route("/api/usage", usage, methods=["GET"]),
    Route("/api/unpriced-models", unpriced, methods=["GET"]),
]

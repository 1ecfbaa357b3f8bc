"""The local store's read API (and scores), for the dashboard, scripts and `llm-scope traces`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import GatewayError, InvalidRequest, NotFound
from ..postgres import DatabaseError
from ..tracing import queries
from ..tracing.handoff import TraceHandoff
from ..tracing.storage import TraceStore
from .csvout import csv_response
from .handlers import read_json
from .responses import RawResponse, error_response, json_response
from .state import state_of

T = TypeVar("T")


def _time(value: str | None, name: str) -> float | None:
    """Epoch seconds or ISO-8601."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidRequest(f"Invalid '{name}': expected epoch seconds or an ISO-8601 time", param=name) from None


def _int(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(f"Invalid '{name}': expected an integer", param=name) from None


def trace_filter(request: Request) -> queries.TraceFilter:
    q = request.query_params
    status = q.get("status")
    if status is not None and status not in ("ok", "error", "rejected") and not status.isdigit():
        raise InvalidRequest("Invalid 'status': expected ok, error, rejected or an HTTP status code", param="status")
    return queries.TraceFilter(
        user=q.get("user") or q.get("user_id"),
        session=q.get("session") or q.get("session_id"),
        model=q.get("model"),
        status=status,
        since=_time(q.get("since") or q.get("from"), "since"),
        until=_time(q.get("until") or q.get("to"), "until"),
        limit=_int(q.get("limit"), "limit", 50),
        offset=_int(q.get("offset"), "offset", 0),
        client=q.get("client") or None,
    )


class TraceStoreUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "trace_store_unavailable"


async def read(pipeline: TraceHandoff, fn: Callable[..., T], *args: Any) -> T:
    """A read on the store's thread; the shared store being down is a 503 that says so, not a 500."""
    try:
        return await pipeline.read(fn, *args)
    except DatabaseError as exc:
        raise TraceStoreUnavailable(
            f"The shared trace store is unavailable ({exc}); calls still succeed and their traces wait locally"
        ) from None


def _pipeline(request: Request) -> TraceHandoff:
    return state_of(request).pipeline


def filtered(query: Callable[[TraceStore, queries.TraceFilter], Any]) -> Callable[[Request], Awaitable[RawResponse]]:
    """A read endpoint: parse the filters, flush (read-your-writes), run the query on the store's thread."""

    async def endpoint(request: Request) -> RawResponse:
        try:
            f = trace_filter(request)
        except GatewayError as exc:
            return error_response(exc)
        pipeline = _pipeline(request)
        await pipeline.flush()
        try:
            return json_response(await read(pipeline, query, pipeline.store, f))
        except GatewayError as exc:
            return error_response(exc)

    return endpoint


async def list_traces(request: Request) -> RawResponse | Response:
    """The calls, newest first; `format=csv` gives every call that matches (up to CSV_ROWS), not one page."""
    fmt = request.query_params.get("format") or "json"
    if fmt == "json":
        return await _list_json(request)
    try:
        if fmt != "csv":
            raise InvalidRequest("Invalid 'format': expected one of csv, json", param="format")
        f = trace_filter(request)
        if "limit" not in request.query_params:
            f = replace(f, limit=CSV_ROWS)
        pipeline = _pipeline(request)
        await pipeline.flush()
        found = await read(pipeline, queries.list_traces, pipeline.store, f, CSV_ROWS)
    except GatewayError as exc:
        return error_response(exc)
    return csv_response(found["data"], "calls.csv")


CSV_ROWS = 50_000
_list_json = filtered(queries.list_traces)


async def _find(pipeline: TraceHandoff, trace_id: str) -> dict[str, Any] | None:
    """From the store reads go to; a call of this instance not yet shipped to PostgreSQL (or made while it is
    down) is in the local one."""
    if pipeline.local is pipeline.store:
        return await read(pipeline, queries.get_trace, pipeline.store, trace_id)
    try:
        found = await read(pipeline, queries.get_trace, pipeline.store, trace_id)
    except TraceStoreUnavailable:
        found = None
    if found is None:
        found = await read(pipeline, queries.get_trace, pipeline.local, trace_id)
    return found


async def get_trace(request: Request) -> RawResponse:
    trace_id = request.path_params["trace_id"]
    pipeline = _pipeline(request)
    await pipeline.flush()  # a trace id the client just got back must be readable at once
    try:
        found = await _find(pipeline, trace_id)
    except GatewayError as exc:
        return error_response(exc)
    if found is None:
        return error_response(NotFound(f"No trace with id '{trace_id}'"))
    return json_response(found)


def parse_score(trace_id: str, body: Any) -> dict[str, Any]:
    """Validate a score the way Langfuse's public API types it (NUMERIC, BOOLEAN, CATEGORICAL)."""
    if not isinstance(body, dict):
        raise InvalidRequest("Score must be a JSON object with 'name' and 'value'")
    name, value = body.get("name"), body.get("value")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("Missing required parameter: 'name'", param="name")
    if isinstance(value, bool):
        data_type, value = "BOOLEAN", 1 if value else 0
    elif isinstance(value, int | float):
        data_type = "NUMERIC"
    elif isinstance(value, str) and value:
        data_type = "CATEGORICAL"
    else:
        raise InvalidRequest("Invalid 'value': expected a number, a boolean or a non-empty string", param="value")
    data_type = body.get("data_type") or body.get("dataType") or data_type
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise InvalidRequest("Invalid 'comment': expected a string", param="comment")
    # A stable id makes a retried delivery idempotent in Langfuse.
    ident = body.get("id") or hashlib.sha256(f"{trace_id}:{name}:{json.dumps(value)}".encode()).hexdigest()[:32]
    return {
        "id": str(ident),
        "traceId": trace_id,
        "name": name,
        "value": value,
        "dataType": data_type,
        "comment": comment,
    }


async def add_score(request: Request) -> RawResponse:
    trace_id = request.path_params["trace_id"]
    pipeline = _pipeline(request)
    try:
        score = parse_score(trace_id, await read_json(request, 64 * 1024))
        await pipeline.flush()
        if await _find(pipeline, trace_id) is None:
            raise NotFound(f"No trace with id '{trace_id}'")
    except GatewayError as exc:
        return error_response(exc)
    await pipeline.add_score(score)
    return json_response(score, status=201)


routes = [
    Route("/api/traces", list_traces, methods=["GET"]),
    Route("/api/traces/{trace_id}", get_trace, methods=["GET"]),
    Route("/api/traces/{trace_id}/scores", add_score, methods=["POST"]),
    # /api/sessions and /api/usage: http/insight.py
]

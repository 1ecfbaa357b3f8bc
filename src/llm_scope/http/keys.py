"""GET /api/keys: every virtual key with its budgets and what it spent against them, for master-key holders.

A key's hint is shown (its first characters, to recognise it), never its hash or plaintext. Spend is read from
the trace store (today and this month, UTC), so with DATABASE_URL it is every instance's; the unpriced calls
are counted beside the dollars, never taken for $0. Thin handler: the key list and one query, both on threads.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..access.keys import VirtualKey
from ..errors import GatewayError
from ..tracing.handoff import TraceHandoff
from ..tracing.keyspend import KeySpend, Spend, key_spend, window_names
from .admin import require_master
from .responses import error_response, json_response
from .state import state_of


def _row(key: VirtualKey, spend: KeySpend | None) -> dict[str, Any]:
    day = spend.day if spend else Spend()
    month = spend.month if spend else Spend()
    return {
        **key.public(),
        "spend_today": day.public(),
        "spend_month": month.public(),
        "last_used": spend.last_used if spend else None,
    }


async def list_keys(request: Request) -> Response:
    try:
        store = require_master(request)
        keys = await run_in_threadpool(lambda: store.list(include_revoked=True))
    except GatewayError as exc:
        return error_response(exc)
    pipeline: TraceHandoff = state_of(request).pipeline
    await pipeline.flush()  # read-your-writes: a call just answered is counted
    now = time.time()
    spend = await pipeline.read(key_spend, pipeline.store, now)
    day, month = window_names(now)
    return json_response(
        {"data": [_row(key, spend.get(key.id)) for key in keys], "day": day, "month": month},
        headers={"cache-control": "no-cache"},
    )


routes = [Route("/api/keys", list_keys, methods=["GET"])]

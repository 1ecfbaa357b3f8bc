"""Session ids for the calls a tool sent without one, and client re-sends, worked out as calls are stored.

The fallback session: calls without a session id, made with the same key (else user, else none) through the
same client, with no gap over IDLE_GAP seconds between one and the next, are one session, whose id is
"auto-" and the trace id of its first call. It is assigned in the trace helper when the call is stored, so
the stored row, the read API and the Langfuse/OTel exports (built from the stored record) carry the same id.

Several gateway workers (each with its own helper) write one store: calls of one tool may reach any of them.
So `assign` runs inside the store's write transaction (SQLite's BEGIN IMMEDIATE: no other helper commits
between the look-up and the insert), and a run this helper does not know of, or knows to have ended, is
looked up in the store: the derived call of the same key and client nearest in time, within IDLE_GAP. A run
this helper saw continue within IDLE_GAP needs no look-up: no gap can have opened since. Runs are greedy, in
the order calls are stored (a batch in start order), so a call that finishes long after later ones joins the
run it falls in.

A client re-send (`resent`): a call whose request digest (tracing/callfacts.py) equals that of the previous
call of its session, by start time, and that previous call failed (HTTP status >= 400 or an error type):
the tool sent the same request again after an error. Retries the gateway made itself within one call are
in the record's `gateway_attempts`; a session's retries are both, added up.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from ..types import CallRecord

IDLE_GAP = 1800.0  # seconds between two calls of one tool that still count as one fallback session
DERIVED_PREFIX = "auto-"
CACHE_RUNS = 4096  # open runs remembered, by (key or user, client)

Read = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]  # a query inside the store's write transaction
Prepare = Callable[[Sequence[CallRecord], Read], None]  # what `Store.write` runs before it inserts

_OPEN_RUN = (
    "SELECT session_id, start_time FROM traces WHERE session_derived = 1 AND client = ? "
    "AND COALESCE(key_id, user_id, '') = ? AND start_time BETWEEN ? AND ? ORDER BY start_time DESC LIMIT 1"
)
# Each session's stored call before the batch's first one (a VALUES row per session: one statement a batch).
_PREVIOUS = (
    "SELECT f.column1, t.request_digest, t.status_code, t.error_type, t.start_time FROM (VALUES {rows}) f "
    "JOIN traces t ON t.trace_id = (SELECT trace_id FROM traces WHERE session_id = f.column1 AND start_time <= "
    "f.column2 AND trace_id <> f.column3 ORDER BY start_time DESC, trace_id DESC LIMIT 1)"
)
_PER_STATEMENT = 300  # sessions per look-up: 3 parameters each, under SQLite's old limit of 999


class SessionRuns:
    """One per trace helper (the store is the truth; this only spares look-ups)."""

    def __init__(self, idle_gap: float = IDLE_GAP, cap: int = CACHE_RUNS) -> None:
        self.idle_gap = idle_gap
        self.cap = cap
        self._runs: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def assign(self, records: Sequence[CallRecord], read: Read) -> None:
        """Give each call without a session id its fallback one, and mark client re-sends."""
        ordered = sorted(records, key=lambda r: (r.start_time, r.trace_id))
        for record in ordered:
            if record.session_id is None and record.client:
                self._join_run(record, read)
        firsts: dict[str, CallRecord] = {}
        for record in ordered:
            if record.session_id is not None and record.request_digest is not None:
                firsts.setdefault(record.session_id, record)
        previous = _stored_previous(list(firsts.values()), read)  # then this batch's last call of each session
        for record in ordered:
            session = record.session_id
            if session is None:
                continue
            before = previous.get(session)
            if record.request_digest is not None:
                record.resent = before is not None and before[1] and before[0] == record.request_digest
            previous[session] = (record.request_digest, record.is_error, record.start_time)

    def _join_run(self, record: CallRecord, read: Read) -> None:
        who, client, at = record.key_id or record.user_id or "", record.client or "", record.start_time
        key = (who, client)
        run = self._runs.get(key)
        if run is None or abs(at - run[1]) > self.idle_gap:
            found = read(_OPEN_RUN, (client, who, at - self.idle_gap, at + self.idle_gap))
            run = (str(found[0][0]), float(found[0][1])) if found else None
        session = run[0] if run is not None else DERIVED_PREFIX + record.trace_id
        record.session_id, record.session_derived = session, True
        self._runs[key] = (session, max(at, run[1]) if run is not None else at)
        self._runs.move_to_end(key)
        while len(self._runs) > self.cap:
            self._runs.popitem(last=False)


def _stored_previous(firsts: list[CallRecord], read: Read) -> dict[str, tuple[str | None, bool, float]]:
    """Each session's stored call before its first call in the batch: (request digest, failed, start time)."""
    found: dict[str, tuple[str | None, bool, float]] = {}
    for start in range(0, len(firsts), _PER_STATEMENT):
        chunk = firsts[start : start + _PER_STATEMENT]
        params = [value for r in chunk for value in (r.session_id, r.start_time, r.trace_id)]
        for session, digest, status, error, at in read(
            _PREVIOUS.format(rows=",".join(["(?,?,?)"] * len(chunk))), params
        ):
            found[session] = (digest, (status or 0) >= 400 or error is not None, at)
    return found

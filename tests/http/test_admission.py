"""Admission's slot hand-over, including the waiters that give up (clients that hang up while queued)."""

from __future__ import annotations

import asyncio

from llm_scope.http.entry import Admission


def test_a_cancelled_waiter_gives_its_place_and_a_handed_slot_back() -> None:
    async def main() -> None:
        gate = Admission(limit=1, queue=2)
        assert await gate.enter("chat") is None and gate.active == 1
        second = asyncio.ensure_future(gate.enter("chat"))
        third = asyncio.ensure_future(gate.enter("chat"))
        await asyncio.sleep(0)
        refused = await gate.enter("chat")  # queue full
        assert refused is not None and refused.status == 503 and refused.retry_after == 1
        second.cancel()  # left while queued: its place goes, nothing else changes
        await asyncio.sleep(0)
        assert gate.active == 1 and not third.done()
        gate.leave()  # the slot goes straight to the next waiter
        assert await third is None and gate.active == 1
        fourth = asyncio.ensure_future(gate.enter("chat"))
        await asyncio.sleep(0)
        gate.leave()  # handed to `fourth` ...
        fourth.cancel()  # ... which is cancelled before it runs: the slot must come back
        await asyncio.sleep(0)
        assert fourth.cancelled() and gate.active == 0
        assert await gate.enter("chat") is None and gate.active == 1

    asyncio.run(main())

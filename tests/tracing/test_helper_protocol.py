"""Records cross to the trace helper as field tuples: what arrives must equal what was sent, field by field."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pickle
import threading

from llm_scope.tracing import helper_protocol
from llm_scope.tracing.bodyblocks import BodyBlocks
from llm_scope.types import CallRecord, Cost, RawInput, Usage


def full_record() -> CallRecord:
    record = CallRecord(trace_id="ab" * 16, route="messages", start_time=1.5)
    for field in dataclasses.fields(CallRecord):  # every field off its default, so a shuffled order shows
        if getattr(record, field.name) == getattr(CallRecord("x", "y", 0.0), field.name):
            value = {
                "end_time": 2.5,
                "completion_start_time": 1.75,
                "metadata": {"ticket": "T-1", "n": [1, 2]},
                "model_parameters": {"temperature": 0.2},
                "input": [{"role": "user", "content": "héllo \ud800"}],
                "output": {"role": "assistant", "content": "hi"},
                "stream": True,
                "usage": Usage(input=3, output=4, total=7, cache_read=1, cache_write=2, reasoning=1),
                "cost": Cost(input=0.1, output=0.2, total=0.3),
                "status_code": 502,
                "upstream_latency": 0.9,
            }.get(field.name, f"{field.name}-value")
            setattr(record, field.name, value)
    return record


def test_records_survive_the_pipe() -> None:
    record = full_record()
    sent = helper_protocol.encode(
        ("records", 7, helper_protocol.dump_rows([record, CallRecord("cd" * 16, "chat_completion", 3.0)]))
    )

    async def receive() -> tuple[object, ...] | None:
        reader = asyncio.StreamReader()
        reader.feed_data(sent[:5])  # a frame may arrive in pieces
        reader.feed_data(sent[5:])
        reader.feed_eof()
        message = await helper_protocol.read(reader)
        assert await helper_protocol.read(reader) is None  # then the end of the pipe, not an error
        return message

    message = asyncio.run(receive())
    assert message is not None and message[:2] == ("records", 7)
    got = helper_protocol.load_rows(message[2])  # type: ignore[arg-type]
    assert got[0] == record and got[1] == CallRecord("cd" * 16, "chat_completion", 3.0)
    assert dataclasses.asdict(got[0]) == dataclasses.asdict(record)


def test_bodies_handed_over_as_bytes_cross_behind_the_rows_and_big_payloads_behind_the_pickle() -> None:
    bodies = [b'{"messages": [{"role": "user", "content": "%d"}]}' % n + b" " * 9000 for n in range(2)]
    records = [full_record(), CallRecord("cd" * 16, "chat_completion", 3.0, input=RawInput(bodies[0], "chat"))]
    records.append(CallRecord("ef" * 16, "messages", 4.0, input=RawInput(bodies[1], "messages")))
    blob = helper_protocol.dump_rows(records)
    assert blob.endswith(bodies[0] + bodies[1])  # appended as they are, not pickled
    sent = helper_protocol.encode(("records", 8, blob))
    assert sent.endswith(blob) and sent[4:5] == b"B"  # the payload behind the pickle of the rest
    parts = helper_protocol.encode_parts(("records", 8, blob))
    assert parts[-1] is blob and b"".join(parts) == sent  # the worker writes the batch it holds, not a copy
    pieces = helper_protocol.Pieces(helper_protocol.dump_parts(records))
    assert pieces[-1] is bodies[1] and pieces.size == len(blob)  # the calls' own bytes, never copied
    parts = helper_protocol.encode_parts(("records", 8, pieces))
    assert parts[1:] == pieces and b"".join(parts) == sent  # as pieces: the same frame on the pipe
    stats = ("done", 3, {"written": 1}, [("model", "provider", 0.5)])  # a last element that is merely a list
    assert b"".join(helper_protocol.encode_parts(stats)) == helper_protocol.encode(stats)
    assert helper_protocol.decode(helper_protocol.encode(stats)[4:]) == stats

    async def receive() -> tuple[object, ...] | None:
        reader = asyncio.StreamReader()
        reader.feed_data(sent + helper_protocol.encode(("score", 9, {"v": 1})))
        reader.feed_eof()
        message = await helper_protocol.read(reader)
        assert await helper_protocol.read(reader) == ("score", 9, {"v": 1})  # small: pickled whole, as before
        return message

    message = asyncio.run(receive())
    assert message is not None and message[:2] == ("records", 8) and message[2] == blob
    got = helper_protocol.load_rows(message[2])  # type: ignore[arg-type]
    assert got[0] == records[0] and dataclasses.asdict(got[0]) == dataclasses.asdict(records[0])
    for record, body, family in zip(got[1:], bodies, ("chat", "messages"), strict=True):
        assert type(record.input) is RawInput and (record.input.body, record.input.family) == (body, family)
    # Rows as an earlier version pickled them (a spill file written before an upgrade) still load.
    assert helper_protocol.load_rows(pickle.dumps(helper_protocol.pack(records[:1]), 5)) == records[:1]


def test_bodies_arrive_as_views_into_the_batch_and_still_read_and_pickle_as_bytes() -> None:
    body = '{"model": "m", "messages": [{"role": "user", "content": "héllo %s"}]}'.encode() % (b"x" * 9000)
    frame = helper_protocol.encode(
        ("records", 2, helper_protocol.dump_rows([CallRecord("ab" * 16, "chat", 2.0, input=RawInput(body, "chat"))]))
    )
    payload = helper_protocol.decode(frame[4:])[2]
    assert isinstance(payload, memoryview)  # the trailer is not copied out of the frame
    (record,) = helper_protocol.load_rows(payload)
    raw = record.input
    assert type(raw) is RawInput and type(raw.body) is memoryview and raw.body == body
    assert BodyBlocks().input_of(raw) == json.loads(body)["messages"]
    again = pickle.loads(pickle.dumps(raw, 5))  # a view cannot pickle: it goes as its bytes
    assert type(again.body) is bytes and again.body == body and again.family == "chat"
    broken = RawInput(memoryview(b'{"messages": [1, '), "chat")  # not JSON: the whole-body fallback, from a view
    assert BodyBlocks().input_of(broken) is None


def test_the_helper_reads_frames_off_a_real_pipe_whole_however_they_arrive() -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "%s"}]}' % (b"y" * 300_000)
    records = [full_record(), CallRecord("cd" * 16, "chat_completion", 3.0, input=RawInput(body, "chat"))]
    frames = [
        helper_protocol.encode(("records", 3, helper_protocol.dump_rows(records))),  # ~300 KB: beyond a pipe's
        helper_protocol.encode(("score", 4, {"v": 1})),
    ]
    stream = b"".join(frames) + helper_protocol.encode(("score", 5, {"v": 2}))[:7]  # then cut mid-frame
    read_end, write_end = os.pipe()

    def write() -> None:  # in pieces of odd sizes, one split inside a length prefix, from another thread
        with os.fdopen(write_end, "wb", buffering=0) as pipe:
            for start in range(0, len(stream), 65_537):
                pipe.write(stream[start : start + 3])
                pipe.write(stream[start + 3 : start + 65_537])

    async def receive() -> list[tuple[object, ...] | None]:
        reader = helper_protocol.PipeReader(read_end)
        return [await reader.read(), await reader.read(), await reader.read(), await reader.read()]

    writer = threading.Thread(target=write)
    writer.start()
    try:
        got = asyncio.run(receive())
    finally:
        writer.join()
        os.close(read_end)
    first, second, cut, after = got
    assert first is not None and first[:2] == ("records", 3)
    loaded = helper_protocol.load_rows(first[2])  # type: ignore[arg-type]
    assert loaded[0] == records[0] and dataclasses.asdict(loaded[0]) == dataclasses.asdict(records[0])
    raw = loaded[1].input
    assert type(raw) is RawInput and raw.body == body and raw.family == "chat"
    assert BodyBlocks().input_of(raw) == json.loads(body)["messages"]
    assert second == ("score", 4, {"v": 1})
    assert cut is None and after is None  # a frame cut off by the gateway's exit is the end, not an error

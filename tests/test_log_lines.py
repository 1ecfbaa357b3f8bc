"""The per-call log line itself, without a gateway: the cheaper ways the gateway and the trace helper write it
must give the very bytes the logging module would, and a batch must reach a shared pipe in whole lines."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from llm_scope import logs
from llm_scope.logs import CALL_LOGGER, JsonFormatter, TextFormatter, configure_logging, log_calls
from llm_scope.types import CallRecord, Cost, Usage

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the gateway's LOG_FORMAT=text


# --- the per-call line itself, without a gateway ------------------------------------------------------


def old_call_line(record: CallRecord) -> tuple[str, dict[str, Any]]:
    """The message and fields as log_calls built them before it was made cheaper: the line must not change."""
    fields = {
        "trace_id": record.trace_id,
        "route": record.route,
        "model": record.requested_model,
        "resolved_model": record.resolved_model,
        "provider": record.provider,
        "status": record.status_code,
        "error_type": record.error_type,
        "user_id": record.user_id,
        "session_id": record.session_id,
        "stream": record.stream,
        "input_tokens": record.usage.input,
        "output_tokens": record.usage.output,
        "cost_usd": record.cost.total if record.cost else None,
        "duration_ms": round(record.duration * 1000, 2),
    }
    return "call " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v != ""), fields


def old_json_line(record: logging.LogRecord) -> str:
    out: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
    }
    call = getattr(record, "call", None)
    if isinstance(call, dict):
        out.update(call)
    return json.dumps(out, default=str)


LOGGED = [
    CallRecord(trace_id="a" * 32, route="chat_completion", start_time=1_750_000_000.25, end_time=1_750_000_000.6),
    CallRecord(
        trace_id="b" * 32,
        route="messages",
        start_time=1_750_000_001.0,
        end_time=1_750_000_003.123456,
        user_id="ü-user",
        session_id="s 1",
        requested_model="claude",
        resolved_model="claude-sonnet",
        provider="anthropic",
        stream=True,
        usage=Usage(input=1200, output=3, total=1203),
        cost=Cost(1e-3, 2e-6, 0.001002),
    ),
    CallRecord(
        trace_id="c" * 32,
        route="chat_completion",
        start_time=5.0,
        end_time=4.0,
        status_code=502,
        error_type="upstream_error",
        cost=Cost(0.0, 0.0, 0.0),
    ),
]


@contextmanager
def call_lines(formatter: logging.Formatter, level: int = logging.INFO) -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.setLevel(level)
    logger = logging.getLogger(CALL_LOGGER)
    previous = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = previous


def test_call_lines_are_unchanged_in_both_formats() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logging.getLogger(CALL_LOGGER).addHandler(keep)
    try:
        with call_lines(JsonFormatter()) as json_out, call_lines(logging.Formatter(TEXT_FORMAT)) as text_out:
            log_calls(LOGGED)
    finally:
        logging.getLogger(CALL_LOGGER).removeHandler(keep)
    assert len(records) == len(LOGGED)
    for logged, call, json_line, text_line in zip(
        records, LOGGED, json_out.getvalue().splitlines(), text_out.getvalue().splitlines(), strict=True
    ):
        message, fields = old_call_line(call)
        assert (logged.getMessage(), logged.call, logged.msg) == (message, fields, "call %s")  # type: ignore[attr-defined]
        assert (logged.levelno, logged.name, logged.funcName) == (logging.INFO, CALL_LOGGER, "log_calls")
        assert logged.pathname == logs.__file__
        assert json_line == old_json_line(logged)
        assert text_line == logging.Formatter(TEXT_FORMAT).format(logged)


def test_text_formatter_matches_the_standard_one_across_seconds() -> None:
    fast, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    dated = TextFormatter(datefmt="%H:%M:%S"), logging.Formatter(TEXT_FORMAT, datefmt="%H:%M:%S")
    for created in (1_750_000_000.001, 1_750_000_000.999, 1_750_000_001.5, 1_750_000_001.5, 1_750_003_600.0, 12.25):
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "m %s", ("a",), None)
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        assert fast.format(record) == standard.format(record)
        assert dated[0].format(record) == dated[1].format(record)
        assert JsonFormatter().format(record) == old_json_line(record)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", "text")
    try:
        assert isinstance(root.handlers[0].formatter, TextFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_levels_filters_and_disabled_loggers_still_apply() -> None:
    logger = logging.getLogger(CALL_LOGGER)
    with call_lines(TextFormatter(), level=logging.WARNING) as out:
        log_calls(LOGGED)
    assert out.getvalue() == ""  # the handler's level

    class OnlyErrors(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return getattr(record, "call", {}).get("error_type") is not None

    only = OnlyErrors()
    logger.addFilter(only)
    try:
        with call_lines(TextFormatter()) as out:
            log_calls(LOGGED)
    finally:
        logger.removeFilter(only)
    assert out.getvalue().count("\n") == 1 and "error_type=upstream_error" in out.getvalue()

    with call_lines(TextFormatter()) as out:
        logger.disabled = True
        try:
            log_calls(LOGGED)
        finally:
            logger.disabled = False
        logger.setLevel(logging.WARNING)
        log_calls(LOGGED)
    assert out.getvalue() == ""


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("now", [1_750_000_000.0, 1_750_000_000.9994, 1_760_123_456.25])
def test_the_helpers_direct_call_lines_match_log_calls_byte_for_byte(
    fmt: str, now: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trace helper formats its call lines without LogRecords: they must be what log_calls writes through
    configure_logging's handler, timestamp included."""
    from llm_scope.logs import CallLines

    monkeypatch.setattr(time, "time", lambda: now)
    monkeypatch.setattr(time, "time_ns", lambda: int(now * 1e9))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        through_logging = io.StringIO()
        configure_logging("INFO", fmt, through_logging)
        log_calls(LOGGED)
        direct = io.StringIO()
        configure_logging("INFO", fmt, direct)
        CallLines(fmt, direct).write(LOGGED)
        assert direct.getvalue() == through_logging.getvalue()
        assert direct.getvalue().count("\n") == len(LOGGED) and "trace_id" in direct.getvalue()
        quiet = io.StringIO()
        configure_logging("WARNING", fmt, quiet)
        CallLines(fmt, quiet).write(LOGGED)
        assert quiet.getvalue() == ""  # the helper's level applies
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_batched_lines_go_out_whole_in_writes_no_bigger_than_pipe_buf() -> None:
    """The trace helper shares stderr with the workers: only writes of up to PIPE_BUF bytes are atomic on a
    pipe, so a batch of call lines must be cut at line ends, never mid-line."""
    import os
    import select

    from llm_scope.logs import BatchedStream

    read_end, write_end = os.pipe()
    try:
        stream = BatchedStream(write_end)
        lines = [f"line {i} " + "x" * (i * 37 % 700) + "\n" for i in range(60)] + ["big " + "y" * 5000 + "\n"]
        for line in lines:
            stream.write(line)
        stream.flush()  # what StreamHandler calls per record: nothing may be written yet
        assert select.select([read_end], [], [], 0)[0] == []
        writes: list[int] = []
        real_write = os.write

        def counting_write(fd: int, data: bytes | memoryview) -> int:
            writes.append(len(data))
            assert bytes(data).endswith(b"\n")
            return real_write(fd, data)

        os.write = counting_write  # type: ignore[assignment]
        try:
            stream.drain()
        finally:
            os.write = real_write  # type: ignore[assignment]
        got = b""
        while len(got) < sum(len(x.encode()) for x in lines):
            got += os.read(read_end, 65536)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert got.decode() == "".join(lines)
    assert 1 < len(writes) < len(lines)  # batched, not one write per line
    assert all(n <= select.PIPE_BUF for n in writes[:-1]) and writes[-1] > select.PIPE_BUF  # a long line alone

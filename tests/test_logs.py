"""LOG_FORMAT=json: one JSON line per request, with the fields log pipelines need, and never a secret.

A real gateway runs in-process in front of the fake upstream. Log output is captured with the gateway's own
JsonFormatter (and its text format) on the root logger at DEBUG, so every line any logger emits is checked,
not only the call lines. Prompts carry a client's OpenAI-style key and the deployment holds a known upstream
key (UPSTREAM_KEY); neither may appear anywhere in the logs, including DEBUG_MODE body logging.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_scope import logs
from llm_scope.accounting.redact import REDACTED
from llm_scope.logs import CALL_LOGGER, JsonFormatter, TextFormatter, configure_logging, log_calls
from llm_scope.types import CallRecord, Cost, Usage
from tests.conftest import UPSTREAM_KEY, upstream_models
from tests.fakes.upstream import FAKE_PROMPT_TOKENS, FakeUpstream, trigger_error
from tests.gateway_server import GatewayServer, make_settings, model_config

# What a user pastes into a prompt by mistake: "sk-proj-" and 24 alphanumerics.
CLIENT_KEY = "sk-proj-" + "Zq8Xw3Vu" * 3
PROMPT = f"please debug this, my key is {CLIENT_KEY} and it fails"
CALL_FIELDS = {"trace_id", "model", "status", "input_tokens", "output_tokens", "cost_usd", "duration_ms"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the gateway's LOG_FORMAT=text


@dataclass
class Captured:
    json_out: io.StringIO = field(default_factory=io.StringIO)
    text_out: io.StringIO = field(default_factory=io.StringIO)
    helper_err: str = ""  # what the trace helper process wrote to stderr, in the settings' LOG_FORMAT

    def lines(self) -> list[dict[str, Any]]:
        """Every line must be one JSON object (pytest's own output aside, on the shared stderr)."""
        helper = [line for line in self.helper_err.splitlines() if line.startswith("{")]
        out = []
        for line in self.json_out.getvalue().splitlines() + helper:
            parsed = json.loads(line)
            assert isinstance(parsed, dict), line
            out.append(parsed)
        return out

    def calls(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == CALL_LOGGER]

    def everything(self) -> str:
        return self.json_out.getvalue() + self.text_out.getvalue() + self.helper_err


@contextmanager
def captured_logs(capfd: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    """Root handlers in both formats, and the gateway's loggers at DEBUG, restored afterwards; and the trace
    helper's stderr (a child process: its lines, the call lines among them, reach file descriptor 2)."""
    captured = Captured()
    json_handler = logging.StreamHandler(captured.json_out)
    json_handler.setFormatter(JsonFormatter())
    text_handler = logging.StreamHandler(captured.text_out)
    text_handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    gateway_logger = logging.getLogger("llm_scope")
    previous = gateway_logger.level
    for handler in (json_handler, text_handler):
        handler.setLevel(logging.DEBUG)
        root.addHandler(handler)
    gateway_logger.setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        captured.helper_err = capfd.readouterr().err
        gateway_logger.setLevel(previous)
        for handler in (json_handler, text_handler):
            root.removeHandler(handler)


def chat(client: httpx.Client, model: str, content: str, *, stream: bool = False) -> httpx.Response:
    response = client.post(
        "/v1/chat/completions",
        json={"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]},
    )
    response.read()
    return response


def assert_no_secret(captured: Captured) -> None:
    text = captured.everything()
    assert text, "nothing was logged"
    for secret in (CLIENT_KEY, UPSTREAM_KEY):
        assert secret not in text, "a key reached the logs"
    # Nor a recognisable piece of one (a key cut in half is still a leak).
    assert CLIENT_KEY[8:] not in text and UPSTREAM_KEY[3:] not in text


def test_json_log_has_one_line_per_request_with_the_call_fields(
    tmp_path: Path, upstream: FakeUpstream, capfd: pytest.CaptureFixture[str]
) -> None:
    upstream.reset()
    settings = make_settings(tmp_path, log_format="json")
    config = model_config(upstream_models(upstream))
    with captured_logs(capfd) as captured, GatewayServer(settings, model_config=config) as gw, gw.client() as client:
        answered = chat(client, "gpt-fake", PROMPT)
        streamed = chat(client, "gpt-fake", PROMPT, stream=True)
        unknown = chat(client, "no-such-model", PROMPT)
        failed = chat(client, "gpt-fake", f"{trigger_error(500)} {PROMPT}")
        mock = chat(client, "mock-gpt", PROMPT)
        client.get("/api/traces")  # waits for the trace helper, which logs the calls once stored
    assert [r.status_code for r in (answered, streamed, unknown, failed, mock)] == [200, 200, 404, 502, 200]
    # The upstream really was called with the deployment's key, so the key was in play.
    assert any(r.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}" for r in upstream.requests)

    calls = captured.calls()
    responses = {"answered": answered, "streamed": streamed, "unknown": unknown, "failed": failed, "mock": mock}
    trace_ids = {name: r.headers["x-trace-id"] for name, r in responses.items()}
    assert sorted(c["trace_id"] for c in calls) == sorted(trace_ids.values()), "exactly one line per request"
    by_id = {c["trace_id"]: c for c in calls}
    for name, trace_id in trace_ids.items():
        line = by_id[trace_id]
        assert line.keys() >= CALL_FIELDS, name
        assert line["level"] == "info" and line["status"] == responses[name].status_code, name
        assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0, name
        assert isinstance(line["input_tokens"], int) and isinstance(line["output_tokens"], int), name

    ok = by_id[trace_ids["answered"]]
    assert ok["model"] == "gpt-fake" and ok["resolved_model"] == "gpt-4o-mini" and ok["provider"] == "openai"
    assert ok["input_tokens"] == FAKE_PROMPT_TOKENS and ok["output_tokens"] > 0
    assert ok["cost_usd"] > 0 and ok["stream"] is False and ok["error_type"] is None
    stream_line = by_id[trace_ids["streamed"]]
    assert stream_line["stream"] is True and stream_line["output_tokens"] > 0 and stream_line["cost_usd"] > 0
    missing = by_id[trace_ids["unknown"]]
    assert missing["model"] == "no-such-model" and missing["error_type"] == "model_not_found"
    assert missing["input_tokens"] == 0 and missing["cost_usd"] is None
    assert by_id[trace_ids["failed"]]["error_type"] is not None
    assert by_id[trace_ids["mock"]]["cost_usd"] is None  # unknown price is not free: null, not 0

    # Debug mode is off: no request or response bodies, even with the loggers at DEBUG.
    assert "please debug this" not in captured.everything()
    assert_no_secret(captured)


def test_debug_mode_logs_bodies_with_keys_redacted(
    tmp_path: Path, upstream: FakeUpstream, capfd: pytest.CaptureFixture[str]
) -> None:
    upstream.reset()
    settings = make_settings(tmp_path, log_format="json", debug_mode=True)
    config = model_config(upstream_models(upstream))
    with captured_logs(capfd) as captured, GatewayServer(settings, model_config=config) as gw, gw.client() as client:
        answered = chat(client, "gpt-fake", PROMPT)
        streamed = chat(client, "gpt-fake", PROMPT, stream=True)
        client.get("/api/traces")
    assert answered.status_code == 200 and streamed.status_code == 200
    # The fake upstream echoes the prompt, so the answer carries the client's key too.
    assert CLIENT_KEY in answered.text

    lines = captured.lines()
    for response in (answered, streamed):
        trace_id = response.headers["x-trace-id"]
        debug = [x for x in lines if x["level"] == "debug" and trace_id in x["message"]]
        request_line = next(x["message"] for x in debug if x["message"].startswith(f"request {trace_id}"))
        response_line = next(x["message"] for x in debug if x["message"].startswith(f"response {trace_id}"))
        assert "please debug this, my key is [REDACTED] and it fails" in request_line
        assert REDACTED in response_line and "Hello from fake upstream" in response_line
        assert [c["trace_id"] for c in captured.calls()].count(trace_id) == 1
    assert_no_secret(captured)


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

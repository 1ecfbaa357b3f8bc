"""Logging set-up: text for people, `LOG_FORMAT=json` for log pipelines (one JSON object per line).

Each finished call is logged once, from the trace writer, after redaction and pricing, so the line has
tokens and cost and can never carry a secret the trace would not. That is one line per call, in the same
process as the request path, so the per-line work is kept small: everything else in a line is fixed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .types import CallRecord

CALL_LOGGER = "llm_scope.calls"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# json.dumps builds a new encoder whenever an option is passed; this one is built once (same output).
_encode_json = json.JSONEncoder(default=str).encode


class _SecondCache:
    """A timestamp's strftime part, which only changes once a second but cost ~1 µs on every line.

    The cached value is one tuple, replaced whole, so formatters shared between threads stay consistent.
    """

    def __init__(self) -> None:
        self._last: tuple[int, str | None, Callable[..., time.struct_time], str] = (-1, None, time.gmtime, "")

    def format(self, created: float, fmt: str, converter: Callable[..., time.struct_time]) -> str:
        second = int(created)
        last = self._last
        if last[0] == second and last[1] == fmt and last[2] is converter:
            return last[3]
        text = time.strftime(fmt, converter(created))
        self._last = (second, fmt, converter, text)
        return text


class TextFormatter(logging.Formatter):
    """LOG_FORMAT=text: logging.Formatter with TEXT_FORMAT, byte for byte, formatting each second once."""

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._seconds = _SecondCache()

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return self._seconds.format(record.created, datefmt, self.converter)
        text = self.format_time(record.created)
        return self.default_msec_format % (text, record.msecs) if self.default_msec_format else text

    def format_time(self, created: float) -> str:
        """The default time format's part to the second (also used by CallLines, which builds no LogRecord)."""
        return self._seconds.format(created, self.default_time_format, self.converter)


class JsonFormatter(logging.Formatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seconds = _SecondCache()

    def format(self, record: logging.LogRecord) -> str:
        call = getattr(record, "call", None)
        out = self.fields(record.created, int(record.msecs), record.levelname, record.name, record.getMessage())
        if isinstance(call, dict):
            out.update(call)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return _encode_json(out)

    def fields(self, created: float, msecs: int, level: str, logger: str, message: str) -> dict[str, Any]:
        """The fields every line starts with (also used by CallLines, which builds no LogRecord)."""
        second = self._seconds.format(created, "%Y-%m-%dT%H:%M:%S", time.gmtime)
        return {"time": f"{second}.{msecs:03d}Z", "level": level.lower(), "logger": logger, "message": message}


class BatchedStream:
    """A StreamHandler's stream whose per-record flush costs nothing: lines collect until `drain` writes them.

    The trace helper logs a batch of call lines at once, and a write per line was most of a line's cost
    there. Lines go out whole, in writes of at most PIPE_BUF bytes: other processes (the workers) share the
    same stderr, and only writes that small are never interleaved with theirs on a pipe.
    """

    def __init__(self, fd: int = 2) -> None:
        self._fd = fd
        self._lines: list[bytes] = []

    def write(self, text: str) -> int:
        self._lines.append(text.encode("utf-8", "backslashreplace"))  # StreamHandler writes a line at a time
        return len(text)

    def flush(self) -> None:
        pass

    def drain(self) -> None:
        chunk: list[bytes] = []
        size = 0
        for line in self._lines:
            if chunk and size + len(line) > select.PIPE_BUF:
                self._write(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write(b"".join(chunk))
        self._lines.clear()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]


def configure_logging(level: str, fmt: str, stream: Any = None) -> None:
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("LiteLLM", "litellm", "httpx", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def call_fields(record: CallRecord) -> dict[str, Any]:
    cost = record.cost
    return {
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
        "cost_usd": cost.total if cost else None,
        "duration_ms": round(max(0.0, record.end_time - record.start_time) * 1000, 2),
    }


@functools.cache
def _call_logger() -> logging.Logger:
    """Looked up once (getLogger takes the module lock), on first use as before, after any setLoggerClass."""
    return logging.getLogger(CALL_LOGGER)


def log_calls(records: Sequence[CallRecord]) -> None:
    """One INFO line per call through the logger, so users' handlers, filters and levels apply to each.

    The LogRecord is made and handled as Logger.info would, less its walk up the stack to find the caller,
    which is known: this function (it was a tenth of a line's cost).
    """
    logger = _call_logger()
    if not logger.isEnabledFor(logging.INFO):
        return
    here = sys._getframe()
    path, line, function = here.f_code.co_filename, here.f_lineno, here.f_code.co_name
    for record in records:
        fields = call_fields(record)
        text = _call_text(fields)
        logger.handle(
            logger.makeRecord(
                CALL_LOGGER, logging.INFO, path, line, "call %s", (text,), None, function, {"call": fields}
            )
        )


def _call_text(fields: dict[str, Any]) -> str:
    return " ".join([f"{k}={v}" for k, v in fields.items() if v is not None and v != ""])


class CallLines:
    """The trace helper's call lines, written byte for byte as `log_calls` through `configure_logging`'s
    handler would write them, without a LogRecord and a handler round per line (two thirds of a line's cost).

    Only for a process whose logging is entirely ours (the helper runs no user code, so no other handler,
    filter or level can apply); it checks the call logger's level when built.
    """

    def __init__(self, fmt: str, stream: Any) -> None:
        self._json = JsonFormatter() if fmt == "json" else None
        self._text = TextFormatter()
        self._write = stream.write
        self.enabled = _call_logger().isEnabledFor(logging.INFO)

    def write(self, records: Sequence[CallRecord]) -> None:
        if not self.enabled:
            return
        for record in records:
            created = time.time()
            msecs = int((created - int(created)) * 1000)  # as LogRecord computes them
            fields = call_fields(record)
            message = "call " + _call_text(fields)
            if self._json is not None:
                out = self._json.fields(created, msecs, "INFO", CALL_LOGGER, message)
                out.update(fields)
                line = _encode_json(out)
            else:  # TEXT_FORMAT, with TextFormatter's time
                second = self._text.format_time(created)
                line = f"{second},{msecs:03d} INFO {CALL_LOGGER}: {message}"
            self._write(line + "\n")

"""Logging set-up: text for people, `LOG_FORMAT=json` for log pipelines (one JSON object per line).

Each finished call is logged once, from the trace writer, after redaction and pricing, so the line has
tokens and cost and can never carry a secret the trace would not.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from .types import CallRecord

CALL_LOGGER = "llm_scope.calls"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        call = getattr(record, "call", None)
        if isinstance(call, dict):
            out.update(call)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("LiteLLM", "litellm", "httpx", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def call_fields(record: CallRecord) -> dict[str, Any]:
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
        "cost_usd": record.cost.total if record.cost else None,
        "duration_ms": round(record.duration * 1000, 2),
    }


def log_calls(records: list[CallRecord]) -> None:
    logger = logging.getLogger(CALL_LOGGER)
    if not logger.isEnabledFor(logging.INFO):
        return
    for record in records:
        fields = call_fields(record)
        text = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v != "")
        logger.info("call %s", text, extra={"call": fields})

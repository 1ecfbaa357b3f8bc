"""The fake upstream's misbehaviour, chosen per request by magic tokens in the last user text.

Apart from the server so that the token syntax (documented in ``tests/fakes/upstream.py``) has one parser,
which tests may also use to build the tokens they send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

TRIGGER_SLOW = "FAKE_SLOW"
TRIGGER_DROP = "FAKE_DROP"
TRIGGER_GARBAGE = "FAKE_GARBAGE"
TRIGGER_HANG_STREAM = "FAKE_HANG_STREAM"
GARBAGE_FRAME = "data: {not json\n\n"

TOKEN = re.compile(r"\bFAKE_(ERROR_(\d{3})|SLOW|DROP|GARBAGE|HANG_STREAM|CHUNK_DELAY|CHUNKS)\b(?:=([0-9.]+))?")


def has_trigger(text: str) -> bool:
    return TOKEN.search(text) is not None


def trigger_error(status: int) -> str:
    return f"FAKE_ERROR_{status}"


@dataclass(frozen=True)
class Behaviour:
    """Parsed misbehaviour; None fields mean 'not asked for', so two parses can be layered."""

    error_status: int | None = None
    slow: float | None = None
    fault: str | None = None  # "drop" | "garbage" | "hang"
    chunk_delay: float | None = None
    chunks: int | None = None

    @classmethod
    def parse(cls, text: str, default_slow: float) -> Behaviour:
        found: dict[str, Any] = {}
        for m in TOKEN.finditer(text or ""):
            kind, status, value = m.group(1), m.group(2), m.group(3)
            if status:
                found.setdefault("error_status", int(status))
            elif kind == "SLOW":
                found.setdefault("slow", float(value) if value else default_slow)
            elif kind in ("DROP", "GARBAGE", "HANG_STREAM"):
                found.setdefault("fault", {"DROP": "drop", "GARBAGE": "garbage"}.get(kind, "hang"))
            elif kind == "CHUNK_DELAY" and value:
                found.setdefault("chunk_delay", float(value))
            elif kind == "CHUNKS" and value:
                found.setdefault("chunks", int(float(value)))
        return cls(**found)

    def over(self, base: Behaviour) -> Behaviour:
        mine = {k: v for k, v in self.__dict__.items() if v is not None}
        return replace(base, **mine)

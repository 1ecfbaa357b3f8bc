"""The fast JSON codec must accept and produce what the standard library does, including orjson's gaps."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pytest

from llm_scope import jsoncodec


@pytest.mark.parametrize(
    "text",
    [
        '{"model": "x", "messages": [{"role": "user", "content": "caf\\u00e9 \u2615"}]}',
        '{"big": 123456789012345678901234567890}',  # beyond 64 bits: orjson refuses, the fallback parses
        '{"n": -9223372036854775809, "f": 1e-07, "t": true, "z": null}',
        '{"edge": 9223372036854775808, "max": 9223372036854775807, "min": -9223372036854775808}',
        '{"deep": [[{"x": [18446744073709551616]}]], "s": "1234567890123456789012"}',  # 19+ digits twice
        '{"f": 0.1234567890123456789012, "e": 1e300, "s": "digits in text 123456789012345678"}',
    ],
)
def test_loads_matches_the_standard_library(text: str) -> None:
    padded = text[:-1] + ', "pad": "' + "x = 1\\n" * 4000 + '"}'  # a large body: checked by the walk
    for data in (text.encode(), text, padded.encode()):
        got, want = jsoncodec.loads(data), json.loads(data)
        assert got == want and json.dumps(got) == json.dumps(want)  # ints stay ints, not equal floats


@pytest.mark.parametrize("top", ["[{pad}, {big}]", '[[{pad}], [[1.5, {{"a": [{big}]}}]]]', "{big}"])
def test_a_large_body_finds_a_huge_integer_wherever_it_sits(top: str) -> None:
    pad = '"' + "x = 1\\n" * 4000 + '"'
    for big in ("18446744073709551616", "-9223372036854775809", "1e300", "3"):
        text = top.format(pad=pad, big=big) if "pad" in top else pad[:0] + big + " " * 20000
        got, want = jsoncodec.loads(text.encode()), json.loads(text)
        assert json.dumps(got) == json.dumps(want)


def test_loads_keeps_nan_and_reports_invalid_json_precisely() -> None:
    assert math.isnan(jsoncodec.loads(b'{"x": NaN}')["x"])
    with pytest.raises(ValueError, match="line 1 column 2"):
        jsoncodec.loads(b"{bad")
    with pytest.raises(ValueError):
        jsoncodec.loads(b"\xff\xfe")


def test_dumps_is_compact_utf8_and_round_trips() -> None:
    value = {"a": [1, 2.5, "é", None, True], "b": {"c": 10**30}, 3: "non-str key", "when": datetime(2026, 1, 1)}
    out = jsoncodec.dumps(value)
    assert b", " not in out and b'": ' not in out
    assert json.loads(out)["b"]["c"] == 10**30 and json.loads(out)["3"] == "non-str key"
    small = {"model": "gpt", "messages": [{"role": "user", "content": "é"}]}
    assert jsoncodec.dumps(small) == json.dumps(small, ensure_ascii=False, separators=(",", ":")).encode()
    assert jsoncodec.dumps_str(small) == jsoncodec.dumps(small).decode()

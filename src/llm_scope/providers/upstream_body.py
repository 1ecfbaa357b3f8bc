"""The bytes a passthrough upstream gets: the client's own bytes whenever they can be proven right.

A coding agent's body is 50-200 KB, mostly the conversation it sent the turn before. Re-serializing the parsed
body for the upstream cost the worker ~70 µs a call on an 83 KB body (orjson, measured), and it also changed
what the client wrote (its whitespace, its escapes, its key order). So the received bytes go up as they are
when the body going up is the body received; when routing or `prepare` changed a few top-level members (the
model alias swapped for the deployment's model, `stream_options.include_usage` added, `metadata` dropped),
those members alone are spliced into the received bytes. Whenever a splice cannot be proven right, the body
is re-serialized as before: the splice is a shortcut, never a second meaning.

What makes a splice provably right, without a tokenizer pass over the whole body (which in Python would cost
more than the re-serialization it saves):
- The body parsed to a dict, so the text is one JSON object and its first `{` opens it.
- A top-level key named K (ASCII letters and `_`, as every key we touch is) is written in the text either as
  the literal `"K"` or with a `\\u00XX` escape of one of its letters (JSON has no other escape that decodes to
  a letter). No `\\u004` to `\\u007` anywhere in the text rules those spellings out.
- Inside a JSON string a `"` is always escaped, so `"K"` followed by `:` outside a key token needs a
  string ending in an escaped quote and K (`"x \\"K": 1`). If `"K"` occurs exactly once in the text, that one
  occurrence is the top-level key; any second one (a nested "K" key, a duplicate top-level key, such a string)
  means no splice.
- The value found after it is parsed back and must equal the parsed body's value (type included).
Adding a key the body does not have needs none of this: the parse proved it absent at the top level.

Members are compared by identity: the parsed body is never changed in place on the request path (`prepare`,
`payload` and the model swap build new dicts), so a member that is the same object is unchanged.
"""

from __future__ import annotations

from typing import Any

from .. import jsoncodec

# Below this a body is re-serialized: orjson writes a short body in ~0.4 µs (256 bytes) to ~3.8 µs (4 KB), and
# proving a splice (`stream_options` added) costs ~2 µs whatever the size (measured), so short calls stay as
# they were and coding agents' bodies go up as sent.
SPLICE_FROM = 4096
_WHITESPACE = b" \t\r\n"
_LETTER_ESCAPES = (b"\\u004", b"\\u005", b"\\u006", b"\\u007")  # letters and `_` written as \u00XX
_MAX_VALUE = 4096  # a replaced or removed member's value is short (a model name, stream_options, metadata)
_SCALARS = frozenset((str, int, float, bool, type(None)))


def upstream_bytes(received: bytes, original: dict[str, Any], payload: dict[str, Any]) -> bytes:
    """`payload` as JSON bytes: `received` itself when `payload` is `original` (what `received` parsed to)
    member for member, `received` with the changed members spliced in, or `payload` re-serialized."""
    if received[:1] != b"{" or received[1:2] == b"\x00":
        opening = received.find(b"{")
        if opening < 0 or received[:opening].strip(_WHITESPACE) or b"\x00" in received[:4]:
            return jsoncodec.dumps(payload)  # a BOM, or UTF-16/32 the standard library decoded: UTF-8 goes up
    changed = []
    for key, value in payload.items():
        before = original.get(key, _ABSENT)
        # The model swapped in is a new str, equal to the one sent when the deployment serves the name asked for.
        if before is not value and (type(before) is not type(value) or type(value) not in _SCALARS or before != value):
            changed.append(key)
    removed = [k for k in original if k not in payload] if len(payload) - len(changed) < len(original) else []
    if not changed and not removed:
        return received
    spliced = _splice(received, original, payload, changed, removed)
    return spliced if spliced is not None else jsoncodec.dumps(payload)


class _Absent:
    pass


_ABSENT = _Absent()


def _splice(
    received: bytes, original: dict[str, Any], payload: dict[str, Any], changed: list[str], removed: list[str]
) -> bytes | None:
    """The received bytes with `changed` members replaced (or added) and `removed` ones cut; None when
    that cannot be proven right."""
    edits: list[tuple[int, int, bytes]] = []  # (start, end, replacement) on `received`
    added: list[str] = []
    for key in changed + removed:
        if key not in original:
            added.append(key)
            continue
        found = _member(received, key, original[key])
        if found is None:
            return None
        start, value_start, value_end = found
        if key in payload:
            edits.append((value_start, value_end, jsoncodec.dumps(payload[key])))
        else:
            cut = _member_with_comma(received, start, value_end)
            if cut is None:
                return None
            edits.append((*cut, b""))
    out = received
    if edits:
        edits.sort()
        if any(edits[n][1] > edits[n + 1][0] for n in range(len(edits) - 1)):
            return None  # two cuts sharing a comma (the last two members removed)
        for start, end, replacement in reversed(edits):
            out = out[:start] + replacement + out[end:]
    if added:
        opening = out.find(b"{") + 1
        members = jsoncodec.dumps({k: payload[k] for k in added})[1:-1]
        kept = len(original) > len(removed)  # members left after the added ones: a comma between
        out = out[:opening] + members + (b"," if kept else b"") + out[opening:]
    return out


def _member(received: bytes, key: str, value: Any) -> tuple[int, int, int] | None:
    """Where the top-level member `key` starts, and its value's span, when provably there; else None."""
    if not key.isascii() or not key.replace("_", "").isalpha() or any(e in received for e in _LETTER_ESCAPES):
        return None
    token = b'"' + key.encode() + b'"'
    start = received.find(token)
    if start < 0 or received.find(token, start + 1) >= 0:
        return None
    i = _skip_whitespace(received, start + len(token))
    if received[i : i + 1] != b":":
        return None
    value_start = _skip_whitespace(received, i + 1)
    value_end = _value_end(received, value_start)
    if value_end is None:
        return None
    try:
        parsed = jsoncodec.loads(received[value_start:value_end])
    except ValueError:
        return None
    if type(parsed) is not type(value) or parsed != value:
        return None
    return start, value_start, value_end


def _member_with_comma(received: bytes, start: int, value_end: int) -> tuple[int, int] | None:
    """The span to cut to remove the member at `start`..`value_end`: with the comma after it, or, for the last
    member, the one before it; the only member alone."""
    after = _skip_whitespace(received, value_end)
    if received[after : after + 1] == b",":
        return start, after + 1
    if received[after : after + 1] != b"}":
        return None
    before = start
    while before > 0 and received[before - 1] in _WHITESPACE:
        before -= 1
    if received[before - 1 : before] == b",":
        return before - 1, value_end
    if received[before - 1 : before] == b"{":
        return start, value_end
    return None


def _skip_whitespace(data: bytes, i: int) -> int:
    while i < len(data) and data[i] in _WHITESPACE:
        i += 1
    return i


def _value_end(data: bytes, i: int) -> int | None:
    """The end of the JSON value starting at `i` (strings and nesting followed, not validated: the caller
    parses the span back), or None past `_MAX_VALUE` bytes."""
    limit = min(len(data), i + _MAX_VALUE)
    depth = 0
    while i < limit:
        c = data[i]
        if c == 0x22:  # '"'
            i = _string_end(data, i, limit)
            if i < 0:
                return None
            if depth == 0:
                return i
            continue
        if c in b"{[":
            depth += 1
        elif c in b"}]":
            if depth == 0:
                return i  # a scalar ended by its object's end
            depth -= 1
            if depth == 0:
                return i + 1
        elif depth == 0 and c in b", \t\r\n":
            return i  # a scalar ended by the next member or whitespace
        i += 1
    return None


def _string_end(data: bytes, i: int, limit: int) -> int:
    """Just past the string whose opening quote is at `i`; -1 if it does not end before `limit`."""
    i += 1
    while i < limit:
        c = data[i]
        if c == 0x5C:  # backslash: the next byte is escaped
            i += 2
        elif c == 0x22:
            return i + 1
        else:
            i += 1
    return -1

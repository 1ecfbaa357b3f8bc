"""A call's input read from its request body's bytes, parsing only the blocks this helper has not seen before.

A coding agent sends its whole conversation on every call (50-200 KB), and all but the last turn or two is
what it sent the call before. The gateway hands such a body over as its bytes (`types.RawInput`) instead of
pickling its parsed messages, and here the body is read back a top-level value at a time: each element of
a top-level array (a message, a tool definition, an input item) and each top-level object or string is a
*block*. A block's text is looked up among the texts of blocks read before (by its first PREFIX characters,
then compared whole: a memcmp), and only a block not found is parsed. A block found is its value from
before, with its digest: sha256 of its text, which the screen remembers verdicts by and the store keys the
block by (see `blocks`), so the bytes of a known block are neither parsed, pickled nor hashed again.

Why a match is the block: the text at a block's start is a complete JSON object, array or string (numbers
and literals are never kept, and they are short), and such a value ends at its closing delimiter without
looking past it, so parsing from there would read exactly the text found. A block shorter than PREFIX is
parsed every time (it is cheap to), and its digest taken of its text as well. A number or literal block
gets no digest (the screen passes those as they are).

The input is then the family's `input_of` over the top-level values read, exactly what it gives over the
body the gateway parsed (validation changes no body). A body this cannot read (it is not UTF-8, say) is
parsed whole as the gateway parsed it. Values are shared between the calls that carry the same block: no
one changes an input in place (scrubbing copies).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from hashlib import sha256
from typing import Any

from .. import jsoncodec
from ..apis import FAMILIES, ApiFamily, by_name
from ..types import RawInput
from .blocks import BlockDict, BlockList, blocks

PREFIX = 256  # characters a block is looked up by; a shorter block is parsed every time
CANDIDATES = 16  # blocks kept per prefix (many blocks may start alike: a tool result's envelope)
BUDGET = 8 * 1024 * 1024  # characters of block text kept (least recently used out): ~60 conversations
_WS = re.compile(r"[ \t\n\r]*")  # JSON's whitespace
_DECODER = json.JSONDecoder()  # raw_decode: one value from a position, and where it ends
_CONTAINERS = ("{", "[", '"')


class BodyBlocks:
    """The texts and values of the blocks read lately, by digest (one per pipeline)."""

    def __init__(self, families: tuple[ApiFamily, ...] = FAMILIES, budget: int = BUDGET) -> None:
        self.families = by_name(families)
        self.budget = budget
        self.size = 0
        self.hits = 0  # blocks found rather than parsed: read by tests and benchmarks
        self._entries: OrderedDict[bytes, tuple[str, Any]] = OrderedDict()  # digest -> (text, value)
        self._by_prefix: dict[str, list[bytes]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def input_of(self, raw: RawInput) -> Any:
        """The call's input, as `family.input_of(json.loads(raw.body))`; a list or dict input comes as a
        BlockList / BlockDict carrying `digests`: each block's, in `blocks()` order (None: none taken)."""
        family = self.families.get(raw.family)
        if family is None:  # a family this helper does not know: the whole body, rather than nothing
            return _parsed_whole(raw.body, None)
        found: dict[int, bytes] = {}
        try:
            top = self._body(raw.body.decode(), found)
        except ValueError:  # UnicodeDecodeError and JSONDecodeError included: read it as the gateway did
            return _parsed_whole(raw.body, family)
        value = family.input_of(top)
        if not isinstance(value, list | dict):
            return value
        out: BlockList | BlockDict = BlockList(value) if isinstance(value, list) else BlockDict(value)
        out.digests = [found.get(id(block)) for block in blocks(value)]
        return out

    def _body(self, s: str, found: dict[int, bytes]) -> dict[str, Any]:
        p = _skip(s, 0)
        if s[p : p + 1] != "{":
            raise ValueError("not an object")
        top: dict[str, Any] = {}
        p = _skip(s, p + 1)
        if s[p : p + 1] == "}":
            p += 1
        else:
            while True:
                if s[p : p + 1] != '"':
                    raise ValueError("expected a key")
                key, p = _DECODER.raw_decode(s, p)
                p = _skip(s, p)
                if s[p : p + 1] != ":":
                    raise ValueError("expected ':'")
                p = _skip(s, p + 1)
                top[key], p = self._array(s, p, found) if s[p : p + 1] == "[" else self._value(s, p, found)
                p = _skip(s, p)
                c = s[p : p + 1]
                p = _skip(s, p + 1)
                if c == "}":
                    break
                if c != ",":
                    raise ValueError("expected ',' or '}'")
        if p != len(s):
            raise ValueError("extra data")
        return top

    def _array(self, s: str, p: int, found: dict[int, bytes]) -> tuple[list[Any], int]:
        items: list[Any] = []
        p = _skip(s, p + 1)
        if s[p : p + 1] == "]":
            return items, p + 1
        while True:
            value, p = self._value(s, p, found)
            items.append(value)
            p = _skip(s, p)
            c = s[p : p + 1]
            if c == "]":
                return items, p + 1
            if c != ",":
                raise ValueError("expected ',' or ']'")
            p = _skip(s, p + 1)

    def _value(self, s: str, p: int, found: dict[int, bytes]) -> tuple[Any, int]:
        """The value at p and where it ends: a block found, or parsed (and kept when PREFIX long or more)."""
        if s[p : p + 1] not in _CONTAINERS:
            return _DECODER.raw_decode(s, p)  # a number or literal (or "" at the end: raises)
        head = s[p : p + PREFIX]
        entries = self._entries
        for digest in self._by_prefix.get(head, ()):
            text, value = entries[digest]
            if s.startswith(text, p):
                entries.move_to_end(digest)
                self.hits += 1
                found[id(value)] = digest
                return value, p + len(text)
        value, end = _DECODER.raw_decode(s, p)
        text = s[p:end]
        digest = sha256(text.encode()).digest()  # a short block's too: cheaper than the screen's pickle of it
        found[id(value)] = digest
        if end - p >= PREFIX:
            self._keep(digest, head, text, value)
        return value, end

    def _keep(self, digest: bytes, head: str, text: str, value: Any) -> None:
        entries = self._entries
        if digest in entries:  # the same text under a prefix list that dropped it: keep one entry
            return
        alike = self._by_prefix.setdefault(head, [])
        if len(alike) >= CANDIDATES:
            self._drop(alike[0])
        entries[digest] = (text, value)
        alike.insert(0, digest)  # the newest first: a conversation's latest blocks are the likeliest
        self.size += len(text)
        while self.size > self.budget and len(entries) > 1:
            self._drop(next(iter(entries)))

    def _drop(self, digest: bytes) -> None:
        text, _ = self._entries.pop(digest)
        self.size -= len(text)
        head = text[:PREFIX]
        alike = self._by_prefix[head]
        alike.remove(digest)
        if not alike:
            del self._by_prefix[head]


def _skip(s: str, p: int) -> int:
    """Where the whitespace at p ends (the pattern matches everywhere, if only the empty string)."""
    return _WS.match(s, p).end()  # type: ignore[union-attr]


def _parsed_whole(body: bytes, family: ApiFamily | None) -> Any:
    """The input from the body parsed whole; unknown (None) if even that fails, which the gateway's own
    parse of the same bytes rules out: a record must never hold its batch up."""
    try:
        value = jsoncodec.loads(body)
    except ValueError:
        return None
    return family.input_of(value) if family is not None and isinstance(value, dict) else value

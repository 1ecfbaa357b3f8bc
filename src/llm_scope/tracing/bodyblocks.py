"""A call's input read from its request body's bytes, parsing only the blocks this helper has not seen before.

A coding agent sends its whole conversation on every call (50-200 KB), and all but the last turn or two is
what it sent the call before. The gateway hands such a body over as its bytes (`types.RawInput`) instead of
pickling its parsed messages, and here the body is read back a top-level value at a time: each element of
a top-level array (a message, a tool definition, an input item) and each top-level object or string is a
*block*. A block's text is looked up among the texts of blocks read before, and only a block not found is
parsed. In an array, the block that followed the previous element last time is tried first (a conversation
repeats in order); otherwise a block is looked up by its first PREFIX characters. Either way it is compared
whole (a memcmp). A block found is its value from
before, with its digest: sha256 of its text, which the screen remembers verdicts by and the store keys the
block by (see `blocks`), so the bytes of a known block are neither parsed, pickled nor hashed again.

Why a match is the block: the text at a block's start is a complete JSON object, array or string (numbers
and literals are never kept, and they are short), and such a value ends at its closing delimiter without
looking past it, so parsing from there would read exactly the text found. A block shorter than PREFIX is
found only as the one that followed another (its first PREFIX characters run past its end). A number or
literal is parsed every time and gets no digest (the screen passes those as they are).

The input is then the family's `input_of` over the top-level values read, exactly what it gives over the
body the gateway parsed (validation changes no body). A body this cannot read (it is not UTF-8, say) is
parsed whole as the gateway parsed it. Values are shared between the calls that carry the same block: no
one changes an input in place (scrubbing copies).
"""

from __future__ import annotations

import json
import re
import sys
from collections import OrderedDict
from hashlib import sha256
from itertools import chain
from operator import attrgetter
from typing import Any

from .. import jsoncodec
from ..apis import FAMILIES, ApiFamily, by_name
from ..types import RawInput
from .blocks import BlockDict, BlockList
from .runindex import RunIndex

PREFIX = 256  # characters a block is looked up by; a shorter block is parsed every time
CANDIDATES = 16  # blocks kept per prefix (many blocks may start alike: a tool result's envelope)
# Bytes kept (least recently used out), counted as the objects cost (see `cost_of`): blocks in a third, runs
# in two thirds. A run counts its text and also its blocks (their texts and values), which it keeps alive
# after the blocks' own entries are dropped: an upper bound, never below what is held.
BUDGET = 24 * 1024 * 1024
ENTRY = 400  # a block's bytes beyond its text and value: _Block, its digest, dict and prefix-list entries
RUN_ENTRY = 200  # a run's beyond its text, lists and dict: _Run, its dict entries
_WS = re.compile(r"[ \t\n\r]*")  # JSON's whitespace
_WS1 = (" ", "\t", "\n", "\r")  # one character of it (a tuple: "" is not in it)
_DECODER = json.JSONDecoder()  # raw_decode: one value from a position, and where it ends
_CONTAINERS = ("{", "[", '"')


class BodyBlocks:
    """The texts and values of the blocks read lately, by digest (one per pipeline)."""

    def __init__(self, families: tuple[ApiFamily, ...] = FAMILIES, budget: int = BUDGET) -> None:
        self.families = by_name(families)
        self.budget = budget
        self.block_budget = budget // 3
        self.run_budget = budget - self.block_budget
        self.size = 0  # bytes of the blocks kept, as cost_of counts them
        self.hits = 0  # blocks found rather than parsed: read by tests and benchmarks
        self._entries: OrderedDict[bytes, _Block] = OrderedDict()  # by digest, least recently used first
        self._by_prefix: dict[str, list[bytes]] = {}
        # Arrays read lately as runs of blocks (a conversation's messages as its last call sent them), by their
        # first block: the next call's array starts with the same text, compared whole in one memcmp.
        self._runs: RunIndex[_Run] = RunIndex(self.run_budget, CANDIDATES, _first_digest, attrgetter("cost"))

    def __len__(self) -> int:
        return len(self._entries)

    def read(self, value: Any) -> Any:
        """A record's input as the helper stores it: a RawInput read (see input_of), anything else as it is."""
        return self.input_of(value) if type(value) is RawInput else value

    def input_of(self, raw: RawInput) -> Any:
        """The call's input, as `family.input_of(json.loads(raw.body))`; a list or dict input comes as a
        BlockList / BlockDict carrying `digests`: each block's, in `blocks()` order (None: none taken)."""
        family = self.families.get(raw.family)
        if family is None:  # a family this helper does not know: the whole body, rather than nothing
            return _parsed_whole(bytes(raw.body), None)
        found: dict[int, bytes] = {}
        try:  # str(): the body may be a view into the helper's batch (see helper_protocol.load_rows)
            top = self._body(str(raw.body, "utf-8"), found)
        except ValueError:  # UnicodeDecodeError and JSONDecodeError included: read it as the gateway did
            return _parsed_whole(bytes(raw.body), family)
        value = family.input_of(top)
        if not isinstance(value, list | dict):
            return value
        out: BlockList | BlockDict = BlockList(value) if isinstance(value, list) else BlockDict(value)
        items = value if isinstance(value, list) else chain.from_iterable(_as_list(v) for v in value.values())
        out.digests = list(map(found.get, map(id, items)))  # in blocks() order, at C speed (~70 blocks a call)
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
                if s[p : p + 1] == "[":
                    top[key], p = self._array(s, p, found)
                else:
                    top[key], p, _ = self._value(s, p, found)
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
        start = p
        chain: list[_Block] | None = []  # the elements' blocks, while every element has one
        matched: _Run | None = None
        before: _Block | None = None
        while True:
            value, p, block = self._value(s, p, found, before)
            items.append(value)
            if block is None:
                chain = None
            else:
                if before is not None:
                    before.next = block.digest
                if chain is not None:
                    chain.append(block)
                    if len(chain) == 1 and (matched := self._run(s, start, block)) is not None:
                        chain = list(matched.blocks)  # the elements up to the run's end, in one compare
                        items = list(matched.values)
                        found.update(matched.found)  # C-level: no per-element Python for a run (~70 blocks)
                        self.hits += len(chain) - 1
                        p = start + len(matched.text)
                        block = chain[-1]
            before = block
            last = p
            c = s[p : p + 1]
            if c in _WS1:
                p = _skip(s, p)
                c = s[p : p + 1]
            if c == "]":
                if chain is not None and len(chain) > 1 and (matched is None or len(chain) > len(matched.blocks)):
                    self._runs.keep(_Run.extending(matched, s[start:last], chain), matched)
                return items, p + 1
            if c != ",":
                raise ValueError("expected ',' or ']'")
            p += 1
            if s[p : p + 1] in _WS1:  # ", " (json.dumps's own) without the regular expression's call
                p = _skip(s, p) if s[p + 1 : p + 2] in _WS1 else p + 1

    def _run(self, s: str, start: int, first: _Block) -> _Run | None:
        """The longest array run kept that starts with `first` and whose text is at `start`."""
        best: _Run | None = None
        for run in self._runs.alike(first.digest):
            size = len(run.text)
            if best is not None and size <= len(best.text):
                continue
            # Its last block first, where it would end: conversations that start alike (the same system prompt)
            # differ further on, and a compare from the start ran through that prompt (~8 KB) for each of them.
            last = run.blocks[-1].text
            if s.startswith(last, start + size - len(last)) and s.startswith(run.text, start):
                best = run
        if best is not None:
            self._runs.used(best)
        return best

    @property
    def run_size(self) -> int:
        """Bytes of the array runs kept, the blocks they hold included."""
        return self._runs.size

    def _value(
        self, s: str, p: int, found: dict[int, bytes], before: _Block | None = None
    ) -> tuple[Any, int, _Block | None]:
        """The value at p, where it ends, and its block: the one that followed `before` last time, one found
        by its first PREFIX characters, or parsed now (and kept)."""
        if s[p : p + 1] not in _CONTAINERS:
            value, end = _DECODER.raw_decode(s, p)  # a number or literal (or "" at the end: raises)
            return value, end, None
        entries = self._entries
        block = entries.get(before.next) if before is not None and before.next is not None else None
        if block is None or not s.startswith(block.text, p):
            head = s[p : p + PREFIX]
            block = next((b for d in self._by_prefix.get(head, ()) if s.startswith((b := entries[d]).text, p)), None)
        if block is not None:
            entries.move_to_end(block.digest)
            self.hits += 1
            found[id(block.value)] = block.digest
            return block.value, p + len(block.text), block
        value, end = _DECODER.raw_decode(s, p)
        text = s[p:end]
        block = _Block(sha256(text.encode()).digest(), text, value)
        found[id(value)] = block.digest
        if before is not None or len(text) >= PREFIX:  # else nothing would find it: it follows no block
            self._keep(block)
        return value, end, block

    def _keep(self, block: _Block) -> None:
        entries = self._entries
        if block.digest in entries:  # the same text under a prefix list that dropped it: keep one entry
            return
        if len(block.text) >= PREFIX:  # a shorter one is found only as the block that follows another
            alike = self._by_prefix.setdefault(block.text[:PREFIX], [])
            if len(alike) >= CANDIDATES:
                self._drop(alike[-1])
            alike.insert(0, block.digest)  # the newest first: a conversation's latest blocks are the likeliest
        entries[block.digest] = block
        block.cost = ENTRY + sys.getsizeof(block.text) + cost_of(block.value)
        self.size += block.cost
        while self.size > self.block_budget and len(entries) > 1:
            self._drop(next(iter(entries)))

    def _drop(self, digest: bytes) -> None:
        block = self._entries.pop(digest)
        text = block.text
        self.size -= block.cost
        if len(text) >= PREFIX:
            head = text[:PREFIX]
            alike = self._by_prefix[head]
            alike.remove(digest)
            if not alike:
                del self._by_prefix[head]


def _first_digest(run: _Run) -> bytes:
    return run.blocks[0].digest


class _Run:
    """An array's elements as read before: their text from the first's start to the last's end, and blocks."""

    __slots__ = ("blocks", "blocks_cost", "cost", "found", "text", "values")

    def __init__(self, text: str, blocks: list[_Block], values: list[Any], found: dict[int, bytes]) -> None:
        self.text = text
        self.blocks = blocks
        self.values = values  # the blocks' values, and their digests by id: a match takes both whole
        self.found = found
        self.blocks_cost = 0  # of the blocks it holds (set by `extending`)
        self.cost = RUN_ENTRY + sum(map(sys.getsizeof, (text, blocks, values, found))) + 32 * len(found)

    @classmethod
    def extending(cls, base: _Run | None, text: str, blocks: list[_Block]) -> _Run:
        """The run of `blocks`, the first of them `base`'s (if any): only the new ones are walked."""
        done = 0 if base is None else len(base.blocks)
        values = [] if base is None else list(base.values)
        found = {} if base is None else dict(base.found)
        held = 0 if base is None else base.blocks_cost
        for b in blocks[done:]:
            values.append(b.value)
            found[id(b.value)] = b.digest
            held += b.cost or ENTRY + sys.getsizeof(b.text) + cost_of(b.value)  # one not kept: costed here
        run = cls(text, blocks, values, found)
        run.blocks_cost = held
        run.cost += held
        return run


class _Block:
    """A block read before: its digest, text and value, and the digest of the block that followed it."""

    __slots__ = ("cost", "digest", "next", "text", "value")

    def __init__(self, digest: bytes, text: str, value: Any) -> None:
        self.digest = digest
        self.text = text
        self.value = value
        self.next: bytes | None = None
        self.cost = 0  # set when kept


def cost_of(value: Any) -> int:
    """Bytes a parsed JSON value holds: its objects' sizes (a key shared by the decoder's memo is counted at
    each use: a bound, not a census). Walked once per block parsed, never for one found."""
    t = type(value)
    if t is dict:
        return sys.getsizeof(value) + sum(sys.getsizeof(k) + cost_of(v) for k, v in value.items())
    if t is list:
        return sys.getsizeof(value) + sum(map(cost_of, value))
    return sys.getsizeof(value)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


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

"""A call's input as an exporter writes it into a span: parts joined from what it wrote for earlier calls.

A coding agent's call carries the conversation of its last call again, with a turn or two more. Encoding the
input as JSON, encoding that as UTF-8 for the span attribute and compressing it for the request used to pass
over every byte of it on every call (~7 passes; docs/PERFORMANCE.md). Here each exporter keeps, by the
blocks' keys (`blocks`: the digests of the scrubbed blocks, so a secret never names one):

- each block's bytes, as they stand in the attribute (its JSON text, UTF-8, a lone surrogate escaped), least
  recently used out;
- *runs*: an array's elements side by side (a conversation's messages), as one `splice.Piece`: their bytes
  with ", " between them, compressed, and their CRC. A call whose array starts with the keys of a run kept
  extends that run with its new elements: only those are encoded and compressed, and the run found is
  compared as keys (a list compare in C), never as bytes.

The parts join to exactly the bytes of encoding the input whole (tests/tracing/test_inputruns.py). A block
that held a secret has the key of its scrubbed text, so a later call carrying that block gets the scrubbed
bytes; an edited earlier message is a new key, so no run extends past it: the call's run is made again from
the blocks' bytes (compressed whole, once).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, Final

from .protowire import string_attribute, string_attribute_head, text
from .runindex import RunIndex
from .splice import SMALLEST, Piece, Segment, joined, piece, size_of

SEP: Final = b", "  # json.dumps's item separator, as the exporters' encoder writes it
COLON: Final = b": "
# Bytes kept per exporter: blocks (each its bytes object and ENTRY for its dict entry), and runs (a run is
# one conversation as its last call sent it, ~150 KB + ~30 KB compressed: about 45 conversations), each its
# bytes and compressed bytes, its keys' list and RUN_ENTRY. A conversation's runs share their chunks, so the
# runs' count is above what they hold (measured: docs/PERFORMANCE.md): a bound, not a census.
BLOCK_BUDGET: Final = 4 * 1024 * 1024
RUN_BUDGET: Final = 8 * 1024 * 1024
ENTRY: Final = 100
RUN_ENTRY: Final = 300
CANDIDATES: Final = 8  # runs kept per first block (conversations that start alike: the same system prompt)


class _Run:
    __slots__ = ("cost", "keys", "piece")

    def __init__(self, keys: list[str], piece: Piece) -> None:
        self.keys = keys
        self.piece = piece
        self.cost = RUN_ENTRY + piece.size + piece.packed_size + sys.getsizeof(keys)


def _first_key(run: _Run) -> str:
    return run.keys[0]


class InputRuns:
    """Each block's bytes and each array's run of them, by key, for one exporter's encoder."""

    def __init__(
        self, encode: Callable[[Any], str], block_budget: int = BLOCK_BUDGET, run_budget: int = RUN_BUDGET
    ) -> None:
        self.encode = encode
        self.block_budget = block_budget
        self.run_budget = run_budget
        self.size = 0  # bytes of the blocks kept
        self.hits = 0  # blocks not encoded again: read by tests and benchmarks
        self._blocks: OrderedDict[str, bytes] = OrderedDict()
        # The runs kept, their bytes (compressed bytes included) within run_budget.
        self._runs: RunIndex[_Run] = RunIndex(run_budget, CANDIDATES, _first_key, attrgetter("cost"))

    def __len__(self) -> int:
        return len(self._blocks)

    def attribute(self, key_field: bytes, value: Any) -> bytes | list[Segment]:
        """A string attribute of the input as the exporters write it (JSON; a plain-text input as it is):
        segments where a piece is among its parts, else bytes."""
        if isinstance(value, str):
            return string_attribute(key_field, text(value))
        parts = self.parts(value)
        if any(type(p) is Piece for p in parts):
            return [string_attribute_head(key_field, size_of(parts)), *parts]
        return string_attribute(key_field, b"".join(parts))  # type: ignore[arg-type]  # no piece: all bytes

    def parts(self, value: Any) -> list[Segment]:
        """text(encode(value)) as segments; from kept blocks and runs where the value carries refs."""
        refs = getattr(value, "refs", None)
        if refs is None:
            return [text(self.encode(value))]
        if isinstance(refs, str):
            return [self._block(refs, value)]
        if isinstance(refs, list):
            return [b"[", self._array(refs, value), b"]"]
        out: list[Segment] = [b"{"]
        for k, (key, keys) in enumerate(refs.items()):
            head = text(self.encode(key)) + COLON
            out.append(SEP + head if k else head)
            item = value[key]
            if isinstance(keys, str):
                out.append(self._block(keys, item))
            else:
                out += (b"[", self._array(keys, item), b"]")
        out.append(b"}")
        return out

    def _block(self, key: str, block: Any) -> bytes:
        data = self._blocks.get(key)
        if data is not None:
            self._blocks.move_to_end(key)
            self.hits += 1
            return data
        data = self._blocks[key] = text(self.encode(block))
        self.size += ENTRY + sys.getsizeof(data)
        while self.size > self.block_budget and len(self._blocks) > 1:
            self.size -= ENTRY + sys.getsizeof(self._blocks.popitem(last=False)[1])
        return data

    def _array(self, keys: list[str], items: Sequence[Any]) -> Segment:
        """The array's elements joined with SEP: the longest run kept that its keys start with, extended."""
        if not keys:
            return b""
        base: _Run | None = None
        n = len(keys)
        for run in self._runs.alike(keys[0]):
            m = len(run.keys)
            # The last keys first: conversations that start alike (the same system prompt) differ further on,
            # and each full compare copied the call's keys up to the run's length (~70, for each candidate).
            if m <= n and (base is None or m > len(base.keys)) and keys[m - 1] == run.keys[-1] and keys[:m] == run.keys:
                base = run
        if base is not None and len(base.keys) == n:
            self._runs.used(base)
            self.hits += n
            return base.piece
        start = 0 if base is None else len(base.keys)
        tail = SEP.join([self._block(k, item) for k, item in zip(keys[start:], items[start:], strict=True)])
        if base is None and len(tail) < SMALLEST:
            return tail  # goes in the stream: not worth a piece, nor a run
        if base is None:
            made = piece(tail)
        else:
            self.hits += start
            made = joined(base.piece, piece(SEP + tail))
        self._runs.keep(_Run(list(keys), made), base)  # extended: the conversation's next call extends base
        return made

    @property
    def run_size(self) -> int:
        """Bytes of the runs kept, compressed bytes included."""
        return self._runs.size

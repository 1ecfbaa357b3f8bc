"""A call's input as blocks with digests: what lets the store and the exporters work only on what is new.

A coding agent sends its whole conversation on every call (50-200 KB), and all but the last turn or two
is what it sent the call before. Cut into blocks (a message, a tool definition, a system prompt: the same
cut `screen` screens by), almost every block of a call has been seen before. The store keeps each distinct
block once (`blobs`) and a call as its input's *refs*: the input's shape with every block replaced by its
key. The exporters keep each block's JSON by key and join the pieces instead of encoding the conversation.

The shape: a list is a list of blocks; a dict is, for each value, a list of blocks (a list value) or one
block; anything else is one block. Refs mirror it: ["k1", "k2"], {"messages": ["k1"], "system": "k3"}, "k4".

A block's key is the sha256 of its pickle (the digest `screen` already takes of every clean block, so a call
is hashed once), base64: equal pickles are equal values, so one key names one value and one JSON
text; equal values pickled differently only take two rows. Keys are taken of scrubbed blocks only: a block
that held a secret gets the key of what is left after scrubbing, never of the secret.
"""

from __future__ import annotations

import pickle
from binascii import b2a_base64
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from hashlib import sha256
from itertools import islice
from typing import Any

from .. import jsoncodec

Refs = Any  # str | list[str] | dict[str, str | list[str]], mirroring the input (see the module's docstring)


def key_of(digest: bytes) -> str:
    # 32 bytes in 43 characters (the padding carries nothing): base64.b64encode's Python wrapper would cost
    # a sixth of enrich on a coding agent's call (~35 blocks).
    return b2a_base64(digest, newline=False)[:43].decode()


def block_digest(block: Any) -> bytes:
    return sha256(pickle.dumps(block, 5)).digest()


class BlockList(list[Any]):
    """A list input that carries its refs from `enrich` to the store and the exporters: hashed once.

    Before `enrich`, an input read from the body's bytes (`bodyblocks`) carries `digests` instead: its
    blocks' digests taken there (None where none was), which the screen and `with_refs` use as they are."""

    __slots__ = ("digests", "refs")
    refs: Refs
    digests: list[bytes | None]


class BlockDict(dict[Any, Any]):
    """A dict input (Anthropic's messages, system and tools) that carries its refs, as BlockList does."""

    __slots__ = ("digests", "refs")
    refs: Refs
    digests: list[bytes | None]


def blocks(value: Any) -> Iterator[Any]:
    """The input's blocks in refs order (the order `screen` walks them in)."""
    if isinstance(value, list):
        yield from value
    elif isinstance(value, dict):
        for item in value.values():
            if isinstance(item, list):
                yield from item
            else:
                yield item
    else:
        yield value


def _shape(value: Any, keys: Iterator[str]) -> Refs:
    if isinstance(value, list):
        return [next(keys) for _ in value]
    if isinstance(value, dict):
        return {k: [next(keys) for _ in v] if isinstance(v, list) else next(keys) for k, v in value.items()}
    return next(keys)


def with_refs(value: Any, digests: Sequence[bytes | None] = ()) -> Any:
    """The input as a BlockList / BlockDict carrying its refs (a str or other single block: as it is).

    `digests` are what `screen` took of the blocks it found clean, in blocks() order (None for a block it
    scrubbed or did not hash); missing ones are taken here, of the block as it now is (scrubbed).
    """
    if isinstance(value, dict) and not all(type(k) is str for k in value):
        return value  # keys JSON would turn into strings: such an input is stored whole
    if not isinstance(value, list | dict):
        return value
    items = list(blocks(value))
    if len(digests) != len(items):
        digests = [None] * len(items)
    keys = iter([key_of(d if d is not None else block_digest(b)) for b, d in zip(items, digests, strict=True)])
    out: BlockList | BlockDict = BlockList(value) if isinstance(value, list) else BlockDict(value)
    out.refs = _shape(value, keys)
    return out


def refs_of(value: Any) -> Refs:
    """The input's refs: carried by a BlockList / BlockDict, else taken now."""
    refs = getattr(value, "refs", None)
    if refs is not None:
        return refs
    carried = with_refs(value)
    return carried.refs if isinstance(carried, BlockList | BlockDict) else key_of(block_digest(value))


def shaped(value: Any, parts: Sequence[Any]) -> Refs:
    """The input's shape (as refs have it) with `parts`, one per block in blocks() order, in the blocks' places."""
    return _shape(value, iter(parts))


def flat(refs: Refs) -> list[str]:
    """Every key of refs, in blocks() order."""
    if isinstance(refs, str):
        return [refs]
    if isinstance(refs, list):
        return refs
    out: list[str] = []
    for item in refs.values():
        if isinstance(item, str):
            out.append(item)
        else:
            out.extend(item)
    return out


def assemble(
    refs: Refs,
    texts: Callable[[str], str],
    sep: str = ",",
    colon: str = ":",
    key_text: Callable[[Any], str] = jsoncodec.dumps_str,
) -> str:
    """The input's JSON text from its blocks' texts: what encoding the input whole gives with these separators
    (a list is "[" + items joined by sep + "]"; a dict's keys are plain strings, encoded by the same rules)."""
    if isinstance(refs, str):
        return texts(refs)
    if isinstance(refs, list):
        return "[" + sep.join(map(texts, refs)) + "]"
    parts = []
    for k, v in refs.items():
        inner = texts(v) if isinstance(v, str) else "[" + sep.join(map(texts, v)) + "]"
        parts.append(key_text(k) + colon + inner)
    return "{" + sep.join(parts) + "}"


def input_from(refs_text: str, bodies: dict[str, str]) -> Any:
    """A stored input back from its refs and its blocks' stored JSON (KeyError: a block is missing)."""
    return jsoncodec.loads(assemble(jsoncodec.loads(refs_text), bodies.__getitem__))


# Encoded block texts the exporters keep (bytes of text, least recently used out): about 60 conversations of
# 150 KB; a block is re-encoded only after it drops out.
TEXT_BUDGET = 8 * 1024 * 1024


class BlockTexts:
    """Each block's JSON text by key, as `encode` writes it, so an export joins cached pieces (per exporter)."""

    def __init__(self, encode: Callable[[Any], str], budget: int = TEXT_BUDGET) -> None:
        self.encode = encode
        self.budget = budget
        self.size = 0
        self.hits = 0
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._used: list[tuple[str, str]] = []  # (key, text) of the last input joined: `splice` reads them
        self._groups: list[int] = []  # how many of them stand in each JSON array (or alone), in order
        self.sep = ", "  # what the last input's array elements were joined with

    def __len__(self) -> int:
        return len(self._texts)

    def take_used(self) -> list[tuple[str, str]]:
        """The blocks of the input joined last (none once taken), in order."""
        used, self._used, self._groups = self._used, [], []
        return used

    def take_groups(self) -> list[list[tuple[str, str]]]:
        """The blocks of the input joined last (none once taken), as runs that stand side by side in its
        JSON, `sep` between each two: an array's elements, or a block alone."""
        used, groups = self._used, self._groups
        self._used, self._groups = [], []
        out, at = [], 0
        for size in groups:
            out.append(used[at : at + size])
            at += size
        return out

    def input_json(self, value: Any, sep: str = ", ", colon: str = ": ") -> str:
        """encode(value), from cached pieces where the value carries refs (a BlockList / BlockDict).

        One pass over the keys with C-level dict operations: a coding agent's call has ~70 blocks, and a
        call per block through `assemble` cost ~100 µs of its export (measured)."""
        self._used, self._groups = [], []  # this input's alone: bounded, and read right after it is encoded
        refs = getattr(value, "refs", None)
        if refs is None:
            return self.encode(value)
        keys = flat(refs)
        cached = self._texts
        get, touch = cached.get, cached.move_to_end
        texts: list[str] = []
        for key, block in zip(keys, blocks(value), strict=True):
            text = get(key)
            if text is None:
                text = cached[key] = self.encode(block)
                self.size += len(text)
            else:
                touch(key)
                self.hits += 1
            texts.append(text)
        self._used = list(zip(keys, texts, strict=True))
        self.sep = sep
        while self.size > self.budget and len(cached) > 1:
            self.size -= len(cached.popitem(last=False)[1])
        if isinstance(refs, list):
            self._groups = [len(texts)] if texts else []
            return "[" + sep.join(texts) + "]"
        self._groups = [n for v in refs.values() if (n := 1 if isinstance(v, str) else len(v))]
        pieces = iter(texts)  # a dict's values in refs order: one block, or a list of them
        parts = [
            self.encode(k)
            + colon
            + (next(pieces) if isinstance(v, str) else "[" + sep.join(islice(pieces, len(v))) + "]")
            for k, v in refs.items()
        ]
        return "{" + sep.join(parts) + "}"

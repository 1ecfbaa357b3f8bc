"""A call's input as blocks with digests: what lets the store and the exporters work only on what is new.

A coding agent sends its whole conversation on every call (50-200 KB), and all but the last turn or two
is what it sent the call before. Cut into blocks (a message, a tool definition, a system prompt: the same
cut `screen` screens by), almost every block of a call has been seen before. The store keeps each distinct
block once (`blobs`) and a call as its input's *refs*: the input's shape with every block replaced by its
key. The exporters keep each block's bytes and each conversation's run of them by key (`inputruns`).

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
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from hashlib import sha256
from itertools import islice
from typing import Any

from .. import jsoncodec

Refs = Any  # str | list[str] | dict[str, str | list[str]], mirroring the input (see the module's docstring)


# Keys of the blocks seen lately, by digest: a coding agent's call carries ~70 blocks, nearly all of them the
# last call's, and the cached key is a C-level lookup where encoding one took ~0.7 µs (~30 µs a call). Bounded
# (~250 bytes an entry: ~2 MB), as protowire's caches are.
KEYS_CACHED = 8192


@lru_cache(maxsize=KEYS_CACHED)
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


def _shape(value: Any, keys: Iterator[Any]) -> Refs:
    if isinstance(value, list):
        return list(islice(keys, len(value)))
    if isinstance(value, dict):
        return {k: list(islice(keys, len(v))) if isinstance(v, list) else next(keys) for k, v in value.items()}
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
    count = len(value) if isinstance(value, list) else sum(len(v) if isinstance(v, list) else 1 for v in value.values())
    if len(digests) == count and None not in digests:  # every block hashed already (a coding agent's call)
        keys = iter(list(map(key_of, digests)))  # no None: checked
    else:
        items = list(blocks(value))
        if len(digests) != count:
            digests = [None] * count
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

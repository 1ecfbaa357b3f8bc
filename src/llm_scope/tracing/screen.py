"""The secret screen of a call's input, once per distinct message per helper process, not once per call.

A coding agent sends its whole conversation on every call: the same system prompt and tool definitions and
every earlier turn again (50-200 KB), with one new tool result. Screening all of it on every call cost
~0.8 ms per 150 KB record (measured in docs/scaling.md). So the input is screened block by block (a message,
a tool definition, a system prompt), and the digests of blocks that scrubbing leaves unchanged are
remembered: a block seen before is hashed, not screened again. Hashing still reads every byte of the
input, at about an eighth of the screen's cost (~100 against ~785 µs for 150 KB); only new blocks are
screened, and scrubbed where needed.

The result is exactly what scrubbing the whole input gives (redact_value is applied per element, and is
the same per element as over the whole): a block is remembered only when scrubbing it would change
nothing under the same secrets, and the memory is emptied when the secrets change. A block that holds a
secret is never remembered, so it is scrubbed on every call that carries it. Only digests are kept, never
content.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Sequence
from hashlib import sha256
from operator import itemgetter
from typing import Any

from .. import jsoncodec
from ..accounting.redact import SECRET_FIELDS, may_hold_secrets, redact_value
from .runindex import RunIndex

# A block's digest is sha256 of its pickle: pickling copies a string's bytes where JSON encoding inspects
# each one (~45 against ~170 µs for a 150 KB conversation here), and pickle.loads gives the value back, so
# equal pickles mean equal values and the verdict carries over (equal values pickled differently, where
# one object is referenced twice, only miss). sha256 rather than blake2b: OpenSSL's SHA extensions make it
# faster (~0.6 against ~1 ns a byte here), and 256 bits leave no practical room for a collision that
# would pass a block holding a secret as one remembered clean.
# Bytes kept: 3 MB of digests at DIGEST_BYTES each (the 32-byte bytes object, 65, its OrderedDict entry and
# table share: 141-173 measured filling 2,000 to 60,000, ~204 under churn), so ~13,700 digests (~135
# conversations of 100 blocks); and 1 MB of clean runs at RUN_DIGEST_BYTES a digest (a list slot, and the
# digest itself once it has left the digests). Checked by tests/tracing/test_cache_budgets.py.
BUDGET = 4 * 1024 * 1024
DIGEST_BYTES = 230
RUN_DIGEST_BYTES = 80
LIMIT = BUDGET * 3 // 4 // DIGEST_BYTES
# Digests kept in clean runs (an array's blocks, all clean, as the last call carried them), and runs kept per
# first block.
RUN_LIMIT = BUDGET // 4 // RUN_DIGEST_BYTES
CANDIDATES = 8


class CleanBlocks:
    """Digests of blocks (JSON values) that hold nothing to scrub under `secrets`, least recently used out.

    One per process: tracing.records.enrich keeps one for the helper's life; tests pass their own.
    """

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.hits = 0  # blocks passed on a remembered digest: read by tests and benchmarks
        self._secrets: tuple[str, ...] = ()
        self._digests: OrderedDict[bytes, None] = OrderedDict()
        self._out: list[bytes | None] | None = None
        self._given: Sequence[bytes | None] | None = None
        self._at = 0  # the next block's place in `_given`
        # Arrays whose blocks were all clean, as their given digests (a conversation's messages as its last call
        # carried them), by first digest: a call whose array starts with one is passed up to its end in one list
        # compare, and only its new blocks are looked at one by one.
        self._runs: RunIndex[list[bytes | None]] = RunIndex(RUN_LIMIT, CANDIDATES, itemgetter(0), len)

    def __len__(self) -> int:
        return len(self._digests)

    def scrub_input(
        self,
        value: Any,
        secrets: tuple[str, ...],
        digests: list[bytes | None] | None = None,
        given: Sequence[bytes | None] | None = None,
    ) -> Any:
        """redact_value(value, secrets), or `value` itself where that changes nothing (no copy is made).

        A list is screened element by element, and so is each list in a dict (the Messages API's
        {"messages": [...], "system": ..., "tools": [...]}); anything else is one block. `digests`, when
        given, gets each block's digest in that order where the block came through unchanged (None where
        it was scrubbed or not hashed): `blocks.with_refs` keys the stored blocks by them, hashing nothing
        twice. `given` are digests already taken of the blocks, in that order (None: take one): those of
        blocks read from the body's bytes (`bodyblocks`), of their text, which names the value as well.
        """
        self._out = digests
        self._given, self._at = given, 0
        if secrets != self._secrets:
            self._digests.clear()  # a verdict holds only for the secrets it was reached under
            self._runs.clear()
            self._secrets = secrets
        if isinstance(value, list | tuple):
            return self._scrub_items(value, secrets)
        if isinstance(value, dict):
            if any(isinstance(k, str) and k.lower() in SECRET_FIELDS for k in value):
                return redact_value(value, secrets)  # redact_value blanks such a field: let it, whole
            copied: dict[Any, Any] | None = None
            for k, v in value.items():
                new = self._scrub_items(v, secrets) if isinstance(v, list | tuple) else self._scrub_block(v, secrets)
                if new is not v:
                    if copied is None:
                        copied = dict(value)
                    copied[k] = new
            return value if copied is None else copied
        return self._scrub_block(value, secrets)

    def _scrub_items(self, items: list[Any] | tuple[Any, ...], secrets: tuple[str, ...]) -> Any:
        start, base = self._at, self._clean_run(len(items))
        done = 0 if base is None else len(base)
        if done:
            self.hits += done
            self._at += done
            if self._out is not None:
                self._out += base  # type: ignore[arg-type]  # not None: done > 0
        copied: list[Any] | None = None
        for i in range(done, len(items)):
            item = items[i]
            new = self._scrub_block(item, secrets)
            if new is not item:
                if copied is None:
                    copied = list(items)
                copied[i] = new
        if copied is None and len(items) > max(done, 1) and self._given is not None:
            run = list(self._given[start : start + len(items)])
            out = self._out
            if out is not None and None not in run and run == out[len(out) - len(items) :]:
                self._runs.keep(run, base)  # every block clean, under the digests it was given
        return items if copied is None else copied

    def _clean_run(self, n: int) -> list[bytes | None] | None:
        """The longest clean run kept that the next n given digests start with."""
        given, at = self._given, self._at
        if given is None or at >= len(given) or given[at] is None:
            return None
        best: list[bytes | None] | None = None
        for run in self._runs.alike(given[at]):
            m = len(run)
            if (
                (best is None or m > len(best))
                and m <= min(n, len(given) - at)
                and given[at + m - 1] == run[-1]  # its end first: conversations that start alike differ later
                and given[at : at + m] == run
            ):
                best = run
        if best is not None:
            self._runs.used(best)
        return best

    @property
    def run_size(self) -> int:
        """Digests kept in clean runs."""
        return self._runs.size

    def _scrub_block(self, block: Any, secrets: tuple[str, ...]) -> Any:
        out, given, at = self._out, self._given, self._at
        digest = given[at] if given is not None and at < len(given) else None
        self._at = at + 1
        if block is None or isinstance(block, bool | int | float):
            if out is not None:
                out.append(None)
            return block  # redact_value leaves these as they are
        if digest is None:
            try:
                digest = sha256(pickle.dumps(block, 5)).digest()
            except Exception:  # something pickle refuses: scrub it, and remember nothing
                if out is not None:
                    out.append(None)
                return redact_value(block, secrets)
        if out is not None:
            out.append(digest)
        digests = self._digests
        if digests.pop(digest, False) is None:  # remembered: put back as the most recently used
            digests[digest] = None
            self.hits += 1
            return block
        try:
            text: str | None = jsoncodec.dumps_str(block)
        except Exception:  # e.g. a lone surrogate the encoder refuses: let the exact walk decide
            text = None
        if text is None or may_hold_secrets(text, secrets):
            scrubbed = redact_value(block, secrets)
            if scrubbed != block:
                if out is not None:
                    out[-1] = None  # the key is taken of what is stored: the scrubbed block
                return scrubbed
            # A false alarm ("task-list" has the "sk-" marker): scrubbing changed nothing, so remember it.
        digests[digest] = None
        if len(digests) > self.limit:  # each insert drops at most one, so it is never empty here
            digests.popitem(last=False)
        return block

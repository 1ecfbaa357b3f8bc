"""gzip bodies that compress each block of a conversation once, not once per call that carries it.

With the input joined from cached blocks (`blocks.BlockTexts`), gzip became the export's largest step. It
reads every byte of every call, and on real content (source code in tool results) level 1 costs ~7.5 ns a
byte: ~640 µs for an 83 KB call (docs/scaling.md). A stream compressor gets no help from having compressed
a block before, because deflate looks back 32 KB at most and a conversation is longer than that.

DEFLATE lets independently compressed pieces be spliced into one stream. A piece compressed alone and
ended with a sync flush is a run of complete, byte-aligned, non-final blocks that refer to nothing before
them. So each large block's compressed bytes are kept by key (`Fragments`). A body is then the rest of the
request, compressed as a stream that is fully flushed before each kept piece (so what follows a piece never
refers back across it), with the pieces in between. The gzip trailer's CRC-32 is taken over the whole
request (~0.25 ns a byte). The result is ordinary gzip: any decoder gives back the request byte for byte.

Where a piece sits in the request is found by searching for its bytes from where the last one ended. Any
match is correct, since the output decodes to the request whatever the match. A piece that is not found
(the record failed to encode, say) is skipped.
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from .blocks import BlockTexts
from .protowire import text

# Level 1, not 6: CPU is the scarce resource here, not the backend's bandwidth. Measured on 500 records per
# body: identical chat calls 73 vs 71 bytes/record for 2.3 vs 6.0 µs/record; varied prompts 600 vs 520 for
# 14 vs 42 µs; 50 KB prompts 19.4 vs 17.5 KB for 0.46 vs 2.3 ms. Level 1 keeps nearly all the redundancy
# between records (the same keys, models and system prompts) that makes batches compress at all.
LEVEL = 1
# Bytes. A block from this size on is spliced in; a smaller one goes in the stream (a piece costs ~10 bytes
# and compresses without the stream's context). 128, not 512: a coding agent's tool calls and tool
# definitions (~200-500 bytes each) were compressed again on every call, ~60 µs of a 150 KB call's export.
SMALLEST = 128
# Bytes. A gap between two pieces (the ", " between adjacent blocks) shorter than this goes in as a stored
# block: five bytes of header and the bytes as they are, where compressing it and flushing the stream cost
# a zlib call and an output buffer each (~3 µs; ~30 gaps in a coding agent's call).
STORED_MAX = 64
_STORED = struct.Struct("<BHH")  # a stored block's header byte (BFINAL 0, BTYPE 00, padding) and LEN, NLEN
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"  # gzip, deflate, no name, mtime 0, fastest, unknown OS
BUDGET = 8 * 1024 * 1024  # bytes of raw block text whose compressed pieces are kept (per exporter), and of runs
RUN_LOOKBACK = 8  # blocks a call may add to an array for its run to extend the last call's


class Fragments:
    """Each block's bytes, as they appear in a request, and their compressed piece, by key; and runs of them.

    A run is an array's blocks side by side (a conversation's messages), its bytes and its pieces joined with
    the separator between them as stored blocks: itself a piece, found and spliced in once instead of once
    per block (~2 µs of Python each, ~70 blocks a call). The next call's run extends the last one's."""

    def __init__(self, budget: int = BUDGET) -> None:
        self.budget = budget
        self.size = 0
        self.hits = 0
        self._pieces: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()
        self.run_size = 0
        self._runs: OrderedDict[tuple[str, ...], tuple[bytes, bytes]] = OrderedDict()

    def run(self, group: Sequence[tuple[str, str]], sep: bytes) -> tuple[bytes, bytes] | None:
        """(bytes, compressed piece) of blocks side by side with `sep` between them: the run kept for their
        first blocks (the last call's), extended; a block alone is a piece only from SMALLEST bytes."""
        if len(group) == 1:
            key, block = group[0]
            return self.piece(key, block) if len(block) >= SMALLEST else None
        keys = tuple(key for key, _ in group)
        runs = self._runs
        kept = runs.get(keys)
        if kept is not None:
            runs.move_to_end(keys)
            self.hits += 1
            return kept
        start, raws, pieces = 0, [], []
        for k in range(len(keys) - 1, max(1, len(keys) - RUN_LOOKBACK) - 1, -1):
            base = runs.pop(keys[:k], None)  # extended here, so kept no more
            if base is not None:
                self.run_size -= len(base[0])
                start, raws, pieces = k, [base[0]], [base[1]]
                break
        stored = _STORED.pack(0, len(sep), len(sep) ^ 0xFFFF) + sep
        for key, block in group[start:]:
            raw, piece = self.piece(key, block)
            if raws:
                raws.append(sep)
                pieces.append(stored)
            raws.append(raw)
            pieces.append(piece)
        kept = runs[keys] = (b"".join(raws), b"".join(pieces))
        self.run_size += len(kept[0])
        while self.run_size > self.budget and len(runs) > 1:
            self.run_size -= len(runs.popitem(last=False)[1][0])
        return kept

    def __len__(self) -> int:
        return len(self._pieces)

    def piece(self, key: str, block_text: str) -> tuple[bytes, bytes]:
        """(the block's bytes in a request, its compressed piece), made now if not kept."""
        kept = self._pieces.get(key)
        if kept is not None:
            self._pieces.move_to_end(key)
            self.hits += 1
            return kept
        raw = text(block_text)  # as protowire writes the attribute: UTF-8, a lone surrogate escaped
        compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
        kept = self._pieces[key] = (raw, compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH))
        self.size += len(raw)
        while self.size > self.budget and len(self._pieces) > 1:
            self.size -= len(self._pieces.popitem(last=False)[1][0])
        return kept


def _find(data: bytes, raw: bytes, start: int) -> int:
    """data.find(raw, start), by its first bytes and then a compare: bytes.find preprocesses the whole of a
    long needle (~150 µs for 150 KB here), the compare is a memcmp."""
    head = raw[:64]
    found = data.find(head, start)
    while found >= 0 and not data.startswith(raw, found):
        found = data.find(head, found + 1)
    return found


def gzip_spliced(data: bytes, pieces: Iterable[tuple[bytes, bytes]]) -> bytes:
    """gzip of `data`, the given (raw, compressed piece) pairs spliced in where their raw bytes come next."""
    view = memoryview(data)
    pieces = pieces if isinstance(pieces, list) else list(pieces)
    # A full flush clears the hash table (2 << memLevel+7 bytes), once per piece: the smallest table keeps that
    # a memset of 512 bytes instead of 128 KB; what the stream compresses is the small parts between pieces.
    # With no piece (short calls) there is no flush, and the default table compresses the whole body twice as
    # fast (4.1 -> 2.0 µs a short record in bench.micro_tracing).
    stream = zlib.compressobj(LEVEL, zlib.DEFLATED, -15, 1 if pieces else 8)
    out: list[bytes | memoryview] = [_HEADER]
    at = 0
    for raw, piece in pieces:
        found = _find(data, raw, at)
        if found < 0:
            continue
        gap = found - at
        if gap >= STORED_MAX:
            out.append(stream.compress(view[at:found]))
            out.append(stream.flush(zlib.Z_FULL_FLUSH))  # nothing after this refers to what came before
        elif gap:  # between blocks, byte-aligned: a stored block (not final), its length and its complement
            out.append(_STORED.pack(0, gap, gap ^ 0xFFFF))
            out.append(view[at:found])
        out.append(piece)
        at = found + len(raw)
    out.append(stream.compress(view[at:]))
    out.append(stream.flush(zlib.Z_FINISH))
    out.append(struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF))
    return b"".join(out)


def input_pieces(texts: BlockTexts, fragments: Fragments) -> list[tuple[bytes, bytes]]:
    """The blocks `texts` joined since the last call, as (bytes, compressed piece) of each run of them side by
    side and each large one alone, in order."""
    sep = text(texts.sep)
    return [piece for group in texts.take_groups() if (piece := fragments.run(group, sep)) is not None]

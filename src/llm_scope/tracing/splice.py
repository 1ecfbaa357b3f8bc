"""gzip bodies written from parts, each large part compressed once and never read again per call.

A coding agent's call repeats the conversation of the call before (50-200 KB). On real content (source
code in tool results) level 1 deflate costs ~7.5 ns a byte (~640 µs for 83 KB, docs/scaling.md), and a
stream compressor gets no help from having compressed a block before: deflate looks back 32 KB at most.

DEFLATE lets independently compressed pieces be spliced into one stream. A piece compressed alone and
ended with a sync flush is a run of complete, byte-aligned, non-final blocks that refer to nothing before
them. So an exporter keeps the large parts of its spans (a conversation's messages, `inputruns`) as
`Piece`s: their bytes, their compressed bytes, and their CRC-32. A request is a list of *segments*, plain
bytes and pieces in order; its body is the plain bytes compressed as a stream that is fully flushed before
each piece (so what follows a piece never refers back across it), with the pieces in between.

The gzip trailer's CRC-32 of the whole request is combined from the parts' (zlib's crc32_combine: the CRC
of what came before, multiplied by x^(8n) mod P for a piece of n bytes, XOR the piece's CRC), so a piece's
bytes are not read again either: crc32 costs ~0.35 ns a byte here, ~30 µs a 90 KB call, and the
combination ~3 µs a piece. Nor is the request joined: its bytes exist only as the segments. The result is
ordinary gzip: any decoder gives back the request (`raw_of(segments)`) byte for byte.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Final

# Level 1, not 6: CPU is the scarce resource here, not the backend's bandwidth. Measured on 500 records per
# body: identical chat calls 73 vs 71 bytes/record for 2.3 vs 6.0 µs/record; varied prompts 600 vs 520 for
# 14 vs 42 µs; 50 KB prompts 19.4 vs 17.5 KB for 0.46 vs 2.3 ms. Level 1 keeps nearly all the redundancy
# between records (the same keys, models and system prompts) that makes batches compress at all.
LEVEL: Final = 1
# Bytes. A part from this size on is a piece; a smaller one goes in the stream (a piece costs ~10 bytes,
# a full flush of the stream, and compresses without the stream's context).
SMALLEST: Final = 128
# Bytes. Plain bytes between two pieces shorter than this go in as a stored block: five bytes of header and
# the bytes as they are. Compressing them costs a full flush of the stream each (two a coding agent's call:
# the span's attributes between its messages and its tools, ~1.2 KB), ~33 µs a call against ~1 µs stored
# (bench.micro_tracing --session 150), for ~470 more bytes a call on the wire (4.3 -> 4.8 KB a call in
# bench.session, where the export sent 7.0 KB before runs). CPU is the scarce resource here (see LEVEL).
STORED_MAX: Final = 4096
_STORED: Final = struct.Struct("<BHH")  # a stored block's header byte (BFINAL 0, BTYPE 00, padding), LEN, NLEN
_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"  # gzip, deflate, no name, mtime 0, fastest, unknown OS
_POLY: Final = 0xEDB88320  # CRC-32's polynomial, reflected, as zlib has it
_X0: Final = 1 << 31  # the polynomial 1 (x^0), reflected
_ZEROS: Final = bytes(65536)
# The terms (0 for x^0, the byte's top bit) of each byte value, and where each byte of a 32-bit value starts.
_BITS: Final = [[7 - t for t in range(8) if byte >> t & 1] for byte in range(256)]
_BYTES_OF_A: Final = ((0, 24), (8, 16), (16, 8), (24, 0))


class Piece:
    """A part's bytes, compressed alone (sync flushed), with its CRC-32 and x^(8 len) mod P to combine it.

    Held as chunks: a conversation's run is the last call's run and the new turn, side by side, and joining
    them would copy the whole conversation (and its compressed bytes) on every call; the chunks are shared
    between the runs of one conversation instead, and a request's body takes them as they are."""

    __slots__ = ("crc", "packed_size", "packs", "raws", "shift", "size")

    def __init__(
        self, raws: tuple[bytes, ...], packs: tuple[bytes, ...], crc: int, shift: int, size: int, packed_size: int
    ) -> None:
        self.raws = raws
        self.packs = packs
        self.crc = crc
        self.shift = shift
        self.size = size
        self.packed_size = packed_size

    def __len__(self) -> int:
        return self.size

    @property
    def raw(self) -> bytes:
        return b"".join(self.raws)

    @property
    def packed(self) -> bytes:
        return b"".join(self.packs)


Segment = bytes | Piece


def piece(raw: bytes) -> Piece:
    """`raw` compressed now: work proportional to its size, done once per part kept.

    With a window and hash table sized to the part: zlib's defaults (32 KB, 32K entries) are set up and
    cleared per compressor, which cost more than compressing a turn's 3.5 KB (measured: 55 -> 4 µs for a
    session's turn, 79 -> 23 µs for 3.5 KB of source, the same bytes out within 0.2%). A window at least
    the part's size finds every match in it, and any inflater reads a smaller window's stream."""
    n = len(raw)
    wbits, memlevel = max(9, min(15, (n + 262).bit_length())), max(1, min(8, n.bit_length() - 7))
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -wbits, memlevel)
    packed = compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return Piece((raw,), (packed,), zlib.crc32(raw), shift(n), n, len(packed))


def joined(first: Piece, second: Piece) -> Piece:
    """The two pieces side by side, as one: their chunks concatenate, their CRCs combine."""
    return Piece(
        first.raws + second.raws,
        first.packs + second.packs,
        _multiply(second.shift, first.crc) ^ second.crc,
        _multiply(first.shift, second.shift),
        first.size + second.size,
        first.packed_size + second.packed_size,
    )


def shift(n: int) -> int:
    """x^(8n) mod P (reflected): the CRC register after n zero bytes from the polynomial 1. zlib's crc32
    conditions its register (XOR 0xFFFFFFFF before and after); undone here, it multiplies by x^8 a byte."""
    out = _X0
    while n:
        step = min(n, len(_ZEROS))
        out = zlib.crc32(memoryview(_ZEROS)[:step], out ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
        n -= step
    return out


def _multiply(a: int, b: int) -> int:
    """a(x) b(x) mod P, reflected (zlib's multmodp): the product unreduced (b's terms shifted by each term of
    a, eight of a's bits a table lookup), then its upper 32 terms reduced by zlib's crc32 over 4 zero bytes,
    which multiplies them by x^32 mod P. ~1.3 µs, where zlib's bit loop written in Python took ~4.5."""
    wide, product = b << 32, 0
    for at, by in _BYTES_OF_A:
        for t in _BITS[(a >> by) & 0xFF]:
            product ^= wide >> (at + t)
    low = product & 0xFFFFFFFF
    return (product >> 32) ^ zlib.crc32(b"\0\0\0\0", low ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def combine(crc: int, part: Piece) -> int:
    """The CRC-32 of bytes with CRC `crc` followed by the piece's bytes (zlib's crc32_combine)."""
    return _multiply(part.shift, crc) ^ part.crc


def size_of(segments: Iterable[Segment]) -> int:
    return sum(map(len, segments))


def raw_of(segments: Iterable[Segment]) -> bytes:
    """The bytes the segments stand for, joined."""
    out: list[bytes] = []
    for s in segments:
        if isinstance(s, bytes):
            out.append(s)
        else:
            out += s.raws
    return b"".join(out)


def gzip_spliced(segments: Sequence[Segment]) -> bytes:
    """gzip of raw_of(segments), each piece's compressed bytes spliced in as they are."""
    # zlib's default table. With runs a coding agent's call is two pieces (its messages, its tools) and two
    # full flushes, and the smallest table (memLevel 1, kept when each block was a piece: ~30 flushes a call)
    # made compressing the ~1.2 KB between them twice as slow: 69 against 33 µs a call (bench.micro_tracing
    # --session 150's records), for the same bytes out. Short calls (no piece) are faster with it too.
    stream = zlib.compressobj(LEVEL, zlib.DEFLATED, -15, 8)
    try:  # no piece among them (short calls): one join, which refuses a Piece at C speed
        data = b"".join(segments)  # type: ignore[arg-type]
    except TypeError:
        pass
    else:
        trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
        return b"".join((_HEADER, stream.compress(data), stream.flush(zlib.Z_FINISH), trailer))
    out: list[bytes] = [_HEADER]
    crc = size = 0
    plain: list[bytes] = []
    for segment in segments:
        if type(segment) is bytes:
            plain.append(segment)
            continue
        assert isinstance(segment, Piece)
        if plain:
            data = b"".join(plain) if len(plain) > 1 else plain[0]
            plain = []
            crc = zlib.crc32(data, crc)
            size += len(data)
            if len(data) >= STORED_MAX:
                out.append(stream.compress(data))
                out.append(stream.flush(zlib.Z_FULL_FLUSH))  # nothing after this refers to what came before
            elif data:  # byte-aligned after a flush or a piece: a stored block (not final)
                out.append(_STORED.pack(0, len(data), len(data) ^ 0xFFFF))
                out.append(data)
        out += segment.packs
        crc = combine(crc, segment)
        size += segment.size
    data = b"".join(plain)
    crc = zlib.crc32(data, crc)
    size += len(data)
    out.append(stream.compress(data))
    out.append(stream.flush(zlib.Z_FINISH))
    out.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return b"".join(out)

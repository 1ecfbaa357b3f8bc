"""Spliced gzip: pieces compressed alone, spliced into a stream around them, decode to the request exactly.

Any gzip decoder must give back the segments' bytes, whichever of them are pieces, with the CRC-32 and
length in the trailer that the bytes have (a decoder checks both).
"""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from llm_scope.tracing.splice import STORED_MAX, Piece, combine, gzip_spliced, joined, piece, raw_of, shift

chunk = st.binary(max_size=300) | st.text(alphabet="ab☕\n", max_size=200).map(str.encode)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(chunk, st.booleans()), max_size=10))
def test_any_segments_decode_to_their_bytes(parts: list[tuple[bytes, bool]]) -> None:
    segments: list[bytes | Piece] = [piece(raw) if as_piece else raw for raw, as_piece in parts]
    data = raw_of(segments)
    assert data == b"".join(raw for raw, _ in parts)
    body = gzip_spliced(segments)
    assert gzip.decompress(body) == data  # checks the trailer's CRC-32 and length
    assert zlib.decompressobj(31).decompress(body) == data  # as a stream decoder reads it


@settings(max_examples=200, deadline=None)
@given(st.lists(chunk, min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_crcs_combine_as_zlib_takes_them_over_the_joined_bytes(parts: list[bytes], start: int) -> None:
    pieces = [piece(raw) for raw in parts]
    whole = pieces[0]
    for p in pieces[1:]:
        whole = joined(whole, p)
    data = b"".join(parts)
    assert whole.raw == data and whole.crc == zlib.crc32(data)
    assert whole.shift == shift(len(data))
    assert combine(start, whole) == zlib.crc32(data, start)
    assert zlib.decompressobj(-15).decompress(whole.packed) == data  # the compressed bytes concatenate


def test_shift_past_the_zero_buffer_is_the_power_of_x_it_stands_for() -> None:
    data = b"x" * 200_000  # past the 64 KB of zeros shift() reads at a time
    assert combine(zlib.crc32(b"head"), piece(data)) == zlib.crc32(b"head" + data)


def test_short_plain_bytes_between_pieces_go_in_stored_and_long_ones_compressed() -> None:
    blocks = [piece(b'{"role": "tool", "content": "%d' % n + b"x = 1\\n" * 40 + b'"}') for n in range(3)]
    short, long = b", ", b", " + b"ab" * STORED_MAX
    segments: list[bytes | Piece] = [b"[", blocks[0], short, blocks[1], long, blocks[2], b"]"]
    body = gzip_spliced(segments)
    data = raw_of(segments)
    assert gzip.decompress(body) == data and zlib.decompressobj(31).decompress(body) == data
    assert b"\x00\x02\x00\xfd\xff, " in body  # a stored block: its header, LEN 2, NLEN, the bytes
    assert long not in body  # compressed
    assert all(p.packed in body for p in blocks)  # spliced in as they were kept


def test_plain_segments_alone_are_ordinary_gzip() -> None:
    data = [b"span head ", b"x" * 1000, b" tail"]
    assert gzip.decompress(gzip_spliced(data)) == b"".join(data)
    assert gzip.decompress(gzip_spliced([])) == b""

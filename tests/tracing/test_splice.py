"""Spliced gzip: kept pieces of compressed blocks in a stream around them decode to the request, exactly.

Any gzip decoder must give back the request byte for byte, whichever pieces are spliced in, found or not.
"""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from llm_scope.tracing.blocks import BlockTexts, with_refs
from llm_scope.tracing.otlp import _dumps
from llm_scope.tracing.splice import SMALLEST, STORED_MAX, Fragments, gzip_spliced, input_pieces

chunk = st.binary(max_size=300) | st.text(alphabet="ab☕\n", max_size=200).map(str.encode)


@settings(max_examples=300, deadline=None)
@given(st.lists(chunk, max_size=8), st.lists(st.integers(0, 9), max_size=6), st.binary(min_size=1, max_size=20))
def test_any_splice_decodes_to_the_data(parts: list[bytes], chosen: list[int], absent: bytes) -> None:
    data = b"".join(parts)
    pieces = []
    for i in chosen:  # pieces in any order, repeated, or not in the data at all
        raw = parts[i] if i < len(parts) else absent + b"\x00not there"
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
        pieces.append((raw, compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)))
    body = gzip_spliced(data, pieces)
    assert gzip.decompress(body) == data
    assert zlib.decompressobj(31).decompress(body) == data  # as a stream decoder reads it


def test_blocks_are_compressed_once_and_an_arrays_blocks_spliced_in_as_one_run() -> None:
    texts, fragments = BlockTexts(_dumps), Fragments()
    big = {"role": "tool", "content": "def f():\n    return 1 ☕\n" * (SMALLEST // 10)}
    for n in range(3):
        messages = with_refs([{"role": "user", "content": f"turn {n}"}, big, {**big, "name": str(n)}])
        joined = texts.input_json(messages)
        pieces = input_pieces(texts, fragments)
        assert [raw for raw, _ in pieces] == [b", ".join(_dumps(m).encode() for m in messages)]  # side by side
        assert texts.take_used() == [] and input_pieces(texts, fragments) == []  # taken once
        data = b"span head " + joined.encode() + b" span tail"
        assert gzip.decompress(gzip_spliced(data, pieces)) == data
    assert fragments.hits == 2 and len(fragments) == 7  # `big` compressed once, the other blocks once each


def test_a_growing_conversations_run_extends_the_last_calls_and_a_lone_small_block_goes_in_the_stream() -> None:
    texts, fragments = BlockTexts(_dumps), Fragments()
    turns: list[dict[str, str]] = []
    for n in range(6):
        turns.append({"role": "user", "content": f"turn {n}: " + "x = 1\n" * 30})
        value = with_refs({"messages": list(turns), "system": "be brief", "tools": [{"name": "t"}]})
        data = b'{"attr": ' + texts.input_json(value).encode() + b"}"
        pieces = input_pieces(texts, fragments)
        assert gzip.decompress(gzip_spliced(data, pieces)) == data
        assert len(pieces) == 1  # the messages (a run, or one large turn alone); the small ones go inline
        assert fragments.run_size == (0 if n == 0 else len(pieces[0][0]))  # one run kept: the last call's
    assert len(fragments) == 6  # each turn compressed once


def test_short_gaps_between_pieces_go_in_stored_and_long_ones_compressed() -> None:
    fragments = Fragments()
    blocks = [b'{"role": "tool", "content": "%d' % n + b"x = 1\\n" * 40 + b'"}' for n in range(3)]
    pieces = [fragments.piece(str(n), block.decode()) for n, block in enumerate(blocks)]
    short, long = b", ", b", " + b"ab" * STORED_MAX
    data = b"[" + blocks[0] + short + blocks[1] + long + blocks[2] + b"]"
    body = gzip_spliced(data, pieces)
    assert gzip.decompress(body) == data and zlib.decompressobj(31).decompress(body) == data
    assert b"\x00\x02\x00\xfd\xff, " in body  # a stored block: its header, LEN 2, NLEN, the bytes
    assert long not in body  # compressed

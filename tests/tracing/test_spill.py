"""The spill file: batches come back in order, whole or not at all; what a dead process left is adopted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from llm_scope.tracing.spill import Spill, frame


def drain(spill: Spill) -> list[tuple[bytes, int]]:
    out = []
    while (taken := spill.take()) is not None:
        out.append((taken.body, taken.count))
        spill.ack(taken)
    return out


def test_batches_come_back_in_order_and_the_file_is_reused_once_drained(tmp_path: Path) -> None:
    spill = Spill(tmp_path)
    for i in range(3):
        assert spill.append(b"batch %d" % i, i + 1)
    assert spill.pending == 6 and spill.spilled == 6
    first = spill.take()
    assert first is not None and (first.body, first.count) == (b"batch 0", 1)
    spill.ack(first)
    assert drain(spill) == [(b"batch 1", 2), (b"batch 2", 3)]
    [path] = tmp_path.glob("*.spill")
    assert spill.pending == 0 and path.stat().st_size == 0  # started over, not grown forever
    assert spill.append(b"again", 1) and drain(spill) == [(b"again", 1)]
    spill.close()
    assert not list(tmp_path.iterdir())


def test_a_batch_in_pieces_is_written_as_one_frame(tmp_path: Path) -> None:
    """More pieces than one writev takes (IOV_MAX): they come back as the one body they make, in order."""
    spill = Spill(tmp_path)
    pieces = [b"piece %d;" % i for i in range(2500)]
    assert spill.append(pieces, 7) and spill.append(b"after", 1)
    assert spill.next_size() == len(b"".join(pieces))  # what the hand-over checks against its bound first
    assert drain(spill) == [(b"".join(pieces), 7), (b"after", 1)]
    spill.close()


def test_a_frame_handed_on_but_not_acknowledged_keeps_its_file(tmp_path: Path) -> None:
    spill = Spill(tmp_path, segment_bytes=64)
    for i in range(4):
        spill.append(bytes(60) + b"%d" % i, 1)  # one frame per segment
    taken = [spill.take() for _ in range(4)]
    assert all(t is not None for t in taken) and len(list(tmp_path.glob("*.spill"))) == 4
    for t in taken[1:]:
        assert t is not None
        spill.ack(t)
    assert len(list(tmp_path.glob("*.spill"))) == 2  # the unacknowledged one and the one being written
    spill.close()
    # The helper never confirmed the first batch: the next process gets it again.
    heir = Spill(tmp_path)
    assert heir.adopt() == 1 and drain(heir) == [(bytes(60) + b"0", 1)]
    heir.close()
    assert not list(tmp_path.iterdir())


def test_a_live_owners_file_is_not_adopted(tmp_path: Path) -> None:
    owner = Spill(tmp_path)
    owner.append(b"mine", 1)
    other = Spill(tmp_path)
    assert other.adopt() == 0 and other.take() is None
    assert drain(owner) == [(b"mine", 1)]


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from llm_scope.tracing.spill import Spill

    spill = Spill(Path(sys.argv[1]), segment_bytes=4096)
    for i in range(int(sys.argv[2])):
        assert spill.append(b"record batch %05d " % i * 20, 10)
    print("written", flush=True)
    sys.stdin.read()
    """
)


def test_what_a_killed_process_left_is_replayed_and_its_torn_tail_skipped(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), "50"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert writer.stdout is not None and writer.stdout.readline() == b"written\n"
    assert Spill(tmp_path).adopt() == 0  # alive: its files are its own
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    segments = sorted(tmp_path.glob("*.spill"))
    assert len(segments) > 1  # it rotated segments
    with segments[-1].open("ab") as f:  # a write cut short by the kill: half a frame
        f.write(frame(b"never finished" * 10, 10)[:50])
    with segments[0].open("ab") as f:  # and pages that never reached the disk: zeros
        f.write(bytes(4096))
    heir = Spill(tmp_path)
    assert heir.adopt() == 500
    bodies = drain(heir)
    assert [body for body, _ in bodies] == [b"record batch %05d " % i * 20 for i in range(50)]
    assert heir.corrupt == 0
    heir.close()
    assert not list(tmp_path.iterdir())


def test_a_damaged_frame_is_skipped_and_counted_not_fatal(tmp_path: Path) -> None:
    spill = Spill(tmp_path)
    for i in range(3):
        spill.append(b"payload-%d" % i, 2)
    spill.close()
    [path] = tmp_path.glob("*.spill")
    data = bytearray(path.read_bytes())
    data[data.index(b"payload-1")] ^= 0xFF  # a flipped byte inside the second frame's body
    path.write_bytes(bytes(data))
    heir = Spill(tmp_path)
    assert heir.adopt() == 6
    assert drain(heir) == [(b"payload-0", 2), (b"payload-2", 2)]
    assert heir.corrupt == 2  # counted, so the gateway reports them lost

"""Trace records past the gateway's in-memory bound, on local disk until the trace helper can take them.

When the helper falls behind (every core busy), the gateway would otherwise have to drop records or refuse
calls. Instead each batch it cannot hand over goes, exactly as it would have gone on the pipe (one pickled
blob), to an append-only segment file in `<data dir>/trace-spill/`, and is read back in order once the
helper has room again. Nothing is decoded on the way in or out: a spilled batch costs a write and a read.

Frames: magic (4) | body length (4) | records in it (4) | CRC-32 of count and body (4) | body. A reader
stops at the first frame that is incomplete or has no magic (the torn tail a kill -9 or a power cut leaves,
or the zeros of a page that never reached the disk) and skips a frame whose checksum fails, counting its
records as lost.

Ownership is an exclusive `flock` held on every segment a process has open. Segments of a process that died
(kill -9, OOM) are unlocked, so the next gateway process that scans (at start and every few seconds) adopts
them and replays them before its own. New segments are created under a `.tmp` name, locked, then renamed,
so a scan never adopts one that is being born.

Durability (fsync policy): a frame is in the page cache when `append` returns, so it survives the gateway's
own crash or kill -9 at once; `sync` (fdatasync), run off the event loop once a second while anything was
written, bounds what an OS crash or power cut can take to the last second, like Redis's `appendfsync
everysec`. A write that fails (disk full) is cut back off the file and reported, so the caller can count
those records as lost: lossless holds while the disk has space.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("llm_scope.tracing")

MAGIC = b"LSS1"
_HEADER = struct.Struct(">4sIII")  # magic, body length, record count, crc32(count + body)
_COUNT = struct.Struct(">I")
SEGMENT_BYTES = 64 * 1024 * 1024
_MAX_BODY = 1 << 31
_IOV_MAX = min(1024, os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024)


def frame(body: bytes, count: int) -> bytes:
    return b"".join(framed([body], count))


def framed(pieces: Sequence[bytes], count: int) -> list[bytes]:
    """A frame as its header and the body's pieces, not joined (see `Spill.append`)."""
    crc = zlib.crc32(_COUNT.pack(count))
    size = 0
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
        size += len(piece)
    return [_HEADER.pack(MAGIC, size, count, crc), *pieces]


@dataclass
class Segment:
    path: Path
    fd: int
    size: int  # bytes of whole frames; the end of the file for the one being written
    read_at: int = 0
    pending: int = 0  # records in frames not yet read
    unread: int = 0  # frames not yet read
    outstanding: int = 0  # frames read and handed on, not yet acknowledged
    writable: bool = False


@dataclass(frozen=True)
class Taken:
    """A frame read back: its body and record count, and the segment to acknowledge it to."""

    segment: Segment
    body: bytes
    count: int


class Spill:
    def __init__(self, directory: Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._serial = 0
        self._segments: list[Segment] = []  # oldest first: adopted ones, then this process's own
        self._writing: Segment | None = None
        self._dirty = False
        self.spilled = 0  # records written here, in all
        self.enqueued = 0  # frames written or adopted, in all: read back in this order
        self.taken = 0  # frames read back (or skipped as damaged), in all
        self.corrupt = 0  # records in frames that failed their checksum (counted lost by the caller)

    @property
    def pending(self) -> int:
        """Records on disk not yet read back."""
        return sum(s.pending for s in self._segments)

    # --- adopting what dead processes left -----------------------------------------------------------------

    def adopt(self) -> int:
        """Take over every segment no live process holds; returns the records found in them."""
        self.directory.mkdir(parents=True, exist_ok=True)
        mine = {s.path for s in self._segments}
        found = 0
        adopted: list[Segment] = []
        for path in sorted(self.directory.iterdir()):
            if path in mine or path.suffix not in (".spill", ".tmp"):
                continue
            fd = _lock(path)
            if fd is None:
                continue  # a live process holds it
            if path.suffix == ".tmp":  # created by a process that died before it renamed it: empty
                _remove(path, fd)
                continue
            segment, frames = _scan(path, fd)
            if segment.pending == 0:
                _remove(path, fd)
                continue
            found += segment.pending
            self.enqueued += frames
            adopted.append(segment)
        if adopted:
            # Before this process's own: they are older.
            self._segments[:0] = adopted
            log.warning("replaying %d trace records a stopped gateway process left on disk", found)
        return found

    # --- writing -------------------------------------------------------------------------------------------

    def append(self, body: bytes | Sequence[bytes], count: int) -> bool:
        """Add one batch (one bytes object, or its pieces one after another); False if it could not be written
        (disk full, ...), with nothing left half-written. Pieces go with writev, not joined first: a joined
        batch was a second copy of it in memory (4 MB) at the worker's peak, when the helper is behind."""
        segment = self._writing
        try:
            if segment is None or segment.size >= self.segment_bytes:
                segment = self._new_segment()
            data = framed([body] if isinstance(body, bytes) else body, count)
            length = _write_all(segment.fd, data)
        except OSError:
            log.exception("spilling %d trace records to %s failed", count, self.directory)
            if segment is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(segment.fd, segment.size)
            return False
        segment.size += length
        segment.pending += count
        segment.unread += 1
        self.spilled += count
        self.enqueued += 1
        self._dirty = True
        return True

    def _new_segment(self) -> Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._serial += 1
        final = self.directory / f"{self._token}-{self._serial:06d}.spill"
        temp = final.with_suffix(".tmp")
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(temp, final)
        if self._writing is not None:
            self._writing.writable = False
            self._retire(self._writing)
        segment = Segment(final, fd, 0, writable=True)
        self._segments.append(segment)
        self._writing = segment
        return segment

    def sync(self) -> None:
        """fdatasync what was written since the last call; blocking, so run it on a thread."""
        if not self._dirty:
            return
        self._dirty = False
        segment = self._writing
        if segment is not None:
            with contextlib.suppress(OSError):
                os.fdatasync(segment.fd)

    # --- reading back --------------------------------------------------------------------------------------

    def take(self) -> Taken | None:
        """The oldest frame not yet read, or None when everything on disk has been read."""
        for segment in self._segments:
            while segment.read_at < segment.size:
                taken = self._read(segment)
                if taken is not None:
                    return taken
        return None

    def next_size(self) -> int:
        """The body length of the frame `take` reads next (0 if none, or if its header is unreadable)."""
        for segment in self._segments:
            if segment.read_at < segment.size:
                magic, length, _, _ = _HEADER.unpack(os.pread(segment.fd, _HEADER.size, segment.read_at))
                return length if magic == MAGIC else 0
        return 0

    def _read(self, segment: Segment) -> Taken | None:
        at = segment.read_at
        header = os.pread(segment.fd, _HEADER.size, at)
        magic, length, count, crc = _HEADER.unpack(header)
        if magic != MAGIC or at + _HEADER.size + length > segment.size:  # nothing readable past here
            log.error("skipping %d unreadable bytes of %s from byte %d", segment.size - at, segment.path, at)
            self.corrupt += segment.pending
            self.taken += segment.unread
            segment.pending, segment.unread, segment.read_at = 0, 0, segment.size
            self._retire(segment)
            return None
        body = os.pread(segment.fd, length, at + _HEADER.size)
        segment.read_at = at + _HEADER.size + length
        segment.pending -= count
        segment.unread -= 1
        self.taken += 1
        if len(body) != length or zlib.crc32(body, zlib.crc32(_COUNT.pack(count))) != crc:
            self.corrupt += count
            log.error("skipping a damaged frame of %d trace records in %s at byte %d", count, segment.path, at)
            self._retire(segment)
            return None
        segment.outstanding += 1
        return Taken(segment, body, count)

    def ack(self, taken: Taken) -> None:
        """The helper has committed a frame's records: its segment may go once it has nothing else."""
        taken.segment.outstanding -= 1
        self._retire(taken.segment)

    def _retire(self, segment: Segment) -> None:
        if segment.read_at < segment.size or segment.outstanding:
            return
        if segment.writable:
            # Everything written so far is stored: start the file over instead of making another.
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, 0)
                segment.size = segment.read_at = 0
            return
        self._segments.remove(segment)
        _remove(segment.path, segment.fd)

    def close(self) -> None:
        """Release every segment; those still holding records stay for the next process to adopt."""
        for segment in self._segments:
            if segment.read_at >= segment.size and not segment.outstanding and segment.writable:
                _remove(segment.path, segment.fd)
                continue
            with contextlib.suppress(OSError):
                os.fdatasync(segment.fd)
            os.close(segment.fd)
        self._segments.clear()
        self._writing = None


def _write_all(fd: int, pieces: list[bytes]) -> int:
    """All of `pieces` appended with as few writev calls as IOV_MAX allows; a short write raises (the caller
    cuts the file back to where the frame began)."""
    total = 0
    for at in range(0, len(pieces), _IOV_MAX):
        group = pieces[at : at + _IOV_MAX]
        want = sum(map(len, group))
        written = os.writev(fd, group)
        if written != want:
            raise OSError(f"short write ({written} of {want} bytes)")
        total += written
    return total


def _lock(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if os.fstat(fd).st_nlink == 0:  # another process adopted, drained and removed it meanwhile
        os.close(fd)
        return None
    return fd


def _scan(path: Path, fd: int) -> tuple[Segment, int]:
    """Count the whole frames of a segment another process wrote, and find where its torn tail begins."""
    end = os.fstat(fd).st_size
    at = pending = frames = 0
    while at + _HEADER.size <= end:
        magic, length, count, _ = _HEADER.unpack(os.pread(fd, _HEADER.size, at))
        if magic != MAGIC or length >= _MAX_BODY or at + _HEADER.size + length > end:
            break
        at += _HEADER.size + length
        pending += count
        frames += 1
    if at < end:
        log.warning("ignoring %d bytes of a torn write at the end of %s", end - at, path)
    return Segment(path, fd, at, pending=pending, unread=frames), frames


def _remove(path: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
    os.close(fd)

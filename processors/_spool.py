"""A bounded, crash-safe on-disk spool of export payloads, shared by the processes of one program.

When the trace backend is down or slow, the exporter keeps each already-encoded batch here and
delivers the batches in order once the backend answers again, also after the program restarts.

Layout of the spool directory::

    <pid>-<hex>/        one area per owning process; only its owner writes to it
        lock            held with an exclusive flock by the owner for as long as it lives
        created         creation time of the area (ns): orphans are delivered oldest first
        cursor          the next record to deliver: segment number, offset, crc32
        00000001.seg    segments of framed records, rolled over at about 4 MiB

A record is a 20-byte header (magic, payload length, span count, payload crc32, header crc32)
and the payload. The header has its own crc so that the length can be trusted on its own: a
record whose payload is damaged is skipped alone, while a damaged header (or a torn tail) loses
the framing, so the rest of that segment is ignored.

Delivery progress is a small ``cursor`` file rewritten atomically (temporary file, then
``os.replace``) after each ``pop``, rather than marks written into the segments: segments stay
append-only, so only a torn tail can ever be damaged by a crash, and a crash during the cursor
update leaves the old cursor, i.e. the last record is delivered once more (at-least-once), never
lost. Writes are not fsync'ed: the kernel keeps them across a crash of the process, which is the
failure this spool is for; a power loss may lose the newest records or redeliver old ones.

A process holds the lock of its own area while it lives. When it dies (or closes its spool with
records still pending) the kernel frees the lock, and another process (or the next run) adopts
the area: it takes the lock, delivers the area's records before its own, and deletes the area
once drained. An area is created under a temporary ``.new-`` name and renamed once locked, and a
drained area is renamed to ``.dead-`` before it is removed, so no one adopts a folder that is
half built or half deleted.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
import struct
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

logger = logging.getLogger(__name__)

#: Segments roll over at this size (or at a quarter of the budget, when that is smaller).
SEGMENT_BYTES = 4 * 1024 * 1024
#: How often ``peek`` looks for orphan areas, at most, when this process's own area is empty.
ADOPT_INTERVAL = 5.0

_MAGIC = b"ESP1"
_HEADER = struct.Struct("<4sIIII")  # magic, payload length, spans, payload crc32, header crc32
_CURSOR = struct.Struct("<QQI")  # segment number, offset of the next record, crc32
_MAX_U32 = 0xFFFFFFFF
_OWNER_NAME = re.compile(r"\d+-[0-9a-f]+")
_SEGMENT_NAME = re.compile(r"(\d+)\.seg")
#: A ``.new-`` folder older than this was left by a process that died while creating its area.
_STALE_NEW_AREA = 60.0


class _Record(NamedTuple):
    offset: int
    length: int
    spans: int
    crc: int

    @property
    def end(self) -> int:
        return self.offset + _HEADER.size + self.length


@dataclass(eq=False)
class _Segment:
    number: int
    path: Path
    #: Bytes on disk, delivered records included: what the segment costs in the budget.
    size: int
    #: Records not yet delivered, oldest first (never empty: a drained segment is deleted).
    records: deque[_Record] = field(default_factory=deque)
    spans: int = 0


@dataclass(eq=False)
class _Area:
    path: Path
    lock_fd: int
    created: int
    segments: deque[_Segment] = field(default_factory=deque)


def _header(length: int, spans: int, crc: int) -> bytes:
    head = struct.pack("<4sIII", _MAGIC, length, spans, crc)
    return head + struct.pack("<I", zlib.crc32(head))


def _unpack_header(data: bytes | memoryview) -> tuple[int, int, int] | None:
    """(length, spans, payload crc) of an intact header, or None."""
    if len(data) < _HEADER.size:
        return None
    magic, length, spans, crc, header_crc = _HEADER.unpack_from(data)
    if magic != _MAGIC or header_crc != zlib.crc32(data[:16]):
        return None
    return length, spans, crc


def _load_segment(number: int, path: Path, start: int) -> tuple[_Segment, bool]:
    """The segment with its intact records from offset ``start`` on, and whether any were damaged."""
    data = memoryview(path.read_bytes())
    segment = _Segment(number, path, len(data))
    offset, damaged = 0, False
    while offset < len(data):
        header = _unpack_header(data[offset : offset + _HEADER.size])
        record = _Record(offset, *header) if header else None
        if record is None or record.end > len(data):  # a torn tail or a damaged header
            return segment, True
        if zlib.crc32(data[offset + _HEADER.size : record.end]) != record.crc:
            damaged = True  # skipped alone: its header says where the next record starts
        elif offset >= start:
            segment.records.append(record)
            segment.spans += record.spans
        offset = record.end
    return segment, damaged


def _segment_files(area: Path) -> list[tuple[int, Path]]:
    matches = ((path, _SEGMENT_NAME.fullmatch(path.name)) for path in area.iterdir())
    return sorted((int(match[1]), path) for path, match in matches if match)


def _creation_time(area: Path) -> int:
    """When the area was created, to deliver orphans oldest first (first segment's mtime if unknown)."""
    try:
        return int((area / "created").read_text())
    except (OSError, ValueError):
        segments = _segment_files(area)
        return (segments[0][1] if segments else area).stat().st_mtime_ns


def _is_stale(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime > _STALE_NEW_AREA
    except OSError:
        return False


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _read_cursor(area: Path) -> tuple[int, int]:
    """(segment number, offset) of the next record to deliver; (0, 0), i.e. everything, if unknown."""
    try:
        data = (area / "cursor").read_bytes()
    except FileNotFoundError:
        return 0, 0
    if len(data) != _CURSOR.size:
        return 0, 0
    number, offset, crc = _CURSOR.unpack(data)
    return (number, offset) if crc == zlib.crc32(data[:16]) else (0, 0)


class Spool:
    """A FIFO of (payload, span count) records on disk, bounded by ``max_bytes``.

    ``max_bytes`` bounds what this process sees of the directory: its own area plus the areas it
    adopted (each process of a prefork server has its own budget). All methods are thread-safe
    and fail open: an ``OSError`` (disk full, permissions) is logged once per kind and never
    raised, so exporting carries on without the spool.
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        adopt_interval: float = ADOPT_INTERVAL,
    ) -> None:
        """Open the spool in ``directory`` and adopt the areas of processes that are gone.

        The own area is created at the first ``append``, so processes that never spool leave
        nothing behind.
        """
        self._directory = Path(directory)
        self._max_bytes = max_bytes
        # A segment is at most a quarter of the budget, so evicting a whole one never drops most of it.
        self._segment_bytes = max(1, min(segment_bytes, max_bytes // 4))
        self._adopt_interval = adopt_interval
        self._lock = threading.Lock()
        self._own: _Area | None = None
        self._adopted: list[_Area] = []  # oldest first, delivered before the own area
        self._next_number = 1
        self._writer: tuple[_Segment, int] | None = None  # the own area's last segment, open to append
        self._reader: tuple[Path, int] | None = None  # the segment being delivered, open to read
        self._peeked: tuple[_Area, _Segment, _Record] | None = None
        self._warned: set[str] = set()
        self._closed = False
        self._last_adoption = time.monotonic()
        try:
            self._adopt()  # the directory itself is made at the first append, like the own area
        except OSError as error:
            self._warn_once("open", error)

    def append(self, payload: bytes, spans: int) -> int:
        """Store a record; return how many spans were lost doing so (0 normally).

        The oldest records are evicted to keep the directory under ``max_bytes``, and their spans
        returned. A payload that can never fit (larger than ``max_bytes`` less a 20-byte header)
        is not stored and its own ``spans`` are returned, as they are when the disk fails (an
        ``OSError`` is logged once per kind, never raised) or the spool is closed. ``spans`` must
        fit in 32 bits (``ValueError`` otherwise: that is a bug of the caller, not of the disk).
        """
        if not 0 <= spans <= _MAX_U32:
            raise ValueError(f"span count out of range: {spans}")
        need = _HEADER.size + len(payload)
        with self._lock:
            if self._closed or need > self._max_bytes or len(payload) > _MAX_U32:
                return spans
            evicted = self._make_room(need)
            try:
                self._write(payload, spans)
            except OSError as error:
                self._warn_once("append", error)
                return evicted + spans
            return evicted

    def peek(self) -> tuple[bytes, int] | None:
        """The oldest record not yet delivered, as (payload, spans), or None.

        Records of adopted areas come first. When the own area is empty, this also looks for
        orphan areas, at most every ``adopt_interval`` seconds. An ``OSError`` is logged once
        per kind and None returned: the record stays, for a later try.
        """
        with self._lock:
            if self._closed:
                return None
            try:
                own_empty = self._own is None or not self._own.segments
                if own_empty and time.monotonic() - self._last_adoption >= self._adopt_interval:
                    self._adopt()
                return self._peek()
            except OSError as error:
                self._warn_once("peek", error)
                return None

    def pop(self) -> None:
        """Mark the record last returned by ``peek`` as delivered (no-op if it was evicted since).

        The progress is saved on disk before returning, so a restart does not deliver the record
        again; failing to save it (logged once, never raised) means it may be delivered twice.
        """
        with self._lock:
            peeked, self._peeked = self._peeked, None
            if peeked is None:
                return
            area, segment, record = peeked
            if area.segments and area.segments[0] is segment and segment.records[0] is record:
                try:
                    self._consume(area)
                except OSError as error:
                    self._warn_once("pop", error)

    def __len__(self) -> int:
        """The number of records pending."""
        with self._lock:
            return sum(len(segment.records) for segment in self._segments())

    def __bool__(self) -> bool:
        """A spool is true even when empty, so that ``if spool:`` tests whether there is one."""
        return True

    @property
    def pending_spans(self) -> int:
        """Spans in the records pending, for the pipeline's "in flight" count."""
        with self._lock:
            return sum(segment.spans for segment in self._segments())

    @property
    def max_bytes(self) -> int:
        """The budget this process keeps its own and adopted areas under."""
        return self._max_bytes

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of the own and adopted areas: what ``max_bytes`` bounds."""
        with self._lock:
            return self._size()

    def close(self) -> None:
        """Release the areas: drained ones are deleted, the others left for adoption (next run)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._peeked = None
            self._close_reader()
            self._close_writer()
            for area in self._areas():
                if area.segments:
                    _close(area.lock_fd)
                else:
                    self._retire(area)
            self._own, self._adopted = None, []

    def after_fork_in_child(self) -> None:
        """Give the forked child an area of its own (created at its first append); call it in the child.

        The child shares the parent's open files, and so its flock locks: unlocking them would
        unlock the parent's. The child only closes its copies (a flock lock lasts while any
        descriptor of it is open, and the parent keeps its own) and forgets the parent's records.
        """
        self._lock = threading.Lock()  # another thread may have held it at the fork
        fds = [area.lock_fd for area in self._areas()]
        fds += [opened[1] for opened in (self._reader, self._writer) if opened]
        for fd in fds:
            _close(fd)
        self._own, self._adopted, self._reader, self._writer, self._peeked = None, [], None, None, None

    # -- internals (called with the lock held) --

    def _areas(self) -> list[_Area]:
        """Areas in delivery order: adopted ones (oldest first), then the own area."""
        return [*self._adopted, *([self._own] if self._own else [])]

    def _segments(self) -> list[_Segment]:
        return [segment for area in self._areas() for segment in area.segments]

    def _size(self) -> int:
        return sum(segment.size for segment in self._segments())

    def _warn_once(self, kind: str, error: OSError) -> None:
        key = f"{kind}:{error.errno}"
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(
                "spool %s: %s failed, carrying on without it (not logged again): %s",
                self._directory,
                kind,
                error,
            )

    def _adopt(self) -> None:
        """Take over the areas of processes that are gone: their lock is free once they died."""
        self._last_adoption = time.monotonic()
        if not self._directory.is_dir():
            return
        taken = {area.path.name for area in self._areas()}
        with os.scandir(self._directory) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".dead-") or (name.startswith(".new-") and _is_stale(Path(entry.path))):
                    shutil.rmtree(entry.path, ignore_errors=True)
                elif _OWNER_NAME.fullmatch(name) and name not in taken and entry.is_dir():
                    area = self._try_adopt(Path(entry.path))
                    if area:
                        self._adopted.append(area)
        self._adopted.sort(key=lambda area: area.created)

    def _try_adopt(self, path: Path) -> _Area | None:
        try:
            fd = os.open(path / "lock", os.O_RDWR)
        except OSError:
            return None  # being removed by another process
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if (path / "lock").stat().st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(errno.ENOENT, "removed meanwhile", str(path))
            area = _Area(path, fd, _creation_time(path))
            self._load(area)
        except OSError as error:
            os.close(fd)  # locked by its living owner, or removed, or unreadable: leave it
            if not isinstance(error, (BlockingIOError, FileNotFoundError)):
                self._warn_once("adopt", error)
            return None
        if not area.segments:
            self._retire(area)
            return None
        return area

    def _load(self, area: _Area) -> None:
        cursor_number, cursor_offset = _read_cursor(area.path)
        damaged = []
        for number, path in _segment_files(area.path):
            if number < cursor_number:  # delivered; its deletion was interrupted
                path.unlink(missing_ok=True)
                continue
            segment, bad = _load_segment(number, path, cursor_offset if number == cursor_number else 0)
            if bad:
                damaged.append(path.name)
            if segment.records:
                area.segments.append(segment)
            else:
                path.unlink(missing_ok=True)
        if damaged:
            logger.warning(
                "spool %s: ignored torn or corrupt records in %s", area.path.name, ", ".join(damaged)
            )

    def _retire(self, area: _Area) -> None:
        """Delete a drained area, renamed first so that no one mistakes what is left for an orphan."""
        dead = area.path.with_name(f".dead-{area.path.name}")
        try:
            area.path.rename(dead)
        except OSError as error:
            self._warn_once("remove", error)
        else:
            shutil.rmtree(dead, ignore_errors=True)  # what is left is removed by the next adoption
        _close(area.lock_fd)

    def _settle(self, area: _Area) -> None:
        """Delete an adopted area once drained (the own area is kept while this process lives)."""
        if area is not self._own and not area.segments:
            self._adopted.remove(area)
            self._retire(area)

    def _discard(self, segment: _Segment) -> None:
        """Delete a segment already taken out of its area."""
        if self._reader and self._reader[0] == segment.path:
            self._close_reader()
        if self._writer and self._writer[0] is segment:
            self._close_writer()
        try:
            segment.path.unlink(missing_ok=True)
        except OSError as error:
            self._warn_once("delete", error)

    def _make_room(self, need: int) -> int:
        """Evict the oldest segments until ``need`` more bytes fit; return the spans evicted."""
        evicted = 0
        while self._size() + need > self._max_bytes:
            area = next(area for area in self._areas() if area.segments)
            segment = area.segments.popleft()
            evicted += segment.spans
            self._discard(segment)
            self._settle(area)
        return evicted

    def _own_area(self) -> _Area:
        if self._own is None:
            name = f"{os.getpid()}-{secrets.token_hex(6)}"
            staging = self._directory / f".new-{name}"
            self._directory.mkdir(parents=True, exist_ok=True)
            staging.mkdir()
            fd = -1
            try:
                fd = os.open(staging / "lock", os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                created = time.time_ns()
                (staging / "created").write_text(str(created))
                staging.rename(self._directory / name)
            except OSError:
                if fd >= 0:
                    os.close(fd)
                shutil.rmtree(staging, ignore_errors=True)
                raise
            self._own = _Area(self._directory / name, fd, created)
            self._next_number = 1
        return self._own

    def _write(self, payload: bytes, spans: int) -> None:
        area = self._own_area()
        need = _HEADER.size + len(payload)
        if self._writer and self._writer[0].size + need > self._segment_bytes:
            self._close_writer()
        if self._writer is None:
            path = area.path / f"{self._next_number:08d}.seg"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            self._writer = (_Segment(self._next_number, path, 0), fd)
            self._next_number += 1
            area.segments.append(self._writer[0])
        segment, fd = self._writer
        record = _Record(segment.size, len(payload), spans, zlib.crc32(payload))
        try:
            if os.writev(fd, [_header(*record[1:]), payload]) != need:
                raise OSError(errno.ENOSPC, "short write", str(segment.path))
        except OSError:
            # Cut off what was written, and start a new segment anyway in case that failed too:
            # a torn record in the middle of a segment would hide the records after it.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, segment.size)
            self._close_writer()
            if not segment.records:
                area.segments.remove(segment)
                self._discard(segment)
            raise
        segment.records.append(record)
        segment.spans += spans
        segment.size += need

    def _peek(self) -> tuple[bytes, int] | None:
        for area in self._areas():
            while area.segments:
                segment = area.segments[0]
                record = segment.records[0]
                try:
                    payload = self._read(segment.path, record)
                except FileNotFoundError:
                    payload = None  # removed behind our back: its records are lost
                if payload is not None:
                    self._peeked = (area, segment, record)
                    return payload, record.spans
                self._warn_once("read", OSError(errno.EIO, "record damaged since written", str(segment.path)))
                self._consume(area)
        return None

    def _read(self, path: Path, record: _Record) -> bytes | None:
        """The payload of ``record``, or None if it was damaged since it was written."""
        if self._reader is None or self._reader[0] != path:
            self._close_reader()
            self._reader = (path, os.open(path, os.O_RDONLY))
        fd = self._reader[1]
        if _unpack_header(os.pread(fd, _HEADER.size, record.offset)) != record[1:]:
            return None
        payload = os.pread(fd, record.length, record.offset + _HEADER.size)
        return payload if len(payload) == record.length and zlib.crc32(payload) == record.crc else None

    def _consume(self, area: _Area) -> None:
        """Take the area's oldest record out, save the progress, and delete what is drained."""
        segment = area.segments[0]
        record = segment.records.popleft()
        segment.spans -= record.spans
        self._save_cursor(area, segment.number, record.end)
        if not segment.records:
            area.segments.popleft()
            self._discard(segment)
        self._settle(area)

    def _save_cursor(self, area: _Area, number: int, offset: int) -> None:
        data = struct.pack("<QQ", number, offset)
        data += struct.pack("<I", zlib.crc32(data))
        temporary = area.path / "cursor.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            temporary.replace(area.path / "cursor")
        except OSError as error:
            self._warn_once("cursor", error)

    def _close_reader(self) -> None:
        if self._reader:
            _close(self._reader[1])
            self._reader = None

    def _close_writer(self) -> None:
        if self._writer:
            _close(self._writer[1])
            self._writer = None

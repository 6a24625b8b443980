"""The local AWS's write-ahead log: numbered records in segment files, fsynced in groups.

Files, in <state-dir>/data/:

    wal-<first lsn, 12 digits>.log   records, appended; a new segment starts at each snapshot

A record on disk is one frame:

    MAGIC (4 bytes) | length of payload (uint32, big-endian) | crc32 of payload (uint32) | payload

and a payload is a JSON header, a newline, then the raw body bytes (a request body, or nothing).
Every header has "lsn", the record's log sequence number: 1, 2, 3... across all segments.

Reading (`read_segment`) checks every frame. A frame cut short (a crash in the middle of a write)
or one whose checksum fails is skipped: the reader looks for the next intact frame after it, so
what is intact is kept, and each damaged byte range is reported as a `Damage`.

Durability (`Journal.append` then `wait_durable`): appends only queue a frame in memory, in the
order the caller's lock gives them; the first waiter writes and fsyncs every queued frame in one
go (group commit) while later ones wait for it, so concurrent writers share one fsync.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crudstack.local.state.exceptions import JournalError
from crudstack.local.state.private import check_trusted, open_private

MAGIC = b"\xc5LW1"
_FRAME_HEAD = struct.Struct(">4sII")
# No single record comes near this (a Lambda zip is at most 50 MB, base64 in a JSON body);
# a larger length is damage, not data.
MAX_PAYLOAD = 256 * 1024 * 1024
SEGMENT_PREFIX, SEGMENT_SUFFIX = "wal-", ".log"


@dataclass(frozen=True)
class Record:
    header: dict[str, Any]
    body: bytes
    offset: int = -1  # where its frame starts in its segment (when read from one)

    @property
    def lsn(self) -> int:
        return int(self.header["lsn"])


@dataclass(frozen=True)
class Damage:
    """Bytes [start, end) of a segment that hold no intact record."""

    segment: Path
    start: int
    end: int
    reason: str

    @property
    def size(self) -> int:
        return self.end - self.start

    def describe(self) -> str:
        return f"{self.segment.name}: {self.size} bytes at offset {self.start} ({self.reason})"


def encode(header: dict[str, Any], body: bytes = b"") -> bytes:
    payload = json.dumps(header, separators=(",", ":"), default=_json_default).encode() + b"\n" + body
    return _FRAME_HEAD.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):  # metric timestamps: moto compares them as naive UTC
        return {"$datetime": value.isoformat()}
    raise TypeError(f"a journal record cannot hold {type(value).__name__}: {value!r}")


def _object_hook(value: dict) -> Any:
    if len(value) == 1 and "$datetime" in value:
        return dt.datetime.fromisoformat(value["$datetime"])
    return value


def _decode(payload: bytes, offset: int = -1) -> Record:
    head, _, body = payload.partition(b"\n")
    header = json.loads(head, object_hook=_object_hook)
    if not isinstance(header, dict) or not isinstance(header.get("lsn"), int):
        raise ValueError("record header has no lsn")
    return Record(header, body, offset)


def _frame_at(data: bytes | memoryview, offset: int) -> tuple[Record | None, int, str]:
    """(record, end offset, "") for an intact frame at offset, else (None, offset, why not)."""
    if len(data) - offset < _FRAME_HEAD.size:
        return None, offset, "truncated frame header"
    magic, length, crc = _FRAME_HEAD.unpack_from(data, offset)
    if magic != MAGIC:
        return None, offset, "no record marker"
    if length > MAX_PAYLOAD:
        return None, offset, "impossible record length"
    start, end = offset + _FRAME_HEAD.size, offset + _FRAME_HEAD.size + length
    if end > len(data):
        return None, offset, "record cut short"
    payload = bytes(data[start:end])
    if zlib.crc32(payload) != crc:
        return None, offset, "checksum mismatch"
    try:
        return _decode(payload, offset), end, ""
    except ValueError as exc:
        return None, offset, f"unreadable record ({exc})"


def damaged_header(chunk: bytes) -> dict[str, Any] | None:
    """The header of the record a damaged chunk starts with, when that much of it is still readable
    (a cut after the header line): it says which request the lost record held. None otherwise."""
    if len(chunk) < _FRAME_HEAD.size or chunk[:4] != MAGIC:
        return None
    head, newline, _ = chunk[_FRAME_HEAD.size:].partition(b"\n")
    try:
        header = json.loads(head, object_hook=_object_hook) if newline else None
    except (ValueError, TypeError, RecursionError):   # damaged bytes may parse into any shape ({"$datetime": 5})
        return None
    return header if isinstance(header, dict) and isinstance(header.get("lsn"), int) else None


def read_segment(path: Path) -> tuple[list[Record], list[Damage], int]:
    """Every intact record of a segment, the damaged ranges, and the offset after the last intact record.
    StateUnsafe if another user owns the segment or can write it: its records would be replayed as ours."""
    check_trusted(path)
    data = path.read_bytes()
    records: list[Record] = []
    damages: list[Damage] = []
    offset, good_end = 0, 0
    while offset < len(data):
        record, end, why = _frame_at(data, offset)
        if record is not None:
            records.append(record)
            offset = good_end = end
            continue
        # Skip to the next frame that checks out; everything in between is lost.
        search = offset + 1
        while True:
            search = data.find(MAGIC, search)
            if search < 0:
                damages.append(Damage(path, offset, len(data), why))
                return records, damages, good_end
            if _frame_at(data, search)[0] is not None:
                damages.append(Damage(path, offset, search, why))
                offset = search
                break
            search += 1
    return records, damages, good_end


def segment_name(first_lsn: int) -> str:
    return f"{SEGMENT_PREFIX}{first_lsn:012d}{SEGMENT_SUFFIX}"


def numbered_files(folder: Path, prefix: str, suffix: str) -> list[tuple[int, Path]]:
    """(number, path) of every <prefix><digits><suffix> file in folder, lowest number first."""
    found = []
    for path in folder.glob(f"{prefix}*{suffix}"):
        number = path.name[len(prefix):-len(suffix)]
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


def list_segments(folder: Path) -> list[tuple[int, Path]]:
    """(first lsn, path) of every segment in folder, oldest first."""
    return numbered_files(folder, SEGMENT_PREFIX, SEGMENT_SUFFIX)


def fsync_dir(folder: Path) -> None:
    """Make a file creation, rename or deletion in folder itself durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Appends records to the current segment; `rotate` starts the next one."""

    def __init__(self, folder: Path, next_lsn: int):
        self.folder = folder
        self._next_lsn = next_lsn
        self._cond = threading.Condition()
        self._queued: list[bytes] = []
        self._queued_upto = next_lsn - 1
        self._durable_upto = next_lsn - 1
        self._flushing = False
        self._failure: OSError | None = None
        self.bytes_written = 0
        self.segment_path = folder / segment_name(next_lsn)
        self._file = self._open(self.segment_path)

    @staticmethod
    def _open(path: Path):
        handle = open(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab", buffering=0)
        fsync_dir(path.parent)
        return handle

    @property
    def last_lsn(self) -> int:
        return self._next_lsn - 1

    def append(self, header: dict[str, Any], body: bytes = b"") -> int:
        """Queue a record; returns its lsn. Callers serialise appends (the order is the replay order)."""
        with self._cond:
            lsn = self._next_lsn
            frame = encode({**header, "lsn": lsn}, body)
            self._next_lsn += 1
            self._queued.append(frame)
            self._queued_upto = lsn
        return lsn

    def wait_durable(self, lsn: int) -> None:
        """Return once record lsn is on disk (fsynced); raises JournalError if writing failed."""
        while True:
            with self._cond:
                while self._durable_upto < lsn and self._flushing:
                    self._cond.wait()
                if self._durable_upto >= lsn:
                    return
                if self._failure is not None:
                    raise JournalError(f"the local AWS could not write its journal: {self._failure}") from self._failure
                frames, upto = self._queued, self._queued_upto
                self._queued = []
                self._flushing = True
            self._write(frames, upto)

    def flush(self) -> None:
        """Write and fsync whatever is queued (records nobody waits for, e.g. telemetry)."""
        with self._cond:
            upto = self._queued_upto
        if upto > self._durable_upto:
            try:
                self.wait_durable(upto)
            except JournalError:
                pass  # reported to the writers that wait; logged by the store

    def _write(self, frames: list[bytes], upto: int) -> None:
        failure = None
        try:
            if frames:
                data = b"".join(frames)
                self._file.write(data)
                os.fsync(self._file.fileno())
                self.bytes_written += len(data)
        except (OSError, ValueError) as exc:  # ValueError: a write after close(), at shutdown
            failure = exc if isinstance(exc, OSError) else OSError(str(exc))
        with self._cond:
            self._flushing = False
            if failure is None:
                self._durable_upto = max(self._durable_upto, upto)
            else:
                self._failure = failure
            self._cond.notify_all()

    def rotate(self) -> Path:
        """Flush, close this segment and start the next one (at the next lsn); returns the closed one."""
        self.flush()
        with self._cond:
            while self._flushing:
                self._cond.wait()
            closed = self.segment_path
            self._file.close()
            self.segment_path = self.folder / segment_name(self._next_lsn)
            self._file = self._open(self.segment_path)
            self.bytes_written = 0
            return closed

    def close(self) -> None:
        self.flush()
        with self._cond:
            while self._flushing:
                self._cond.wait()
            self._file.close()

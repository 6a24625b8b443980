"""Keeps the local AWS's state on disk: a snapshot plus a write-ahead log of what came after it.

Why this design (docs/local-aws.md says it for users): moto's state is Python objects in
one process, with no export of its own. Two things are cheap with such objects: pickling them
all (a snapshot, about 1 s for 10,000 items) and re-sending a request to moto (about 2 ms). So:

- every write that reaches moto is journaled (crudstack.local.state.journal) with the seed and clock
  it ran with (crudstack.local.patches.determinism), and answered only once its record is fsynced;
  writers running at the same time share one fsync (group commit);
- writes made inside the process (Lambda logs and metrics, API Gateway metrics, alarm state
  changes) are journaled the same way, as named operations (`apply`), without waiting;
- a snapshot of every backend is taken when the journal since the last one would take more than
  about a second to replay (or twice as long as the last snapshot held the writes up, on a large
  state), after a quiet spell, and at a clean stop, and the journal starts a new segment there; the previous snapshot and the segments after it are kept as a fallback;
- at start-up, `recover` loads the newest readable snapshot and replays the journal after it.
  A record cut short or failing its checksum is dropped, reported, and moved aside.

Only answers with a 2xx status are journaled: a write moto refused changed nothing.

Exceptions (state/exceptions.py draws the tree):

    StateUnreadable   no snapshot could be read although some exist: starting empty would lose data
    JournalError      the disk refused a write: the change is not durable
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from crudstack.local import request
from crudstack.local.request import is_write
from crudstack.local.patches import determinism
from crudstack.local.state import snapshot
from crudstack.local.state.exceptions import JournalError, StateUnreadable
from crudstack.local.state.journal import (Damage, Journal, Record, damaged_header, encode, fsync_dir, list_segments,
                                          read_segment)
from crudstack.local.state.private import open_private, private_folder

log = logging.getLogger(__name__)

DATA_DIR = "data"
__all__ = ["DurableState", "RecoveryReport", "StatePart", "StateUnreadable", "is_write", "wipe"]
# The environ keys a replayed request needs to reach the same moto handler.
_SAVED_ENVIRON = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_NAME",
                  "SERVER_PORT", "SERVER_PROTOCOL", "SCRIPT_NAME", "REQUEST_URI", "RAW_URI", "REMOTE_ADDR")


def call_wsgi(app: Callable, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI app to the end: (status, headers, body)."""
    captured: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
        captured["status"], captured["headers"] = status, headers
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return captured.get("status", "500 Internal Server Error"), captured.get("headers", []), b"".join(chunks)


def _status_code(status: str) -> int:
    try:
        return int(status.split(" ", 1)[0])
    except ValueError:
        return 500


# --------------------------------------------------------------------------------------------
# Recovery report
# --------------------------------------------------------------------------------------------

@dataclass
class RecoveryReport:
    snapshot: str | None = None
    snapshot_lsn: int = 0
    replayed: int = 0
    diverged: list[str] = field(default_factory=list)    # records that answered differently on replay
    dropped: list[str] = field(default_factory=list)     # damaged bytes, what they held
    unreadable_snapshots: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def problems(self) -> list[str]:
        return self.unreadable_snapshots + self.dropped + self.diverged

    def summary(self) -> str:
        base = f"snapshot {self.snapshot} (lsn {self.snapshot_lsn})" if self.snapshot else "no snapshot"
        return f"state recovered in {self.seconds:.2f} s from {base} and {self.replayed} journal records"

    def as_dict(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "snapshot_lsn": self.snapshot_lsn, "replayed": self.replayed,
                "dropped": self.dropped, "diverged": self.diverged, "unreadable_snapshots": self.unreadable_snapshots,
                "seconds": round(self.seconds, 3), "summary": self.summary(), "at": time.time()}


@dataclass
class StatePart:
    """State of ours (not moto's) that a snapshot carries: dump() -> picklable value, load(value)."""

    dump: Callable[[], Any]
    load: Callable[[Any], None]


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------

class DurableState:
    """The journal and snapshots of one local AWS (<state-dir>/data), and the lock writes take.

    replay_app       the WSGI app journaled requests were served by (and are replayed into)
    replay_budget_s  take a snapshot once the journal since the last one would take this long to replay
    idle_s           ... or once the journal has been quiet this long
    """

    def __init__(self, state_dir: Path, replay_app: Callable, *, replay_budget_s: float = 1.0, idle_s: float = 10.0,
                 max_tail_bytes: int = 64 * 1024 * 1024, housekeeping_interval: float = 0.5):
        self.folder = Path(state_dir) / DATA_DIR
        self.replay_app = replay_app
        self.replay_budget_s = replay_budget_s
        self.idle_s = idle_s
        self.max_tail_bytes = max_tail_bytes
        self._interval = housekeeping_interval
        self._lock = threading.RLock()  # serialises writes: journal order is execution order
        self._ops: dict[str, Callable[..., Any]] = {}
        self._parts: dict[str, StatePart] = {}
        self._write_listeners: list[Callable[[dict[str, Any]], None]] = []
        self.journal: Journal | None = None
        self._tail_cost = 0.0
        self._tail_records = 0
        self._tail_bytes = 0
        self._last_write = time.monotonic()
        self._checkpoint_soon = False
        self._latest_snapshot_lsn = 0  # the newest snapshot on disk: kept as the fallback of the next one
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_snapshot_seconds = 0.0
        self._last_dump_seconds = 0.0  # how long the last snapshot held the write lock

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str, operation: Callable[..., Any]) -> None:
        """An in-process write that `apply(name, **args)` runs and journals; args must be JSON (datetimes allowed)."""
        self._ops[name] = operation

    def on_write(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener(environ)` after each write moto served over HTTP, before it is answered."""
        self._write_listeners.append(listener)

    def add_part(self, name: str, part: StatePart) -> None:
        self._parts[name] = part

    # -- serving ------------------------------------------------------------------------------
    def wsgi(self, app: Callable) -> Callable:
        """WSGI middleware: writes to `app` are run one at a time, journaled, and answered once durable."""

        def journaled(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
            asked = request.of(environ)  # which requests write: crudstack/local/request.py
            if not asked.write:
                return app(environ, start_response)
            body = asked.body
            try:
                status, headers, answer = self._serve_write(app, environ, body)
            except JournalError as exc:
                log.error("%s %s was applied but could not be made durable: %s",
                          environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), exc)
                answer = json.dumps({"__type": "InternalFailure", "message": str(exc)}).encode()
                status, headers = "500 Internal Server Error", [("Content-Type", "application/json")]
            start_response(status, headers)
            return [answer]

        return journaled

    def _serve_write(self, app: Callable, environ: dict[str, Any], body: bytes) -> tuple[str, list, bytes]:
        lsn = None
        with self._lock:
            determinism.patch_loaded_modules()
            seed, at = determinism.new_seed(), time.time()
            started = time.perf_counter()
            with determinism.replayable(seed, at):
                try:
                    status, headers, answer = call_wsgi(app, environ)
                finally:
                    for listener in self._write_listeners:
                        listener(environ)
            code = _status_code(status)
            if 200 <= code < 300:
                saved = {key: environ[key] for key in environ
                         if isinstance(environ[key], str) and (key.startswith("HTTP_") or key in _SAVED_ENVIRON)}
                lsn = self._append({"kind": "http", "seed": seed, "at": at, "status": code, "environ": saved}, body,
                                   time.perf_counter() - started)
        if lsn is not None:
            self.journal.wait_durable(lsn)
        return status, headers, answer

    def apply(self, name: str, *, wait: bool = False, **args: Any) -> Any:
        """Run registered operation `name` with args, journaled; with wait, return once it is durable."""
        operation = self._ops[name]
        json.dumps(args, default=_check_json)  # refuse before changing anything, not after
        with self._lock:
            determinism.patch_loaded_modules()
            seed, at = determinism.new_seed(), time.time()
            started = time.perf_counter()
            with determinism.replayable(seed, at):
                result = operation(**args)
            lsn = self._append({"kind": "op", "op": name, "seed": seed, "at": at, "args": args}, b"",
                               time.perf_counter() - started)
        if wait:
            self.journal.wait_durable(lsn)
        return result

    def _append(self, header: dict[str, Any], body: bytes, cost: float) -> int:
        lsn = self.journal.append(header, body)
        self._tail_cost += cost
        self._tail_records += 1
        self._tail_bytes += len(body) + 256
        self._last_write = time.monotonic()
        return lsn

    # -- recovery -----------------------------------------------------------------------------
    def recover(self) -> RecoveryReport:
        """Load the newest readable snapshot and replay the journal after it. Call before serving."""
        started = time.perf_counter()
        private_folder(self.folder)  # 0700, ours: state/private.py
        determinism.patch_loaded_modules()
        report = RecoveryReport()
        for leftover in self.folder.glob(".*.tmp"):  # a snapshot or repair the process died writing
            leftover.unlink(missing_ok=True)
        snapshots = snapshot.list_snapshots(self.folder)
        loaded = None
        for _, path in snapshots:
            try:
                loaded = snapshot.read(path)
                break
            except snapshot.SnapshotError as exc:
                log.error("snapshot unreadable: %s", exc)
                report.unreadable_snapshots.append(str(exc))
        if snapshots and loaded is None:
            raise StateUnreadable(
                f"the saved state in {self.folder} cannot be read: " + "; ".join(report.unreadable_snapshots))
        base = 0
        if loaded is not None:
            snapshot.install_backends(loaded.backends)
            for name, value in loaded.parts.items():
                if name in self._parts:
                    self._parts[name].load(value)
            base = self._latest_snapshot_lsn = loaded.lsn
            report.snapshot, report.snapshot_lsn = snapshot.snapshot_name(loaded.lsn), loaded.lsn

        last = base
        segments = list_segments(self.folder)
        with determinism.replay_mode():
            for index, (first, path) in enumerate(segments):
                following = segments[index + 1][0] if index + 1 < len(segments) else None
                if following is not None and following <= base + 1:
                    continue  # every record in it is in the snapshot already
                records, damages, _ = read_segment(path)
                if damages:
                    report.dropped += self._set_aside(path, records, damages, is_last=following is None)
                for record in records:
                    if record.lsn <= base:
                        continue
                    determinism.patch_loaded_modules()  # a snapshot or a replayed request may import moto modules
                    self._replay(record, report)
                    last = max(last, record.lsn)
        self.journal = Journal(self.folder, last + 1)
        self._tail_records = report.replayed
        self._checkpoint_soon = bool(report.replayed or report.dropped)
        report.seconds = time.perf_counter() - started
        log.info("%s", report.summary())
        for problem in report.problems:
            log.warning("recovery: %s", problem)
        return report

    def _replay(self, record: Record, report: RecoveryReport) -> None:
        header = record.header
        try:
            with determinism.replayable(int(header["seed"]), float(header["at"])):
                if header["kind"] == "http":
                    environ = dict(header["environ"])
                    environ.update({"wsgi.input": io.BytesIO(record.body), "wsgi.errors": sys.stderr,
                                    "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.multithread": True,
                                    "wsgi.multiprocess": False, "wsgi.run_once": False})
                    code = _status_code(call_wsgi(self.replay_app, environ)[0])
                    if code != header["status"]:
                        report.diverged.append(f"record {record.lsn} ({environ.get('REQUEST_METHOD')} "
                                               f"{environ.get('PATH_INFO')}) answered {code} on replay, "
                                               f"{header['status']} when first served")
                else:
                    self._ops[header["op"]](**header["args"])
        except Exception as exc:
            log.exception("replaying record %d failed", record.lsn)
            report.diverged.append(f"record {record.lsn} ({header.get('op') or header.get('kind')}) failed on replay: "
                                   f"{type(exc).__name__}: {exc}")
        report.replayed += 1

    def _set_aside(self, path: Path, records: list[Record], damages: list[Damage], *, is_last: bool) -> list[str]:
        """Move damaged bytes out of a segment (into data/damaged/) so new restarts do not meet them
        again; describe what was lost."""
        data = path.read_bytes()
        aside = self.folder / "damaged"
        aside.mkdir(mode=0o700, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        messages = []
        for damage in damages:
            (aside / f"{path.name}.{damage.start}-{damage.end}.{stamp}.bin").write_bytes(data[damage.start:damage.end])
            messages.append(_describe_damage(damage, records, len(data), is_last, data[damage.start:damage.end]))
        # Rewrite the segment with its intact frames only.
        tmp = path.with_name(f".{path.name}.repair.tmp")
        with open(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as handle:
            for record in records:
                handle.write(encode(record.header, record.body))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
        return messages

    # -- snapshots ----------------------------------------------------------------------------
    def checkpoint(self) -> bool:
        """Snapshot the whole state now and start a new journal segment; False if it could not be taken."""
        with self._lock:
            if self.journal is None:
                return False
            started = time.perf_counter()
            lsn = self.journal.last_lsn
            try:
                data = snapshot.dumps(lsn, {name: part.dump() for name, part in self._parts.items()})
            except Exception:
                # The journal keeps everything: nothing is lost, restarts are only slower.
                log.exception("could not take a snapshot at lsn %d; the journal keeps growing instead", lsn)
                self._tail_cost = 0.0  # do not retry at once
                self._last_write = time.monotonic()
                return False
            self.journal.rotate()
            self._tail_cost, self._tail_records, self._tail_bytes = 0.0, 0, 0
            self._checkpoint_soon = False
            self._last_dump_seconds = time.perf_counter() - started
        try:
            path = snapshot.write(self.folder, lsn, data)
        except OSError:
            log.exception("could not write the snapshot at lsn %d; the journal still holds everything", lsn)
            return False
        self.last_snapshot_seconds = time.perf_counter() - started
        log.info("snapshot %s written (%.1f MB in %.2f s)", path.name, len(data) / 1e6, self.last_snapshot_seconds)
        self._prune(lsn)
        return True

    def _prune(self, newest: int) -> None:
        """Keep the newest snapshot and the one before it (a fallback), and the segments after that one."""
        keep = self._latest_snapshot_lsn
        for lsn, path in snapshot.list_snapshots(self.folder):
            if lsn not in (newest, keep):
                path.unlink(missing_ok=True)
        segments = list_segments(self.folder)
        for index, (first, path) in enumerate(segments):
            following = segments[index + 1][0] if index + 1 < len(segments) else None
            if following is not None and following <= keep + 1:
                path.unlink(missing_ok=True)
        fsync_dir(self.folder)
        self._latest_snapshot_lsn = newest

    def _should_checkpoint(self) -> bool:
        if self._tail_records == 0:
            return False
        # Writes wait while a snapshot is taken, and a larger state takes longer: under a steady load,
        # snapshot at most a third of the time (the journal then takes a little longer to replay).
        budget = max(self.replay_budget_s, 2 * self._last_dump_seconds)
        return (self._checkpoint_soon or self._tail_cost >= budget or self._tail_bytes >= self.max_tail_bytes
                or time.monotonic() - self._last_write >= self.idle_s)

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> "DurableState":
        self._thread = threading.Thread(target=self._housekeeping, name="durable-state", daemon=True)
        self._thread.start()
        return self

    def _housekeeping(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.journal.flush()  # records nobody waits for (telemetry) reach the disk within an interval
                if self._should_checkpoint():
                    self.checkpoint()
            except Exception:
                log.exception("durable state housekeeping failed")

    def close(self) -> None:
        """Stop housekeeping; snapshot what the journal holds since the last one, so the next start is quick."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.journal is None:
            return
        if self._tail_records:
            self.checkpoint()
        self.journal.close()


def _check_json(value: Any) -> Any:
    import datetime as dt

    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot journal {type(value).__name__}: {value!r}")


def _describe_damage(damage: Damage, records: list[Record], size: int, is_last: bool, chunk: bytes = b"") -> str:
    before = max((r.lsn for r in records if r.offset < damage.start), default=None)
    after = min((r.lsn for r in records if r.offset >= damage.end), default=None)
    where = f"{damage.segment.name}: {damage.size} bytes at offset {damage.start} ({damage.reason})"
    if damage.end == size and is_last:
        # Two things leave a log ending like this, and its bytes cannot tell them apart: a stop in the middle of
        # writing the record (its request was never answered: answers wait for the fsync) and damage to the file
        # after the fsync (a cut or a bad sector: its request may well have been answered). Say only that.
        return (f"{where}: the last record{_what_it_held(chunk)}, cut short or damaged; dropped. Whether its request "
                f"had been answered cannot be known from the journal: a stop while it was being written leaves this "
                f"(the request was then never answered), and so does damage to the file after it was written (the "
                f"request may have been answered 2xx). If that change is missing, make it again")
    if before is not None and after is not None:
        lost = after - before - 1
        return f"{where}: {lost} record{'s' if lost != 1 else ''} (lsn {before + 1}-{after - 1}) lost; dropped"
    return f"{where}: dropped"


def _what_it_held(chunk: bytes) -> str:
    header = damaged_header(chunk)
    if header is None:
        return ""
    environ = header.get("environ") if isinstance(header.get("environ"), dict) else {}   # damaged: any shape
    if header.get("kind") == "http":
        request = f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}" if environ else "an HTTP request"
    else:
        request = f"operation {header.get('op') or header.get('kind')}"
    return f" (lsn {header.get('lsn')}, {request})"


def wipe(state_dir: Path) -> list[Path]:
    """Delete the saved state (snapshots, journal) of a local AWS that is not running; returns what was removed."""
    removed = []
    folder = Path(state_dir) / DATA_DIR
    if folder.exists():
        shutil.rmtree(folder)
        removed.append(folder)
    return removed

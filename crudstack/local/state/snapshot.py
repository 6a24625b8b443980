"""A snapshot of the local AWS's state: every moto backend in use, pickled, plus our own parts.

moto keeps each service's state in plain Python objects, one per (account, region), reachable
from module-level `BackendDict`s (`moto.dynamodb.models.dynamodb_backends`, ...). A snapshot
pickles those objects together, so references between them survive, and restoring puts them
back into the same live `BackendDict`s the rest of the process (moto's responses, our runtime
and gateway) already holds.

A few objects in moto's models cannot be pickled as they are; `_REDUCERS` says how each is
rebuilt: locks as new locks, weak-value maps as the same entries, a defaultdict whose factory is
a lambda as a defaultdict of what the lambda makes. A BackendDict met inside a backend is saved
as a reference to the live one, never copied.

File layout (<state-dir>/data/snapshot-<lsn, 12 digits>.pickle):

    b"CSNAP1\\n" | JSON header line (lsn, length, crc32, created, moto version) | pickle bytes
"""

from __future__ import annotations

import collections
import copyreg
import gc
import importlib
import io
import json
import os
import pickle
import sys
import threading
import time
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crudstack.local import moto_backends
from crudstack.local.state.exceptions import SnapshotError
from crudstack.local.state.journal import fsync_dir, numbered_files
from crudstack.local.state.private import check_trusted, open_private

MAGIC = b"CSNAP1\n"
PREFIX, SUFFIX = "snapshot-", ".pickle"


def snapshot_name(lsn: int) -> str:
    return f"{PREFIX}{lsn:012d}{SUFFIX}"


def list_snapshots(folder: Path) -> list[tuple[int, Path]]:
    """(lsn, path) of every snapshot in folder, newest first."""
    return numbered_files(folder, PREFIX, SUFFIX)[::-1]


# -------------------------------------------------------------------------------- moto's backends

def _backend_dicts() -> dict[int, tuple[str, str, Any]]:
    """id(BackendDict) -> (module, attribute, the BackendDict) for every one in a loaded moto module."""
    BackendDict, _ = moto_backends.backend_classes()

    found: dict[int, tuple[str, str, Any]] = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("moto.") or module is None:
            continue
        for attr, value in list(getattr(module, "__dict__", {}).items()):
            if isinstance(value, BackendDict) and id(value) not in found:
                found[id(value)] = (name, attr, value)
    return found


def _live_backend_dict(module: str, attr: str) -> Any:
    return getattr(importlib.import_module(module), attr)


def _live_account_backend(module: str, attr: str, account_id: str) -> Any:
    return _live_backend_dict(module, attr)[account_id]


def _weak_value_dict(items: dict) -> weakref.WeakValueDictionary:
    return weakref.WeakValueDictionary(items)


def _factory_for(default_factory: Any) -> Any:
    """A picklable factory making what an unpicklable one (a lambda) makes."""
    try:
        pickle.dumps(default_factory)
        return default_factory
    except Exception:
        pass
    sample = default_factory()
    for candidate in (dict, list, set, int, float, str):
        if type(sample) is candidate and sample == candidate():
            return candidate
    raise pickle.PicklingError(f"cannot save a defaultdict whose factory {default_factory!r} makes {sample!r}")


def _new_lock() -> Any:
    return threading.Lock()


def _new_rlock() -> Any:
    return threading.RLock()


class _StatePickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, backend_dicts: dict[int, tuple[str, str, Any]]):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        BackendDict, AccountSpecificBackend = moto_backends.backend_classes()

        by_account: dict[int, tuple] = {}
        for module, attr, backend_dict in backend_dicts.values():
            for account_id, account_backend in list(dict.items(backend_dict)):
                by_account[id(account_backend)] = (module, attr, account_id)

        def reduce_backend_dict(value: Any) -> Any:
            entry = backend_dicts.get(id(value))
            if entry is None:
                raise pickle.PicklingError(f"a BackendDict for {value.service_name} that no moto module holds")
            return _live_backend_dict, entry[:2]

        def reduce_account_backend(value: Any) -> Any:
            entry = by_account.get(id(value))
            if entry is None:
                raise pickle.PicklingError(f"an account backend of {value.service_name} that no BackendDict holds")
            return _live_account_backend, entry

        def reduce_defaultdict(value: collections.defaultdict) -> Any:
            return collections.defaultdict, (_factory_for(value.default_factory),), None, None, iter(value.items())

        # Only these types pay for a lookup; everything else pickles at C speed.
        self.dispatch_table = copyreg.dispatch_table.copy()
        self.dispatch_table.update({
            BackendDict: reduce_backend_dict,
            AccountSpecificBackend: reduce_account_backend,
            collections.defaultdict: reduce_defaultdict,
            weakref.WeakValueDictionary: lambda value: (_weak_value_dict, (dict(value.items()),)),
            type(threading.Lock()): lambda value: (_new_lock, ()),
            type(threading.RLock()): lambda value: (_new_rlock, ()),
        })


@dataclass
class Snapshot:
    lsn: int
    backends: list[tuple[str, str, str, str, Any]]  # (module, attribute, account, region, backend)
    parts: dict[str, Any]                            # our own state, by name
    created: float


def capture_backends() -> tuple[list[tuple[str, str, str, str, Any]], dict[int, tuple[str, str, Any]]]:
    """Every (module, attribute, account, region, backend) in use now."""
    backend_lock = moto_backends.lock()

    backend_dicts = _backend_dicts()
    entries = []
    with backend_lock:  # a read creating a region's backend must not change the dicts under us
        for module, attr, backend_dict in backend_dicts.values():
            for account_id, account_backend in list(dict.items(backend_dict)):
                for region, backend in list(dict.items(account_backend)):
                    entries.append((module, attr, account_id, region, backend))
    return entries, backend_dicts


def dumps(lsn: int, parts: dict[str, Any]) -> bytes:
    """The whole state as snapshot bytes. Call with every writer stopped."""
    entries, backend_dicts = capture_backends()
    buffer = io.BytesIO()
    _StatePickler(buffer, backend_dicts).dump({"backends": entries, "parts": parts})
    payload = buffer.getvalue()
    moto_version = moto_backends.version()

    header = {"lsn": lsn, "length": len(payload), "crc32": zlib.crc32(payload), "created": time.time(),
              "moto": moto_version, "python": sys.version.split()[0]}
    return MAGIC + json.dumps(header).encode() + b"\n" + payload


def write(folder: Path, lsn: int, data: bytes) -> Path:
    """Write snapshot bytes durably: a temporary file, fsync, rename, fsync of the folder."""
    path = folder / snapshot_name(lsn)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    with open(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(folder)
    return path


# A snapshot names each pickled class by its module; these are modules that snapshots on users' disks
# may name for our own classes that live elsewhere now, so that such a snapshot still loads.
_MOVED_MODULES = {"crudstack.local.gateway": "crudstack.local.apigateway.models"}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(_MOVED_MODULES.get(module, module), name)


def read(path: Path) -> Snapshot:
    """Load a snapshot file (not yet installed); SnapshotError if it is damaged or unreadable,
    StateUnsafe if another user owns it or can write it (unpickling it could run their code)."""
    check_trusted(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotError(f"{path.name} cannot be read: {exc}") from exc
    if not data.startswith(MAGIC):
        raise SnapshotError(f"{path.name} is not a snapshot (no header)")
    head, sep, payload = data[len(MAGIC):].partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise SnapshotError(f"{path.name} has a damaged header") from exc
    if not sep or len(payload) != header.get("length") or zlib.crc32(payload) != header.get("crc32"):
        raise SnapshotError(f"{path.name} is damaged (length or checksum does not match)")
    enabled = gc.isenabled()
    gc.disable()  # millions of new objects: the collector would walk them over and over
    try:
        state = _Unpickler(io.BytesIO(payload)).load()
    except Exception as exc:
        raise SnapshotError(f"{path.name} could not be loaded ({type(exc).__name__}: {exc}); "
                            f"written by moto {header.get('moto')}") from exc
    finally:
        if enabled:
            gc.enable()
    return Snapshot(int(header["lsn"]), state["backends"], state["parts"], float(header.get("created", 0)))


def install_backends(entries: list[tuple[str, str, str, str, Any]]) -> None:
    """Put loaded backends into the live BackendDicts, replacing whatever is there."""
    backend_lock = moto_backends.lock()

    with backend_lock:
        for module, attr, account_id, region, backend in entries:
            account_backend = _live_account_backend(module, attr, account_id)
            dict.__setitem__(account_backend, region, backend)

"""Make a write to moto come out the same when it is replayed from the journal.

moto draws every id it makes (REST API ids, resource ids, ARNs with uuids, SNS message ids,
request ids) from one process-wide random object, `moto.moto_api._internal.mock_random`, and
stamps creation times with `moto.core.utils.utcnow()` (API Gateway with `time.time()`). Replaying
a journaled write must give the same ids and times, or an API id, and with it the invoke URL,
would change across a restart.

`install()` makes both per thread:

- mock_random draws from a thread's own generator, so reads served by other threads at the same
  time (each answer draws a request id) cannot shift the sequence a write sees;
- `replayable(seed, at)` seeds the calling thread's generator and stops its clock at `at` for the
  length of one write, both when it is first served and when it is replayed.

Outside `replayable` nothing changes: fresh randomness from the OS, the real clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import sys
import threading
import time as _time
from types import ModuleType
from typing import Any, Iterator

_local = threading.local()
_replaying = False
_installed = False
_patched_modules: set[str] = set()
_modules_seen = 0
_patch_lock = threading.Lock()


def _thread_rng() -> random.Random:
    rng = getattr(_local, "rng", None)
    if rng is None:
        rng = _local.rng = random.Random(int.from_bytes(os.urandom(16), "big"))
    return rng


def new_seed() -> int:
    return int.from_bytes(os.urandom(8), "big")


def frozen_time() -> float | None:
    """The stopped clock of the current write, or None."""
    return getattr(_local, "now", None)


@contextlib.contextmanager
def replayable(seed: int, at: float) -> Iterator[None]:
    """Within: moto's randomness comes from `seed` and its clock reads `at` (seconds since the epoch)."""
    previous = getattr(_local, "rng", None), getattr(_local, "now", None)
    _local.rng, _local.now = random.Random(seed), at
    try:
        yield
    finally:
        _local.rng, _local.now = previous


def replaying() -> bool:
    """True while the journal is replayed at start-up: side effects outside moto's state (an
    e-mail file in the outbox, a Lambda run, an HTTP delivery) happened the first time and are
    not repeated."""
    return _replaying


@contextlib.contextmanager
def replay_mode() -> Iterator[None]:
    global _replaying
    _replaying = True
    try:
        yield
    finally:
        _replaying = False


def _make_thread_local_random_class(base: type) -> type:
    class ThreadLocalMotoRandom(base):  # type: ignore[misc, valid-type]
        """MotoRandom whose state lives in the calling thread. Every other method of Random
        (choice, randint, uuid4, get_random_hex...) goes through these two."""

        def random(self) -> float:
            return _thread_rng().random()

        def getrandbits(self, k: int) -> int:
            return _thread_rng().getrandbits(k)

        def seed(self, a: Any = None, version: int = 2) -> None:
            # /moto-api/seed: seeds the thread serving it, which is all a per-thread generator allows.
            _local.rng = random.Random(a)

    return ThreadLocalMotoRandom


class _ClockTime(ModuleType):
    """The `time` module as moto modules see it: `time()` reads a write's stopped clock."""

    def __init__(self) -> None:
        super().__init__("time")

    def time(self) -> float:  # noqa: D102 - the one function that differs
        at = frozen_time()
        return _time.time() if at is None else at

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


_clock_time = _ClockTime()


def _utcnow_factory(real: Any) -> Any:
    def utcnow() -> dt.datetime:
        at = frozen_time()
        if at is None:
            return real()
        return dt.datetime.fromtimestamp(at, dt.timezone.utc).replace(tzinfo=None)

    utcnow.__wrapped__ = real  # type: ignore[attr-defined]
    return utcnow


def install() -> None:
    """Swap moto's random object to per-thread state and hook its clock (idempotent)."""
    global _installed
    with _patch_lock:
        if not _installed:
            from moto.moto_api._internal import mock_random

            from crudstack.local.patches.core import MotoChanged

            if not isinstance(mock_random, random.Random):
                raise MotoChanged("moto.moto_api._internal.mock_random is no longer a random.Random: update "
                                  "crudstack/local/patches/determinism.py for this moto version")

            mock_random.__class__ = _make_thread_local_random_class(type(mock_random))
            _installed = True
    patch_loaded_modules()


def patch_loaded_modules() -> None:
    """Point moto modules imported since the last call at the stopped clock.

    moto imports a service's modules on its first request, and they bind `utcnow` and `time` by
    name, so the clock is hooked module by module; cheap when no module is new."""
    global _modules_seen
    if len(sys.modules) == _modules_seen:
        return
    with _patch_lock:
        from moto.core import utils as core_utils

        if not callable(getattr(core_utils, "utcnow", None)):
            from crudstack.local.patches.core import MotoChanged

            raise MotoChanged("moto.core.utils has no utcnow() any more: update crudstack/local/patches/determinism.py")

        real = getattr(core_utils.utcnow, "__wrapped__", core_utils.utcnow)
        hooked = core_utils.utcnow if hasattr(core_utils.utcnow, "__wrapped__") else _utcnow_factory(real)
        for name, module in list(sys.modules.items()):
            if not name.startswith("moto") or name in _patched_modules or module is None:
                continue
            namespace = getattr(module, "__dict__", {})
            for attr, value in list(namespace.items()):
                if value is real:
                    setattr(module, attr, hooked)
                elif value is _time:
                    setattr(module, attr, _clock_time)
            _patched_modules.add(name)
        _modules_seen = len(sys.modules)

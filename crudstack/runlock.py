"""One provision or teardown at a time per local AWS (and per stack on AWS): a lock file in the state dir.

Why: teardown stops the local AWS when it holds nothing else. A provision started meanwhile met a server
that went away under it and retried EndpointConnectionError for minutes, with no word about why. So each
run takes the lock before its first AWS call, and a second run waits for it, saying who holds it
(pid, command, since when), up to a bound (LOCK_WAIT_S, or CRUDSTACK_LOCK_WAIT_S in the environment),
then exits with StackBusy. A provision that waited for another provision then finds everything made
and changes nothing (every step finds its resource by name and tag), so two at once still converge.
`--plan` runs only read: they share the lock with each other and wait for a provision or a teardown.

What is locked: with target local, the local AWS of the state dir, whatever the stack (a teardown of one
stack may stop the server another stack's provision is using); with target aws, one stack in one region.

fcntl.flock: the kernel lets go of the lock when its holder exits, however (SIGKILL, a crash), so a lock
file left behind never blocks anybody. The file's content (who holds it) is only for the waiting message.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

from crudstack.errors import ConfigError, StackBusy

LOCK_WAIT_S = 15 * 60     # a real-account provision or teardown takes minutes (IAM propagation, table deletion)
POLL_S = 0.2


def lock_path(state_dir: Path, target: str, stack: str, region: str) -> Path:
    return state_dir / ("local-aws.lock" if target == "local" else f"aws-{region}-{stack}.lock")


def wait_limit(environ=os.environ) -> float:
    """LOCK_WAIT_S, or CRUDSTACK_LOCK_WAIT_S (seconds, 0 or more) when set."""
    raw = environ.get("CRUDSTACK_LOCK_WAIT_S")
    if raw is None:
        return LOCK_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if not value >= 0:
        raise ConfigError([f"CRUDSTACK_LOCK_WAIT_S: found {raw!r}, expected a number of seconds, 0 or more "
                           f"(how long a run waits for another provision or teardown), e.g. 60"], "environment")
    return value


class RunLock:
    """The lock of one run; `release` lets it go (also when the process ends, whatever way)."""

    def __init__(self, path: Path, handle: TextIO):
        self.path, self._handle = path, handle

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def acquire(path: Path, *, what: str, stack: str, shared: bool = False, wait_s: float | None = None,
            say: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> RunLock:
    """Take the lock at path (shared: with other read-only runs), waiting up to wait_s; raises StackBusy after."""
    wait_s = wait_limit() if wait_s is None else wait_s
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")
    except OSError as exc:   # the state dir is a file, read-only, on a full disk...: the user's to fix, not a bug
        raise ConfigError([f"local.state_dir: cannot make the lock file {path} ({exc}); local.state_dir "
                           f"must name a folder this user can write (or that can be made): fix it in config.yaml"],
                          "the state dir") from None
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline, told = clock() + wait_s, False
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(path)
            if clock() >= deadline:
                handle.close()
                raise StackBusy(f"{holder} still holds {path} after {wait_s:g} s: one provision or teardown "
                                f"runs at a time on {what}. Wait for it to finish and run again, or stop it "
                                f"(Ctrl-C in its terminal{_kill_hint(path)}); CRUDSTACK_LOCK_WAIT_S=SECONDS waits longer")
            if not told:
                say(f"Waiting: {holder} is working on {what}, and one provision or teardown runs there at a time; "
                    f"waiting up to {wait_s:g} s for it to finish (Ctrl-C stops).")
                told = True
            sleep(POLL_S)
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "command": _command(), "stack": stack, "since": time.time()}))
    handle.flush()
    return RunLock(path, handle)


def _command() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def _read_holder(path: Path) -> dict:
    try:
        found = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _holder(path: Path) -> str:
    found = _read_holder(path)
    if not found.get("pid"):
        return "another provision or teardown"   # it has the lock but has not written its name yet
    since = time.time() - float(found.get("since") or time.time())
    return (f"{found.get('command') or 'a run'} (pid {found['pid']}, stack '{found.get('stack')}', "
            f"started {max(since, 0):.0f} s ago)")


def _kill_hint(path: Path) -> str:
    pid = _read_holder(path).get("pid")
    return f", or kill {pid}" if pid else ""

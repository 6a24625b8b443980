"""`provision.py --watch`: after provisioning, deploy each save as it happens.

    FileWatch        polls the Lambda code (code_dir/**/*.py) and config.yaml: size and mtime each
                     tick, then a content hash once the files have been quiet for a moment, so an
                     editor's write-then-rename burst is one change and a touch without an edit none
    CodeUpdate       a one-change-per-function "step" for the runner: update_function_code for each
                     function whose package changed, then its wait, nothing read first (the sha of a
                     package is known locally, and the watch remembers what it last deployed)
    Watch            one iteration (`deploy`: what changed -> what was done, one line each) and the
                     loop around it (`run`), with Ctrl-C letting a deploy in flight finish

A config.yaml save runs the whole provision again (the CLI supplies it): any setting may have
changed. A config.yaml that does not load is reported and the watch goes on with the last good one.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

from crudstack.calls import Call, Local
from crudstack.config import Config, load_config
from crudstack.errors import ConfigError, CrudStackError, DeploymentError, InterruptedRun
from crudstack.packaging import Package, build_package
from crudstack.plan import Action, Change, Context
from crudstack.runner import Reporter, run
from crudstack.steps.functions import FunctionsStep

Stat = tuple[int, int]   # (mtime_ns, size)


class FileWatch:
    """The watched files and what they held when last looked at."""

    def __init__(self, code_dir: Path, config_path: Path, *, poll_s: float = 0.05, quiet_s: float = 0.1,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.code_dir, self.config_path = code_dir, config_path
        self.poll_s, self.quiet_s = poll_s, quiet_s
        self.sleep, self.clock = sleep, clock
        self.stats: dict[Path, Stat] = self._stat_all()
        self.hashes: dict[Path, str] = {path: _digest(path) for path in self.stats}

    def files(self) -> list[Path]:
        found = [p for p in self.code_dir.rglob("*.py") if "__pycache__" not in p.parts] if self.code_dir.is_dir() else []
        return found + [self.config_path]

    def _stat_all(self) -> dict[Path, Stat]:
        stats = {}
        for path in self.files():
            try:
                st = path.stat()
            except OSError:   # gone between the listing and the stat (an editor's rename)
                continue
            stats[path] = (st.st_mtime_ns, st.st_size)
        return stats

    def poll(self) -> set[Path]:
        """The files whose content differs from last time (added and removed ones too), or an empty set;
        waits for quiet_s without a further change before it reads them."""
        now = self._stat_all()
        if now == self.stats:
            return set()
        quiet_since = self.clock()
        while self.clock() - quiet_since < self.quiet_s:
            self.sleep(self.poll_s)
            later = self._stat_all()
            if later != now:
                now, quiet_since = later, self.clock()
        hashes = {path: (self.hashes[path] if stat == self.stats.get(path) and path in self.hashes else _digest(path))
                  for path, stat in now.items()}
        changed = {p for p in hashes.keys() | self.hashes.keys() if hashes.get(p) != self.hashes.get(p)}
        self.stats, self.hashes = now, hashes
        return changed

    def wait(self, stop: Callable[[], bool]) -> set[Path]:
        """Poll until something changed (or stop() says so: then an empty set)."""
        while not stop():
            changed = self.poll()
            if changed:
                return changed
            self.sleep(self.poll_s)
        return set()

    def follow(self, code_dir: Path) -> None:
        """config.yaml moved lambda.code_dir: watch the new folder from now on, as it is now."""
        if code_dir != self.code_dir:
            self.code_dir = code_dir
            self.stats = self._stat_all()
            self.hashes = {path: _digest(path) for path in self.stats}


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "gone"


def package_shas(config: Config) -> dict[str, str]:
    """Each function's package sha (as Lambda reports CodeSha256), by its config name."""
    return {base: build_package(config.code_dir, fn.module).sha256 for base, fn in config.lambda_.functions.items()}


class CodeUpdate:
    """Step 3 again, for code only: one update_function_code per changed function, then its wait.

    The executor runs the functions' changes at once, so several (a change in common/) turn Active
    together. Nothing is read first: a function that is not there any more fails the update with
    ResourceNotFoundException, and the watch then runs the whole provision."""

    number = FunctionsStep.number
    title = FunctionsStep.title

    def __init__(self, packages: dict[str, Package], deployed: dict[str, str]):
        self.packages = packages            # config name -> Package to upload
        self.deployed = deployed            # config name -> sha last deployed (None: unknown)
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    def plan(self, ctx: Context) -> list[Change]:
        return [self._change(ctx, base, package) for base, package in self.packages.items()]

    def plan_teardown(self, ctx: Context) -> list[Change]:
        return []

    def _change(self, ctx: Context, base: str, package: Package) -> Change:
        name = ctx.config.function_name(base)

        def started(run) -> None:
            self.started[base] = time.monotonic()

        def settled(run) -> None:
            self.finished[base] = time.monotonic()
            self.deployed[base] = package.sha256

        # The functions update at once (a change in common/ is all five), each followed by the step's own wait.
        return Change("function", name, Action.UPDATE, {"code": (self.deployed.get(base), package.sha256)}, calls=[
            Local("note when the upload starts", started),
            Call("lambda", "update_function_code", {"FunctionName": name, "ZipFile": package.zip_bytes}),
            FunctionsStep()._ready(name),   # Active, or its failure named
            Local("note the new code as deployed", settled)])


@dataclass
class Watch:
    """What was deployed, and how to deploy the next save.

    `provision_again(config) -> Context` is the whole provision (the CLI's), for config.yaml saves and
    for a function that has gone missing; `say` prints one line."""

    ctx: Context
    config_path: Path
    provision_again: Callable[[Config], Context]
    say: Callable[[str], None] = print
    reporter: Reporter = field(default_factory=Reporter)
    deployed: dict[str, str] = field(default_factory=dict)
    # The run lock for a code update (crudstack/runlock.py; provision_again takes its own): a teardown started
    # beside the watch must not stop the local AWS under an update, nor an update start during a teardown.
    lock: Callable[[Config], ContextManager] = lambda config: contextlib.nullcontext()

    def __post_init__(self) -> None:
        self.config_path = Path(self.config_path)
        if not self.deployed:
            self.deployed = package_shas(self.ctx.config)   # what the provision just before has uploaded
        self.files: FileWatch | None = None
        self.stopping = False
        self.deploying = False

    @property
    def config(self) -> Config:
        return self.ctx.config

    def _shown(self, path: Path) -> str:
        for root in (self.config.code_dir.parent, self.config_path.parent, Path.cwd()):
            try:
                return path.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                continue
        return str(path)

    # -- one iteration --------------------------------------------------------------------------
    def deploy(self, changed: set[Path]) -> list[str]:
        """Deploy what the saved files changed; says (and returns) one line per change and a summary."""
        started = time.monotonic()
        saved = ", ".join(sorted(self._shown(p) for p in changed))
        if self.config_path.resolve() in {p.resolve() for p in changed}:
            lines = self._provision(saved, started)
        else:
            lines = self._update_code(saved, started)
        for line in lines:
            self.say(line)
        return lines

    def _provision(self, saved: str, started: float, why: str = "") -> list[str]:
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            return [f"error: {exc}", f"saved {saved} -> nothing deployed: fix {self._shown(self.config_path)} "
                                     f"and save it again (still watching, with the last good settings)"]
        try:
            self.ctx = self.provision_again(config)
        except InterruptedRun:
            raise
        except CrudStackError as exc:
            return [f"error: {exc}", f"saved {saved} -> the provision failed after {time.monotonic() - started:.2f} s "
                                     f"(still watching: save again to retry)"]
        self.deployed = package_shas(config)
        if self.files is not None:
            self.files.follow(config.code_dir)
        return [f"saved {saved} -> {why}provisioned again in {time.monotonic() - started:.2f} s"]

    def _update_code(self, saved: str, started: float) -> list[str]:
        try:
            packages = {base: build_package(self.config.code_dir, fn.module)
                        for base, fn in self.config.lambda_.functions.items()}
        except (OSError, ConfigError) as exc:   # a handler deleted or renamed, or a link out of lambda.code_dir
            return [f"error: {exc}", f"saved {saved} -> nothing deployed (still watching)"]
        stale = {base: p for base, p in packages.items() if p.sha256 != self.deployed.get(base)}
        if not stale:
            return [f"saved {saved} -> no function's code changed"]
        step = CodeUpdate(stale, self.deployed)
        try:
            with self.lock(self.config):
                run(self.ctx, self.reporter, steps=[step])
        except InterruptedRun:
            raise
        except CrudStackError as exc:
            if isinstance(exc, DeploymentError) and exc.code == "ResourceNotFoundException":
                # deleted behind our back: make the whole stack again
                return self._provision(saved, started, why="a function was missing, so ")
            return [f"error: {exc}", f"saved {saved} -> the update failed after {time.monotonic() - started:.2f} s "
                                     f"(still watching: save again to retry)"]
        lines = [f"{base}: code updated in {step.finished[base] - step.started[base]:.2f} s" for base in stale]
        count = f"{len(stale)} function{'s' if len(stale) != 1 else ''}"
        lines.append(f"saved {saved} -> {count} updated in {time.monotonic() - started:.2f} s")
        return lines

    # -- the loop -------------------------------------------------------------------------------
    def run(self, *, poll_s: float = 0.05, quiet_s: float = 0.1) -> int:
        """Watch until Ctrl-C; 0 when stopped so. A Ctrl-C during a deploy lets it finish first."""
        self.files = FileWatch(self.config.code_dir, self.config_path, poll_s=poll_s, quiet_s=quiet_s)
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            self.say(f"Watching {self._shown(self.config.code_dir)}/ and {self._shown(self.config_path)} "
                     f"for saves (Ctrl-C stops).")
            while not self.stopping:
                try:
                    changed = self.files.wait(lambda: self.stopping)
                except KeyboardInterrupt:   # Ctrl-C while idle
                    break
                if changed:
                    self.deploying = True
                    try:
                        self.deploy(changed)
                    finally:
                        self.deploying = False
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        self.say("Stopped watching.")
        return 0

    def _on_sigint(self, signum, frame) -> None:
        if self.deploying and not self.stopping:
            self.stopping = True
            print("\nCtrl-C: stopping once this deploy has finished (press Ctrl-C again to stop at once).",
                  file=sys.stderr, flush=True)
            return
        raise KeyboardInterrupt

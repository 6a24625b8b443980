"""Runs a plan's changes as a dependency graph: each change as soon as what it waits for is done, many at once.

A Change names what it waits for (`after`) and what it stands for (`provides`); a change starts once
every change of the run providing one of its `after` names is done. So the table and the role are made
at once, the five functions together once the role is there, the API's methods once their resource
exists, the alarms once the topic does, the deployment after every route, and a teardown in reverse.
Each change runs its records (crudstack/calls.py) in order, in a worker thread.

The AWS door's `Limiter` keeps every call under its service's documented control-plane rate
(crudstack/quotas.py), so many calls in flight never throttle themselves into retries.

When a change fails, nothing new starts; the changes in flight finish (their calls answer), then the
first failure is raised. Ctrl-C is the same: the calls in flight answer, nothing new starts.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from crudstack.aws import is_mutating
from crudstack.clock import run_at
from crudstack.plan import Change, Context

MAX_IN_FLIGHT = 16


@dataclass
class Node:
    index: int
    owner: Any                   # the step the change belongs to
    change: Change
    waits_for: set[int] = field(default_factory=set)
    started: float | None = None
    seconds: float | None = None
    begins_at: float = 0.0       # on the Aws's clock: once everything it waits for has ended
    ends_at: float = 0.0
    mutated: bool = True         # made a mutating call (False: what it would make was found already there)


class RunState:
    """What the records of one run share: the AWS door and the variables they save (crudstack.calls.Ref)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.aws = ctx.aws
        self.variables = ctx.variables
        self.sent = ctx.sent   # (service, operation, parameters) of every call a record made, as made
        self.stopping = threading.Event()   # set on a Ctrl-C: records make no new call, waits end
        self._thread = threading.local()

    def check(self) -> None:
        if self.stopping.is_set():
            raise KeyboardInterrupt

    def log(self, service: str, operation: str, params: dict) -> None:
        self.sent.append((service, operation, params))   # list.append is atomic: no lock needed
        mine = getattr(self._thread, "sent", None)
        if mine is not None:
            mine.append(operation)

    def begin_node(self) -> None:
        self._thread.sent = []

    def end_node(self) -> bool:
        """Whether the change this thread ran made a mutating call (a find that found, a skip, made none)."""
        sent = self._thread.sent
        self._thread.sent = None
        return any(is_mutating(op) for op in sent)


class ChangeFailed(Exception):
    def __init__(self, node: Node, error: BaseException):
        super().__init__(str(error))
        self.node, self.error = node, error


def graph(items: list[tuple[Any, Change]]) -> list[Node]:
    """Nodes for the changes that do something, each knowing which others it waits for."""
    nodes = [Node(i, owner, change) for i, (owner, change) in enumerate(items)]
    providers: dict[str, set[int]] = {}
    for node in nodes:
        for name in node.change.provides:
            providers.setdefault(name, set()).add(node.index)
    for node in nodes:
        for name in node.change.after:
            node.waits_for |= providers.get(name, set())
        node.waits_for.discard(node.index)
    return nodes


def execute(ctx: Context, items: list[tuple[Any, Change]], *,
            on_start: Callable[[Node], None] = lambda node: None,
            on_done: Callable[[Node], None] = lambda node: None,
            workers: int = MAX_IN_FLIGHT) -> list[Node]:
    """Run every change's records, in dependency order, up to `workers` at once.

    on_start and on_done are called on the calling thread (the reporter is not thread-safe). Raises
    ChangeFailed for the first change that failed (KeyboardInterrupt included), once nothing is in flight;
    an exception from on_done stops the run the same way and is raised as it is."""
    nodes = graph(items)
    run = RunState(ctx)
    events: queue.Queue = queue.Queue()
    done: set[int] = set()
    started: set[int] = set()
    stopping = run.stopping

    clock = ctx.aws.clock
    start = clock()

    def records(node: Node) -> None:
        for record in node.change.calls:
            if stopping.is_set():
                raise KeyboardInterrupt
            record.run(run)

    def work(node: Node) -> None:
        began = time.monotonic()
        failed: list[BaseException] = []

        def body() -> None:
            run.begin_node()
            try:
                with run.aws.foreign_errors():
                    records(node)
            except BaseException as exc:  # noqa: BLE001 - reported to the loop, which raises it
                failed.append(exc)
            node.mutated = run.end_node()

        with run.aws.working():
            _, node.ends_at = run_at(clock, node.begins_at, body)
        if failed:
            if isinstance(failed[0], KeyboardInterrupt):
                stopping.set()   # a Ctrl-C: the other changes in flight stop at their next call or wait
            events.put(("failed", node, failed[0], time.monotonic() - began))
        else:
            events.put(("done", node, None, time.monotonic() - began))

    failures: list[ChangeFailed] = []
    stopped_by: BaseException | None = None   # what on_done raised (a test's crash after a step)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="crudstack-change") as pool:
        last: Node | None = None
        while len(done) < len(nodes):
            try:
                if not failures and stopped_by is None and not stopping.is_set():
                    for node in nodes:
                        if node.index not in started and node.waits_for <= done:
                            started.add(node.index)
                            node.started = time.monotonic()
                            node.begins_at = max([start] + [nodes[i].ends_at for i in node.waits_for])
                            last = node
                            on_start(node)
                            pool.submit(work, node)
                if len(started) == len(done):
                    break   # stopped: nothing in flight, nothing more will start
                kind, node, error, seconds = events.get()
                node.seconds = seconds
                done.add(node.index)
                last = node
                if kind == "failed":
                    failures.append(ChangeFailed(node, error))
                    continue
                on_done(node)
            except KeyboardInterrupt as exc:   # Ctrl-C with no call on the wire: the changes in flight stop too
                stopping.set()
                failures.append(ChangeFailed(_running(nodes, started, done, last), exc))
            except BaseException as exc:  # noqa: BLE001 - what on_done raised (a test's crash after a step)
                stopped_by = stopped_by or exc
    clock.advance_to(max([start] + [node.ends_at for node in nodes]))
    if stopped_by is not None:
        raise stopped_by
    if failures:
        # Several changes may fail together (five functions denied at once): the first in the tutorial's
        # order is reported, whichever answered first; a Ctrl-C only when nothing else failed.
        # A Ctrl-C stops the changes in flight too: the first interrupt to arrive is where it came.
        real = [f for f in failures if not isinstance(f.error, KeyboardInterrupt)]
        raise min(real, key=lambda f: f.node.index) if real else failures[0]
    return nodes


def _running(nodes: list[Node], started: set[int], done: set[int], last: Node | None) -> Node:
    """Where a Ctrl-C came: a change in flight, else the one that last started or ended."""
    running = [n for n in nodes if n.index in started and n.index not in done]
    return running[0] if running else last or nodes[0]

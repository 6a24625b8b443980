"""Ctrl-C during a run: let the AWS calls in flight finish, then start nothing new.

Python's own SIGINT raises KeyboardInterrupt wherever the program happens to be, often inside
botocore reading an answer: AWS did the work and the run never learns of it. Every step copes
with that on the next run, but there is no need to make it happen: while a run's work is under way
(a request on the wire, or a change's thread between calls), Ctrl-C is only noted, and each thread
stops at its next call or wait (the runner turns that into InterruptedRun, naming the step; exit code
130). With nothing under way (the walkthrough's prompt), or on a second Ctrl-C, it stops at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Callable, TextIO


class GracefulStop:
    """Install with `with GracefulStop().attached(aws):` around a run (main thread only)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream   # None: sys.stderr as it is when Ctrl-C comes
        self.requested = False
        self._in_flight = 0            # requests on the wire, from any thread (a run has many at once)
        self._aws = None
        self._lock = threading.Lock()

    @property
    def _in_call(self) -> bool:
        return self._in_flight > 0

    # -- botocore hooks: a request is on the wire from request-created until needs-retry --------
    def _sending(self, **_) -> None:
        with self._lock:
            self._in_flight += 1

    def _answered(self, **_) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def checkpoint(self, **_) -> None:
        """Stop here if Ctrl-C came during the last call (a hook on before-call, and before each wait)."""
        if self.requested:
            raise KeyboardInterrupt

    def _on_sigint(self, signum, frame) -> None:
        # Stop at once when nothing is under way (waiting at the walkthrough's prompt) or on a second Ctrl-C;
        # else let every call in flight answer (a run's work goes on in many threads at once) and stop then.
        if self.requested or not (self._in_call or (self._aws is not None and self._aws.busy)):
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping once the AWS calls in flight have answered (press Ctrl-C again to stop at once).",
              file=self.stream or sys.stderr, flush=True)

    def attached(self, aws) -> "_Attached":
        return _Attached(self, aws)


class _Attached:
    def __init__(self, stop: GracefulStop, aws):
        self.stop, self.aws = stop, aws
        self._previous: Callable | int | None = None
        self._sleep = None

    def __enter__(self) -> GracefulStop:
        stop, aws = self.stop, self.aws
        stop._aws = aws
        aws.register("request-created", stop._sending)
        aws.register("needs-retry", stop._answered)
        aws.register("before-call", stop.checkpoint)
        self._sleep = aws.sleep

        def sleep(seconds: float) -> None:
            stop.checkpoint()
            self._sleep(seconds)

        aws.sleep = sleep
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, stop._on_sigint)
        return stop

    def __exit__(self, *exc) -> None:
        self.aws.sleep = self._sleep
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

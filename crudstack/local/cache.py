"""What the request path reads from moto and keeps until the next write that may change it.

An invoke-URL request resolves its stage, finds its function (in the gateway and again in the runtime),
and parses and evaluates the function's resource policy; none of that changes between two writes to the
local AWS, and reading it from moto each time costs more than the rest of the gateway. The server calls `changed()` for every write moto serves (but DynamoDB's, which
can change neither an API nor a function) before that write is answered, so a client that changed a
stage, a function or a policy sees the change on its next request, as it would without the cache.

Without `enable()` (a runtime or gateway used alone, a test under moto's mock, whose writes nobody
watches) nothing is kept and every call looks again. Whoever must act on a write (the Lambda runtime
stops the workers of a deleted or updated function) `subscribe`s: called on every `changed()`, cache
enabled or not, so it must be quick.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Hashable


class UntilWrite:
    def __init__(self) -> None:
        self._enabled = False
        self._generation = 0
        self._values: dict[Hashable, Any] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def enable(self) -> "UntilWrite":
        self._enabled = True
        return self

    def changed(self) -> None:
        with self._lock:
            self._generation += 1
            self._values.clear()
        for listener in self._listeners:
            listener()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """compute() once per key between two writes; what it raises is raised, and not kept."""
        if not self._enabled:
            return compute()
        try:
            return self._values[key]
        except KeyError:
            pass
        generation = self._generation
        value = compute()
        with self._lock:
            if generation == self._generation:  # no write since compute() started reading moto
                self._values[key] = value
        return value

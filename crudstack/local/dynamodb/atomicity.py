"""DynamoDB's per-item atomicity, which moto lacks: one DynamoDB request at a time."""

from __future__ import annotations

import threading
from typing import Callable, Iterable

from crudstack.local import request
from crudstack.local.wsgi import WsgiApp


class DynamoDBItemAtomicity:
    """WSGI middleware in front of moto: one DynamoDB request at a time.

    DynamoDB applies each write to an item atomically, its condition included: of two conditional
    writes racing on one item, one fails, and a read never sees half an update. moto checks the
    condition and then writes, with no lock, so two threads can both pass the check (seen here:
    20 parallel updates conditioned on one version let two succeed in 6 rounds of 30), and an
    optimistic-locking API would lose updates. moto's DynamoDB is CPU-bound under the GIL anyway,
    so serialising its requests costs little.
    """

    def __init__(self, app: WsgiApp):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not request.of(environ).dynamodb:
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                if hasattr(result, "close"):
                    result.close()

"""Exceptions of the local Lambda.

Raised to callers of the runtime (everything that goes wrong inside a function is an InvokeResult,
as on AWS); each is one answer of the Invoke API (awslambda/responses.py):

    LambdaError
     +-- FunctionNotFound      (also LookupError)   404 ResourceNotFoundException
     +-- InvalidRequestContent (also ValueError)    400 InvalidRequestContentException (not JSON)
     +-- RequestTooLarge       (also ValueError)    413 RequestTooLargeException
     +-- RuntimeClosed         (also RuntimeError)  503 ServiceException: invoke after shutdown()

Between the runtime and one worker process (awslambda/process.py), never raised to callers:

    WorkerError
     +-- WorkerExited      the process ended (crashed, exited, was killed) in the middle of a call
     +-- InitFailed        a cold start produced no usable worker (reason None: it timed out)
"""

from __future__ import annotations

from typing import Any


class LambdaError(Exception):
    """Base of the errors the local Lambda raises to its callers."""


class FunctionNotFound(LambdaError, LookupError):
    def __init__(self, arn: str):
        self.arn = arn
        super().__init__(f"Function not found: {arn}")


class InvalidRequestContent(LambdaError, ValueError):
    pass


class RequestTooLarge(LambdaError, ValueError):
    pass


class RuntimeClosed(LambdaError, RuntimeError):
    pass


class WorkerError(Exception):
    """Base of what goes wrong between the runtime and one worker process."""


class WorkerExited(WorkerError):
    """The worker process ended (crashed, exited, was killed) in the middle of a call."""


class InitFailed(WorkerError):
    """A cold start that produced no usable worker: reason None means it timed out."""

    def __init__(self, worker: Any, reason: str | None):
        super().__init__(reason or "init timed out")
        self.worker, self.reason = worker, reason

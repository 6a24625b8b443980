"""The one adapter to moto's internals that the local AWS reads outside patches/.

Every layer that reads moto's state in-process (the gateway, the runtime, the access check, the alarm
evaluator, the console, snapshots) goes through these few names, so a moto upgrade that moves one
breaks here, once, and tests/local/test_moto_backends.py names the seam. The changes we make to moto
are patches/ (patches/core.py, MotoChanged). Pinned: moto 5.2.1 (requirements.txt).

    backends(service)      moto's BackendDict of a service: apigateway, awslambda, cloudwatch, dynamodb,
                           iam, logs, sns, sts (e.g. backends("iam")[account]["global"])
    lambda_backend(a, r)   the Lambda backend in use (moto keeps functions in its docker or docker-less one)
    lock()                 moto's backend lock: what a reader takes to see a consistent state
    DEFAULT_ACCOUNT_ID     the account moto's tests and ours default to; default_account(): moto's, MOTO_ACCOUNT_ID aware
    account_of(key)        the account an access key belongs to, as moto's IAM says
    LambdaClientError      what moto's Lambda raises (a function not found, ...)
    dynamodb_handler()     what the DynamoDB fast path calls: (DynamoHandler.dispatch, moto's request recorder,
                           whether moto's app sends CORS headers)
    action_result(d)       moto's query-protocol answer of `d` (ActionResult), and empty_result()
    moto_app()             the WSGI app moto's server serves (moto.moto_server.werkzeug_app)
    backend_classes(), version(), service_module(name)   what a snapshot and the start-up need
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

PINNED = "5.2.1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto.core.DEFAULT_ACCOUNT_ID without MOTO_ACCOUNT_ID set

# service -> (module, attribute) of its BackendDict
BACKENDS = {
    "apigateway": ("moto.apigateway.models", "apigateway_backends"),
    "awslambda": ("moto.awslambda.models", "lambda_backends"),
    "cloudwatch": ("moto.cloudwatch.models", "cloudwatch_backends"),
    "dynamodb": ("moto.dynamodb.models", "dynamodb_backends"),
    "iam": ("moto.iam.models", "iam_backends"),
    "logs": ("moto.logs.models", "logs_backends"),
    "sns": ("moto.sns.models", "sns_backends"),
    "sts": ("moto.sts.models", "sts_backends"),
}


def backends(service: str) -> Any:
    module, name = BACKENDS[service]
    return getattr(importlib.import_module(module), name)


def lambda_backend(account_id: str, region: str) -> Any:
    from moto.awslambda.utils import get_backend

    return get_backend(account_id, region)


def default_account() -> str:
    from moto.core import DEFAULT_ACCOUNT_ID as account

    return account


def lock() -> Any:
    from moto.core.base_backend import backend_lock

    return backend_lock


def account_of(access_key: str) -> str:
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key)


def lambda_client_error() -> type[Exception]:
    from moto.awslambda.exceptions import LambdaClientError

    return LambdaClientError


def dynamodb_handler() -> tuple[Callable[..., Any], Callable[[Any], None], bool]:
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_api import recorder
    from moto.moto_server import werkzeug_app

    return DynamoHandler.dispatch, recorder._record_request, not werkzeug_app.DISABLE_GLOBAL_CORS


def action_result(result: dict[str, Any]) -> Any:
    from moto.core.responses import ActionResult

    return ActionResult(result)


def empty_result() -> Any:
    from moto.core.responses import EmptyResult

    return EmptyResult()


def moto_app() -> Any:
    # The same app ThreadedMotoServer and moto_server build.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


def backend_classes() -> tuple[type, type]:
    """(BackendDict, AccountSpecificBackend): what a snapshot walks to find every backend (state/snapshot.py)."""
    from moto.core.base_backend import AccountSpecificBackend, BackendDict

    return BackendDict, AccountSpecificBackend


def version() -> str:
    from moto import __version__

    return __version__


def service_module(service: str) -> str:
    """The moto package of a service's endpoint name (lambda -> awslambda)."""
    from moto.backends import ALT_SERVICE_NAMES

    return ALT_SERVICE_NAMES.get(service, service)

"""The contract between the local AWS and moto's internals (crudstack/local/moto_backends.py), pinned to
the moto version in requirements.txt: when moto changes, this fails and names the seam that moved."""

import inspect
import re
from pathlib import Path

import pytest

from crudstack.local import moto_backends

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def test_moto_is_the_version_the_adapter_was_written_for():
    pinned = re.search(r"^moto\[[^\]]*\]==([\w.]+)", REQUIREMENTS.read_text(), re.M)[1]
    assert moto_backends.PINNED == pinned, "moto_backends.PINNED and requirements.txt disagree: check every seam below"
    assert moto_backends.version() == pinned, (
        f"moto {moto_backends.version()} is installed, the adapter was checked against {pinned}: "
        "run this file, fix crudstack/local/moto_backends.py, then move PINNED and requirements.txt")


@pytest.mark.parametrize("service", sorted(moto_backends.BACKENDS))
def test_each_backend_dict_is_where_the_adapter_reads_it(service):
    backend_dict, _ = moto_backends.backend_classes()
    found = moto_backends.backends(service)
    assert isinstance(found, backend_dict), f"seam moto_backends.BACKENDS[{service!r}] {moto_backends.BACKENDS[service]}"


@pytest.mark.parametrize("seam, check", [
    ("lock", lambda: hasattr(moto_backends.lock(), "__enter__")),
    ("default_account", lambda: moto_backends.default_account() == moto_backends.DEFAULT_ACCOUNT_ID),
    ("account_of", lambda: re.fullmatch(r"\d{12}", moto_backends.account_of("AKIAIOSFODNN7EXAMPLE"))),
    ("lambda_backend", lambda: moto_backends.lambda_backend(moto_backends.DEFAULT_ACCOUNT_ID, "us-east-1") is not None),
    ("lambda_client_error", lambda: issubclass(moto_backends.lambda_client_error(), Exception)),
    ("dynamodb_handler", lambda: callable(moto_backends.dynamodb_handler()[0])
        and list(inspect.signature(moto_backends.dynamodb_handler()[1]).parameters)[:1] == ["request"]),
    ("action_result", lambda: moto_backends.action_result({"A": 1}) is not None),
    ("empty_result", lambda: moto_backends.empty_result() is not None),
    ("moto_app", lambda: callable(moto_backends.moto_app())),
    ("service_module", lambda: moto_backends.service_module("lambda") == "awslambda"),
])
def test_each_seam_still_fits(seam, check):
    assert check(), f"moto changed under crudstack/local/moto_backends.py {seam}()"

"""One moto server in a subprocess on 127.0.0.1 for the session, reset between scenarios, always stopped."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Baseline, Cli, MotoServer, baseline


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    with MotoServer(log=tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="session")
def stack_cli(moto_server, tmp_path_factory) -> Cli:
    return Cli(moto_server.endpoint, tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="session")
def clean(moto_server, stack_cli) -> Baseline:
    """A clean provision's state and call counts, measured once per session."""
    return baseline(moto_server, stack_cli)

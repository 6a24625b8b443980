"""Fixtures for the local AWS: servers in subprocesses on 127.0.0.1, always stopped by the test."""

from __future__ import annotations

import pytest

from tests.support.local_server import start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("local-aws"))
    yield running
    running.stop()

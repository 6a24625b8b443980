"""Who may call the console: a loopback Host, the console's own Origin, and that Origin on every write."""

from __future__ import annotations

import pytest

from crudstack.local.console.guard import refusal, split_host
from crudstack.local.server.guard import loopback_name


def environ(host="127.0.0.1:4566", method="GET", origin=None):
    env = {"REQUEST_METHOD": method}
    if host is not None:
        env["HTTP_HOST"] = host
    if origin is not None:
        env["HTTP_ORIGIN"] = origin
    return env


@pytest.mark.parametrize("host, expected", [("127.0.0.1:4566", ("127.0.0.1", "4566")), ("[::1]:80", ("::1", "80")),
                                            ("localhost", ("localhost", None)), ("::1", ("::1", None))])
def test_host_headers_are_split_into_name_and_port(host, expected):
    assert split_host(host) == expected


@pytest.mark.parametrize("name", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST", "app.localhost", "localhost."])
def test_loopback_addresses_and_localhost_names_are_this_machine(name):
    assert loopback_name(name)


@pytest.mark.parametrize("name", ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example", "10.0.0.1",
                                  "0.0.0.0", "192.168.1.2", "", "localhostx"])
def test_other_names_are_not(name):
    assert not loopback_name(name)


@pytest.mark.parametrize("host", ["127.0.0.1:4566", "localhost:4566", "[::1]:4566", "console.localhost:4566"])
def test_a_read_from_this_machine_without_origin_is_served(host):
    assert refusal(environ(host=host)) is None


def test_a_write_from_the_consoles_own_page_is_served():
    assert refusal(environ(method="POST", origin="http://127.0.0.1:4566")) is None
    assert refusal(environ(host="localhost:4566", method="POST", origin="http://LOCALHOST:4566")) is None


def test_a_rebound_host_name_is_refused_even_from_its_own_origin():
    why = refusal(environ(host="evil.example:4566", origin="http://evil.example:4566"))

    assert why is not None and why.startswith("Host evil.example:4566 is not this machine")


def test_a_missing_host_is_refused():
    assert "no Host header" in refusal(environ(host=None))


def test_a_host_with_a_garbled_port_is_refused():
    assert refusal(environ(host="127.0.0.1:45x6")) is not None


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:9999", "https://127.0.0.1:4566", "null"])
def test_another_origin_is_refused_for_reads_and_writes(origin):
    for method in ("GET", "POST"):
        why = refusal(environ(method=method, origin=origin))
        assert why is not None and why.startswith(f"Origin {origin} is not the console's own (http://127.0.0.1:4566)")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_write_without_origin_is_refused(method):
    why = refusal(environ(method=method))

    assert why is not None and "must carry the console's Origin header (http://127.0.0.1:4566)" in why

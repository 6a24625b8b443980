import socket

import pytest

from tests.conftest import NonLoopbackConnection


def test_a_connection_that_would_leave_loopback_fails_loudly():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NonLoopbackConnection):
            sock.connect(("203.0.113.7", 443))  # TEST-NET-3, never reached
    finally:
        sock.close()


def test_an_aws_host_name_is_refused_too():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NonLoopbackConnection):
            sock.connect(("dynamodb.us-east-1.amazonaws.com", 443))
    finally:
        sock.close()

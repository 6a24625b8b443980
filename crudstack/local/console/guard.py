"""Who may talk to the console: pages of the console itself, on this machine, and nothing else.

The local AWS listens on 127.0.0.1, but a browser is a confused deputy: any web page it has open can
send requests to 127.0.0.1, and a DNS-rebinding page can even read the answers under its own host name.
So, as LocalStack's own handlers check Origin on its local endpoints (localstack/localstack,
localstack/aws/handlers/cors.py), every /_console request is checked here:

- the Host header must name this machine (127.0.0.1, [::1] or any IPv6 loopback, localhost, *.localhost):
  a rebound name such as evil.example fails even when it resolves to 127.0.0.1;
- an Origin header, when present, must be the console's own origin (http:// + that Host);
- a state-changing request (anything but GET, HEAD, OPTIONS) must carry that Origin: browsers send it
  on every such fetch, and a request without it cannot be told from a cross-site form post;
- under a server running as root, a connection from a Lambda worker's sandbox user is refused: the
  console acts with the local AWS's own credentials, and a handler sets any Host and Origin it likes.

A refusal is 403 JSON naming what was wrong (responses.py). What counts as this machine is the
control-plane guard's rule (crudstack/local/server/guard.py), so the console and the AWS APIs can't
drift apart; the console adds its stricter Origin rules, since its page is same-origin by design.
"""

from __future__ import annotations

import os
from typing import Mapping

from crudstack.local.server.guard import loopback_host, split_host

__all__ = ["SAFE_METHODS", "refusal", "split_host"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def refusal(environ: Mapping[str, str]) -> str | None:
    """Why this request must be refused, or None when it may be served."""
    host = (environ.get("HTTP_HOST") or "").strip()
    if not host:
        return "the request has no Host header; open the console at http://127.0.0.1:<local.port>/_console"
    if not loopback_host(host):
        return (f"Host {host} is not this machine: the console answers only on 127.0.0.1, [::1] or localhost "
                f"(open http://127.0.0.1:<local.port>/_console)")
    own_origin = f"http://{host}".lower()
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None and origin.strip().lower() != own_origin:
        return (f"Origin {origin} is not the console's own ({own_origin}): other pages may not call the console; "
                f"use the console itself at {own_origin}/_console")
    if environ.get("REQUEST_METHOD", "GET").upper() not in SAFE_METHODS and origin is None:
        return (f"a {environ.get('REQUEST_METHOD')} request to the console must carry the console's Origin header "
                f"({own_origin}); send it from the console page")
    uid = _sandbox_peer(environ)
    if uid is not None:
        return (f"this connection comes from uid {uid}, a Lambda worker's sandbox user: the console acts with the "
                f"local AWS's own credentials and answers people, not functions (a function gets what its role "
                f"allows through the AWS APIs)")
    return None


def _sandbox_peer(environ: Mapping[str, str]) -> int | None:
    """The user id of the client's end of this loopback connection when it is a Lambda worker's sandbox
    user (awslambda/process.py SandboxUsers, or nobody: worker.py), else None. Workers run as those
    users only under a server running as root; Origin and Host cannot tell them from the console's page,
    since a program sets any header. The owner of a TCP socket is the uid column of /proc/net/tcp and
    tcp6 (https://www.kernel.org/doc/Documentation/networking/proc_net_tcp.txt); the client's socket is
    the one whose local port is the request's REMOTE_PORT and remote port the server's."""
    if os.geteuid() != 0:
        return None
    from crudstack.local.awslambda.process import SandboxUsers
    from crudstack.local.awslambda.worker import NOBODY

    try:
        local, remote = f":{int(environ['REMOTE_PORT']):04X}", f":{int(environ['SERVER_PORT']):04X}"
    except (KeyError, ValueError):
        return None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 7 and fields[1].endswith(local) and fields[2].endswith(remote):
                uid = int(fields[7])
                sandbox = SandboxUsers.FIRST <= uid < SandboxUsers.FIRST + SandboxUsers.COUNT or uid == NOBODY
                return uid if sandbox else None
    return None

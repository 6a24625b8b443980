"""WSGI helpers shared by the layers of the local AWS (the gateway, the journal, the server)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


def environ_headers(environ: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = environ.get("localaws.headers")
    if raw is not None:  # our HTTP server keeps the header names as sent, and repeats
        return tuple(raw)
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append(("-".join(p.capitalize() for p in key[5:].split("_")), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append(("-".join(p.capitalize() for p in key.split("_")), value))
    return tuple(headers)


def read_body(environ: Mapping[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""

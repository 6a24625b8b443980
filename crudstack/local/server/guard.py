"""Who may drive the local AWS's control plane: programs on this machine, never a web page.

The local AWS listens on 127.0.0.1, but a browser on this machine can still be made to send it
requests by any site the user visits:

- DNS rebinding: evil.example resolves to 127.0.0.1 a moment after the page loaded, and the page's
  scripts then call "their own" site. The request carries `Host: evil.example`, so only a loopback
  Host is accepted (127.0.0.1 and other loopback addresses, [::1], localhost, *.localhost; any port).
  *.localhost always resolves to loopback (RFC 6761, section 6.3), so no site can rebind it.
- Cross-site requests (CSRF): a page may send a "simple" request (a form POST, no custom headers)
  to http://127.0.0.1:4566 without asking first. Browsers name the page's origin in `Origin` and,
  newer ones, `Sec-Fetch-Site` (https://fetch.spec.whatwg.org/#origin-header,
  https://www.w3.org/TR/fetch-metadata/): a request from another origin is refused. An AWS API
  request must also carry a SigV4 Authorization header (or a presigned query), which a page can
  only add after a CORS preflight (https://fetch.spec.whatwg.org/#cors-safelisted-request-header):
  preflights (OPTIONS) to the AWS APIs are refused, and their answers carry no
  Access-Control-* header, as AWS's API endpoints send none (moto's server adds
  `Access-Control-Allow-Origin: *` through flask-cors, moto/moto_server/werkzeug_app.py; it is
  switched off in crudstack/local/patches/moto_config.py and stripped here).

The invoke URL (the deployed API) is not guarded here: it answers browsers with the API's own CORS.
A refusal is 403 JSON naming the rule and what to do. `loopback_host`, `same_origin` and
`refusal` are meant for any other local page (a console) that needs the same protection.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from typing import Callable, Iterable, Mapping
from urllib.parse import urlsplit

from crudstack.local.server.record import HEALTH_PATH

# moto's admin API (a dump of every model, secrets included; reset): signed like an AWS API call, and
# answered only for the local AWS's own credentials (crudstack/local/iam/middleware.py).
MOTO_API_PREFIX = "/moto-api/"

_SIGV4_HEADER = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=[^/\s,]+/\d{8}/[A-Za-z0-9-]+/[A-Za-z0-9.-]+/aws4_request\s*,\s*"
    r"SignedHeaders=[A-Za-z0-9;._-]+\s*,\s*Signature=[0-9a-fA-F]{64}\s*")
_PRESIGNED_PARTS = ("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Credential=", "X-Amz-Signature=")


@functools.lru_cache(maxsize=1024)  # a client sends the same few Host values: parse each once
def split_host(host: str) -> tuple[str, str | None] | None:
    """A Host header as (name, port): '127.0.0.1:4566' -> ('127.0.0.1', '4566'), '[::1]:4566' -> ('::1', '4566'),
    a bare IPv6 address '::1' -> ('::1', None); None when it is malformed (a port not digits, text after ']').
    The one parser of Host for the control plane and the console (console/guard.py)."""
    host = host.strip()
    if host.startswith("["):
        name, closed, rest = host[1:].partition("]")
        if not closed or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return None
        return name, rest[1:] or None
    name, colon, port = host.rpartition(":")
    if not colon or ":" in name:  # no port, or an IPv6 address without brackets
        return host, None
    return (name, port) if port.isdigit() else None


def loopback_host(host: str | None) -> bool:
    """Is this Host header (with or without a port) a name or address only this machine answers to?"""
    parts = split_host(host) if host else None
    return parts is not None and loopback_name(parts[0])


def loopback_name(name: str) -> bool:
    """Is this host name or address (no port, no brackets) one only this machine answers to?
    *.localhost always resolves to loopback (RFC 6761, section 6.3)."""
    name = name.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def same_origin(environ: Mapping) -> bool:
    """False when a browser says the request comes from a page of another origin. A request
    without Origin and Sec-Fetch-Site (curl, the SDKs, a same-origin GET) is not a cross-site one."""
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return False
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return True
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (a sandboxed frame, a file: page) and anything unparsable
    host = (environ.get("HTTP_HOST") or "").lower()
    netloc = parts.netloc.lower()
    default = ":443" if parts.scheme == "https" else ":80"
    return netloc == host or netloc + default == host or netloc == host + default


def sigv4_signed(environ: Mapping) -> bool:
    """Shaped like a SigV4 request (header or presigned URL); the signature itself is not checked."""
    if _SIGV4_HEADER.fullmatch(environ.get("HTTP_AUTHORIZATION", "")):
        return True
    query = environ.get("QUERY_STRING", "")
    return all(part in query for part in _PRESIGNED_PARTS)


def refusal(environ: Mapping) -> tuple[str, str] | None:
    """(rule, message) if this request to the control plane (anything but an invoke URL) is refused."""
    host = environ.get("HTTP_HOST")
    if not loopback_host(host):
        return ("loopback-host",
                f"the local AWS answers only requests addressed to a loopback host (127.0.0.1, [::1], localhost "
                f"or *.localhost), not Host {host!r}: a web page cannot reach it through DNS rebinding. Use the "
                f"endpoint http://127.0.0.1:<port> that provision.py prints.")
    path = environ.get("PATH_INFO", "")
    if path == HEALTH_PATH:
        return None
    if not same_origin(environ):
        source = environ.get("HTTP_ORIGIN") or f"Sec-Fetch-Site: {environ.get('HTTP_SEC_FETCH_SITE')}"
        return ("same-origin",
                f"a request from a web page of another origin ({source}) may not drive the local AWS. Call it "
                f"with an AWS SDK or CLI (AWS_ENDPOINT_URL=http://127.0.0.1:<port>); browsers reach only the "
                f"invoke URL of the deployed API.")
    if environ.get("REQUEST_METHOD") == "OPTIONS":
        return ("no-cors",
                "AWS API endpoints answer no CORS preflight, and neither does the local AWS: call the AWS APIs "
                "from an SDK or the CLI, not from a web page.")
    if not sigv4_signed(environ):
        return ("sigv4",
                "AWS API requests must be signed with Signature Version 4 (an 'Authorization: AWS4-HMAC-SHA256 "
                "Credential=..., SignedHeaders=..., Signature=...' header or a presigned URL). Use an AWS SDK or "
                "the AWS CLI with the local AWS's credentials: eval \"$(python -m crudstack.local credentials)\".")
    return None


def refuse(rule: str, message: str, start_response: Callable) -> Iterable[bytes]:
    body = json.dumps({"__type": "RequestRefused", "rule": rule, "message": message}).encode()
    start_response("403 Forbidden", [("Content-Type", "application/json"), ("x-amzn-ErrorType", "RequestRefused"),
                                     ("Content-Length", str(len(body)))])
    return [body]


def without_cors(start_response: Callable) -> Callable:
    """start_response that drops Access-Control-* headers (AWS's API endpoints send none)."""

    def start(status: str, headers: list, exc_info=None):
        kept = [(name, value) for name, value in headers if not name.lower().startswith("access-control-")]
        return start_response(status, kept, exc_info) if exc_info else start_response(status, kept)

    return start

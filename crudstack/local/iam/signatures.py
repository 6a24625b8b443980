"""Signature Version 4, checked: is a request signed by whom its credential scope names?

One check for the whole local AWS: the gateway's AWS_IAM methods (crudstack/local/apigateway/auth.py)
and the control plane (crudstack/local/iam/middleware.py) both use it, each turning its refusals into
its own errors.

The signature is recomputed with botocore's own SigV4Auth (canonical request, string to sign, signing
key) from the secret the local AWS holds for the access key, as moto does for its own APIs
(moto/iam/access_control.py), and compared in constant time. The request target is taken as sent
(still percent-encoded): that is what the client signed
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html). A
presigned URL (the signature in the query string) is checked the same way, its X-Amz-Signature left
out of the canonical query string as the page above says.

Refusals:
    SignatureRefused
     +-- Incomplete   not a complete SigV4 signature: a part missing, a malformed date, a scope that is not
     |                key/date/region/service/aws4_request
     +-- Mismatch     the signature is not the one the secret gives, it is more than 15 minutes old or early,
                      or its scope names a region no AWS partition has (as AWS answers it)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping
from urllib.parse import parse_qsl

ALGORITHM = "AWS4-HMAC-SHA256"
# SigV4 requests are refused more than 15 minutes from their X-Amz-Date
# (RequestExpired in docs.aws.amazon.com/apigateway/latest/api/CommonErrors.html and every service's
# CommonErrors page).
MAX_CLOCK_SKEW_S = 15 * 60
# A presigned URL is valid for X-Amz-Expires seconds from its X-Amz-Date, at most 7 days
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-query-string-auth.html, X-Amz-Expires).
MAX_PRESIGNED_EXPIRES_S = 7 * 24 * 3600
MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method. Consult the service documentation for details.")


class SignatureRefused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Incomplete(SignatureRefused):
    """Not a complete SigV4 signature."""


class Mismatch(SignatureRefused):
    """The signature does not match, or it is outside the 15-minute window."""


@contextlib.contextmanager
def refused_as(incomplete: Callable[[str], Exception], mismatch: Callable[[str], Exception]) -> Iterator[None]:
    """Raise this check's refusals as the caller's own errors (the gateway's 403s, the services' errors)."""
    try:
        yield
    except Incomplete as exc:
        raise incomplete(exc.message) from None
    except Mismatch as exc:
        raise mismatch(exc.message) from None


@dataclass(frozen=True)
class SignedRequest:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    presigned: bool = False
    expires: int | None = None      # a presigned URL's X-Amz-Expires, in seconds


def parse_authorization(authorization: str, headers: Mapping[str, str]) -> SignedRequest:
    """The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
    header (headers: lower-case names); Incomplete names what is missing, as AWS's message does."""
    algorithm, _, rest = authorization.strip().partition(" ")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, value = item.strip().partition("=")
        if eq:
            if name in parts:  # one reading only: the access check must see the key that was verified
                raise Incomplete(f"Authorization header has '{name}' more than once. Authorization={authorization}")
            parts[name] = value
    missing = [f"Authorization header requires '{name}' parameter." for name in ("Credential", "Signature", "SignedHeaders")
               if name not in parts]
    amz_date = headers.get("x-amz-date")
    if not amz_date:
        missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if algorithm != ALGORITHM or missing:
        # IncompleteSignatureException's message, listing what is missing, then the header as sent.
        raise Incomplete(" ".join(missing or [f"Unsupported authorization type: {algorithm}."])
                         + f" Authorization={authorization}")
    return _signed(parts["Credential"], parts["SignedHeaders"], parts["Signature"], amz_date, presigned=False)


def parse_presigned(query_string: str) -> SignedRequest:
    """The parts of a presigned URL's X-Amz-* query parameters."""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    query = dict(pairs)
    repeated = sorted({name for name, _ in pairs if name.startswith("X-Amz-")
                       and sum(1 for other, _ in pairs if other == name) > 1})
    if repeated:
        # The access check reads the caller from the query too (iam/requests.py): two values would let
        # it check one key while the signature is verified with another.
        raise Incomplete(f"A presigned request may give each X-Amz-* parameter once; {', '.join(repeated)} "
                         f"is given more than once.")
    missing = [name for name in ("X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date")
               if not query.get(name)]
    if query.get("X-Amz-Algorithm") != ALGORITHM or missing:
        raise Incomplete(f"A presigned request needs X-Amz-Algorithm={ALGORITHM} and "
                         f"{', '.join(missing) or 'its other X-Amz-* parameters'}.")
    expires = query.get("X-Amz-Expires")
    if expires is not None and not (expires.isascii() and expires.isdigit()
                                    and 1 <= int(expires) <= MAX_PRESIGNED_EXPIRES_S):
        raise Incomplete(f"X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGNED_EXPIRES_S} "
                         f"(7 days), not '{expires}'.")
    return _signed(query["X-Amz-Credential"], query["X-Amz-SignedHeaders"], query["X-Amz-Signature"],
                   query["X-Amz-Date"], presigned=True, expires=None if expires is None else int(expires))


def _signed(credential: str, signed_headers: str, signature: str, amz_date: str, *, presigned: bool,
            expires: int | None = None) -> SignedRequest:
    if not all(part.isascii() for part in (credential, signed_headers, signature, amz_date)):
        # A key, a scope and a hex signature are ASCII (and hmac.compare_digest refuses other strings).
        raise Incomplete("Credential, SignedHeaders, Signature and the date must be ASCII: an access key, a scope and "
                         "a hex signature are.")
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise Incomplete(f"Credential should have exactly 5 slash-delimited elements, e.g. "
                         f"keyID/date/region/service/term, got '{credential}'")
    if not known_region(scope[2]):
        # AWS's wording for a scope naming no region it has (InvalidSignatureException for JSON services,
        # SignatureDoesNotMatch for query ones: see iam/exceptions.py).
        raise Mismatch(f"Credential should be scoped to a valid region, not '{scope[2]}'. ")
    return SignedRequest(scope[0], scope[1], scope[2], scope[3],
                         tuple(h.strip().lower() for h in signed_headers.split(";") if h.strip()),
                         signature, amz_date, presigned, expires)


@functools.lru_cache(maxsize=1)
def _regions() -> frozenset[str]:
    import botocore.loaders

    partitions = botocore.loaders.create_loader().load_data("endpoints")["partitions"]
    return frozenset(region for partition in partitions for region in partition.get("regions", {}))


def known_region(region: str) -> bool:
    """A region of one of the partitions in botocore's endpoints data (moto builds its backends for
    those regions only, and answered any other with a 500: KeyError in its BackendDict)."""
    return region in _regions()


def check_date(amz_date: str, now: float, max_skew_s: int = MAX_CLOCK_SKEW_S, *, expires: int | None = None) -> None:
    """Incomplete for a date not in ISO 8601 basic format; Mismatch more than `max_skew_s` from now (15
    minutes for the services' APIs, 5 for an invoke URL: crudstack/local/apigateway/auth.py), or (a
    presigned URL's X-Amz-Expires) more than `expires` seconds after the date."""
    try:
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        raise Incomplete(f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See "
                         "http://en.wikipedia.org/wiki/ISO_8601") from None
    if abs(now - signed_at) > max_skew_s:
        def stamp(seconds: float) -> str:
            return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        minutes = max_skew_s // 60
        raise Mismatch(f"Signature expired: {amz_date} is now earlier than {stamp(now - max_skew_s)} "
                       f"({stamp(now)} - {minutes} min.)" if signed_at < now else
                       f"Signature not yet current: {amz_date} is still later than "
                       f"{stamp(now + max_skew_s)} ({stamp(now)} + {minutes} min.)")
    if expires is not None and now > signed_at + expires:
        raise Mismatch(f"Request has expired: signed at {amz_date} for {expires} seconds (X-Amz-Expires), "
                       f"now {dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.")


@functools.lru_cache(maxsize=256)
def _signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    """The SigV4 signing key, as botocore's SigV4Auth.signature derives it: the same for every request of a
    key, day, region and service, so it is derived once (four of the five HMACs of a check)."""
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def verify(method: str, raw_uri: str, headers: Mapping[str, str], body: bytes, signed: SignedRequest,
           secret_key: str) -> None:
    """Mismatch unless `signed.signature` is what `secret_key` gives for this request (headers: lower-case
    names; raw_uri: the request target as sent)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    if signed.presigned:  # the signature itself is not part of what was signed
        path, _, query = raw_uri.partition("?")
        kept = [pair for pair in query.split("&") if pair and not pair.startswith("X-Amz-Signature=")]
        raw_uri = path + ("?" + "&".join(kept) if kept else "")
    declared = headers.get("x-amz-content-sha256") if "x-amz-content-sha256" in signed.signed_headers else None
    if declared is not None and declared != hashlib.sha256(body).hexdigest() and not (
            signed.service == "s3" and declared.startswith(("UNSIGNED-PAYLOAD", "STREAMING-"))):
        # botocore's canonical request takes the payload hash from this header when there is one, so a
        # signature would cover whatever body the header claims. The hash is of the payload sent
        # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html,
        # HashedPayload); only S3 accepts UNSIGNED-PAYLOAD and streaming, and refuses a hash that is not the
        # body's (XAmzContentSHA256Mismatch, https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
        raise Mismatch("The provided 'x-amz-content-sha256' header does not match what was computed.")
    url = f"http://{headers.get('host', '127.0.0.1')}{raw_uri}"
    request = AWSRequest(method=method, url=url, data=body,
                         headers={name: headers.get(name, "") for name in signed.signed_headers})
    request.context["timestamp"] = signed.amz_date
    auth = SigV4Auth(Credentials(signed.access_key, secret_key), signed.service, signed.region)
    try:
        canonical = auth.canonical_request(request)
        string_to_sign = auth.string_to_sign(request, canonical)
    except ValueError:
        # A Host that is no URL's authority ("[", an IPv6 literal never closed: urlsplit refuses it) names
        # no host the client can have signed for.
        raise Mismatch(MISMATCH) from None
    key = _signing_key(secret_key, signed.amz_date[:8], signed.region, signed.service)
    if not hmac.compare_digest(hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest(), signed.signature):
        # AWS adds the canonical request and string to sign it computed, to compare with the client's.
        raise Mismatch(f"{MISMATCH}\n\nThe Canonical String for this request should have been\n'{canonical}'\n\n"
                       f"The String-to-Sign should have been\n'{string_to_sign}'\n")

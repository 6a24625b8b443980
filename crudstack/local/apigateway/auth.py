"""Who may call a method: API keys (apiKeyRequired) and AWS_IAM authorization (SigV4 + identity policies).

API keys (docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-api-key-source.html): the
caller sends the key in the X-API-Key header; API Gateway compares it with the keys of the usage plans
associated with the API's stage, and without a match answers 403 Forbidden. A disabled key matches
nothing (as LocalStack's api_key_validation.py handler checks too).

AWS_IAM (docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-control-access-using-iam-policies-to-invoke-api.html):
the request must be signed with Signature Version 4 for the service execute-api, and the caller's
identity policies must allow execute-api:Invoke on the method's ARN
arn:aws:execute-api:{region}:{account}:{api-id}/{stage}/{HTTP-VERB}/{path}
(api-gateway-iam-policy-examples-for-api-execution.html). The signature is recomputed with botocore's
own SigV4Auth from the secret the local IAM (an IAM user's access key) or STS (an assumed role's
session) holds for the access key, as moto does for its own APIs (moto/iam/access_control.py). The
local AWS's default credentials (access key `testing`, secret `testing`: crudstack/cli.py uses them) stand for the account's root user, which IAM never refuses
within its account. Policies are evaluated by the local IAM's evaluator (crudstack/local/iam/policy.py),
the one that checks the Lambda workers' own calls; a statement with a Condition neither allows nor
denies (a line is logged). Presigned URLs (the signature in the
query string) are not accepted: such a request is answered as one without authentication.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from crudstack.local.apigateway.events import GatewayRequest
from crudstack.local.apigateway.exceptions import (
    AccessDenied,
    IncompleteSignature,
    InvalidApiKey,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)
from crudstack.local.apigateway.models import PlanKey
from crudstack.local.cache import UntilWrite
from crudstack.local.iam.models import Session
from crudstack.local.iam.policy import Statement, evaluate, statements

log = logging.getLogger(__name__)

LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY = "testing", "testing"
# A signed request must reach AWS within five minutes of its X-Amz-Date, against replays ("Protect against
# potential replay attacks" in docs.aws.amazon.com/IAM/latest/UserGuide/reference_aws-signing.html); an
# invoke URL answers 403 "Signature expired: ... (... - 5 min.)". (The 15 minutes of RequestExpired in
# docs.aws.amazon.com/apigateway/latest/api/CommonErrors.html are the API Gateway management API's.)
MAX_CLOCK_SKEW_S = 5 * 60
ALGORITHM = "AWS4-HMAC-SHA256"


# ---------------------------------------------------------------------------------------- API keys

def check_api_key(plan_keys: Mapping[str, PlanKey], headers: Iterable[tuple[str, str]]) -> PlanKey:
    """The key the X-API-Key header names, in a usage plan of this stage and enabled; else InvalidApiKey."""
    value = next((v for k, v in headers if k.lower() == "x-api-key"), None)
    if not value:
        raise InvalidApiKey()
    key = plan_keys.get(value)
    if key is None or not key.enabled:
        raise InvalidApiKey()
    return key


# ---------------------------------------------------------------------------------------- AWS_IAM

@dataclass(frozen=True)
class Caller:
    """The identity an access key stands for, with what it needs to check a signature and a policy."""

    access_key: str
    secret_key: str
    session_token: str | None       # an assumed role's session must send it; an IAM user's key must not
    arn: str
    account_id: str
    user_id: str
    policies: tuple[Statement, ...]
    root: bool = False


@dataclass(frozen=True)
class _SignedRequest:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str


class IamAuthorizer:
    """SigV4 + identity policies for AWS_IAM methods. Credentials and policies are read from moto's IAM
    backend (an IAM user's keys) or the local IAM's view of an STS session (crudstack/local/iam/models.py),
    and kept until the next write (`cache`)."""

    def __init__(self, cache: UntilWrite | None = None, clock: Callable[[], float] = time.time,
                 iam_backends: Any = None):
        self.cache = cache if cache is not None else UntilWrite()
        self._clock = clock
        self._iam_backends = iam_backends

    def authorize(self, request: GatewayRequest, method_arn: str, api_account: str) -> Caller:
        """The caller, if the request is signed by a known identity allowed to invoke `method_arn`;
        else the Refused exception (and so the 403) API Gateway answers with."""
        headers: dict[str, str] = {}
        for name, value in request.headers:
            lower = name.lower()
            headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
        authorization = headers.get("authorization")
        if not authorization:
            raise MissingAuthenticationToken()
        signed = _parse_authorization(authorization, headers)
        if signed.service != "execute-api":
            raise IncompleteSignature("Credential should be scoped to correct service: 'execute-api'. ")
        api_region = method_arn.split(":")[3]
        if signed.region != api_region:
            # A key derived for another region: API Gateway's message names the scope's region (as quoted in
            # zenn.dev/hiroga/articles/api-gateway-cross-account-trouble-shooting), with its trailing space.
            raise IncompleteSignature(f"Credential should be scoped to a valid region, not '{signed.region[:64]}'. ")
        self._check_date(signed.amz_date)
        caller = self.cache.get(("iam-caller", signed.access_key, api_account),
                                lambda: self._find_caller(signed.access_key, api_account))
        if caller is None:
            raise UnrecognizedClient()
        token = headers.get("x-amz-security-token")
        if not caller.root and token != caller.session_token:
            raise UnrecognizedClient()
        self._check_signature(request, headers, signed, caller)
        if caller.root and caller.account_id == api_account:
            return caller
        # Not cached: method ARNs carry path values (items/42), and evaluating a few statements is cheap.
        verdict = _verdict(caller.policies, "execute-api:Invoke", method_arn)
        if verdict != "Allow":
            # The wording of repost.aws/knowledge-center/api-gateway-iam-sigv4-mismatch (no Allow) and
            # api-gateway-troubleshoot-403-forbidden (an explicit Deny).
            why = (" with an explicit deny" if verdict == "Deny"
                   else " because no identity-based policy allows the execute-api:Invoke action")
            raise AccessDenied(f"User: {caller.arn} is not authorized to perform: execute-api:Invoke on resource: "
                               f"{method_arn}{why}")
        return caller

    def _check_date(self, amz_date: str) -> None:
        try:
            signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            raise IncompleteSignature(f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See "
                                      "http://en.wikipedia.org/wiki/ISO_8601") from None
        now = self._clock()
        if abs(now - signed_at) > MAX_CLOCK_SKEW_S:
            def stamp(seconds: float) -> str:
                return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            raise InvalidSignature(f"Signature expired: {amz_date} is now earlier than {stamp(now - MAX_CLOCK_SKEW_S)} "
                                   f"({stamp(now)} - 5 min.)" if signed_at < now else
                                   f"Signature not yet current: {amz_date} is still later than "
                                   f"{stamp(now + MAX_CLOCK_SKEW_S)} ({stamp(now)} + 5 min.)")

    @staticmethod
    def _check_signature(request: GatewayRequest, headers: Mapping[str, str], signed: _SignedRequest,
                         caller: Caller) -> None:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        raw_uri = request.raw_uri or request.url_path
        url = f"http://{headers.get('host', '127.0.0.1')}{raw_uri}"
        aws_request = AWSRequest(method=request.http_method, url=url, data=request.body,
                                 headers={name: headers.get(name, "") for name in signed.signed_headers})
        aws_request.context["timestamp"] = signed.amz_date
        auth = SigV4Auth(Credentials(caller.access_key, caller.secret_key, caller.session_token),
                         signed.service, signed.region)
        canonical = auth.canonical_request(aws_request)
        string_to_sign = auth.string_to_sign(aws_request, canonical)
        if not hmac.compare_digest(auth.signature(string_to_sign, aws_request), signed.signature):
            # AWS adds the canonical request and string to sign it computed, to compare with the client's.
            raise InvalidSignature(f"{InvalidSignature.message}\n\nThe Canonical String for this request should have "
                                   f"been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n")

    # -- who the access key is -------------------------------------------------------------------

    def _find_caller(self, access_key: str, api_account: str) -> Caller | None:
        if access_key == LOCAL_ACCESS_KEY:
            return Caller(access_key, LOCAL_SECRET_KEY, None, f"arn:aws:iam::{api_account}:root", api_account,
                          api_account, (), root=True)
        iam_backends = self._users()
        for account_id, partitions in list(iam_backends.items()):
            for _, iam in list(partitions.items()):
                for user in list(iam.users.values()):
                    key = next((k for k in user.access_keys if k.access_key_id == access_key), None)
                    if key is None:
                        continue
                    if getattr(key, "status", "Active") != "Active":
                        return None
                    policies = [*user.policies.values(), *(_default_document(p) for p in user.managed_policies.values())]
                    for group in list(iam.groups.values()):
                        if user in group.users:
                            policies += [*group.policies.values(),
                                         *(_default_document(p) for p in group.managed_policies.values())]
                    return Caller(access_key, key.secret_access_key, None, user.arn, account_id, user.id,
                                  _statements(policies))
        session = Session.find(access_key)
        if session is not None:  # an assumed role's: the local IAM's own view of it (crudstack/local/iam/models.py)
            return Caller(access_key, session.secret_key, session.token, session.arn, session.account,
                          session.user_id, tuple(statements(session.policies(session.partition))))
        return None

    def _users(self) -> Any:
        if self._iam_backends is None:
            from moto.iam.models import iam_backends
            self._iam_backends = iam_backends
        return self._iam_backends


def _parse_authorization(authorization: str, headers: Mapping[str, str]) -> _SignedRequest:
    algorithm, _, rest = authorization.strip().partition(" ")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, value = item.strip().partition("=")
        if eq:
            parts[name] = value
    missing = [f"Authorization header requires '{name}' parameter." for name in ("Credential", "Signature", "SignedHeaders")
               if name not in parts]
    amz_date = headers.get("x-amz-date")
    if not amz_date:
        missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if algorithm != ALGORITHM or missing:
        # IncompleteSignatureException's message, listing what is missing, then the header as sent.
        raise IncompleteSignature(" ".join(missing or [f"Unsupported authorization type: {algorithm}."])
                                  + f" Authorization={authorization}")
    scope = parts["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise IncompleteSignature(f"Credential should have exactly 5 slash-delimited elements, e.g. "
                                  f"keyID/date/region/service/term, got '{parts['Credential']}'")
    return _SignedRequest(scope[0], scope[1], scope[2], scope[3],
                          tuple(h.strip().lower() for h in parts["SignedHeaders"].split(";") if h.strip()),
                          parts["Signature"], amz_date)


def _default_document(policy: Any) -> Any:
    """A managed policy's document: that of its default version."""
    version = next((v for v in getattr(policy, "versions", []) if v.is_default), None)
    return version.document if version is not None else getattr(policy, "document", None)


def _statements(documents: Iterable[Any]) -> tuple[Statement, ...]:
    return tuple(statements((f"identity policy {n}", document) for n, document in enumerate(documents, 1)))


def verdict(documents: Iterable[Any], action: str, resource: str) -> str | None:
    """"Deny" if a statement of these policy documents denies `action` on `resource`, else "Allow" if
    one allows it, else None; the local IAM's evaluator (crudstack/local/iam/policy.py) decides."""
    return _verdict(_statements(documents), action, resource)


def _verdict(policy_statements: tuple[Statement, ...], action: str, resource: str) -> str | None:
    decision = evaluate(list(policy_statements), action, [resource])
    if decision.skipped_conditions:
        log.info("identity policy statements with a Condition are not evaluated locally: %s",
                 ", ".join(st.describe() for st in decision.skipped_conditions))
    return "Deny" if decision.explicit else "Allow" if decision.allowed else None

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
own SigV4Auth (crudstack/local/iam/signatures.py, the check the control plane uses too) from the secret
the local IAM (an IAM user's access key) or STS (an assumed role's session) holds for the access key,
as moto does for its own APIs (moto/iam/access_control.py). The local AWS's own credentials
(crudstack/local/iam/credentials.py: provision, teardown and the console sign with them) stand for the
account's root user, which IAM never refuses within its account. Policies are evaluated by the local IAM's evaluator (crudstack/local/iam/policy.py),
the one that checks the Lambda workers' own calls; a statement with a Condition neither allows nor
denies (a line is logged). Presigned URLs (the signature in the
query string) are not accepted: such a request is answered as one without authentication.
"""

from __future__ import annotations

import logging
import time
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
from crudstack.local.iam import signatures
from crudstack.local.iam.credentials import LocalCredentials
from crudstack.local.iam.models import Caller, find_caller, identity_statements
from crudstack.local.iam.policy import Statement, evaluate
from crudstack.local import moto_backends

log = logging.getLogger(__name__)

# The root user's credentials when none are given (tests of the gateway alone); the server passes the
# tool's own (crudstack/local/iam/credentials.py).
LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY = "testing", "testing"
# A signed request must reach AWS within five minutes of its X-Amz-Date, against replays ("Protect against
# potential replay attacks" in docs.aws.amazon.com/IAM/latest/UserGuide/reference_aws-signing.html); an
# invoke URL answers 403 "Signature expired: ... (... - 5 min.)". (The 15 minutes of RequestExpired in
# docs.aws.amazon.com/apigateway/latest/api/CommonErrors.html are the API Gateway management API's.)
MAX_CLOCK_SKEW_S = 5 * 60


# ---------------------------------------------------------------------------------------- API keys

def api_key_header(headers: Iterable[tuple[str, str]]) -> str | None:
    """The X-API-Key header's value without the spaces and tabs around it, whichever side: they are not part of
    a field value ("A field value does not include leading or trailing whitespace", RFC 9110, section 5.5,
    https://www.rfc-editor.org/rfc/rfc9110#section-5.5), however the HTTP server in front parsed the line."""
    value = next((v for k, v in headers if k.lower() == "x-api-key"), None)
    return None if value is None else value.strip(" \t")


def check_api_key(plan_keys: Mapping[str, PlanKey], headers: Iterable[tuple[str, str]]) -> PlanKey:
    """The key the X-API-Key header names, in a usage plan of this stage and enabled; else InvalidApiKey."""
    value = api_key_header(headers)
    if not value:
        raise InvalidApiKey()
    key = plan_keys.get(value)
    if key is None or not key.enabled:
        raise InvalidApiKey()
    return key


# ---------------------------------------------------------------------------------------- AWS_IAM

class IamAuthorizer:
    """SigV4 + identity policies for AWS_IAM methods. Credentials and policies are read from moto's IAM
    backend (an IAM user's keys) or the local IAM's view of an STS session (crudstack/local/iam/models.py),
    and kept until the next write (`cache`)."""

    def __init__(self, cache: UntilWrite | None = None, clock: Callable[[], float] = time.time,
                 iam_backends: Any = None, root: LocalCredentials | None = None):
        self.cache = cache if cache is not None else UntilWrite()
        self._root = root or LocalCredentials(LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY)
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
        with signatures.refused_as(IncompleteSignature, InvalidSignature):
            signed = signatures.parse_authorization(authorization, headers)
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
        with signatures.refused_as(IncompleteSignature, InvalidSignature):
            signatures.check_date(amz_date, self._clock(), MAX_CLOCK_SKEW_S)

    @staticmethod
    def _check_signature(request: GatewayRequest, headers: Mapping[str, str], signed: signatures.SignedRequest,
                         caller: Caller) -> None:
        with signatures.refused_as(IncompleteSignature, InvalidSignature):
            signatures.verify(request.http_method, request.raw_uri or request.url_path, headers, request.body, signed,
                              caller.secret_key)

    # -- who the access key is -------------------------------------------------------------------

    def _find_caller(self, access_key: str, api_account: str) -> Caller | None:
        return find_caller(access_key, api_account, self._root, self._users())

    def _users(self) -> Any:
        if self._iam_backends is None:
            iam_backends = moto_backends.backends('iam')
            self._iam_backends = iam_backends
        return self._iam_backends


def verdict(documents: Iterable[Any], action: str, resource: str) -> str | None:
    """"Deny" if a statement of these policy documents denies `action` on `resource`, else "Allow" if
    one allows it, else None; the local IAM's evaluator (crudstack/local/iam/policy.py) decides."""
    return _verdict(identity_statements(documents), action, resource)


def _verdict(policy_statements: tuple[Statement, ...], action: str, resource: str) -> str | None:
    decision = evaluate(list(policy_statements), action, [resource])
    if decision.skipped_conditions:
        log.info("identity policy statements with a Condition are not evaluated locally: %s",
                 ", ".join(st.describe() for st in decision.skipped_conditions))
    return "Deny" if decision.explicit else "Allow" if decision.allowed else None

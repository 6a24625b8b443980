"""The access check in front of the AWS APIs (moto's and the Lambda Invoke API), and its refusals
in each service's wire format (crudstack/local/iam/exceptions.py says which).

Every signed request is authenticated (an access key the local AWS knows, a signature its secret
gives: models.py AccessCheck.authenticate); requests signed with a role's session are then checked
against the role's policies. The guard (crudstack/local/server/guard.py) has already refused unsigned
requests. moto's own /moto-api/ (which dumps every model, role sessions' keys included, and resets the
account) answers the local AWS's own credentials only."""

from __future__ import annotations

import json
import uuid
from typing import Callable, Iterable
from xml.sax.saxutils import escape

from crudstack.local.iam.exceptions import IncompleteSignature, Refused
from crudstack.local.iam.models import AccessCheck
from crudstack.local.server.guard import MOTO_API_PREFIX
from crudstack.local import request
from crudstack.local.wsgi import WsgiApp


class EnforceIdentityPolicies:
    def __init__(self, app: WsgiApp, check: AccessCheck, service: str | None = None):
        """service: the signing name every request to `app` must be scoped to, for an app reached by its
        path rather than by the scope (the Lambda Invoke API: 'lambda'); None: moto, routed by the scope."""
        self.app = app
        self.check = check
        self.service = service

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        asked = request.of(environ)  # who signed it: worked out at the edge (crudstack/local/request.py)
        who = asked.signer
        if who is None:
            if environ.get("HTTP_AUTHORIZATION") or "X-Amz-Credential=" in environ.get("QUERY_STRING", ""):
                return refusal(environ, "", IncompleteSignature(
                    "Credential should be key/yyyymmdd/region/service/aws4_request, e.g. "
                    "Credential=AKIA.../20260101/us-east-1/dynamodb/aws4_request"), start_response)
            return self.app(environ, start_response)
        body = asked.body
        try:
            caller = self.check.authenticate(environ, body, who)
            routed = "dynamodb" if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_") else self.service
            if routed is not None and who.service != routed:
                # DynamoDB calls are routed by their X-Amz-Target (dynamodb/responses.py) and invokes by their
                # path, while the access check reads the action's service from the signature's scope: signed
                # for 'monitoring', a role allowed cloudwatch:* ran any DynamoDB operation or invoked any
                # function. AWS's endpoints refuse a scope naming another service, as the gateway does for
                # execute-api (apigateway/auth.py).
                raise IncompleteSignature(f"Credential should be scoped to correct service: '{routed}'. ")
            if environ.get("PATH_INFO", "").startswith(MOTO_API_PREFIX) and not caller.root:
                raise Refused(f"{caller.arn} may not use moto's admin API (/moto-api/): only the local AWS's own "
                              f"credentials may (python -m crudstack.local credentials)")
            if caller.session_token is not None:  # an assumed role's session: its policies decide
                self.check.check(environ, body, who)
        except Refused as refused:
            return refusal(environ, who.service, refused, start_response)
        return self.app(environ, start_response)


def refusal(environ: dict, service: str, refused: Refused, start_response: Callable) -> Iterable[bytes]:
    request_id = str(uuid.uuid4())
    protocol = request.of(environ).protocol
    if protocol == "json":
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            body = {"__type": f"com.amazon.coral.service#{refused.json_code}", "Message": refused.message}
            content_type = "application/x-amz-json-1.0"
        else:
            body = {"__type": refused.json_code, "message": refused.message}
            content_type = "application/x-amz-json-1.1"
        data, headers = json.dumps(body).encode(), [("Content-Type", content_type)]
    elif protocol == "query":
        code = "AuthorizationError" if service == "sns" and refused.query_code == "AccessDenied" else refused.query_code
        data = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(refused.message)}"
                f"</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()
        headers = [("Content-Type", "text/xml")]
    else:  # rest, and Smithy RPC v2 (answered as before, in JSON)
        protocol = "rest"
        data = json.dumps({"Type": "User", "Message": refused.message}).encode()
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", f"{refused.json_code}:")]
    status = refused.status[protocol]
    headers += [("x-amzn-RequestId", request_id), ("Content-Length", str(len(data)))]
    start_response(f"{status} {'Bad Request' if status == 400 else 'Forbidden'}", headers)
    return [data]

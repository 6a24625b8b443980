"""Why the access check refused a request.

    Refused                 carries the message; each has AWS's error code per protocol
    ├── AccessDenied        no identity-based policy allows it, or one denies it
    ├── ExpiredToken        the session's credentials have expired
    ├── InvalidToken        an access key the local AWS does not know, or a session token not its own
    ├── IncompleteSignature not a complete SigV4 signature (a part missing, a malformed date or scope)
    └── InvalidSignature    the signature does not match the key's secret, is over 15 minutes old,
                            or its scope names no region AWS has

Codes and statuses as AWS answers them: DynamoDB (JSON 1.0) 400
com.amazon.coral.service#AccessDeniedException, the documented common error
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/CommonErrors.html); query protocols
(CloudWatch, IAM, STS) 403 AccessDenied in an ErrorResponse; SNS 403 AuthorizationError
(https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html); REST JSON (Lambda) 403
AccessDeniedException in x-amzn-ErrorType.

Who signed: DynamoDB answers 400 UnrecognizedClientException, InvalidSignatureException and
IncompleteSignatureException (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html);
query services 403 InvalidClientTokenId and 400 IncompleteSignature (their CommonErrors pages, e.g.
https://docs.aws.amazon.com/IAM/latest/APIReference/CommonErrors.html) and 403 SignatureDoesNotMatch for a
signature that does not match (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-troubleshooting.html);
Lambda's REST API 403 with the JSON codes.
"""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    json_code = "AccessDeniedException"
    query_code = "AccessDenied"
    status = {"json": 400, "query": 403, "rest": 403}

    def __init__(self, message: str, *args: Any):
        super().__init__(message, *args)
        self.message = message


class AccessDenied(Refused):
    def __init__(self, message: str, decision: Any, principal: str):
        super().__init__(message)
        self.decision, self.principal = decision, principal


class ExpiredToken(Refused):
    json_code = "ExpiredTokenException"
    query_code = "ExpiredToken"


class InvalidToken(Refused):
    json_code = "UnrecognizedClientException"
    query_code = "InvalidClientTokenId"


class IncompleteSignature(Refused):
    json_code = "IncompleteSignatureException"
    query_code = "IncompleteSignature"
    status = {"json": 400, "query": 400, "rest": 403}


class InvalidSignature(Refused):
    json_code = "InvalidSignatureException"
    query_code = "SignatureDoesNotMatch"

"""Why the access check refused a request.

    Refused                 carries the message; each has AWS's error code per protocol
    ├── AccessDenied        no identity-based policy allows it, or one denies it
    ├── ExpiredToken        the session's credentials have expired
    └── InvalidToken        the session token does not belong to the access key

Codes and statuses as AWS answers them: DynamoDB (JSON 1.0) 400
com.amazon.coral.service#AccessDeniedException, the documented common error
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/CommonErrors.html); query protocols
(CloudWatch, IAM, STS) 403 AccessDenied in an ErrorResponse; SNS 403 AuthorizationError
(https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html); REST JSON (Lambda) 403
AccessDeniedException in x-amzn-ErrorType.
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

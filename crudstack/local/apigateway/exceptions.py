"""Exceptions of the local API Gateway.

    ApiGatewayError
     +-- MalformedProxyResult (also ValueError)   the function answered, but not as a proxy result (-> 502)
     +-- Refused                                  the gateway answers the request itself, before the integration;
          |                                       each names its gateway response type and default answer
          +-- MissingAuthenticationToken   403  AWS_IAM method, no Authorization header
          +-- IncompleteSignature          403  an Authorization header that is not a complete SigV4 one
          +-- UnrecognizedClient           403  an access key the local IAM and STS do not know
          +-- InvalidSignature             403  the signature does not match, or it has expired
          +-- AccessDenied                 403  the caller's policies do not allow execute-api:Invoke
          +-- InvalidApiKey                403  no, unknown, disabled or unplanned API key
          +-- QuotaExceeded                429  the key's usage plan quota is used up
          +-- Throttled                    429  a usage plan's or the stage's token bucket is empty

Statuses, types and messages: docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html
(and api-gateway-api-key-source.html for the 403 Forbidden of a bad key); the 403s' messages and
x-amzn-ErrorType headers: repost.aws/knowledge-center/api-gateway-troubleshoot-403-forbidden.
"""

from __future__ import annotations


class ApiGatewayError(Exception):
    """Base of the local API Gateway's exceptions."""


class MalformedProxyResult(ApiGatewayError, ValueError):
    """The function answered, but not in the shape a proxy integration requires."""


class Refused(ApiGatewayError):
    """A request API Gateway refuses itself; `message` is what $context.error.message holds."""

    status = 403
    response_type = "DEFAULT_4XX"
    message = "Forbidden"
    body_key = "message"
    error_type: str | None = None   # the x-amzn-ErrorType header

    def __init__(self, message: str | None = None):
        if message is not None:
            self.message = message
        super().__init__(self.message)


class MissingAuthenticationToken(Refused):
    response_type = "MISSING_AUTHENTICATION_TOKEN"
    message = "Missing Authentication Token"
    error_type = "MissingAuthenticationTokenException"


class IncompleteSignature(Refused):
    # No type of its own among the gateway response types: DEFAULT_4XX applies.
    response_type = "DEFAULT_4XX"


class UnrecognizedClient(Refused):
    response_type = "DEFAULT_4XX"
    message = "The security token included in the request is invalid."
    error_type = "AccessDeniedException"


class InvalidSignature(Refused):
    response_type = "INVALID_SIGNATURE"
    error_type = "InvalidSignatureException"
    message = ("The request signature we calculated does not match the signature you provided. Check your AWS "
               "Secret Access Key and signing method. Consult the service documentation for details.")


class AccessDenied(Refused):
    response_type = "ACCESS_DENIED"
    error_type = "AccessDeniedException"
    # An identity policy's refusal reads {"Message": "User: ... is not authorized to perform: ..."}.
    body_key = "Message"


class InvalidApiKey(Refused):
    response_type = "INVALID_API_KEY"
    message = "Forbidden"
    error_type = "ForbiddenException"


class QuotaExceeded(Refused):
    status = 429
    response_type = "QUOTA_EXCEEDED"
    message = "Limit Exceeded"


class Throttled(Refused):
    status = 429
    response_type = "THROTTLED"
    message = "Too Many Requests"

"""Exceptions of the local API Gateway.

    ApiGatewayError
     +-- MalformedProxyResult (also ValueError)   the function answered, but not as a proxy result (-> 502)
"""


class ApiGatewayError(Exception):
    """Base of the local API Gateway's exceptions."""


class MalformedProxyResult(ApiGatewayError, ValueError):
    """The function answered, but not in the shape a proxy integration requires."""

"""The Lambda Invoke API over HTTP: POST /2015-03-31/functions/{name}/invocations, with AWS's status
codes, headers and errors (awslambda/exceptions.py names each)."""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from urllib.parse import parse_qs, unquote

from crudstack.local.awslambda.exceptions import FunctionNotFound, InvalidRequestContent, RequestTooLarge, RuntimeClosed
from crudstack.local.awslambda.models import DEFAULT_ACCOUNT_ID
from crudstack.local import moto_backends

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/,\s]+)/[^/]+/(?P<region>[^/]+)/")
_STATUS_TEXT = {200: "200 OK", 202: "202 Accepted", 204: "204 No Content", 400: "400 Bad Request",
                404: "404 Not Found", 413: "413 Request Entity Too Large", 429: "429 Too Many Requests",
                503: "503 Service Unavailable"}
_LOG_TAIL_BYTES = 4096


def _account_id(environ: dict, access_key: str | None) -> str:
    # The same order moto uses for its own responses.
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return environ["HTTP_X_MOTO_ACCOUNT_ID"]
    if access_key:
        get_account_id_from = moto_backends.account_of

        return get_account_id_from(access_key)
    return DEFAULT_ACCOUNT_ID


def invoke_api_app(runtime):
    """A WSGI app serving POST /2015-03-31/functions/{name}/invocations like AWS Lambda."""

    def respond(start_response, status: int, body: bytes, headers: dict[str, str]):
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
        start_response(_STATUS_TEXT[status], list(headers.items()))
        return [body]

    def error(start_response, status: int, code: str, body: dict, request_id: str):
        return respond(start_response, status, json.dumps(body).encode(),
                       {"x-amzn-ErrorType": code, "x-amzn-RequestId": request_id})

    def app(environ, start_response):
        request_id = str(uuid.uuid4())
        match = _INVOKE_PATH.match(environ.get("PATH_INFO", ""))
        if match is None or environ.get("REQUEST_METHOD") != "POST":
            return error(start_response, 404, "UnknownOperationException",
                         {"Type": "User", "message": "Unknown operation"}, request_id)
        name = unquote(match["name"])
        query = parse_qs(environ.get("QUERY_STRING", ""))
        qualifier = (query.get("Qualifier") or [None])[0]
        credential = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        region = credential["region"] if credential else os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        account_id = _account_id(environ, credential["key"] if credential else None)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        payload = environ["wsgi.input"].read(length) if length > 0 else b""
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        client_context = None
        if environ.get("HTTP_X_AMZ_CLIENT_CONTEXT"):
            try:
                client_context = json.loads(base64.b64decode(environ["HTTP_X_AMZ_CLIENT_CONTEXT"]))
            except ValueError:
                return error(start_response, 400, "InvalidRequestContentException",
                             {"Type": "User", "message": "Client context must be a valid Base64-encoded JSON object."},
                             request_id)
        try:
            if invocation_type == "DryRun":
                version = runtime.check_function(name, region=region, account_id=account_id, qualifier=qualifier)
                return respond(start_response, 204, b"", {"x-amzn-RequestId": request_id,
                                                           "X-Amz-Executed-Version": version})
            if invocation_type == "Event":
                request_id = runtime.invoke_async(name, payload, region=region, account_id=account_id,
                                                  qualifier=qualifier)
                return respond(start_response, 202, b"", {"x-amzn-RequestId": request_id})
            if invocation_type != "RequestResponse":
                return error(start_response, 400, "InvalidParameterValueException",
                             {"Type": "User", "message": f"Unsupported invocation type {invocation_type}"}, request_id)
            result = runtime.invoke(name, payload, region=region, account_id=account_id, qualifier=qualifier,
                                    client_context=client_context)
        except FunctionNotFound as exc:
            return error(start_response, 404, "ResourceNotFoundException",
                         {"Type": "User", "Message": str(exc)}, request_id)
        except InvalidRequestContent as exc:
            return error(start_response, 400, "InvalidRequestContentException",
                         {"Type": "User", "message": str(exc)}, request_id)
        except RequestTooLarge as exc:
            return error(start_response, 413, "RequestTooLargeException",
                         {"Type": "User", "message": str(exc)}, request_id)
        except RuntimeClosed as exc:
            return error(start_response, 503, "ServiceException", {"Type": "Service", "message": str(exc)}, request_id)
        if result.throttled:
            return respond(start_response, 429, result.payload,
                           {"x-amzn-ErrorType": "TooManyRequestsException", "x-amzn-RequestId": result.request_id})
        headers = {"x-amzn-RequestId": result.request_id, "X-Amz-Executed-Version": result.executed_version}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if environ.get("HTTP_X_AMZ_LOG_TYPE") == "Tail":
            headers["X-Amz-Log-Result"] = base64.b64encode(result.log.encode("utf-8")[-_LOG_TAIL_BYTES:]).decode()
        return respond(start_response, 200, result.payload, headers)

    return app

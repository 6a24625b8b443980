"""AWS_PROXY integrations: the Lambda API's permission check, the runtime, and the function's
result mapped to the HTTP answer (or to API Gateway's 500, 502 or 504)."""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from crudstack.local.apigateway.events import GatewayRequest
from crudstack.local.apigateway.exceptions import MalformedProxyResult
from crudstack.local.apigateway.models import DeployedIntegration, DeployedMethod, StageTarget
from crudstack.local.apigateway.responses import (EVENT_TOO_LARGE, FUNCTION_ERROR, INTERNAL_ERROR, TIMED_OUT,
                                                  HttpResponse, gateway_error)
from crudstack.local.awslambda.exceptions import RequestTooLarge
from crudstack.local.awslambda.permissions import check_invoke_permission, source_arn_for
from crudstack.local.cache import UntilWrite
from crudstack.local import moto_backends

log = logging.getLogger(__name__)

LAMBDA_URI = re.compile(
    r"^arn:aws[a-z-]*:apigateway:(?P<region>[a-z0-9-]+):lambda:path/2015-03-31/functions/(?P<function>.+)/invocations$"
)
FUNCTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:(?P<name>[A-Za-z0-9_-]+)(?::(?P<qualifier>[A-Za-z0-9$_-]+))?$"
)
_STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_]+)\}")
# Headers API Gateway computes itself; a function's copies are dropped.
_HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive"})


class GatewayRuntime(Protocol):
    """What the gateway needs from crudstack.local.awslambda.runtime.LambdaRuntime."""

    def invoke(self, function_arn_or_name: str, payload: bytes, *, region: str, account_id: str = ..., source: str = ...,
               deadline: float | None = ...) -> Any: ...



_PROXY_RESULT_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})


def _header_value(value: Any) -> str:
    # AWS accepts scalar header values and sends their JSON text (true, 5).
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MalformedProxyResult(f"header value {value!r} is not a string")


def map_proxy_result(payload: bytes) -> HttpResponse:
    """A Lambda proxy result -> the HTTP response. Raises MalformedProxyResult (-> 502) unless it is
    {statusCode: int, headers?: {str: str}, multiValueHeaders?: {str: [str]}, body?: str, isBase64Encoded?: bool}."""
    try:
        result = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedProxyResult(f"result is not JSON ({exc})") from None
    if not isinstance(result, dict):
        raise MalformedProxyResult(f"result is a {type(result).__name__}, not an object")
    unknown = set(result) - _PROXY_RESULT_KEYS
    if unknown:
        raise MalformedProxyResult(f"unexpected keys {sorted(unknown)}")
    status = result.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedProxyResult(f"statusCode {status!r} is not an HTTP status number")
    headers = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(headers, dict) or not isinstance(multi, dict):
        raise MalformedProxyResult("headers and multiValueHeaders must be objects")
    body = result.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedProxyResult(f"body is a {type(body).__name__}, not a string")
    is_base64 = result.get("isBase64Encoded", False)
    if not isinstance(is_base64, bool):
        raise MalformedProxyResult("isBase64Encoded must be true or false")
    if is_base64 and body:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedProxyResult("isBase64Encoded is true but body is not base64") from None
    else:
        raw = (body or "").encode("utf-8")

    # A key in both: multiValueHeaders' values win, as AWS documents.
    out: list[tuple[str, str]] = []
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResult(f"multiValueHeaders[{name!r}] is not a list")
        if name.lower() not in _HOP_BY_HOP:
            out.extend((name, _header_value(v)) for v in values)
    for name, value in headers.items():
        if name not in multi and name.lower() not in _HOP_BY_HOP:
            out.append((name, _header_value(value)))
    if not any(name.lower() == "content-type" for name, _ in out):
        out.append(("Content-Type", "application/json"))  # API Gateway's default
    return HttpResponse(status, out, raw)



@dataclass
class InvocationOutcome:
    response: HttpResponse
    integration_ms: float | None = None


class LambdaProxyInvoker:
    """AWS_PROXY integration: the Lambda API's permission check, then the runtime."""

    def __init__(self, runtime: GatewayRuntime, lambda_backend: Callable[[str, str], Any] | None = None):
        self.runtime = runtime
        # The runtime's lookups (cached in the server, crudstack/local/cache.py); a stand-in runtime has none.
        self.lookups = getattr(runtime, "lookups", None) or UntilWrite()
        self._lambda_backend = lambda_backend
        self._slow_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._slow_pool_lock = threading.Lock()

    def lambda_backend(self, account_id: str, region: str) -> Any:
        if self._lambda_backend is None:
            # moto keeps functions in the docker or the docker-less backend depending on its
            # lambda config; utils.get_backend picks the one in use.
            get_backend = moto_backends.lambda_backend
            self._lambda_backend = get_backend
        return self._lambda_backend(account_id, region)

    def invoke(self, integration: DeployedIntegration, target: StageTarget, request: GatewayRequest,
               method: DeployedMethod, event: dict[str, Any], where: str) -> InvocationOutcome:
        uri = _STAGE_VARIABLE.sub(lambda m: target.stage_variables.get(m.group(1), ""), integration.uri or "")
        uri_match = LAMBDA_URI.match(uri)
        fn_match = FUNCTION_ARN.match(uri_match.group("function")) if uri_match else None
        if fn_match is None:
            log.error("%s: execution failed due to configuration error: integration URI %r is not a Lambda "
                      "function invocation URI", where, uri)
            return InvocationOutcome(gateway_error(*INTERNAL_ERROR))
        function_arn = uri_match.group("function")
        fn_region, fn_account = fn_match.group("region"), fn_match.group("account")
        api = target.api
        source_arn = source_arn_for(api.region, api.account_id, api.api_id, target.stage, request.http_method,
                                    method.resource_path)

        name, qualifier = fn_match.group("name"), fn_match.group("qualifier")
        found = self.lookups.get(("invoke", fn_account, fn_region, name, qualifier, source_arn, api.account_id),
                                 lambda: self._permission(fn_account, fn_region, name, qualifier, source_arn, api.account_id))
        missing, function_timeout, refusal = found
        if missing is not None:
            log.error("%s: execution failed due to configuration error: Lambda function %s: %s", where, function_arn,
                      missing)
            return InvocationOutcome(gateway_error(*INTERNAL_ERROR))
        if refusal:
            log.error("%s: execution failed due to configuration error: Invalid permissions on Lambda function %s: %s",
                      where, function_arn, refusal)
            return InvocationOutcome(gateway_error(*INTERNAL_ERROR))

        payload = json.dumps(event).encode()
        timeout_ms = integration.timeout_ms
        started = time.perf_counter()
        # An invocation that finds every warm worker busy waits for one, but no longer than API Gateway
        # waits for its integration (awslambda/concurrency.py): then 504, as a slow integration gets.
        deadline = time.monotonic() + timeout_ms / 1000
        try:
            if function_timeout * 1000 > timeout_ms:
                # The function may outlive the integration timeout: wait for it no longer than AWS does
                # (the invocation carries on, as on AWS).
                future = self._pool().submit(self._call, function_arn, payload, fn_region, fn_account, deadline)
                try:
                    result = future.result(timeout=timeout_ms / 1000)
                except concurrent.futures.TimeoutError:
                    log.error("%s: execution failed due to a timeout error after %d ms (Lambda function %s)",
                              where, timeout_ms, function_arn)
                    return InvocationOutcome(gateway_error(*TIMED_OUT), (time.perf_counter() - started) * 1000)
            else:
                result = self._call(function_arn, payload, fn_region, fn_account, deadline)
        except RequestTooLarge as exc:
            log.error("%s: Lambda invocation of %s refused: %s", where, function_arn, exc)
            return InvocationOutcome(gateway_error(*EVENT_TOO_LARGE), (time.perf_counter() - started) * 1000)
        except Exception:
            log.exception("%s: Lambda invocation of %s failed", where, function_arn)
            return InvocationOutcome(gateway_error(*INTERNAL_ERROR), (time.perf_counter() - started) * 1000)
        integration_ms = (time.perf_counter() - started) * 1000
        if getattr(result, "waited_out", False) or integration_ms > timeout_ms:
            # Waiting for a worker and then running can together outlast the integration timeout: the
            # client gets API Gateway's 504 (later than on AWS, which answers at the timeout itself).
            log.error("%s: execution failed due to a timeout error after %d ms (Lambda function %s%s)", where,
                      integration_ms, function_arn, ": no local worker became free; raise local.lambda_concurrency"
                      if getattr(result, "waited_out", False) else "")
            return InvocationOutcome(gateway_error(*TIMED_OUT), integration_ms)
        return InvocationOutcome(self._map(result, where, function_arn), integration_ms)

    def _permission(self, account_id: str, region: str, name: str, qualifier: str | None, source_arn: str,
                    source_account: str) -> tuple[str | None, float, str | None]:
        """(why the Lambda API cannot find the function or None, its timeout in seconds, why its resource
        policy refuses API Gateway or None): what the Lambda API decides when API Gateway calls it."""
        LambdaClientError = moto_backends.lambda_client_error()

        try:
            backend = self.lambda_backend(account_id, region)
            function = backend.get_function(name, qualifier)
            try:
                policy = json.loads(json.loads(backend.get_policy(name, qualifier))["Policy"])
            except LambdaClientError:
                policy = None
        except LambdaClientError as exc:
            return str(getattr(exc, "message", exc)), 0.0, None
        return None, float(getattr(function, "timeout", 0) or 0), check_invoke_permission(policy, source_arn, source_account)

    def _call(self, function_arn: str, payload: bytes, region: str, account_id: str, deadline: float) -> Any:
        return self.runtime.invoke(function_arn, payload, region=region, account_id=account_id, source="api",
                                   deadline=deadline)

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._slow_pool_lock:
            if self._slow_pool is None:
                self._slow_pool = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="slow-invoke")
            return self._slow_pool

    @staticmethod
    def _map(result: Any, where: str, function_arn: str) -> HttpResponse:
        if result.throttled:
            # The Lambda API refused the invocation (429 TooManyRequestsException): API Gateway does not
            # pass 429 on, it answers 500 (docs.aws.amazon.com/lambda/latest/dg/services-apigateway-errors.html;
            # "Throttling issues" in repost.aws/knowledge-center/api-gateway-internal-server-error).
            log.error("%s: Lambda invocation failed with status: 429 (%s) for %s", where,
                      getattr(result, "throttle_reason", None) or "Rate Exceeded", function_arn)
            return gateway_error(*INTERNAL_ERROR)
        if result.function_error:
            # A timed-out function is an Unhandled function error on AWS too ("Task timed out after..."):
            # 502 when it times out before the integration does.
            log.error("%s: Lambda function %s failed (%s%s): %s", where, function_arn, result.function_error,
                      ", timed out" if result.timed_out else "", _clip(result.payload))
            return gateway_error(*FUNCTION_ERROR)
        try:
            return map_proxy_result(result.payload)
        except MalformedProxyResult as exc:
            log.error("%s: execution failed due to configuration error: Malformed Lambda proxy response from %s: %s",
                      where, function_arn, exc)
            return gateway_error(*FUNCTION_ERROR)

    def close(self) -> None:
        if self._slow_pool is not None:
            self._slow_pool.shutdown(wait=False, cancel_futures=True)


def _clip(payload: bytes, limit: int = 500) -> str:
    text = payload.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "..."

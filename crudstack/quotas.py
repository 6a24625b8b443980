"""AWS's documented control-plane rate quotas, as data: how often one account may call an operation.

A throttled call is retried no sooner than its operation's quota allows (crudstack/aws.py): retrying
DeleteRestApi after the usual second or two of backoff only spends another request of a budget that
AWS refills once every 30 seconds.

Keys are botocore operation names. Every number is from AWS's own pages, cited at each table; an
operation AWS gives no figure for is left out rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quota:
    requests: int      # this many requests ...
    per_s: float       # ... per this many seconds, per account and region
    burst: int | None = None

    @property
    def interval_s(self) -> float:
        return self.per_s / self.requests


# "Amazon API Gateway quotas", table "API Gateway quotas for creating, deploying and managing an API"
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#api-gateway-control-service-limits-table).
# Fixed quotas, per account: they cannot be increased. The table's portal rows and the V2 VPC link rows
# are left out: they belong to other APIs than the REST API one (botocore's "apigateway").
APIGATEWAY: dict[str, Quota] = {
    "CreateApiKey": Quota(5, 1),
    "CreateDeployment": Quota(1, 5),
    "CreateDocumentationVersion": Quota(1, 20),
    "CreateDomainName": Quota(1, 30),
    "CreateResource": Quota(5, 1),
    # 1 every 3 s for a Regional or private API, 1 every 30 s for an edge-optimized one; the key cannot
    # tell them apart, and crudstack creates Regional APIs (steps/api.py).
    "CreateRestApi": Quota(1, 3),
    "DeleteApiKey": Quota(5, 1),
    "DeleteDomainName": Quota(1, 30),
    "DeleteResource": Quota(5, 1),
    "DeleteRestApi": Quota(1, 30),
    "GetResources": Quota(5, 2),
    "ImportDocumentationParts": Quota(1, 30),
    "ImportRestApi": Quota(1, 3),       # Regional or private, as CreateRestApi (edge-optimized: 1 every 30 s)
    "PutRestApi": Quota(1, 1),
    "UpdateAccount": Quota(1, 20),
    "UpdateDomainName": Quota(1, 30),
    "UpdateUsagePlan": Quota(1, 20),
}
# Same table: "Other operations: no quota up to the total account quota"; "Total operations: 10 requests
# per second with a burst quota of 40 requests per second".
APIGATEWAY_OTHER = Quota(10, 1, burst=40)

# "Lambda quotas", section "Lambda API requests"
# (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html#api-requests). None can be increased.
LAMBDA: dict[str, Quota] = {
    "GetFunction": Quota(100, 1),
    "GetPolicy": Quota(15, 1),
}
# "Remainder of the control plane API requests (excludes invocation, GetFunction, and GetPolicy requests):
# 15 requests per second across all APIs (not 15 requests per second per API)."
LAMBDA_OTHER = Quota(15, 1)
# Invocation is the data plane: its limits are concurrency, not a request rate of the control plane.
LAMBDA_INVOCATIONS = frozenset({"Invoke", "InvokeAsync", "InvokeWithResponseStream"})


def quota_key(service: str, operation: str) -> str | None:
    """Which budget a call spends: its own operation's, or its service's shared one ("*") for the
    operations AWS lists no quota of their own for; None when AWS documents no rate for it."""
    if quota_for(service, operation) is None:
        return None
    own = APIGATEWAY if service == "apigateway" else LAMBDA
    return f"{service}:{operation}" if operation in own else f"{service}:*"


def quota_for(service: str, operation: str) -> Quota | None:
    """The documented rate quota of one control-plane operation (botocore names), or None if AWS gives none."""
    if service == "apigateway":
        return APIGATEWAY.get(operation, APIGATEWAY_OTHER)
    if service == "lambda":
        if operation in LAMBDA_INVOCATIONS:
            return None
        return LAMBDA.get(operation, LAMBDA_OTHER)
    return None

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


# "Amazon CloudWatch endpoints and quotas", table "Service quotas", rows "Rate of <operation> requests"
# (https://docs.aws.amazon.com/general/latest/gr/cw_region.html; the same figures as the CloudWatch User Guide's
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html). Each operation has a
# budget of its own; no shared account-wide rate is documented. Only the operations crudstack calls.
CLOUDWATCH: dict[str, Quota] = {
    "DeleteAlarms": Quota(3, 1),
    "DescribeAlarms": Quota(9, 1),
    "ListTagsForResource": Quota(10, 1),
    "PutMetricAlarm": Quota(3, 1),
    "TagResource": Quota(20, 1),
    "UntagResource": Quota(20, 1),
}

# "CloudWatch Logs quotas" (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html):
# DescribeLogGroups 5 transactions per second per account and Region; CreateLogStream 50 (its API reference says so
# too: "There is a limit of 50 TPS on CreateLogStream operations"). The Logs API Reference gives no rate for the
# other calls crudstack makes (CreateLogGroup, DeleteLogGroup, PutRetentionPolicy, TagLogGroup, ListTagsLogGroup),
# and their rows of the quotas page could not be read for this table: they are left out rather than guessed.
LOGS: dict[str, Quota] = {
    "CreateLogStream": Quota(50, 1),
    "DescribeLogGroups": Quota(5, 1),
}

# DynamoDB's control plane: "DynamoDB is introducing a control plane throttle limit of 2,500 requests per second"
# ("Best practices for managing the control plane in DynamoDB",
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-control-plane.html), shared by every
# control-plane operation; ListBackups has its own on top: "You can call ListBackups a maximum of five times per
# second" (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ListBackups.html).
DYNAMODB: dict[str, Quota] = {
    "ListBackups": Quota(5, 1),
}
DYNAMODB_CONTROL_PLANE = Quota(2500, 1)
# The data plane (items) is limited by capacity, not by these rates.
DYNAMODB_DATA_PLANE = frozenset({
    "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem", "BatchWriteItem",
    "TransactGetItems", "TransactWriteItems", "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction",
})

# SNS: each rate as the Amazon SNS API Reference states it on the operation's page
# (https://docs.aws.amazon.com/sns/latest/api/API_<Operation>.html; the same text is in botocore's
# botocore/data/sns/2010-03-31/service-2.json): ListTopics and ListSubscriptionsByTopic "throttled at 30
# transactions per second (TPS)", Subscribe and Unsubscribe at 100, TagResource: "Tagging actions are limited to
# 10 TPS per Amazon Web Services account, per Amazon Web Services Region". No shared SNS rate is documented there.
# CreateTopic, DeleteTopic, ListTagsForResource, GetTopicAttributes and SetTopicAttributes have no rate on their
# pages, and the "API throttling" rows of https://docs.aws.amazon.com/general/latest/gr/sns.html could not be read
# for this table: they are left out rather than guessed.
SNS: dict[str, Quota] = {
    "ListSubscriptionsByTopic": Quota(30, 1),
    "ListTopics": Quota(30, 1),
    "Subscribe": Quota(100, 1),
    "TagResource": Quota(10, 1),
    "Unsubscribe": Quota(100, 1),
}

# IAM: the IAM quotas page (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html) limits the
# size and number of objects and gives no request rate at all (AWS's knowledge-center article on IAM throttling,
# https://repost.aws/knowledge-center/iam-sts-throttling-error, names an account rate limit but no figure): IAM
# calls have no budget, and a throttle from IAM is retried with backoff like any other (crudstack/aws.py).
OWN: dict[str, dict[str, Quota]] = {
    "apigateway": APIGATEWAY, "lambda": LAMBDA, "cloudwatch": CLOUDWATCH, "logs": LOGS, "dynamodb": DYNAMODB,
    "sns": SNS,
}


def budgets(service: str, operation: str) -> list[tuple[str, Quota]]:
    """Every budget one call spends, as (key, quota): its operation's own, and its service's shared one.

    API Gateway's "Total operations" rate counts every request, those with a quota of their own too (the
    table's own rows are limits within the total); Lambda's shared rate "excludes ... GetFunction, and
    GetPolicy requests", the two with their own; DynamoDB's control-plane rate counts every control-plane
    request, ListBackups too."""
    if service == "lambda" and operation in LAMBDA_INVOCATIONS:
        return []
    if service == "dynamodb" and operation in DYNAMODB_DATA_PLANE:
        return []
    own = OWN.get(service, {}).get(operation)
    spent = [(f"{service}:{operation}", own)] if own is not None else []
    shared = {"apigateway": APIGATEWAY_OTHER, "dynamodb": DYNAMODB_CONTROL_PLANE, "lambda": LAMBDA_OTHER}.get(service)
    if shared is not None and (own is None or service != "lambda"):
        spent.append((f"{service}:*", shared))
    return spent


def quota_key(service: str, operation: str) -> str | None:
    """The budget that sets how soon a throttled call may be tried again: its own operation's if it has
    one, else its service's shared one ("*"); None when AWS documents no rate for it."""
    spent = budgets(service, operation)
    return spent[0][0] if spent else None


def quota_for(service: str, operation: str) -> Quota | None:
    """The documented rate quota of one control-plane operation (botocore names): its own, else its
    service's shared one; None if AWS gives none."""
    spent = budgets(service, operation)
    return spent[0][1] if spent else None

"""A function's resource-based policy, evaluated as the Lambda API does when API Gateway calls it."""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping


def _arn_like(pattern: str, value: str) -> bool:
    """IAM ArnLike: each of the six colon-separated parts matched alone; * and ? are wildcards."""
    p_parts, v_parts = pattern.split(":", 5), value.split(":", 5)
    if len(p_parts) != len(v_parts):
        return False
    return all(_string_like(p, v) for p, v in zip(p_parts, v_parts))


def _string_like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.S) is not None


_CONDITION_TESTS: dict[str, Callable[[str, str], bool]] = {
    "arnlike": _arn_like, "arnequals": str.__eq__, "stringlike": _string_like, "stringequals": str.__eq__,
}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def check_invoke_permission(policy: Mapping[str, Any] | None, source_arn: str, source_account: str) -> str | None:
    """None if the function's resource policy lets API Gateway invoke it from `source_arn`, else why not.

    AWS evaluates the statement's Principal (apigateway.amazonaws.com), Action (lambda:InvokeFunction)
    and Conditions (AWS:SourceArn, AWS:SourceAccount); a statement without a SourceArn condition lets
    any API in any account call the function, as on AWS.
    """
    if not policy or not policy.get("Statement"):
        return "the function has no resource-based policy (lambda add-permission was not called)"
    seen: list[str] = []
    for statement in _as_list(policy["Statement"]):
        if statement.get("Effect", "Allow") != "Allow":
            continue
        principal = statement.get("Principal")
        services = _as_list(principal.get("Service", [])) if isinstance(principal, dict) else _as_list(principal)
        if "apigateway.amazonaws.com" not in services and "*" not in services:
            continue
        actions = [a.lower() for a in _as_list(statement.get("Action", []))]
        if not {"lambda:invokefunction", "lambda:*", "*"} & set(actions):
            continue
        ok = True
        for operator, conditions in (statement.get("Condition") or {}).items():
            test = _CONDITION_TESTS.get(operator.lower())
            for key, expected in conditions.items():
                actual = {"aws:sourcearn": source_arn, "aws:sourceaccount": source_account}.get(key.lower())
                if test is None or actual is None or not any(test(str(e), actual) for e in _as_list(expected)):
                    ok = False
                    if key.lower() == "aws:sourcearn":
                        seen.extend(str(e) for e in _as_list(expected))
        if ok:
            return None
    if seen:
        return f"no statement's SourceArn ({', '.join(seen)}) matches {source_arn}"
    return "no statement allows apigateway.amazonaws.com to call lambda:InvokeFunction"


def source_arn_for(region: str, account_id: str, api_id: str, stage: str, http_method: str, resource_path: str) -> str:
    """The execute-api ARN API Gateway presents to Lambda as AWS:SourceArn, in the region's partition
    (arn:aws-cn:... in cn-north-1), as the local STS names the caller and so provision names permissions."""
    from crudstack.aws import partition_of_region

    partition = partition_of_region(region)
    return f"arn:{partition}:execute-api:{region}:{account_id}:{api_id}/{stage}/{http_method}/{resource_path.lstrip('/')}"

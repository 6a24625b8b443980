"""Identity-based policy evaluation for one request: an action on a resource.

As IAM decides within one account for a role's session with no session policy, boundary or SCP
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_policy-eval-basics.html):
an explicit Deny in any statement wins; otherwise an Allow is needed; otherwise the request is
implicitly denied (reference_policies_evaluation-logic_AccessPolicyLanguage_Interplay.html).

A statement applies when its Action (or NotAction) and Resource (or NotResource) match. Action
names are case-insensitive and take `*` and `?`
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html);
resource ARNs are case-sensitive with the same wildcards
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html).

moto has an evaluator (moto/iam/access_control.py, IAMPolicyStatement) but it knows no NotResource,
no `?`, matches actions case-sensitively, and turns an Allow whose Condition is not met into a
Deny; this one is small and follows the documents above. Conditions are not evaluated locally: a
statement with a Condition is left out (a conditional Allow grants nothing here, a conditional Deny
denies nothing), and the denial says so.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable


@functools.lru_cache(maxsize=4096)
def _pattern(text: str, ignore_case: bool) -> re.Pattern:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(regex, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


@dataclass(frozen=True)
class Statement:
    policy: str                 # where it is: "inline policy NAME" or "managed policy ARN"
    document: dict

    @property
    def effect(self) -> str:
        return str(self.document.get("Effect", ""))

    @property
    def conditional(self) -> bool:
        return bool(self.document.get("Condition"))

    def applies(self, action: str, resource: str) -> bool:
        doc = self.document
        if "NotAction" in doc:
            action_ok = not any(matches(p, action, ignore_case=True) for p in _as_list(doc["NotAction"]))
        else:
            action_ok = any(matches(p, action, ignore_case=True) for p in _as_list(doc.get("Action")))
        if not action_ok:
            return False
        if "NotResource" in doc:
            return not any(matches(p, resource) for p in _as_list(doc["NotResource"]))
        return any(matches(p, resource) for p in _as_list(doc.get("Resource")))

    def describe(self) -> str:
        sid = self.document.get("Sid")
        return f"{self.policy}{f' (statement {sid})' if sid else ''}"


@dataclass
class Decision:
    allowed: bool
    action: str
    resource: str
    denied_by: Statement | None = None          # an explicit Deny
    allowed_by: Statement | None = None
    skipped_conditions: list[Statement] = field(default_factory=list)

    @property
    def explicit(self) -> bool:
        return self.denied_by is not None

    def would_allow(self) -> dict:
        """The statement that, added to the role's policy, would allow this request."""
        return {"Effect": "Allow", "Action": self.action, "Resource": self.resource}


def statements(named_documents: Iterable[tuple[str, Any]]) -> list[Statement]:
    """Statements of (where, policy document as dict or JSON text) pairs; unreadable ones are left out
    (IAM refuses to store them, moto does not check)."""
    found = []
    for where, document in named_documents:
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError:
                continue
        if not isinstance(document, dict):
            continue
        body = document.get("Statement")
        for statement in [body] if isinstance(body, dict) else (body or []):
            if isinstance(statement, dict):
                found.append(Statement(where, statement))
    return found


def evaluate(policy_statements: list[Statement], action: str, resources: list[str]) -> Decision:
    """Allowed only if every resource is: a request touching two tables needs both."""
    decision = None
    for resource in resources or ["*"]:
        decision = _evaluate_one(policy_statements, action, resource)
        if not decision.allowed:
            return decision
    assert decision is not None
    return decision


def _evaluate_one(policy_statements: list[Statement], action: str, resource: str) -> Decision:
    allow = None
    skipped = []
    for statement in policy_statements:
        if not statement.applies(action, resource):
            continue
        if statement.conditional:
            skipped.append(statement)
            continue
        if statement.effect == "Deny":
            return Decision(False, action, resource, denied_by=statement)
        if statement.effect == "Allow" and allow is None:
            allow = statement
    return Decision(allow is not None, action, resource, allowed_by=allow, skipped_conditions=skipped)

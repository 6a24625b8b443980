"""The names the deployer policy reaches (crudstack/permissions.py builds its ARNs from them), for the steps
that must not read what it does not reach: with names: tutorial a listing holds the account's other functions,
alarms and log groups, and reading one of theirs would be denied on AWS.

Its own module, importing only config: the steps use it, and crudstack.permissions imports the steps.
"""

from __future__ import annotations

import fnmatch

from crudstack.config import Config


def scoped_names(config: Config) -> dict[str, list[str]]:
    """The names each scoped statement's ARNs end with: the stack prefix; or, with names: tutorial (no prefix: the
    console tutorial's names, which --adopt takes over and tags), exactly this stack's names, so that the
    policy reaches no other table, role or function of the account."""
    if config.names != "tutorial":
        prefixed = [f"{config.stack}-*"]
        return {"table": prefixed, "role": prefixed, "function": prefixed, "log group": prefixed, "topic": prefixed,
                "alarm": prefixed}
    functions = [config.function_name(base) for base in sorted(config.lambda_.functions)]
    return {"table": [config.table_name], "role": [config.role_name], "function": functions,
            # "log-group:NAME" and "log-group:NAME:*", as the prefix's wildcard matches both
            "log group": [form for name in functions for form in (name, f"{name}:*")], "topic": [config.topic_name],
            # the alarms are named after the functions and the API (steps/monitoring.py, desired_alarms)
            "alarm": [f"{name}-*" for name in functions] + [f"{config.api_name}-*"]}


def policy_names(config: Config, kind: str, name: str) -> bool:
    """Whether the deployer policy's statements for `kind` ("function", "alarm", "log group": a log group by the
    function it is named after) reach a resource of this name: "<stack>-*", or with names: tutorial exactly this
    stack's. Reading one they do not reach (its tags, its configuration) is denied on AWS."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in scoped_names(config)[kind])

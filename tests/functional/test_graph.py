"""The executor's dependency graph, exactly: which change waits for which, for a fresh provision and
for the teardown of what it made. Planned only (read calls against moto), so it takes seconds where a
whole run that shows the order by its calls takes minutes."""

from __future__ import annotations

import re

from crudstack.executor import graph
from crudstack.plan import Context
from crudstack.runner import Reporter, run


def waits(config, new_aws, *, teardown: bool) -> dict[str, set[str]]:
    """'kind name' -> the 'kind name' of every change it waits for (a REST API's random id left out)."""
    results = run(Context(config=config, aws=new_aws(config), target="aws"), Reporter(), teardown=teardown, apply=False)
    nodes = graph([(r.step, c) for r in results for c in r.changes if c.action.mutates and c.calls])

    def label(node) -> str:
        return re.sub(r" \(\w+\)$", "", f"{node.change.kind} {node.change.name}")

    return {label(node): {label(nodes[i]) for i in node.waits_for} for node in nodes}


def test_a_fresh_provision_waits_exactly_for_what_each_change_needs(config, new_aws):
    functions = [config.function_name(base) for base in config.lambda_.functions]
    role, policy, api, topic = (f"role {config.role_name}", f"inline policy {config.stack}-items-access", f"REST API {config.api_name}",
                                f"SNS topic {config.topic_name}")
    items, item = "resource /items", "resource /items/{id}"
    routes = {f"method {m} /items": items for m in ("GET", "POST")} | {
        f"method {m} /items/{{id}}": item for m in ("GET", "PUT", "DELETE")} | {
        "CORS preflight OPTIONS /items": items, "CORS preflight OPTIONS /items/{id}": item}
    responses = {"gateway response DEFAULT_4XX", "gateway response DEFAULT_5XX"}
    deployment = f"deployment {config.api_name}/prod"
    alarms = [f"alarm {name}-{metric}" for name in functions for metric in ("Errors", "Throttles", "DurationP99")]
    alarms += [f"alarm {config.api_name}-5XXError", f"alarm {config.api_name}-LatencyP99"]

    assert waits(config, new_aws, teardown=False) == {
        f"table {config.table_name}": set(), role: set(), policy: {role},
        **{f"function {name}": {role, policy} for name in functions},
        api: set(), items: {api}, item: {api, items},
        **{route: {api, resource} for route, resource in routes.items()},
        **{response: {api} for response in responses},
        **{f"permission apigateway -> {name}": {api, f"function {name}"} for name in functions},
        deployment: {api, items, item, *routes, *responses},
        "stage prod": {deployment}, "stage throttle prod (every method)": {"stage prod"},
        **{f"log group /aws/lambda/{name}": set() for name in functions},
        topic: set(), **{alarm: {topic} for alarm in alarms},
    }


def test_a_teardown_deletes_in_reverse_the_role_log_groups_and_table_once_the_functions_are_gone(config, new_aws, provision):
    provision()
    functions = {f"function {config.function_name(base)}" for base in config.lambda_.functions}
    api = f"REST API {config.api_name}"

    assert waits(config, new_aws, teardown=True) == {
        f"alarms {len(functions) * 3 + 2} alarms": set(), f"SNS topic {config.topic_name}": set(), api: set(),
        **{function: set() for function in functions},
        **{f"log group /aws/lambda/{function.removeprefix('function ')}": functions for function in functions},
        f"role {config.role_name}": functions,
        f"table {config.table_name}": functions | {api},
    }

"""The route matcher: a deployed API's resource tree and an HTTP method -> the method serving it."""

from __future__ import annotations

from dataclasses import dataclass

from crudstack.local.apigateway.models import DeployedApi, DeployedMethod, _RouteNode, _segments


@dataclass(frozen=True)
class RouteMatch:
    method: DeployedMethod
    path_parameters: dict[str, str]



def match_route(api: DeployedApi, http_method: str, path: str) -> RouteMatch | None:
    """The deployed method serving `http_method path`, or None (-> 403 Missing Authentication Token).

    A resource's own method wins over its ANY method, as on AWS; HEAD is not folded into GET.
    """
    found = _walk(api.routes, _segments(path), 0, {})
    if found is None:
        return None
    node, params = found
    method = node.methods.get(http_method.upper()) or node.methods.get("ANY")
    if method is None:
        return None
    return RouteMatch(method, params)


def _walk(node: _RouteNode, parts: list[str], i: int, params: dict[str, str]) -> tuple[_RouteNode, dict[str, str]] | None:
    if i == len(parts):
        return (node, params) if node.methods else None
    child = node.literals.get(parts[i])
    if child is not None:
        found = _walk(child, parts, i + 1, params)
        if found is not None:
            return found
    if node.param is not None:
        found = _walk(node.param[1], parts, i + 1, {**params, node.param[0]: parts[i]})
        if found is not None:
            return found
    if node.greedy is not None and node.greedy[1].methods:
        return node.greedy[1], {**params, node.greedy[0]: "/".join(parts[i:])}
    return None

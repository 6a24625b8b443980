"""What is deployed: the API as it was at CreateDeployment, which a stage serves.

moto keeps one live copy of each API and no history, so an undeployed put_method would be served
at once. AWS serves a stage from the deployment it points to, and a deployment is frozen when
created: `DeploymentSnapshots.record` copies moto's API into plain frozen data right after moto
creates a deployment (apigateway/recorder.py).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from crudstack.local.cache import UntilWrite

log = logging.getLogger(__name__)

# API Gateway's integration timeout for REST APIs (an integration may set timeoutInMillis lower).
DEFAULT_INTEGRATION_TIMEOUT_MS = 29_000


@dataclass(frozen=True)
class DeployedIntegrationResponse:
    status_code: str
    selection_pattern: str | None
    response_parameters: Mapping[str, str]
    response_templates: Mapping[str, str | None]


@dataclass(frozen=True)
class DeployedIntegration:
    type: str
    uri: str | None
    request_templates: Mapping[str, str | None]
    responses: tuple[DeployedIntegrationResponse, ...]
    timeout_ms: int = DEFAULT_INTEGRATION_TIMEOUT_MS


@dataclass(frozen=True)
class DeployedMethod:
    http_method: str
    resource_id: str
    resource_path: str
    integration: DeployedIntegration | None
    # status code -> the response headers the method response declares (put_method_response's
    # method.response.header.* keys). Only non-proxy integrations use them.
    responses: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass
class _RouteNode:
    """One path segment of the resource tree. API Gateway prefers, at each segment,
    a literal part over a {param} part over a greedy {proxy+} part."""

    methods: dict[str, DeployedMethod] = field(default_factory=dict)
    literals: dict[str, "_RouteNode"] = field(default_factory=dict)
    param: tuple[str, "_RouteNode"] | None = None
    greedy: tuple[str, "_RouteNode"] | None = None


@dataclass(frozen=True)
class DeployedApi:
    """An API as it was when a deployment was created; what a stage pointing at that
    deployment serves, whatever has been changed in the API since."""

    api_id: str
    deployment_id: str
    account_id: str
    region: str
    binary_media_types: tuple[str, ...]
    routes: _RouteNode

    @classmethod
    def from_resources(cls, *, api_id: str, deployment_id: str, account_id: str, region: str,
                       resources: Iterable[tuple],
                       binary_media_types: Iterable[str] = ()) -> "DeployedApi":
        """resources: (resource id, path like /items/{id}, {HTTP method: integration or None}) and,
        optionally, a fourth item {HTTP method: {status code: declared response header names}}."""
        root = _RouteNode()
        for resource_id, path, methods, *more in resources:
            method_responses = more[0] if more else {}
            node = root
            for part in _segments(path):
                if part.startswith("{") and part.endswith("+}"):
                    name = part[1:-2]
                    if node.greedy is None:
                        node.greedy = (name, _RouteNode())
                    node = node.greedy[1]
                elif part.startswith("{") and part.endswith("}"):
                    name = part[1:-1]
                    if node.param is None:
                        node.param = (name, _RouteNode())
                    node = node.param[1]
                else:
                    node = node.literals.setdefault(part, _RouteNode())
            for http_method, integration in methods.items():
                node.methods[http_method.upper()] = DeployedMethod(
                    http_method.upper(), resource_id, path, integration,
                    {status: frozenset(headers) for status, headers in method_responses.get(http_method, {}).items()})
        return cls(api_id, deployment_id, account_id, region, tuple(binary_media_types), root)



def _segments(path: str) -> list[str]:
    # API Gateway ignores a trailing slash and empty segments: /items/ is /items.
    return [part for part in path.split("/") if part]



def snapshot_rest_api(rest_api: Any, deployment_id: str) -> DeployedApi:
    """Copy a moto RestAPI's resources, methods and integrations into a DeployedApi."""
    resources = []
    for resource in list(rest_api.resources.values()):
        methods: dict[str, DeployedIntegration | None] = {}
        method_responses: dict[str, dict[str, list[str]]] = {}
        for http_method, method in list(resource.resource_methods.items()):
            method_responses[http_method] = {
                str(code): [key[len("method.response.header."):] for key in (response.response_parameters or {})
                            if key.startswith("method.response.header.")]
                for code, response in list((method.method_responses or {}).items())
            }
            integration = method.method_integration
            methods[http_method] = None if integration is None else DeployedIntegration(
                type=(integration.integration_type or "").upper(),
                uri=integration.uri,
                request_templates=dict(integration.request_templates or {}),
                responses=tuple(
                    DeployedIntegrationResponse(
                        status_code=str(response.status_code),
                        selection_pattern=response.selection_pattern or None,
                        response_parameters=dict(response.response_parameters or {}),
                        response_templates=dict(response.response_templates or {}),
                    )
                    for response in (integration.integration_responses or {}).values()
                ),
                timeout_ms=int(integration.timeout_in_millis or DEFAULT_INTEGRATION_TIMEOUT_MS),
            )
        resources.append((resource.id, resource.get_path(), methods, method_responses))
    return DeployedApi.from_resources(
        api_id=rest_api.id, deployment_id=deployment_id, account_id=rest_api.account_id,
        region=rest_api.region_name, resources=resources, binary_media_types=rest_api.binaryMediaTypes or (),
    )


@dataclass(frozen=True)
class StageTarget:
    """Where an invoke URL's api id and stage lead right now."""

    api: DeployedApi
    api_name: str
    stage: str
    stage_variables: Mapping[str, str]


class DeploymentSnapshots:
    """The deployed APIs of moto's in-process API Gateway backends.

    moto keeps one live copy of each API and no history, so an undeployed put_method would be
    served at once. AWS serves a stage from the deployment it points to, and a deployment is
    frozen when created; `record()` is called right after moto creates one (DeploymentRecorder).
    """

    def __init__(self, backends: Any = None):
        self._backends = backends
        self._snapshots: dict[tuple[str, str], DeployedApi] = {}
        self._locations: dict[str, tuple[str, str]] = {}  # api id -> (account, region)
        self._lock = threading.Lock()
        # Stage -> what it serves; the server enables it and tells it of every write (crudstack/local/cache.py).
        self.targets = UntilWrite()

    @property
    def backends(self) -> Any:
        if self._backends is None:
            from moto.apigateway.models import apigateway_backends
            self._backends = apigateway_backends
        return self._backends

    def _find_rest_api(self, api_id: str) -> Any | None:
        location = self._locations.get(api_id)
        if location is not None:
            rest_api = self.backends[location[0]][location[1]].apis.get(api_id)
            if rest_api is not None:
                return rest_api
        # API ids are unique across accounts and regions: look through every backend once, then cache.
        from moto.core.base_backend import backend_lock
        with backend_lock:
            candidates = list(self.backends.iter_backends())
        for account_id, region, backend in candidates:
            rest_api = backend.apis.get(api_id)
            if rest_api is not None:
                self._locations[api_id] = (account_id, region)
                return rest_api
        return None

    def record(self, api_id: str, deployment_id: str) -> DeployedApi | None:
        rest_api = self._find_rest_api(api_id)
        if rest_api is None or deployment_id not in rest_api.deployments:
            return None
        snapshot = snapshot_rest_api(rest_api, deployment_id)
        with self._lock:
            self._snapshots[(api_id, deployment_id)] = snapshot
        self.targets.changed()
        log.info("API %s: deployment %s recorded (%s)", api_id, deployment_id,
                 ", ".join(sorted(_describe_routes(snapshot.routes))) or "no methods")
        return snapshot

    def forget(self, api_id: str, deployment_id: str | None = None) -> None:
        self.targets.changed()
        with self._lock:
            for key in [k for k in self._snapshots if k[0] == api_id and deployment_id in (None, k[1])]:
                del self._snapshots[key]
            if deployment_id is None:
                self._locations.pop(api_id, None)

    def clear(self) -> None:
        self.targets.changed()
        with self._lock:
            self._snapshots.clear()
            self._locations.clear()

    # A stage serves the deployment it points to even after the API changed: what was deployed
    # is state, saved and restored with moto's (crudstack.local.state.durable).
    def dump(self) -> dict[tuple[str, str], DeployedApi]:
        with self._lock:
            return dict(self._snapshots)

    def load(self, snapshots: dict[tuple[str, str], DeployedApi]) -> None:
        self.targets.changed()
        with self._lock:
            self._snapshots = dict(snapshots)
            self._locations.clear()

    def resolve(self, api_id: str, stage_name: str) -> StageTarget | None:
        """The deployment a stage points to, or None (AWS: 403 for an unknown api or stage)."""
        return self.targets.get((api_id, stage_name), lambda: self._resolve(api_id, stage_name))

    def _resolve(self, api_id: str, stage_name: str) -> StageTarget | None:
        rest_api = self._find_rest_api(api_id)
        if rest_api is None:
            return None
        stage = rest_api.stages.get(stage_name)
        if stage is None or not stage.deployment_id:
            return None
        snapshot = self._snapshots.get((api_id, stage.deployment_id))
        if snapshot is None:
            # A deployment made without going through the HTTP API (e.g. moto's CloudFormation):
            # its creation was not seen, so the best copy left is the API as it is now.
            log.warning("API %s: deployment %s was not recorded when created; serving the API as it is now",
                        api_id, stage.deployment_id)
            snapshot = self.record(api_id, stage.deployment_id)
            if snapshot is None:
                return None
        # Stage variables are live on AWS too: changing them needs no deployment.
        return StageTarget(snapshot, rest_api.name, stage_name, dict(stage.variables or {}))


def _describe_routes(node: _RouteNode) -> Iterable[str]:
    for method in node.methods.values():
        yield f"{method.http_method} {method.resource_path}"
    for child in node.literals.values():
        yield from _describe_routes(child)
    for branch in (node.param, node.greedy):
        if branch is not None:
            yield from _describe_routes(branch[1])

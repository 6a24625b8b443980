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

from crudstack.local.apigateway.throttling import QuotaLimits, ThrottleLimits
from crudstack.local.cache import UntilWrite
from crudstack.local import moto_backends

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
    # put_method's authorizationType (NONE, AWS_IAM, ...) and apiKeyRequired: part of the method,
    # so deployed with it. (Class-level defaults: a snapshot saved before they existed still loads.)
    authorization_type: str = "NONE"
    api_key_required: bool = False


@dataclass(frozen=True)
class DeployedGatewayResponse:
    """A PutGatewayResponse customization as deployed: AWS applies a changed gateway response only
    once the API is deployed again (the console's walkthrough ends "Deploy the API to a new or
    existing stage", docs.aws.amazon.com/apigateway/latest/developerguide/set-up-gateway-response-using-the-console.html;
    LocalStack serves them from its deployment's copy of the API too,
    localstack/services/apigateway/next_gen/execute_api/handlers/gateway_exception.py)."""

    response_type: str
    status_code: int | None
    parameters: Mapping[str, str]
    templates: Mapping[str, str]


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
    gateway_responses: tuple[DeployedGatewayResponse, ...] = ()

    def gateway_response(self, response_type: str) -> DeployedGatewayResponse | None:
        return next((r for r in self.gateway_responses if r.response_type == response_type), None)

    @classmethod
    def from_resources(cls, *, api_id: str, deployment_id: str, account_id: str, region: str,
                       resources: Iterable[tuple],
                       binary_media_types: Iterable[str] = (),
                       gateway_responses: Iterable[DeployedGatewayResponse] = ()) -> "DeployedApi":
        """resources: (resource id, path like /items/{id}, {HTTP method: integration or None}) and,
        optionally, a fourth item {HTTP method: {status code: declared response header names}} and a
        fifth {HTTP method: (authorizationType, apiKeyRequired)}."""
        root = _RouteNode()
        for resource_id, path, methods, *more in resources:
            method_responses = more[0] if more else {}
            method_auth = more[1] if len(more) > 1 else {}
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
                authorization_type, api_key_required = method_auth.get(http_method, ("NONE", False))
                node.methods[http_method.upper()] = DeployedMethod(
                    http_method.upper(), resource_id, path, integration,
                    {status: frozenset(headers) for status, headers in method_responses.get(http_method, {}).items()},
                    (authorization_type or "NONE").upper(), bool(api_key_required))
        return cls(api_id, deployment_id, account_id, region, tuple(binary_media_types), root, tuple(gateway_responses))



def _segments(path: str) -> list[str]:
    # API Gateway ignores a trailing slash and empty segments: /items/ is /items.
    return [part for part in path.split("/") if part]



def snapshot_rest_api(rest_api: Any, deployment_id: str) -> DeployedApi:
    """Copy a moto RestAPI's resources, methods and integrations into a DeployedApi."""
    resources = []
    for resource in list(rest_api.resources.values()):
        methods: dict[str, DeployedIntegration | None] = {}
        method_responses: dict[str, dict[str, list[str]]] = {}
        method_auth: dict[str, tuple[str, bool]] = {}
        for http_method, method in list(resource.resource_methods.items()):
            method_auth[http_method] = (method.authorization_type or "NONE", bool(method.api_key_required))
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
        resources.append((resource.id, resource.get_path(), methods, method_responses, method_auth))
    gateway_responses = [
        DeployedGatewayResponse(
            response_type=str(response.response_type),
            status_code=int(response.status_code) if response.status_code not in (None, "") else None,
            parameters=dict(response.response_parameters or {}),
            templates={k: v for k, v in (response.response_templates or {}).items() if v is not None},
        )
        for response in list(getattr(rest_api, "gateway_responses", {}).values())
    ]
    return DeployedApi.from_resources(
        api_id=rest_api.id, deployment_id=deployment_id, account_id=rest_api.account_id,
        region=rest_api.region_name, resources=resources, binary_media_types=rest_api.binaryMediaTypes or (),
        gateway_responses=gateway_responses,
    )


@dataclass(frozen=True)
class StageTarget:
    """Where an invoke URL's api id and stage lead right now."""

    api: DeployedApi
    api_name: str
    stage: str
    stage_variables: Mapping[str, str]
    # The stage's methodSettings throttling, by settings key ("*/*", or "~1items/GET" for one method).
    # Live, like stage variables: update-stage needs no deployment.
    method_throttles: Mapping[str, ThrottleLimits] = field(default_factory=dict)

    def method_throttle(self, method: DeployedMethod) -> ThrottleLimits | None:
        """A method's own settings win over the stage's "*/*" ones (docs.aws.amazon.com/apigateway/latest/
        developerguide/api-gateway-request-throttling.html#apigateway-method-level-throttling-in-usage-plan)."""
        if not self.method_throttles:
            return None
        own = f"{method.resource_path.replace('/', '~1')}/{method.http_method}"
        return self.method_throttles.get(own) or self.method_throttles.get("*/*")


@dataclass(frozen=True)
class PlanKey:
    """An API key as a usage plan of a stage knows it: what the gateway checks for each request."""

    key_id: str
    enabled: bool
    plan_id: str
    throttle: ThrottleLimits | None
    quota: QuotaLimits | None


def _stage_throttles(method_settings: Mapping[str, Any] | None) -> dict[str, ThrottleLimits]:
    throttles = {}
    for key, settings in (method_settings or {}).items():
        rate, burst = settings.get("throttlingRateLimit"), settings.get("throttlingBurstLimit")
        if rate is not None and burst is not None:
            throttles[key] = ThrottleLimits(float(rate), int(burst))
    return throttles


def _plan_throttle(throttle: Mapping[str, Any] | None) -> ThrottleLimits | None:
    # ThrottleSettings: rateLimit (requests a second) and burstLimit (the bucket's size).
    if not throttle or throttle.get("rateLimit") is None or throttle.get("burstLimit") is None:
        return None
    return ThrottleLimits(float(throttle["rateLimit"]), int(throttle["burstLimit"]))


def _plan_quota(quota: Mapping[str, Any] | None) -> QuotaLimits | None:
    if not quota or quota.get("limit") is None or not quota.get("period"):
        return None
    return QuotaLimits(int(quota["limit"]), str(quota["period"]).upper(), int(quota.get("offset") or 0))


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
            apigateway_backends = moto_backends.backends('apigateway')
            self._backends = apigateway_backends
        return self._backends

    def _find_rest_api(self, api_id: str) -> Any | None:
        location = self._locations.get(api_id)
        if location is not None:
            rest_api = self.backends[location[0]][location[1]].apis.get(api_id)
            if rest_api is not None:
                return rest_api
        # API ids are unique across accounts and regions: look through every backend once, then cache.
        backend_lock = moto_backends.lock()
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
        # Stage variables and settings are live on AWS too: changing them needs no deployment.
        return StageTarget(snapshot, rest_api.name, stage_name, dict(stage.variables or {}),
                           _stage_throttles(stage.method_settings))

    def plan_keys(self, api_id: str, stage_name: str) -> Mapping[str, PlanKey]:
        """API key value -> the key and the usage plan that ties it to this stage. Live (a key or plan
        change needs no deployment) and kept until the next write, like what resolve() reads."""
        return self.targets.get(("plan-keys", api_id, stage_name), lambda: self._plan_keys(api_id, stage_name))

    def _plan_keys(self, api_id: str, stage_name: str) -> dict[str, PlanKey]:
        # Usage plans and keys live in the API's account and Region; the plan names the stage
        # (apiStages) and the key by id (CreateUsagePlanKey), never by any naming of ours.
        if self._find_rest_api(api_id) is None:
            return {}
        account_id, region = self._locations[api_id]
        backend = self.backends[account_id][region]
        index: dict[str, PlanKey] = {}
        for plan in list(backend.usage_plans.values()):
            if not any(s.get("apiId") == api_id and s.get("stage") == stage_name for s in plan.api_stages or []):
                continue
            for key_id in list(backend.usage_plan_keys.get(plan.id, {})):
                key = backend.keys.get(key_id)
                if key is not None:
                    index.setdefault(key.value, PlanKey(key.id, bool(key.enabled), plan.id,
                                                        _plan_throttle(plan.throttle), _plan_quota(plan.quota)))
        return index


def _describe_routes(node: _RouteNode) -> Iterable[str]:
    for method in node.methods.values():
        yield f"{method.http_method} {method.resource_path}"
    for child in node.literals.values():
        yield from _describe_routes(child)
    for branch in (node.param, node.greedy):
        if branch is not None:
            yield from _describe_routes(branch[1])

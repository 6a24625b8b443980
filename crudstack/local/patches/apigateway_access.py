"""What moto 5.2.1 does not do that AWS does for who may call an API, and provisioning needs: filled in
here, failing loudly if moto changed.

- UpdateMethod (PATCH /restapis/ID/resources/RID/methods/VERB): moto has no handler ("The update_method
  action has not been implemented"). AWS patches a method's `/authorizationType`, `/apiKeyRequired`,
  `/authorizerId` and `/authorizationScopes` in place (API Gateway API Reference, UpdateMethod and
  PatchOperation, https://docs.aws.amazon.com/apigateway/latest/api/API_UpdateMethod.html); provision.py
  repairs a method whose authorization was changed by hand, and switches api.auth, with it.
- UpdateUsagePlan's `/throttle/rateLimit`: moto keeps int(value), so "5.5" answers 500 and 10 comes back
  10 (an int). AWS's ThrottleSettings.rateLimit is a double (API Reference, ThrottleSettings), and
  terraform-provider-aws sends it as one (internal/service/apigateway/usage_plan.go, FormatFloat).
- DeleteUsagePlan of a plan already gone: moto raises KeyError (500); AWS answers NotFoundException.
"""

from __future__ import annotations

import json

from crudstack.local.patches.core import add, replace

_installed = False
# The method fields UpdateMethod may set that provisioning uses; values come as strings in a patch.
_BOOLEAN = {"/apiKeyRequired": "api_key_required"}
_TEXT = {"/authorizationType": "authorization_type", "/authorizerId": "authorizer_id"}


def install() -> None:
    """Patch moto in this process (the local AWS's, or a test's); safe to call more than once."""
    global _installed
    if _installed:
        return
    _update_method()
    _usage_plan_rate_as_double()
    _delete_missing_usage_plan()
    _installed = True


def _update_method() -> None:
    from moto.apigateway.exceptions import BadRequestException
    from moto.apigateway.responses import APIGatewayResponse

    def update_method(self) -> str:
        parts = self.path.split("/")
        method = self.backend.get_method(parts[2], parts[4], parts[6])
        for op in self._get_param("patchOperations") or []:
            path, value = op.get("path"), op.get("value")
            if op.get("op") != "replace" or path not in (*_BOOLEAN, *_TEXT):
                raise BadRequestException(f"Invalid patch operation specified. Must be one of: [replace] for {path!r}"
                                          if op.get("op") != "replace" else f"Invalid patch path {path}")
            if path in _BOOLEAN:
                setattr(method, _BOOLEAN[path], str(value).lower() == "true")
            else:
                setattr(method, _TEXT[path], value)
        return json.dumps(method.to_json())

    add(APIGatewayResponse, "update_method", update_method)


def _usage_plan_rate_as_double() -> None:
    from moto.apigateway.models import UsagePlan

    def apply_patch_operations(self, patch_operations):
        rest = []
        for op in patch_operations:
            if op.get("op") in ("add", "replace") and op.get("path") == "/throttle/rateLimit":
                self.throttle["rateLimit"] = float(op["value"])
            else:
                rest.append(op)
        return original(self, rest)

    original = replace(UsagePlan, "apply_patch_operations", apply_patch_operations)


def _delete_missing_usage_plan() -> None:
    from moto.apigateway.exceptions import UsagePlanNotFoundException
    from moto.apigateway.models import APIGatewayBackend

    def delete_usage_plan(self, usage_plan_id: str) -> None:
        if usage_plan_id not in self.usage_plans:
            raise UsagePlanNotFoundException()
        original(self, usage_plan_id)

    original = replace(APIGatewayBackend, "delete_usage_plan", delete_usage_plan)

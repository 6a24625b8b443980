"""What moto 5.2.1 does not do that AWS does for usage plans, and provisioning needs: filled in here,
failing loudly if moto changed (UpdateMethod is its own patch, apigateway_update_method.py).

- UpdateUsagePlan's `/throttle/rateLimit`: moto keeps int(value), so "5.5" answers 500 and 10 comes back
  10 (an int). AWS's ThrottleSettings.rateLimit is a double (API Reference, ThrottleSettings), and
  terraform-provider-aws sends it as one (internal/service/apigateway/usage_plan.go, FormatFloat).
- DeleteUsagePlan of a plan already gone: moto raises KeyError (500); AWS answers NotFoundException.
"""

from __future__ import annotations

from crudstack.local.patches.core import replace

_installed = False


def install() -> None:
    """Patch moto in this process (the local AWS's, or a test's); safe to call more than once."""
    global _installed
    if _installed:
        return
    _usage_plan_rate_as_double()
    _delete_missing_usage_plan()
    _installed = True


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

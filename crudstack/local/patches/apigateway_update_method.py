"""UpdateMethod on moto's API Gateway (a fix that could be offered to moto), failing loudly if moto changed.

UpdateMethod (PATCH /restapis/ID/resources/RID/methods/VERB): moto has no handler ("The update_method
action has not been implemented"). AWS patches a method's `/authorizationType`, `/apiKeyRequired`,
`/authorizerId` and `/authorizationScopes` in place (API Gateway API Reference, UpdateMethod and
PatchOperation, https://docs.aws.amazon.com/apigateway/latest/api/API_UpdateMethod.html); provision.py
repairs a method whose authorization was changed by hand, and switches api.auth, with it.
"""

from __future__ import annotations

import json

from crudstack.local.patches.core import add

# The method fields UpdateMethod may set that provisioning uses; values come as strings in a patch.
_BOOLEAN = {"/apiKeyRequired": "api_key_required"}
_TEXT = {"/authorizationType": "authorization_type", "/authorizerId": "authorizer_id"}
_installed = False


def install() -> None:
    global _installed
    if not _installed:
        _update_method()
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

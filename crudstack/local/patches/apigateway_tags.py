"""What moto 5.2.1 does not do that AWS does, and provisioning needs: filled in here, failing loudly if moto changed.

- API Gateway TagResource / UntagResource on a REST API: AWS tags a REST API by its ARN
  (arn:aws:apigateway:REGION::/restapis/ID, API Gateway API Reference, TagResource); moto handles only stage
  ARNs and takes the last part of a REST API's ARN for a stage name (NotFoundException "Invalid Rest API Id").
  provision.py sets tags changed in config.yaml on an existing REST API this way.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from crudstack.local.patches.core import replace

_installed = False


def install() -> None:
    """Patch moto in this process (the local AWS's, or a test's); safe to call more than once."""
    global _installed
    if _installed:
        return
    _tag_rest_apis()
    _installed = True


def _rest_api_id(response) -> str | None:
    """The REST API id of a /tags/<ARN> request naming a REST API itself (not a stage)."""
    parts = unquote(response.path.split("/tags/", 1)[1]).split("::", 1)[-1].strip("/").split("/")
    return parts[1] if len(parts) == 2 and parts[0] == "restapis" else None


def _tag_rest_apis() -> None:
    from moto.apigateway.responses import APIGatewayResponse

    def tag_resource(self) -> str:
        api_id = _rest_api_id(self)
        if api_id is None:
            return original_tag(self)
        api = self.backend.get_rest_api(api_id)
        api.tags = {**(api.tags or {}), **(self._get_param("tags") or {})}
        return json.dumps({})

    def untag_resource(self) -> str:
        api_id = _rest_api_id(self)
        if api_id is None:
            return original_untag(self)
        api = self.backend.get_rest_api(api_id)
        for key in self.querystring.get("tagKeys") or []:
            (api.tags or {}).pop(key, None)
        return json.dumps({})

    original_tag = replace(APIGatewayResponse, "tag_resource", tag_resource)
    original_untag = replace(APIGatewayResponse, "untag_resource", untag_resource)

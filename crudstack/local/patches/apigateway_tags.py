"""What moto 5.2.1 does not do that AWS does, and provisioning needs: filled in here, failing loudly if moto changed.

- API Gateway TagResource / UntagResource on a REST API: AWS tags a REST API by its ARN
  (arn:aws:apigateway:REGION::/restapis/ID, API Gateway API Reference, TagResource); moto handles only stage
  ARNs and takes the last part of a REST API's ARN for a stage name (NotFoundException "Invalid Rest API Id").
  provision.py sets tags changed in config.yaml on an existing REST API this way, and --adopt tags the REST API
  it takes over. moto's server had no route for these ARNs at all (404): added below.
- The same on an API key (arn:aws:apigateway:REGION::/apikeys/ID) and a usage plan (.../usageplans/ID),
  which AWS tags alike (TagResource: "The ARN of a resource that can be tagged"; the API keys and usage
  plans of auth: api_key carry our tags and are found by them).
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
    _route_tag_paths()
    _installed = True


def _route_tag_paths() -> None:
    """moto's server routes /tags/<ARN> only for a stage's ARN (moto/apigateway/urls.py): the server decodes the
    ARN's %2F, so a REST API's, API key's or usage plan's ARN matched no route (404) there, while moto in-process
    matched it encoded. The same handler, for those ARNs too; read by moto when its server app is built."""
    from moto.apigateway import urls
    from moto.apigateway.responses import APIGatewayResponse

    for kind in ("restapis", "apikeys", "usageplans"):
        urls.url_paths.setdefault(
            "{0}/tags/arn:(?P<partition>[^/]+):apigateway:(?P<region_name>[^/]+)::/" + kind + "/(?P<tagged_id>[^/]+)$",
            APIGatewayResponse.dispatch)


def _tagged(response):
    """The REST API, API key or usage plan a /tags/<ARN> request names (None for a stage: moto's own)."""
    parts = unquote(response.path.split("/tags/", 1)[1]).split("::", 1)[-1].strip("/").split("/")
    if len(parts) != 2:
        return None
    kind, ident = parts
    backend = response.backend
    if kind == "restapis":
        return backend.get_rest_api(ident)
    if kind == "apikeys":
        return backend.get_api_key(ident)
    if kind == "usageplans":
        return backend.get_usage_plan(ident)
    return None


def _tag_rest_apis() -> None:
    from moto.apigateway.responses import APIGatewayResponse

    def tag_resource(self) -> str:
        tagged = _tagged(self)
        if tagged is None:
            return original_tag(self)
        tagged.tags = {**(tagged.tags or {}), **(self._get_param("tags") or {})}
        return json.dumps({})

    def untag_resource(self) -> str:
        tagged = _tagged(self)
        if tagged is None:
            return original_untag(self)
        for key in self.querystring.get("tagKeys") or []:
            (tagged.tags or {}).pop(key, None)
        return json.dumps({})

    original_tag = replace(APIGatewayResponse, "tag_resource", tag_resource)
    original_untag = replace(APIGatewayResponse, "untag_resource", untag_resource)

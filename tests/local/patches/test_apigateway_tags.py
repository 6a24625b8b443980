"""TagResource on a REST API's, an API key's and a usage plan's own ARN through the local AWS's server over HTTP
(crudstack/local/patches/apigateway_tags.py): moto's server routed /tags/<ARN> for stage ARNs only, so these
answered 404 there (`provision.py --adopt` tags the REST API it takes over this way)."""

from __future__ import annotations

from tests.support.local_server import REGION


def test_a_rest_api_an_api_key_and_a_usage_plan_are_tagged_by_their_own_arn_over_http(server):
    apigw = server.client("apigateway")
    api = apigw.create_rest_api(name="console-made")["id"]
    key = apigw.create_api_key(name="console-key")["id"]
    plan = apigw.create_usage_plan(name="console-plan")["id"]
    for path in (f"/restapis/{api}", f"/apikeys/{key}", f"/usageplans/{plan}"):
        apigw.tag_resource(resourceArn=f"arn:aws:apigateway:{REGION}::{path}", tags={"managed-by": "crudstack"})

    assert apigw.get_rest_api(restApiId=api)["tags"] == {"managed-by": "crudstack"}
    assert apigw.get_api_key(apiKey=key)["tags"] == {"managed-by": "crudstack"}
    assert apigw.get_usage_plan(usagePlanId=plan)["tags"] == {"managed-by": "crudstack"}
    apigw.untag_resource(resourceArn=f"arn:aws:apigateway:{REGION}::/restapis/{api}", tagKeys=["managed-by"])
    assert not apigw.get_rest_api(restApiId=api).get("tags")

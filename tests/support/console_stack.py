"""The console tutorial's stack, built with plain boto3 calls as a person clicking through the console makes it.

No tags anywhere; the role with the two managed policies the tutorial attaches; four Python functions whose
code is the tutorial's (it keeps only id, name and description, and hard-codes the table's name); a REST API
"ItemsCrudApi" (not config.yaml's name: adoption finds it by its routes) with /items and /items/{id}, a
method per function with a Lambda proxy integration, the invoke permission the console adds for each, and
a deployment on stage prod. `client(service)` is any boto3 client factory (moto in-process, or the local AWS).
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from typing import Callable

ACCOUNT = "123456789012"
TABLE, ROLE, API_NAME, STAGE = "ItemsTable", "LambdaDynamoDBRole", "ItemsCrudApi", "prod"
MANAGED = ("AmazonDynamoDBFullAccess", "CloudWatchFullAccess")

# The tutorial's handlers: each reads the event API Gateway's proxy integration sends, and stores only
# id, name and description (no version, no dates).
_COMMON = '''import json
import boto3

table = boto3.resource("dynamodb").Table("ItemsTable")


def answer(status, body):
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
'''
HANDLERS = {
    "CreateItemFunction": ("POST", "/items", _COMMON + '''

def lambda_handler(event, context):
    body = json.loads(event["body"])
    table.put_item(Item={"id": body["id"], "name": body["name"], "description": body["description"]})
    return answer(200, {"message": "Item created", "id": body["id"]})
'''),
    "GetItemsFunction": ("GET", "/items", _COMMON + '''

def lambda_handler(event, context):
    return answer(200, table.scan().get("Items", []))
'''),
    "UpdateItemFunction": ("PUT", "/items/{id}", _COMMON + '''

def lambda_handler(event, context):
    body = json.loads(event["body"])
    table.put_item(Item={"id": event["pathParameters"]["id"], "name": body["name"], "description": body["description"]})
    return answer(200, {"message": "Item updated"})
'''),
    "DeleteItemFunction": ("DELETE", "/items/{id}", _COMMON + '''

def lambda_handler(event, context):
    table.delete_item(Key={"id": event["pathParameters"]["id"]})
    return answer(200, {"message": "Item deleted"})
'''),
}
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", source)
    return buffer.getvalue()


def build(client: Callable[[str], object], *, region: str = "us-east-1", account: str = ACCOUNT,
          runtime: str = "python3.12", key_type: str = "S", api_name: str = API_NAME) -> dict:
    """Make the tutorial's stack; returns {"api_id", "functions": {name: arn}}."""
    ddb, iam, lam, apigw = client("dynamodb"), client("iam"), client("lambda"), client("apigateway")
    # Step 1: DynamoDB -> Create table, partition key id (String); the console's default is provisioned capacity.
    ddb.create_table(TableName=TABLE, AttributeDefinitions=[{"AttributeName": "id", "AttributeType": key_type}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    # Step 2: IAM -> Create role for Lambda, AmazonDynamoDBFullAccess + CloudWatchFullAccess.
    role_arn = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    for name in MANAGED:
        iam.attach_role_policy(RoleName=ROLE, PolicyArn=f"arn:aws:iam::aws:policy/{name}")
    # Step 3: Lambda -> Create function x4, Python, the existing role, the tutorial's code.
    arns = {}
    for name, (_, _, source) in HANDLERS.items():
        arns[name] = lam.create_function(FunctionName=name, Runtime=runtime, Role=role_arn, Handler="lambda_function.lambda_handler",
                                         Code={"ZipFile": _zip(source)})["FunctionArn"]
    # Step 4: API Gateway -> Create API -> REST API; resources and methods with "Lambda proxy integration".
    api_id = apigw.create_rest_api(name=api_name, endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    items = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="items")["id"]
    item = apigw.create_resource(restApiId=api_id, parentId=items, pathPart="{id}")["id"]
    for name, (method, path, _) in HANDLERS.items():
        resource = items if path == "/items" else item
        apigw.put_method(restApiId=api_id, resourceId=resource, httpMethod=method, authorizationType="NONE")
        apigw.put_integration(restApiId=api_id, resourceId=resource, httpMethod=method, type="AWS_PROXY",
                              integrationHttpMethod="POST",
                              uri=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arns[name]}/invocations")
        # The console's "Add permission to Lambda function" prompt, with its own random statement id.
        lam.add_permission(FunctionName=name, StatementId=f"console-{method.lower()}-{zlib.crc32(path.encode())}",
                           Action="lambda:InvokeFunction", Principal="apigateway.amazonaws.com",
                           SourceArn=f"arn:aws:execute-api:{region}:{account}:{api_id}/*/{method}{path.replace('{id}', '*')}")
    # Step 5: Actions -> Deploy API -> new stage prod.
    apigw.create_deployment(restApiId=api_id, stageName=STAGE)
    return {"api_id": api_id, "functions": arns}


def tutorial_settings(settings: dict) -> dict:
    """config.yaml's settings for adopting it: the tutorial's names, no prefix."""
    return {**settings, "stack": "tutorial", "names": "tutorial"}

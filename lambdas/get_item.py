"""GET /items/{id}: one item, with its ETag."""
import boto3

from common import TABLE_NAME, api_handler, etag, from_dynamodb, item_not_found, path_id, response, to_api

# The hot read goes through the low-level client, built once per container like TABLE: the resource
# layer's parameter and answer transformation was about a tenth of this handler's boto3 CPU
# (BENCHMARKS.md, issue 12). The item is read into the same Python values TABLE.get_item gives.
DYNAMODB = boto3.client("dynamodb")


@api_handler
def lambda_handler(event, context):
    item_id = path_id(event)
    # ConsistentRead: an eventually consistent read could 404 an item created a moment ago,
    # or hand out the ETag of a version already replaced.
    found = DYNAMODB.get_item(TableName=TABLE_NAME, Key={"id": {"S": item_id}}, ConsistentRead=True)
    if "Item" not in found:
        raise item_not_found(item_id)
    item = from_dynamodb(found["Item"])
    return response(200, to_api(item), {"ETag": etag(item)})

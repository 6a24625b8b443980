"""GET /items/{id}: one item, with its ETag."""
from common import TABLE, api_handler, etag, item_not_found, path_id, response, to_api


@api_handler
def lambda_handler(event, context):
    item_id = path_id(event)
    # ConsistentRead: an eventually consistent read could 404 an item created a moment ago,
    # or hand out the ETag of a version already replaced.
    found = TABLE.get_item(Key={"id": item_id}, ConsistentRead=True)
    if "Item" not in found:
        raise item_not_found(item_id)
    return response(200, to_api(found["Item"]), {"ETag": etag(found["Item"])})

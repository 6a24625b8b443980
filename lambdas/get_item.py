"""GET /items/{id}: one item."""
from common import TABLE, api_handler, item_not_found, path_id, response


@api_handler
def lambda_handler(event, context):
    item_id = path_id(event)
    # ConsistentRead: an eventually consistent read could 404 an item created a moment ago.
    found = TABLE.get_item(Key={"id": item_id}, ConsistentRead=True)
    if "Item" not in found:
        raise item_not_found(item_id)
    return response(200, found["Item"])

"""DELETE /items/{id}: remove an existing item."""
from common import TABLE, api_handler, logger, missing_item_is_404, path_id, response


@api_handler
def lambda_handler(event, context):
    item_id = path_id(event)
    with missing_item_is_404(item_id):
        # delete_item succeeds on a missing key; the condition turns that into a 404.
        TABLE.delete_item(Key={"id": item_id}, ConditionExpression="attribute_exists(id)")
    logger.info("Deleted item %s", item_id)
    return response(200, {"message": "Item deleted", "id": item_id})

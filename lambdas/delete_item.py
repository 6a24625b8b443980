"""DELETE /items/{id}: remove an existing item, under If-Match."""
from common import TABLE, api_handler, header, if_match, logger, path_id, response, write_conditionally


@api_handler
def lambda_handler(event, context):
    item_id = path_id(event)
    expected = if_match(header(event, "If-Match"))

    def delete(precondition):
        placeholders = {}
        if precondition.names:
            placeholders["ExpressionAttributeNames"] = precondition.names
        if precondition.values:
            placeholders["ExpressionAttributeValues"] = precondition.values
        # delete_item succeeds on a missing key; the condition turns that into a 404.
        TABLE.delete_item(Key={"id": item_id}, ConditionExpression=precondition.condition,
                          ReturnValuesOnConditionCheckFailure="ALL_OLD", **placeholders)

    write_conditionally(item_id, expected, delete)
    logger.info("Deleted item %s", item_id)
    # 200 with a body rather than 204: the tutorial's answer, and clients can log which id went.
    return response(200, {"message": "Item deleted", "id": item_id})

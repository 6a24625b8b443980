"""PUT /items/{id}: change the name and/or description of an existing item."""
from common import (
    TABLE,
    api_handler,
    logger,
    missing_item_is_404,
    path_id,
    read_body,
    response,
    validate_item_update,
)


@api_handler
def lambda_handler(event, context):
    item_id = path_id(event)
    fields = validate_item_update(read_body(event))
    # Placeholders for every field: "name" is a DynamoDB reserved word.
    assignments = ", ".join(f"#{field} = :{field}" for field in fields)
    with missing_item_is_404(item_id):
        # update_item would create a missing item (an upsert); the condition stops that.
        updated = TABLE.update_item(
            Key={"id": item_id},
            UpdateExpression=f"SET {assignments}",
            ConditionExpression="attribute_exists(id)",
            ExpressionAttributeNames={f"#{field}": field for field in fields},
            ExpressionAttributeValues={f":{field}": value for field, value in fields.items()},
            ReturnValues="ALL_NEW",
        )
    logger.info("Updated item %s (%s)", item_id, ", ".join(fields))
    return response(200, updated["Attributes"])

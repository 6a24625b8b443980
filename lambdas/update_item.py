"""PUT /items/{id}: change the name and/or description of an existing item, under If-Match."""
from common import (
    TABLE,
    api_handler,
    conditional_write,
    etag,
    header,
    if_match,
    logger,
    now,
    path_id,
    read_body,
    response,
    to_api,
    writable_fields,
    write_condition,
)


@api_handler
def lambda_handler(event, context):
    item_id = path_id(event)
    expected = if_match(header(event, "If-Match"))
    values = {**writable_fields(read_body(event), creating=False), "updatedAt": now()}
    condition, condition_values = write_condition(expected)
    # Placeholders for every field: "name" is a DynamoDB reserved word.
    assignments = [f"#{field} = :{field}" for field in values] + ["#version = #version + :one"]
    with conditional_write(item_id, expected):
        # update_item alone would create a missing item (an upsert); the condition stops that,
        # and checks the version in the same atomic write.
        updated = TABLE.update_item(
            Key={"id": item_id},
            UpdateExpression="SET " + ", ".join(assignments),
            ConditionExpression=condition,
            ExpressionAttributeNames={f"#{field}": field for field in [*values, "version"]},
            ExpressionAttributeValues={**{f":{field}": value for field, value in values.items()}, ":one": 1,
                                       **condition_values},
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )["Attributes"]
    logger.info("Updated item %s to version %s", item_id, updated["version"])
    return response(200, to_api(updated), {"ETag": etag(updated)})

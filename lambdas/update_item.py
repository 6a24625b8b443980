"""PUT /items/{id}: change the name and/or description of an existing item, under If-Match."""
from common import (
    TABLE,
    api_handler,
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
    write_conditionally,
)


@api_handler
def lambda_handler(event, context):
    item_id = path_id(event)
    expected = if_match(header(event, "If-Match"))
    values = {**writable_fields(read_body(event), creating=False), "updatedAt": now()}

    def update(precondition):
        # Placeholders for every field: "name" is a DynamoDB reserved word.
        assignments = [f"#{field} = :{field}" for field in values]
        attribute_values = {f":{field}": value for field, value in values.items()}
        if precondition.next_version is None:
            assignments.append("#version = #version + :one")
            attribute_values[":one"] = 1
        else:  # an item written outside the API: its version is not one to add 1 to
            assignments.append("#version = :next_version")
            attribute_values[":next_version"] = precondition.next_version
        # update_item alone would create a missing item (an upsert); the condition stops that,
        # and checks the version in the same atomic write.
        return TABLE.update_item(
            Key={"id": item_id},
            UpdateExpression="SET " + ", ".join(assignments),
            ConditionExpression=precondition.condition,
            ExpressionAttributeNames={**{f"#{field}": field for field in [*values, "version"]}, **precondition.names},
            ExpressionAttributeValues={**attribute_values, **precondition.values},
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )["Attributes"]

    updated = write_conditionally(item_id, expected, update, adds_to_version=True)
    logger.info("Updated item %s to version %s", item_id, updated["version"])
    return response(200, to_api(updated), {"ETag": etag(updated)})

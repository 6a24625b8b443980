"""POST /items: create an item with a fresh id."""
import uuid

from common import TABLE, api_handler, logger, read_body, response, validate_new_item


@api_handler
def lambda_handler(event, context):
    item = {"id": str(uuid.uuid4()), **validate_new_item(read_body(event))}
    # A fresh uuid4 never collides in practice; the condition makes sure a create
    # can never silently overwrite an existing item if it ever did.
    TABLE.put_item(Item=item, ConditionExpression="attribute_not_exists(id)")
    logger.info("Created item %s", item["id"])
    return response(201, {"message": "Item created successfully!", "item": item})

"""POST /items: create an item with a fresh id."""
from common import TABLE, api_handler, etag, logger, new_id, now, read_body, response, to_api, writable_fields


def location(event, item_id: str) -> str:
    """The new item's URL path as the client called it: requestContext.path is the full path of the
    request (with the stage on AWS's default domain, a base path on a custom one)."""
    called = (event.get("requestContext") or {}).get("path") or event.get("path") or "/items"
    return f"{called.rstrip('/')}/{item_id}"


@api_handler
def lambda_handler(event, context):
    fields = writable_fields(read_body(event), creating=True)
    stamp = now()
    item = {"id": new_id(), **fields, "createdAt": stamp, "updatedAt": stamp, "version": 1}
    # A fresh uuid4 never collides in practice; the condition makes sure a create
    # can never silently overwrite an existing item if it ever did.
    TABLE.put_item(Item=item, ConditionExpression="attribute_not_exists(id)")
    logger.info("Created item %s", item["id"])
    return response(201, {"message": "Item created successfully!", "item": to_api(item)},
                    {"Location": location(event, item["id"]), "ETag": etag(item)})

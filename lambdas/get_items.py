"""GET /items: every item in the table."""
from common import TABLE, api_handler, response


@api_handler
def lambda_handler(event, context):
    items = []
    # A Scan returns at most 1 MB per call; LastEvaluatedKey says there is more.
    # ConsistentRead so an item created just before is always listed.
    scan_args = {"ConsistentRead": True}
    while True:
        page = TABLE.scan(**scan_args)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        scan_args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return response(200, {"items": items, "count": len(items)})

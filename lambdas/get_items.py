"""GET /items?limit=&nextToken=: one page of items, and a token for the next one."""
from common import (
    TABLE,
    TABLE_NAME,
    api_handler,
    page_limit,
    page_token,
    query_parameters,
    read_page_token,
    response,
    to_api,
)

DEFAULT_LIMIT, MAX_LIMIT = 25, 100


@api_handler
def lambda_handler(event, context):
    query = query_parameters(event, ("limit", "nextToken"))
    limit = page_limit(query.get("limit"), DEFAULT_LIMIT, MAX_LIMIT)
    # ConsistentRead so an item created just before is always listed. One item more than the
    # page is read, so nextToken is given only when another item really follows (no empty last page).
    # No ProjectionExpression: to_api picks the contract's fields anyway, and a projection made
    # the local DynamoDB about 20% slower on a page of 100 items.
    scan_args = {"ConsistentRead": True, "Limit": limit + 1}
    if "nextToken" in query:
        scan_args["ExclusiveStartKey"] = {"id": read_page_token(TABLE_NAME, query["nextToken"])}
    items = []
    while True:
        page = TABLE.scan(**scan_args)
        items.extend(page["Items"])
        # A Scan stops at 1 MB too: LastEvaluatedKey says where to go on from.
        if len(items) > limit or "LastEvaluatedKey" not in page:
            break
        scan_args.update(ExclusiveStartKey=page["LastEvaluatedKey"], Limit=limit + 1 - len(items))
    more = len(items) > limit
    items = items[:limit]
    # A scan goes on from any key, even one deleted since: the token is the last id shown.
    next_token = page_token(TABLE_NAME, items[-1]["id"]) if more else None
    return response(200, {"items": [to_api(item) for item in items], "count": len(items), "nextToken": next_token})

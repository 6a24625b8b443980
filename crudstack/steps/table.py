"""Step 1. DynamoDB -> Create table "ItemsTable", partition key id (String), on-demand."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

from crudstack.aws import ALREADY_EXISTS, NOT_FOUND
from crudstack.calls import Call, Local, Once, Poll, Ref
from crudstack.errors import DeploymentError
from crudstack.plan import Action, Change, Context
from crudstack.steps.base import ensure_ours, is_ours, not_ours, tag_changes, tag_dict, tag_list

# "TagResource is an asynchronous operation. If you issue a ListTagsOfResource request immediately after a
# TagResource request, DynamoDB might return your previous tag set, if there was one, or an empty tag set ...
# Wait for a few seconds, and then try the ListTagsOfResource request again" (DynamoDB API Reference,
# TagResource); tags given to CreateTable are applied the same way. An empty tag set is looked at again for
# this long before a table with our name is called someone else's.
TAGS_SETTLE_S = 30.0
HOLDS_ITEMS = "it still holds items; re-run with --backup (save them first) or --delete-data to delete it"
ITEMS_NOW = "table:holds items"   # what teardown's last look at the table found (a run variable)
EMPTY = ("the table is empty", lambda run: not run.variables.get(ITEMS_NOW, True))


def holds_items(answer: dict) -> bool:
    """A Scan page says the table holds items: an item in it, or a LastEvaluatedKey (more to read)."""
    return bool(answer.get("Items")) or bool(answer.get("LastEvaluatedKey"))


class TableStep:
    number = "1"
    title = "DynamoDB table"

    def _listed_tags(self, ctx: Context, arn: str) -> dict[str, str]:
        return tag_dict(ctx.aws.find_table_tags(arn))

    def _tags(self, ctx: Context, arn: str) -> dict[str, str]:
        """The table's tags; an empty set is read again for a while, as DynamoDB lists new tags late."""
        tags = self._listed_tags(ctx, arn)
        if tags:
            return tags
        try:
            return ctx.aws.wait_until(lambda: self._listed_tags(ctx, arn), what=f"the tags of table {ctx.config.table_name}",
                                      timeout_s=TAGS_SETTLE_S, interval_s=1.0)
        except TimeoutError:
            return {}

    def plan(self, ctx: Context) -> list[Change]:
        cfg = ctx.config
        name = cfg.table_name
        table = ctx.aws.find_table(ctx.config.table_name)
        ctx.table_arn = ctx.arn("dynamodb", f"table/{name}")
        if table is None:
            return [self._change(ctx, Action.CREATE, self._create_calls(ctx))]
        if table["TableStatus"] == "DELETING":
            # A teardown moments ago: the name is taken until DynamoDB finishes deleting ("the table is in the
            # DELETING state until DynamoDB completes the deletion", DynamoDB API Reference, DeleteTable).
            gone = Poll(self._describe(ctx), lambda answer: answer is None or answer["Table"]["TableStatus"] != "DELETING",
                        f"the old table {name} to finish deleting", missing_ok=True)
            return [self._change(ctx, Action.CREATE, [gone, *self._create_calls(ctx)],
                                 note="the previous table of this name is still being deleted: waits for it to go first")]
        ctx.table_arn = table["TableArn"]
        tags = self._tags(ctx, table["TableArn"])
        ensure_ours(ctx, f"Step {self.number} {self.title}", "table", name, tags)
        key = [k["AttributeName"] for k in table["KeySchema"] if k["KeyType"] == "HASH"]
        if key != [cfg.table.partition_key]:
            raise DeploymentError(
                step=f"Step {self.number} {self.title}", resource=f"table {name}",
                cause=f"its partition key is {key[0] if key else '?'}, config.yaml asks for {cfg.table.partition_key}; DynamoDB cannot change a key",
                fix="set table.partition_key back, or tear the stack down (python teardown.py --backup) and provision again",
            )
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        changes = tag_changes(ctx, "table", name, tags,
                              lambda missing: [Call("dynamodb", "tag_resource", {"ResourceArn": ctx.table_arn, "Tags": tag_list(missing)})],
                              after=("table",))
        if billing != cfg.table.billing_mode:
            changes.append(self._change(ctx, Action.UPDATE, [
                Call("dynamodb", "update_table", {"TableName": name, "BillingMode": cfg.table.billing_mode}), self._active(ctx)],
                diffs={"billing_mode": (billing, cfg.table.billing_mode)}))
        elif table["TableStatus"] != "ACTIVE":
            # A previous run was cut off while the table was being created: finish the wait.
            changes.append(self._change(ctx, Action.UPDATE, [self._active(ctx)], diffs={"status": (table["TableStatus"], "ACTIVE")}))
        return changes if any(c.action.mutates for c in changes) else changes + [Change("table", name, Action.UNCHANGED)]

    def _change(self, ctx: Context, action: Action, calls: list, *, diffs: dict | None = None, note: str = "") -> Change:
        return Change("table", ctx.config.table_name, action, diffs or {}, calls=calls, note=note, provides=("table",))

    def _describe(self, ctx: Context) -> Call:
        return Call("dynamodb", "describe_table", {"TableName": ctx.config.table_name})

    def _active(self, ctx: Context) -> Poll:
        return Poll(self._describe(ctx), lambda answer: answer["Table"]["TableStatus"] == "ACTIVE",
                    f"table {ctx.config.table_name} to be ACTIVE")

    def _create_calls(self, ctx: Context) -> list:
        cfg = ctx.config
        create = Call("dynamodb", "create_table", {
            "TableName": cfg.table_name,
            "AttributeDefinitions": [{"AttributeName": cfg.table.partition_key, "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": cfg.table.partition_key, "KeyType": "HASH"}],
            "BillingMode": cfg.table.billing_mode,
            "Tags": tag_list(cfg.all_tags),  # tagged in the same call: never an untagged table of ours
        }, ok=ALREADY_EXISTS["dynamodb"])   # made by our own earlier call whose answer was lost
        return [create, self._active(ctx)]

    # -- teardown ------------------------------------------------------------------------------
    def plan_teardown(self, ctx: Context) -> list[Change]:
        name = ctx.config.table_name
        table = ctx.aws.find_table(ctx.config.table_name)
        if table is None or table["TableStatus"] == "DELETING":
            return []
        if not is_ours(self._tags(ctx, table["TableArn"]), ctx.config):
            return [not_ours("table", name)]
        ddb = ctx.aws.client("dynamodb")
        has_items = holds_items(ctx.aws.call(ddb.scan, **self._scan(ctx)))
        if has_items and not (ctx.options.delete_data or ctx.options.backup):
            return [Change("table", name, Action.KEEP, note=HOLDS_ITEMS)]
        return [self._delete(ctx, has_items)]

    def _scan(self, ctx: Context) -> dict:
        # An eventually consistent Scan "might not contain the results from other recently completed write
        # operations" (DynamoDB API Reference, Scan, ConsistentRead); and a page is not the table: "If
        # LastEvaluatedKey is present in the response, you need to paginate the result set" (same page), so a
        # page with a LastEvaluatedKey and no item does not say the table is empty (holds_items).
        return {"TableName": ctx.config.table_name, "Limit": 1, "ConsistentRead": True, "ProjectionExpression": "#k",
                "ExpressionAttributeNames": {"#k": ctx.config.table.partition_key}}

    def _delete(self, ctx: Context, has_items: bool) -> Change:
        """Once nothing can write to the table any more (its REST API and every function gone), look again,
        consistently: a table that gained items since the plan (a client still using the API, a write while the
        user read the prompt) is kept as one that held them then, unless --delete-data; --backup saves them."""
        name, options = ctx.config.table_name, ctx.options
        change = Change("table", name, Action.DELETE, note="items backed up first" if has_items and options.backup else "",
                        after=("REST API gone", "functions"), provides=("table",))

        def look_again(run) -> None:
            items = run.variables[ITEMS_NOW]
            if options.backup:
                change.note = "items backed up first" if items else ""
            elif items and not options.delete_data:
                change.action, change.note = Action.KEEP, HOLDS_ITEMS

        if options.backup or not options.delete_data:
            change.calls += [Call("dynamodb", "scan", self._scan(ctx), save={ITEMS_NOW: holds_items}),
                             Local(f"keep {name} if that scan found items (unless --backup or --delete-data)", look_again)]
        if options.backup:
            change.calls += self.backup_calls(ctx)
        change.calls.append(Call("dynamodb", "delete_table", {"TableName": name}, ok=NOT_FOUND["dynamodb"],
                                 unless=("the table gained items: kept", lambda run: change.action is Action.KEEP)))
        return change

    def backup_calls(self, ctx: Context) -> list:
        """Save the items first: an on-demand backup on AWS, a JSON export file locally."""
        name = ctx.config.table_name
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        if ctx.target != "aws":
            return [Local(f"scan {name} and write its items to {Path(ctx.options.backup_dir) / f'{name}-{stamp}.json'}"
                          " (unless the table is empty)", lambda run: None if EMPTY[1](run) else self._export(ctx, name, stamp))]
        backup_name = f"{name}-{stamp}"

        def ours_listed(run) -> str | None:
            ddb = run.aws.client("dynamodb")
            summaries = run.aws.paginate(ddb, "list_backups", "BackupSummaries", TableName=name, BackupType="USER")
            return next((b["BackupArn"] for b in summaries if b["BackupName"] == backup_name), None)

        def keep(run, arn: str | None) -> str:
            ctx.backup_location = arn or ours_listed(run)
            run.variables["backup_arn"] = ctx.backup_location
            return ctx.backup_location

        # Every on-demand backup is billed and kept until deleted, and CreateBackup does not de-duplicate by
        # name: a retry after a lost answer (a read timeout) first looks for the backup the first attempt made.
        create = Once(Call("dynamodb", "create_backup", {"TableName": name, "BackupName": backup_name},
                           save={"backup_arn": lambda answer: answer["BackupDetails"]["BackupArn"]}, unless=EMPTY),
                      done=lambda run: ours_listed(run) is not None, checks=f"dynamodb.list_backups(TableName={name!r})")
        return [create,
                Local("the backup's ARN, from its answer or (answer lost) the listing",
                      lambda run: None if EMPTY[1](run) else keep(run, run.variables.get("backup_arn"))),
                Poll(Call("dynamodb", "describe_backup", {"BackupArn": Ref("backup_arn")}, unless=EMPTY),
                     lambda answer: answer["BackupDescription"]["BackupDetails"]["BackupStatus"] == "AVAILABLE", f"backup of {name}")]

    def _export(self, ctx: Context, name: str, stamp: str) -> str:
        ddb = ctx.aws.client("dynamodb")
        items = ctx.aws.paginate(ddb, "scan", "Items", TableName=name, ConsistentRead=True)   # every write acknowledged so far
        folder = Path(ctx.options.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}-{stamp}.json"
        path.write_text(json.dumps({"table": name, "count": len(items), "items": items}, indent=1, default=_decimal), encoding="utf-8")
        ctx.backup_location = str(path)
        return str(path)


def _decimal(value):
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"cannot export {type(value).__name__}")

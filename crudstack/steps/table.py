"""Step 1. DynamoDB -> Create table "ItemsTable", partition key id (String), on-demand."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import botocore.exceptions

from crudstack.aws import error_code
from crudstack.errors import DeploymentError
from crudstack.plan import Action, Change, Context
from crudstack.steps.base import ensure_ours, is_ours, not_ours, tag_changes, tag_dict, tag_list

NOT_FOUND = ("ResourceNotFoundException",)
# "TagResource is an asynchronous operation. If you issue a ListTagsOfResource request immediately after a
# TagResource request, DynamoDB might return your previous tag set, if there was one, or an empty tag set ...
# Wait for a few seconds, and then try the ListTagsOfResource request again" (DynamoDB API Reference,
# TagResource); tags given to CreateTable are applied the same way. An empty tag set is looked at again for
# this long before a table with our name is called someone else's.
TAGS_SETTLE_S = 30.0


class TableStep:
    number = "1"
    title = "DynamoDB table"
    console = "DynamoDB -> Tables -> Create table"

    def _find(self, ctx: Context) -> dict | None:
        ddb = ctx.aws.client("dynamodb")
        found = ctx.aws.find(ddb.describe_table, not_found=NOT_FOUND, TableName=ctx.config.table_name)
        return found["Table"] if found else None

    def _listed_tags(self, ctx: Context, arn: str) -> dict[str, str]:
        ddb = ctx.aws.client("dynamodb")
        # ListTagsOfResource may answer ResourceNotFoundException while a table is not ACTIVE yet (its documented
        # errors: "or its status might not be ACTIVE"): no tags to show yet.
        found = ctx.aws.find(ddb.list_tags_of_resource, not_found=NOT_FOUND, ResourceArn=arn)
        return tag_dict(found.get("Tags") if found else None)

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
        table = self._find(ctx)
        ctx.table_arn = ctx.arn("dynamodb", f"table/{name}")
        if table is None:
            return [Change("table", name, Action.CREATE, apply=lambda: self._create(ctx))]
        if table["TableStatus"] == "DELETING":
            # A teardown moments ago: the name is taken until DynamoDB finishes deleting ("the table is in the
            # DELETING state until DynamoDB completes the deletion", DynamoDB API Reference, DeleteTable).
            return [Change("table", name, Action.CREATE, note="the previous table of this name is still being deleted: "
                           "waits for it to go first", apply=lambda: self._create(ctx))]
        ctx.table_arn = table["TableArn"]
        tags = self._tags(ctx, table["TableArn"])
        ensure_ours(ctx, f"Step {self.number} {self.title}", "table", name, tags)
        key = [k["AttributeName"] for k in table["KeySchema"] if k["KeyType"] == "HASH"]
        if key != [cfg.table.partition_key]:
            from crudstack.errors import DeploymentError

            raise DeploymentError(
                step=f"Step {self.number} {self.title}", resource=f"table {name}",
                cause=f"its partition key is {key[0] if key else '?'}, config.yaml asks for {cfg.table.partition_key}; DynamoDB cannot change a key",
                fix="set table.partition_key back, or tear the stack down (python teardown.py --backup) and provision again",
            )
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        ddb = ctx.aws.client("dynamodb")
        changes = tag_changes(ctx, "table", name, tags,
                              lambda missing: ctx.aws.call(ddb.tag_resource, ResourceArn=ctx.table_arn, Tags=tag_list(missing)))
        if billing != cfg.table.billing_mode:
            changes.append(Change("table", name, Action.UPDATE, {"billing_mode": (billing, cfg.table.billing_mode)},
                                  apply=lambda: self._set_billing(ctx)))
        if table["TableStatus"] != "ACTIVE" and not any(c.kind == "table" for c in changes):
            # A previous run was cut off while the table was being created: finish the wait.
            changes.append(Change("table", name, Action.UPDATE, {"status": (table["TableStatus"], "ACTIVE")},
                                  apply=lambda: self._wait_active(ctx)))
        return changes if any(c.action.mutates for c in changes) else changes + [Change("table", name, Action.UNCHANGED)]

    def _create(self, ctx: Context) -> None:
        cfg = ctx.config
        ddb = ctx.aws.client("dynamodb")

        def created_or_ours():
            """Create the table once no table of that name is DELETING; a table already there is ours, made by an
            earlier attempt whose answer was lost (ResourceInUseException then means exactly that)."""
            table = self._find(ctx)
            if table is not None:
                return table if table["TableStatus"] != "DELETING" else None
            try:
                return ctx.aws.call(
                    ddb.create_table,
                    TableName=cfg.table_name,
                    AttributeDefinitions=[{"AttributeName": cfg.table.partition_key, "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": cfg.table.partition_key, "KeyType": "HASH"}],
                    BillingMode=cfg.table.billing_mode,
                    Tags=tag_list(cfg.all_tags),  # tagged in the same call: never an untagged table of ours
                )["TableDescription"]
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "ResourceInUseException":
                    raise
                return None  # taken meanwhile (still deleting, or our own lost create): look again

        table = ctx.aws.wait_until(created_or_ours, what=f"the old table {cfg.table_name} to finish deleting")
        ctx.table_arn = table["TableArn"]
        self._wait_active(ctx)

    def _set_billing(self, ctx: Context) -> None:
        ddb = ctx.aws.client("dynamodb")
        ctx.aws.call(ddb.update_table, TableName=ctx.config.table_name, BillingMode=ctx.config.table.billing_mode)
        self._wait_active(ctx)

    def _wait_active(self, ctx: Context) -> None:
        def active():
            table = self._find(ctx)
            return table if table and table["TableStatus"] == "ACTIVE" else None

        table = ctx.aws.wait_until(active, what=f"table {ctx.config.table_name} to be ACTIVE")
        ctx.table_arn = table["TableArn"]

    # -- teardown ------------------------------------------------------------------------------
    def plan_teardown(self, ctx: Context) -> list[Change]:
        name = ctx.config.table_name
        table = self._find(ctx)
        if table is None or table["TableStatus"] == "DELETING":
            return []
        if not is_ours(self._tags(ctx, table["TableArn"]), ctx.config):
            return [not_ours("table", name)]
        ddb = ctx.aws.client("dynamodb")
        has_items = bool(ctx.aws.call(ddb.scan, TableName=name, Limit=1, ProjectionExpression="#k",
                                      ExpressionAttributeNames={"#k": ctx.config.table.partition_key}).get("Items"))
        if has_items and not (ctx.options.delete_data or ctx.options.backup):
            return [Change("table", name, Action.KEEP,
                           note="it still holds items; re-run with --backup (save them first) or --delete-data to delete it")]
        note = ""
        if has_items and ctx.options.backup:
            note = "items backed up first"
        return [Change("table", name, Action.DELETE, note=note, apply=lambda: self._delete(ctx, backup=has_items and ctx.options.backup))]

    def _delete(self, ctx: Context, *, backup: bool) -> None:
        ddb = ctx.aws.client("dynamodb")
        if backup:
            self.backup(ctx)
        ctx.aws.delete(ddb.delete_table, not_found=NOT_FOUND, TableName=ctx.config.table_name)

    def backup(self, ctx: Context) -> str:
        """Save the items first: an on-demand backup on AWS, a JSON export file locally."""
        ddb = ctx.aws.client("dynamodb")
        name = ctx.config.table_name
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        if ctx.target == "aws":
            backup_name = f"{name}-{stamp}"

            def ours_listed() -> str | None:
                summaries = ctx.aws.paginate(ddb, "list_backups", "BackupSummaries", TableName=name, BackupType="USER")
                return next((b["BackupArn"] for b in summaries if b["BackupName"] == backup_name), None)

            # Every on-demand backup is billed and kept until deleted, and CreateBackup does not de-duplicate by
            # name: a retry after a lost answer (a read timeout) first looks for the backup the first attempt made.
            made = ctx.aws.once(lambda: ddb.create_backup(TableName=name, BackupName=backup_name), done=lambda: ours_listed() is not None)
            arn = made["BackupDetails"]["BackupArn"] if made else ours_listed()

            def available():
                status = ctx.aws.call(ddb.describe_backup, BackupArn=arn)["BackupDescription"]["BackupDetails"]["BackupStatus"]
                return status == "AVAILABLE"

            ctx.aws.wait_until(available, what=f"backup of {name}")
            ctx.backup_location = arn
            return arn
        items = ctx.aws.paginate(ddb, "scan", "Items", TableName=name)
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

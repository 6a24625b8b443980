"""Step 1. DynamoDB -> Create table "ItemsTable", partition key id (String), on-demand."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

from crudstack.plan import Action, Change, Context
from crudstack.steps.base import ensure_ours, is_ours, not_ours, tag_dict, tag_list

NOT_FOUND = ("ResourceNotFoundException",)


class TableStep:
    number = "1"
    title = "DynamoDB table"
    console = "DynamoDB -> Tables -> Create table"

    def _find(self, ctx: Context) -> dict | None:
        ddb = ctx.aws.client("dynamodb")
        found = ctx.aws.find(ddb.describe_table, not_found=NOT_FOUND, TableName=ctx.config.table_name)
        return found["Table"] if found else None

    def _tags(self, ctx: Context, arn: str) -> dict[str, str]:
        ddb = ctx.aws.client("dynamodb")
        return tag_dict(ctx.aws.call(ddb.list_tags_of_resource, ResourceArn=arn).get("Tags"))

    def plan(self, ctx: Context) -> list[Change]:
        cfg = ctx.config
        name = cfg.table_name
        table = self._find(ctx)
        ctx.table_arn = ctx.arn("dynamodb", f"table/{name}")
        if table is None:
            return [Change("table", name, Action.CREATE, apply=lambda: self._create(ctx))]
        ctx.table_arn = table["TableArn"]
        ensure_ours(ctx, f"Step {self.number} {self.title}", "table", name, self._tags(ctx, table["TableArn"]))
        key = [k["AttributeName"] for k in table["KeySchema"] if k["KeyType"] == "HASH"]
        if key != [cfg.table.partition_key]:
            from crudstack.errors import DeploymentError

            raise DeploymentError(
                step=f"Step {self.number} {self.title}", resource=f"table {name}",
                cause=f"its partition key is {key[0] if key else '?'}, config.yaml asks for {cfg.table.partition_key}; DynamoDB cannot change a key",
                fix="set table.partition_key back, or tear the stack down (python teardown.py --backup) and provision again",
            )
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        changes = []
        if billing != cfg.table.billing_mode:
            changes.append(Change("table", name, Action.UPDATE, {"billing_mode": (billing, cfg.table.billing_mode)},
                                  apply=lambda: self._set_billing(ctx)))
        if table["TableStatus"] != "ACTIVE" and not changes:
            # A previous run was cut off while the table was being created: finish the wait.
            changes.append(Change("table", name, Action.UPDATE, {"status": (table["TableStatus"], "ACTIVE")},
                                  apply=lambda: self._wait_active(ctx)))
        return changes or [Change("table", name, Action.UNCHANGED)]

    def _create(self, ctx: Context) -> None:
        cfg = ctx.config
        ddb = ctx.aws.client("dynamodb")
        try:
            created = ctx.aws.call(
                ddb.create_table,
                TableName=cfg.table_name,
                AttributeDefinitions=[{"AttributeName": cfg.table.partition_key, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": cfg.table.partition_key, "KeyType": "HASH"}],
                BillingMode=cfg.table.billing_mode,
                Tags=tag_list(cfg.all_tags),  # tagged in the same call: never an untagged table of ours
            )
            ctx.table_arn = created["TableDescription"]["TableArn"]
        except Exception as exc:
            from crudstack.aws import error_code

            if error_code(exc) != "ResourceInUseException":  # lost answer of our own earlier create
                raise
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
        if table is None:
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
            backup = ctx.aws.call(ddb.create_backup, TableName=name, BackupName=f"{name}-{stamp}")
            arn = backup["BackupDetails"]["BackupArn"]

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

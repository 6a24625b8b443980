"""Step 7. CloudWatch and SNS: log groups with retention, an alerts topic, alarms.

(Step 6 of the tutorial is "test the API": provision prints the invoke URL and
curl commands for it at the end.)
"""

from __future__ import annotations

from crudstack.aws import ALREADY_EXISTS, NOT_FOUND
from crudstack.calls import Call
from crudstack.plan import Action, Change, Context
from crudstack.steps.base import ensure_ours, is_ours, not_ours, tag_changes, tag_dict, tag_list
from crudstack.scope import policy_names

# Fields of an alarm we own and compare; everything else is CloudWatch's.
ALARM_FIELDS = ("Namespace", "MetricName", "Dimensions", "Statistic", "ExtendedStatistic", "Period", "EvaluationPeriods",
                "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData", "AlarmActions", "OKActions", "AlarmDescription")


def log_group_name(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


def desired_alarms(ctx: Context, topic_arn: str) -> dict[str, dict]:
    cfg = ctx.config
    a = cfg.monitoring.alarms
    common = {"Period": a.period_s, "EvaluationPeriods": a.evaluation_periods, "DatapointsToAlarm": a.evaluation_periods,
              "TreatMissingData": "notBreaching", "AlarmActions": [topic_arn], "OKActions": [topic_arn]}
    alarms: dict[str, dict] = {}
    for base in sorted(cfg.lambda_.functions):
        fn = cfg.function_name(base)
        dims = [{"Name": "FunctionName", "Value": fn}]
        alarms[f"{fn}-Errors"] = {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Dimensions": dims, "Statistic": "Sum",
                                  "Threshold": float(a.function_errors), "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                                  "AlarmDescription": f"{fn} raised errors", **common}
        alarms[f"{fn}-Throttles"] = {"Namespace": "AWS/Lambda", "MetricName": "Throttles", "Dimensions": dims, "Statistic": "Sum",
                                     "Threshold": float(a.function_throttles), "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                                     "AlarmDescription": f"{fn} was throttled", **common}
        alarms[f"{fn}-DurationP99"] = {"Namespace": "AWS/Lambda", "MetricName": "Duration", "Dimensions": dims, "ExtendedStatistic": "p99",
                                       "Threshold": float(a.function_duration_p99_ms), "ComparisonOperator": "GreaterThanThreshold",
                                       "AlarmDescription": f"{fn} p99 duration above {a.function_duration_p99_ms} ms", **common}
    api_dims = [{"Name": "ApiName", "Value": cfg.api_name}, {"Name": "Stage", "Value": cfg.api.stage}]
    alarms[f"{cfg.api_name}-5XXError"] = {"Namespace": "AWS/ApiGateway", "MetricName": "5XXError", "Dimensions": api_dims, "Statistic": "Sum",
                                          "Threshold": float(a.api_5xx_errors), "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                                          "AlarmDescription": f"{cfg.api_name} answered 5XX errors", **common}
    alarms[f"{cfg.api_name}-LatencyP99"] = {"Namespace": "AWS/ApiGateway", "MetricName": "Latency", "Dimensions": api_dims, "ExtendedStatistic": "p99",
                                            "Threshold": float(a.api_latency_p99_ms), "ComparisonOperator": "GreaterThanThreshold",
                                            "AlarmDescription": f"{cfg.api_name} p99 latency above {a.api_latency_p99_ms} ms", **common}
    return alarms


def _alarm_view(alarm: dict) -> dict:
    view = {k: alarm.get(k) for k in ALARM_FIELDS}
    view["Dimensions"] = sorted(view["Dimensions"] or [], key=lambda d: d["Name"])
    view["Threshold"] = float(view["Threshold"]) if view["Threshold"] is not None else None
    for key in ("AlarmActions", "OKActions"):
        view[key] = sorted(view[key] or [])
    return view


class MonitoringStep:
    number = "7"
    title = "Monitoring: logs, alerts, alarms"

    # -- log groups --------------------------------------------------------------------------
    def _log_groups(self, ctx: Context) -> dict[str, dict]:
        logs = ctx.aws.client("logs")

        groups = ctx.aws.paginate(logs, "describe_log_groups", "logGroups", logGroupNamePrefix=f"/aws/lambda/{ctx.config.name_prefix}")
        # With names: tutorial (no prefix) every function's log group is listed: only those the deployer policy
        # names are ours to read (the others' tags would be denied on AWS).
        return {g["logGroupName"]: g for g in groups
                if policy_names(ctx.config, "log group", g["logGroupName"].removeprefix("/aws/lambda/"))}

    def _log_group_tags(self, ctx: Context, name: str) -> dict[str, str]:
        logs = ctx.aws.client("logs")
        return ctx.aws.call(logs.list_tags_log_group, logGroupName=name).get("tags", {})

    def _plan_logs(self, ctx: Context) -> list[Change]:
        cfg = ctx.config
        retention = cfg.monitoring.log_retention_days
        existing = self._log_groups(ctx)
        names = [log_group_name(cfg.function_name(base)) for base in sorted(cfg.lambda_.functions)]
        ctx.log_groups.extend(names)
        there = [name for name in names if name in existing]
        tags_of = dict(zip(there, ctx.fan(lambda name: self._log_group_tags(ctx, name), there)))
        set_retention = lambda name: Call("logs", "put_retention_policy", {"logGroupName": name, "retentionInDays": retention})  # noqa: E731
        tag = lambda name: Call("logs", "tag_log_group", {"logGroupName": name, "tags": cfg.all_tags})  # noqa: E731
        changes = []
        for name in names:
            group = existing.get(name)
            if group is None:
                # Lambda may have made it meanwhile, on a first invocation: then it is adopted and tagged.
                create = Call("logs", "create_log_group", {"logGroupName": name, "tags": cfg.all_tags},
                              fallback=tag(name), fallback_on=ALREADY_EXISTS["logs"])
                changes.append(Change("log group", name, Action.CREATE, calls=[create, set_retention(name)]))
                continue
            tags = tags_of[name]
            diffs = {}
            # Lambda makes /aws/lambda/<function> by itself on a first invocation; the function is ours (step 3
            # checked its tags), so its log group is ours to adopt. Tags changed in config.yaml are set here too.
            for key, value in sorted(cfg.all_tags.items()):
                if tags.get(key) != value:
                    diffs[f"tag {key}"] = (tags.get(key), value)
            calls = [tag(name)] if diffs else []
            if group.get("retentionInDays") != retention:
                diffs["retention_days"] = (group.get("retentionInDays"), retention)
                calls.append(set_retention(name))
            changes.append(Change("log group", name, Action.UPDATE, diffs, calls=calls) if diffs
                           else Change("log group", name, Action.UNCHANGED))
        return changes

    # -- topic and subscription ----------------------------------------------------------------
    def _find_topic(self, ctx: Context) -> str | None:
        sns = ctx.aws.client("sns")
        suffix = f":{ctx.config.topic_name}"
        return next((t["TopicArn"] for t in ctx.aws.paginate(sns, "list_topics", "Topics") if t["TopicArn"].endswith(suffix)), None)

    def _topic_tags(self, ctx: Context, arn: str) -> dict[str, str]:
        sns = ctx.aws.client("sns")
        return tag_dict(ctx.aws.call(sns.list_tags_for_resource, ResourceArn=arn).get("Tags"))

    def _plan_topic(self, ctx: Context) -> list[Change]:
        sns = ctx.aws.client("sns")
        name = ctx.config.topic_name
        arn = self._find_topic(ctx)
        email = ctx.config.monitoring.alert_email
        changes = []
        subscriptions: list[dict] = []
        if arn is None:
            # CreateTopic is idempotent by name: a retry after a lost answer returns the same topic.
            changes.append(Change("SNS topic", name, Action.CREATE, provides=("topic",), calls=[
                Call("sns", "create_topic", {"Name": name, "Tags": tag_list(ctx.config.all_tags)})]))
        else:
            ctx.topic_arn = arn
            tags, listed = ctx.fan(lambda read: read(), [
                lambda: self._topic_tags(ctx, arn),
                lambda: ctx.aws.paginate(sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=arn)])
            ensure_ours(ctx, f"Step {self.number} {self.title}", "SNS topic", name, tags)
            changes += tag_changes(ctx, "SNS topic", name, tags,
                                   lambda missing: [Call("sns", "tag_resource", {"ResourceArn": arn, "Tags": tag_list(missing)})])
            subscriptions = [s for s in listed if s["Protocol"] == "email"]
        if email and not any(s["Endpoint"] == email for s in subscriptions):
            changes.append(Change("e-mail subscription", email, Action.CREATE, note="AWS e-mails a confirmation link first", after=("topic",),
                                  calls=[Call("sns", "subscribe", {"TopicArn": ctx.topic_arn, "Protocol": "email", "Endpoint": email})]))
        for sub in subscriptions:
            if sub["Endpoint"] != email and sub["SubscriptionArn"].startswith("arn:"):  # pending ones cannot be removed
                changes.append(Change("e-mail subscription", sub["Endpoint"], Action.DELETE, calls=[
                    Call("sns", "unsubscribe", {"SubscriptionArn": sub["SubscriptionArn"]}, ok=NOT_FOUND["sns"])]))
        if arn is not None and not any(c.action.mutates for c in changes):
            changes.append(Change("SNS topic", name, Action.UNCHANGED))
        return changes

    # -- alarms --------------------------------------------------------------------------------
    def _existing_alarms(self, ctx: Context) -> dict[str, dict]:
        cw = ctx.aws.client("cloudwatch")
        # AlarmNamePrefix takes 1 to 255 characters (CloudWatch API Reference, DescribeAlarms): with names: tutorial
        # (no prefix) every alarm is listed, and only those the deployer policy names are read further (another's
        # tags would be denied on AWS); only ours by tag are ever changed or deleted.

        prefix = {"AlarmNamePrefix": ctx.config.name_prefix} if ctx.config.name_prefix else {}
        alarms = ctx.aws.paginate(cw, "describe_alarms", "MetricAlarms", AlarmTypes=["MetricAlarm"], **prefix)
        return {a["AlarmName"]: a for a in alarms if policy_names(ctx.config, "alarm", a["AlarmName"])}

    def _alarm_tags(self, ctx: Context, alarm: dict) -> dict[str, str]:
        cw = ctx.aws.client("cloudwatch")
        return tag_dict(ctx.aws.call(cw.list_tags_for_resource, ResourceARN=alarm["AlarmArn"]).get("Tags"))

    def _alarms_with_tags(self, ctx: Context) -> list[tuple[str, dict, dict]]:
        existing = sorted(self._existing_alarms(ctx).items())
        tags = ctx.fan(lambda item: self._alarm_tags(ctx, item[1]), existing)
        return [(name, alarm, tag) for (name, alarm), tag in zip(existing, tags)]

    def _put_alarm(self, ctx: Context, name: str, spec: dict) -> Call:
        return Call("cloudwatch", "put_metric_alarm", {"AlarmName": name, "Tags": tag_list(ctx.config.all_tags), **spec})

    def _plan_alarms(self, ctx: Context) -> list[Change]:
        wanted = desired_alarms(ctx, ctx.topic_arn)
        changes = []
        existing = {name: (alarm, tags) for name, alarm, tags in self._alarms_with_tags(ctx)}
        for name, spec in wanted.items():
            ctx.alarm_names.append(name)
            current = existing.get(name)
            if current is None:
                changes.append(Change("alarm", name, Action.CREATE, calls=[self._put_alarm(ctx, name, spec)], after=("topic",)))
                continue
            alarm, tags = current
            ensure_ours(ctx, f"Step {self.number} {self.title}", "alarm", name, tags)
            have, want = _alarm_view(alarm), _alarm_view(spec)
            diffs = {k: (have[k], want[k]) for k in ALARM_FIELDS if have[k] != want[k]}
            # PutMetricAlarm ignores Tags when it updates an existing alarm (CloudWatch API Reference): TagResource sets them.
            retag = tag_changes(ctx, "alarm", name, tags, lambda missing, arn=alarm["AlarmArn"]: [
                Call("cloudwatch", "tag_resource", {"ResourceARN": arn, "Tags": tag_list(missing)})])
            if diffs:
                changes.append(Change("alarm", name, Action.UPDATE, diffs, calls=[self._put_alarm(ctx, name, spec)], after=("topic",)))
            elif not any(c.action.mutates for c in retag):
                changes.append(Change("alarm", name, Action.UNCHANGED))
            changes += retag
        for name, (alarm, tags) in sorted(existing.items()):  # ours, but no longer asked for (e.g. a function removed)
            if name not in wanted and is_ours(tags, ctx.config):
                changes.append(Change("alarm", name, Action.DELETE, calls=[Call("cloudwatch", "delete_alarms", {"AlarmNames": [name]})]))
        return changes

    def plan(self, ctx: Context) -> list[Change]:
        ctx.log_groups, ctx.alarm_names = [], []
        # The topic's ARN is known before it exists (arn:<partition>:sns:<region>:<account>:<name>), so the
        # alarms that notify it are planned with it, and the three reads go at once.
        ctx.topic_arn = ctx.topic_arn or ctx.arn("sns", ctx.config.topic_name)
        logs, topic, alarms = ctx.fan(lambda plan: plan(ctx), [self._plan_logs, self._plan_topic, self._plan_alarms])
        return logs + topic + alarms

    # -- teardown ------------------------------------------------------------------------------
    def plan_teardown(self, ctx: Context) -> list[Change]:
        def topic() -> tuple[str | None, dict[str, str]]:
            arn = self._find_topic(ctx)
            return arn, (self._topic_tags(ctx, arn) if arn is not None else {})

        def groups() -> list[tuple[str, dict[str, str]]]:
            names = sorted(self._log_groups(ctx))
            return list(zip(names, ctx.fan(lambda name: self._log_group_tags(ctx, name), names)))

        # Each kind's listing, then its tags, the three kinds at once: two round trips, not four.
        alarms, (arn, topic_tags), tagged_groups = ctx.fan(lambda read: read(), [
            lambda: [name for name, _, tags in self._alarms_with_tags(ctx) if is_ours(tags, ctx.config)], topic, groups])
        changes = []
        if alarms:
            # delete_alarms takes up to 100 names and treats missing ones as done.
            changes.append(Change("alarms", f"{len(alarms)} alarms", Action.DELETE, calls=[
                Call("cloudwatch", "delete_alarms", {"AlarmNames": alarms[i:i + 100]}) for i in range(0, len(alarms), 100)]))
        if arn is not None:
            if is_ours(topic_tags, ctx.config):
                changes.append(Change("SNS topic", ctx.config.topic_name, Action.DELETE, calls=[
                    Call("sns", "delete_topic", {"TopicArn": arn}, ok=NOT_FOUND["sns"])]))
            else:
                changes.append(not_ours("SNS topic", ctx.config.topic_name))
        for name, tag in tagged_groups:
            if is_ours(tag, ctx.config):
                # After the functions: a function still running could make its log group again.
                changes.append(Change("log group", name, Action.DELETE, after=("functions",), calls=[
                    Call("logs", "delete_log_group", {"logGroupName": name}, ok=NOT_FOUND["logs"])]))
        return changes

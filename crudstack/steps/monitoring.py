"""Step 7. CloudWatch and SNS: log groups with retention, an alerts topic, alarms.

(Step 6 of the tutorial is "test the API": provision prints the invoke URL and
curl commands for it at the end.)
"""

from __future__ import annotations

from crudstack.plan import Action, Change, Context
from crudstack.steps.base import ensure_ours, is_ours, not_ours, tag_changes, tag_dict, tag_list

LOGS_NOT_FOUND = ("ResourceNotFoundException",)
SNS_NOT_FOUND = ("NotFound", "NotFoundException", "ResourceNotFound")
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
    console = "CloudWatch -> Log groups / Alarms; SNS -> Topics"

    # -- log groups --------------------------------------------------------------------------
    def _log_groups(self, ctx: Context) -> dict[str, dict]:
        logs = ctx.aws.client("logs")
        groups = ctx.aws.paginate(logs, "describe_log_groups", "logGroups", logGroupNamePrefix=f"/aws/lambda/{ctx.config.stack}-")
        return {g["logGroupName"]: g for g in groups}

    def _plan_logs(self, ctx: Context) -> list[Change]:
        logs = ctx.aws.client("logs")
        retention = ctx.config.monitoring.log_retention_days
        existing = self._log_groups(ctx)
        changes = []
        for base in sorted(ctx.config.lambda_.functions):
            name = log_group_name(ctx.config.function_name(base))
            ctx.log_groups.append(name)
            group = existing.get(name)
            if group is None:
                changes.append(Change("log group", name, Action.CREATE, apply=lambda n=name: self._create_log_group(ctx, n)))
                continue
            tags = ctx.aws.call(logs.list_tags_log_group, logGroupName=name).get("tags", {})
            diffs = {}
            # Lambda makes /aws/lambda/<function> by itself on a first invocation; the function is ours (step 3
            # checked its tags), so its log group is ours to adopt. Tags changed in config.yaml are set here too.
            for key, value in sorted(ctx.config.all_tags.items()):
                if tags.get(key) != value:
                    diffs[f"tag {key}"] = (tags.get(key), value)
            if group.get("retentionInDays") != retention:
                diffs["retention_days"] = (group.get("retentionInDays"), retention)
            if diffs:
                changes.append(Change("log group", name, Action.UPDATE, diffs, apply=lambda n=name, d=diffs: self._fix_log_group(ctx, n, d)))
            else:
                changes.append(Change("log group", name, Action.UNCHANGED))
        return changes

    def _create_log_group(self, ctx: Context, name: str) -> None:
        logs = ctx.aws.client("logs")
        try:
            ctx.aws.call(logs.create_log_group, logGroupName=name, tags=ctx.config.all_tags)
        except Exception as exc:
            from crudstack.aws import error_code

            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
            ctx.aws.call(logs.tag_log_group, logGroupName=name, tags=ctx.config.all_tags)
        ctx.aws.call(logs.put_retention_policy, logGroupName=name, retentionInDays=ctx.config.monitoring.log_retention_days)

    def _fix_log_group(self, ctx: Context, name: str, diffs: dict) -> None:
        logs = ctx.aws.client("logs")
        if any(key.startswith("tag ") for key in diffs):
            ctx.aws.call(logs.tag_log_group, logGroupName=name, tags=ctx.config.all_tags)
        if "retention_days" in diffs:
            ctx.aws.call(logs.put_retention_policy, logGroupName=name, retentionInDays=ctx.config.monitoring.log_retention_days)

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
            ctx.topic_arn = ctx.arn("sns", name)
            changes.append(Change("SNS topic", name, Action.CREATE, apply=lambda: self._create_topic(ctx)))
        else:
            ctx.topic_arn = arn
            tags = self._topic_tags(ctx, arn)
            ensure_ours(ctx, f"Step {self.number} {self.title}", "SNS topic", name, tags)
            changes += tag_changes(ctx, "SNS topic", name, tags,
                                   lambda missing: ctx.aws.call(sns.tag_resource, ResourceArn=arn, Tags=tag_list(missing)))
            subscriptions = [s for s in ctx.aws.paginate(sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=arn)
                             if s["Protocol"] == "email"]
        if email and not any(s["Endpoint"] == email for s in subscriptions):
            changes.append(Change("e-mail subscription", email, Action.CREATE, note="AWS e-mails a confirmation link first",
                                  apply=lambda: ctx.aws.call(sns.subscribe, TopicArn=ctx.topic_arn, Protocol="email", Endpoint=email)))
        for sub in subscriptions:
            if sub["Endpoint"] != email and sub["SubscriptionArn"].startswith("arn:"):  # pending ones cannot be removed
                changes.append(Change("e-mail subscription", sub["Endpoint"], Action.DELETE,
                                      apply=lambda s=sub["SubscriptionArn"]: ctx.aws.delete(sns.unsubscribe, not_found=SNS_NOT_FOUND, SubscriptionArn=s)))
        if arn is not None and not any(c.action.mutates for c in changes):
            changes.append(Change("SNS topic", name, Action.UNCHANGED))
        return changes

    def _create_topic(self, ctx: Context) -> None:
        sns = ctx.aws.client("sns")
        # CreateTopic is idempotent by name: a retry after a lost answer returns the same topic.
        ctx.topic_arn = ctx.aws.call(sns.create_topic, Name=ctx.config.topic_name, Tags=tag_list(ctx.config.all_tags))["TopicArn"]

    # -- alarms --------------------------------------------------------------------------------
    def _existing_alarms(self, ctx: Context) -> dict[str, dict]:
        cw = ctx.aws.client("cloudwatch")
        alarms = ctx.aws.paginate(cw, "describe_alarms", "MetricAlarms", AlarmNamePrefix=f"{ctx.config.stack}-", AlarmTypes=["MetricAlarm"])
        return {a["AlarmName"]: a for a in alarms}

    def _alarm_tags(self, ctx: Context, alarm: dict) -> dict[str, str]:
        cw = ctx.aws.client("cloudwatch")
        return tag_dict(ctx.aws.call(cw.list_tags_for_resource, ResourceARN=alarm["AlarmArn"]).get("Tags"))

    def _alarm_is_ours(self, ctx: Context, alarm: dict) -> bool:
        return is_ours(self._alarm_tags(ctx, alarm), ctx.config)

    def _plan_alarms(self, ctx: Context) -> list[Change]:
        cw = ctx.aws.client("cloudwatch")
        wanted = desired_alarms(ctx, ctx.topic_arn)
        existing = self._existing_alarms(ctx)
        changes = []
        for name, spec in wanted.items():
            ctx.alarm_names.append(name)
            current = existing.get(name)
            if current is None:
                changes.append(Change("alarm", name, Action.CREATE, apply=lambda n=name: self._put_alarm(ctx, n)))
                continue
            tags = self._alarm_tags(ctx, current)
            ensure_ours(ctx, f"Step {self.number} {self.title}", "alarm", name, tags)
            have, want = _alarm_view(current), _alarm_view(spec)
            diffs = {k: (have[k], want[k]) for k in ALARM_FIELDS if have[k] != want[k]}
            # PutMetricAlarm ignores Tags when it updates an existing alarm (CloudWatch API Reference): TagResource sets them.
            retag = tag_changes(ctx, "alarm", name, tags, lambda missing, arn=current["AlarmArn"]: ctx.aws.call(
                cw.tag_resource, ResourceARN=arn, Tags=tag_list(missing)))
            if diffs:
                changes.append(Change("alarm", name, Action.UPDATE, diffs, apply=lambda n=name: self._put_alarm(ctx, n)))
            elif not any(c.action.mutates for c in retag):
                changes.append(Change("alarm", name, Action.UNCHANGED))
            changes += retag
        for name, alarm in sorted(existing.items()):  # ours, but no longer asked for (e.g. a function removed)
            if name not in wanted and self._alarm_is_ours(ctx, alarm):
                changes.append(Change("alarm", name, Action.DELETE,
                                      apply=lambda n=name: ctx.aws.call(cw.delete_alarms, AlarmNames=[n])))
        return changes

    def _put_alarm(self, ctx: Context, name: str) -> None:
        cw = ctx.aws.client("cloudwatch")
        spec = desired_alarms(ctx, ctx.topic_arn)[name]  # the topic ARN is known only once created
        ctx.aws.call(cw.put_metric_alarm, AlarmName=name, Tags=tag_list(ctx.config.all_tags), **spec)

    def plan(self, ctx: Context) -> list[Change]:
        ctx.log_groups, ctx.alarm_names = [], []
        return self._plan_logs(ctx) + self._plan_topic(ctx) + self._plan_alarms(ctx)

    # -- teardown ------------------------------------------------------------------------------
    def plan_teardown(self, ctx: Context) -> list[Change]:
        cw, sns, logs = ctx.aws.client("cloudwatch"), ctx.aws.client("sns"), ctx.aws.client("logs")
        changes = []
        ours = [name for name, alarm in sorted(self._existing_alarms(ctx).items()) if self._alarm_is_ours(ctx, alarm)]
        if ours:
            # delete_alarms takes up to 100 names and treats missing ones as done.
            changes.append(Change("alarms", f"{len(ours)} alarms", Action.DELETE,
                                  apply=lambda: [ctx.aws.call(cw.delete_alarms, AlarmNames=ours[i:i + 100]) for i in range(0, len(ours), 100)]))
        arn = self._find_topic(ctx)
        if arn is not None:
            if is_ours(self._topic_tags(ctx, arn), ctx.config):
                changes.append(Change("SNS topic", ctx.config.topic_name, Action.DELETE,
                                      apply=lambda: ctx.aws.delete(sns.delete_topic, not_found=SNS_NOT_FOUND, TopicArn=arn)))
            else:
                changes.append(not_ours("SNS topic", ctx.config.topic_name))
        for name in sorted(self._log_groups(ctx)):
            tags = ctx.aws.call(logs.list_tags_log_group, logGroupName=name).get("tags", {})
            if is_ours(tags, ctx.config):
                changes.append(Change("log group", name, Action.DELETE,
                                      apply=lambda n=name: ctx.aws.delete(logs.delete_log_group, not_found=LOGS_NOT_FOUND, logGroupName=n)))
        return changes

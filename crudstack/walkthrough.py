"""The words of the workshop mode: each step's console instructions.

They live in walkthrough.yaml; this module loads them once, fills in the placeholders from
config.yaml and the run, and picks the lines a given plan needs. The boto3 calls shown beside them
are the planned changes' own records (crudstack/calls.py). Printing and waiting for Enter are the
UI's job (crudstack/ui.py).

Placeholders (string.Template: `$name` or `${name}`), for every line:
    stack region table_name partition_key billing_mode role_name role_arn policy_name runtime
    runtime_label code_dir memory_mb timeout_s api_name stage topic_name alert_email retention_days
    period_s function_errors function_throttles function_duration_p99_ms api_5xx_errors
    api_latency_p99_ms tags (key=value, ...) tag_keys invoke_url
    throttle_rate throttle_burst usage_plan_name api_key_name plan_rate plan_burst plan_quota gateway_headers
  `each: function` lines add:
    base function_name handler module route method path (memory_mb / timeout_s: that function's)
    concurrency (the console's choice: "Reserve concurrency: N" or "Use unreserved account concurrency")
  `each: resource` lines add:  path part parent
Yes/no settings for `when:`  tutorial_managed_policies  alert_email  reserved_concurrency (any function's)  auth_none  auth_api_key  auth_iam
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from crudstack.config import Config
from crudstack.plan import Context
from crudstack.steps.usage_plan import number
from crudstack.steps.base import wanted_paths
from crudstack.steps.cors import CORS_ALLOW_HEADERS, preflight_headers
from crudstack.steps.role import inline_policy_name

DATA = Path(__file__).with_name("walkthrough.yaml")
EACH = ("function", "resource")


class WalkthroughDataError(ValueError):
    """walkthrough.yaml is malformed or names a placeholder nobody fills."""


@dataclass(frozen=True)
class Line:
    text: str
    when: str | None = None                 # a yes/no setting; "not X" negates it
    each: str | None = None                 # "function" or "resource": one line per item


@dataclass(frozen=True)
class StepText:
    number: str
    title: str
    console: tuple[Line, ...]


# Step 0 of `--adopt --walkthrough` (crudstack.adopt.AdoptStep.number): the `adopt` entry of walkthrough.yaml.
ADOPT_NUMBER = "0"


@dataclass(frozen=True)
class Script:
    steps: dict[str, StepText]
    adopt: StepText | None = None   # what the console made by hand, as --adopt takes it over

    def step(self, number: str) -> StepText:
        if number == ADOPT_NUMBER and self.adopt is not None:
            return self.adopt
        try:
            return self.steps[number]
        except KeyError:
            raise WalkthroughDataError(f"walkthrough.yaml: steps: no entry for step {number}") from None

    @property
    def last_number(self) -> str:
        return max(self.steps, key=int)


def _line(raw: Any, where: str) -> Line:
    if isinstance(raw, str):
        return Line(raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
        raise WalkthroughDataError(f"walkthrough.yaml: {where}: expected a string or a mapping with 'text', found {raw!r}")
    unknown = set(raw) - {"text", "when", "each"}
    if unknown:
        raise WalkthroughDataError(f"walkthrough.yaml: {where}: unknown keys {sorted(unknown)}; allowed: text, when, each")
    if raw.get("each") is not None and raw["each"] not in EACH:
        raise WalkthroughDataError(f"walkthrough.yaml: {where}: each: {raw['each']!r}, expected one of {', '.join(EACH)}")
    return Line(raw["text"], raw.get("when"), raw.get("each"))


def parse_script(data: Any) -> Script:
    if not isinstance(data, dict) or not isinstance(data.get("steps"), dict):
        raise WalkthroughDataError("walkthrough.yaml: expected a mapping with 'steps'")
    if "calls" in data:
        raise WalkthroughDataError("walkthrough.yaml: 'calls' is no longer read: the walkthrough prints the planned changes' "
                                   "own records (crudstack/calls.py); remove it")
    steps = {str(number): _step_text(str(number), entry, f"steps.{number}") for number, entry in data["steps"].items()}
    adopt = _step_text(ADOPT_NUMBER, data["adopt"], "adopt") if "adopt" in data else None
    return Script(steps, adopt)


def _step_text(number: str, entry: Any, where: str) -> StepText:
    if not isinstance(entry, dict) or not isinstance(entry.get("console"), list) or not entry.get("title"):
        raise WalkthroughDataError(f"walkthrough.yaml: {where}: expected 'title' and a 'console' list")
    return StepText(number, str(entry["title"]), tuple(_line(raw, f"{where}.console[{i}]") for i, raw in enumerate(entry["console"])))


@functools.lru_cache(maxsize=4)
def load_script(path: Path = DATA) -> Script:
    return parse_script(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


# -- values --------------------------------------------------------------------------------------------


def _runtime_label(runtime: str) -> str:
    return "Python " + runtime.removeprefix("python")  # python3.12 -> Python 3.12, as the console lists it


def config_values(ctx: Context, invoke_url: str | None = None) -> dict[str, str]:
    cfg: Config = ctx.config
    alarms = cfg.monitoring.alarms
    plan = cfg.api.usage_plan
    return {
        "stack": cfg.stack, "region": ctx.region, "table_name": cfg.table_name, "partition_key": cfg.table.partition_key,
        "billing_mode": cfg.table.billing_mode, "role_name": cfg.role_name,
        "role_arn": ctx.role_arn or f"<arn of {cfg.role_name}>", "policy_name": inline_policy_name(ctx),
        "runtime": cfg.lambda_.runtime, "runtime_label": _runtime_label(cfg.lambda_.runtime), "code_dir": cfg.lambda_.code_dir,
        "memory_mb": str(cfg.lambda_.memory_mb), "timeout_s": str(cfg.lambda_.timeout_s),
        "api_name": cfg.api_name, "stage": cfg.api.stage, "topic_name": cfg.topic_name,
        "alert_email": cfg.monitoring.alert_email or "(none)", "retention_days": str(cfg.monitoring.log_retention_days),
        "period_s": str(alarms.period_s), "function_errors": str(alarms.function_errors),
        "function_throttles": str(alarms.function_throttles), "function_duration_p99_ms": str(alarms.function_duration_p99_ms),
        "api_5xx_errors": str(alarms.api_5xx_errors), "api_latency_p99_ms": str(alarms.api_latency_p99_ms),
        "tags": ", ".join(f"{k}={v}" for k, v in sorted(cfg.all_tags.items())),
        "tag_keys": ", ".join(sorted(cfg.all_tags)),
        "invoke_url": invoke_url or "(known once step 5 has deployed the API)",
        "cors_origin": preflight_headers(ctx, [])["Access-Control-Allow-Origin"], "cors_headers": CORS_ALLOW_HEADERS,
        "cors_max_age": str(cfg.api.cors.max_age_s),
        "throttle_rate": number(cfg.api.throttle.rate_per_s), "throttle_burst": str(cfg.api.throttle.burst),
        "usage_plan_name": cfg.usage_plan_name, "api_key_name": cfg.api_key_name,
        "plan_rate": number(plan.rate_per_s), "plan_burst": str(plan.burst),
        "plan_quota": f"{plan.quota} requests per {plan.quota_period.lower()}" if plan.quota is not None else "no quota",
        "gateway_headers": "Access-Control-Allow-Origin, -Headers, -Methods",
    }


def flags(cfg: Config) -> dict[str, bool]:
    return {
        "tutorial_managed_policies": cfg.role.tutorial_managed_policies,
        "alert_email": bool(cfg.monitoring.alert_email),
        "reserved_concurrency": any(cfg.reserved_concurrency(fn) is not None for fn in cfg.lambda_.functions.values()),
        "auth_none": cfg.api.auth == "none",
        "auth_api_key": cfg.api.auth == "api_key",
        "auth_iam": cfg.api.auth == "iam",
    }


def function_values(cfg: Config, base: str) -> dict[str, str]:
    fn = cfg.lambda_.functions[base]
    return {"base": base, "function_name": cfg.function_name(base), "handler": fn.handler, "module": fn.module,
            "route": fn.route, "method": fn.method, "path": fn.path,
            "memory_mb": str(fn.memory_mb or cfg.lambda_.memory_mb), "timeout_s": str(fn.timeout_s or cfg.lambda_.timeout_s),
            "concurrency": ("Use unreserved account concurrency" if cfg.reserved_concurrency(fn) is None
                            else f"Reserve concurrency: {cfg.reserved_concurrency(fn)}")}


def resource_values(path: str) -> dict[str, str]:
    parent, _, part = path.rpartition("/")
    return {"path": path, "part": part, "parent": parent or "/"}


# -- rendering -----------------------------------------------------------------------------------------


def render(text: str, values: dict[str, str], where: str) -> str:
    try:
        return string.Template(text).substitute(values)
    except KeyError as exc:
        raise WalkthroughDataError(f"walkthrough.yaml: {where}: unknown placeholder ${exc.args[0]} in {text!r}") from None
    except ValueError as exc:  # a lone $ or a malformed ${...}
        raise WalkthroughDataError(f"walkthrough.yaml: {where}: {exc} in {text!r}") from None


def _holds(flag: str | None, settings: dict[str, bool], where: str) -> bool:
    if flag is None:
        return True
    negate = flag.startswith("not ")
    name = flag.removeprefix("not ").strip()
    if name not in settings:
        raise WalkthroughDataError(f"walkthrough.yaml: {where}: when: {flag!r}; known settings: {', '.join(settings)}")
    return settings[name] != negate


def console_lines(script: Script, number: str, ctx: Context, invoke_url: str | None = None) -> list[str]:
    """A step's console instructions, placeholders filled, `each` lines repeated, `when` lines picked."""
    cfg = ctx.config
    base_values = config_values(ctx, invoke_url)
    settings = flags(cfg)
    lines = []
    for i, line in enumerate(script.step(number).console):
        where = f"steps.{number}.console[{i}]"
        if not _holds(line.when, settings, where):
            continue
        if line.each == "function":
            items = [function_values(cfg, base) for base in cfg.lambda_.functions]
        elif line.each == "resource":
            items = [resource_values(path) for path in wanted_paths(ctx) if path != "/"]
        else:
            items = [{}]
        lines += [render(line.text, {**base_values, **item}, where) for item in items]
    return lines

"""Step 4, who may call each method: api.auth in config.yaml makes it open (NONE), an API key required,
or AWS_IAM. OPTIONS stays open: a browser's preflight carries no credentials (steps/api.py)."""

from __future__ import annotations

import logging

from crudstack.config import Config

log = logging.getLogger(__name__)


def warn_if_open(cfg: Config) -> None:
    """The tutorial's API answers anyone who has its URL: say so, once per run (step 4's plan)."""
    if cfg.api.auth == "none":
        log.warning("api.auth is none: anyone who has the invoke URL can call the API and write to %s; set api.auth "
                    "to api_key or iam in config.yaml to require a key or signed requests (docs/api-access.md)",
                    cfg.table_name)


def method_authorization(cfg: Config) -> dict:
    """put_method's parameters for a route's method (PutMethod: authorizationType, apiKeyRequired)."""
    return {"authorizationType": "AWS_IAM" if cfg.api.auth == "iam" else "NONE", "apiKeyRequired": cfg.api.auth == "api_key"}


def authorization_patch(current: dict, cfg: Config) -> tuple[dict, list[dict]]:
    """(diffs, UpdateMethod patch operations) that bring an existing method's authorization to config."""
    wanted = method_authorization(cfg)
    diffs, ops = {}, []
    if current.get("authorizationType") != wanted["authorizationType"]:
        diffs["authorization"] = (current.get("authorizationType"), wanted["authorizationType"])
        ops.append({"op": "replace", "path": "/authorizationType", "value": wanted["authorizationType"]})
    if bool(current.get("apiKeyRequired")) != wanted["apiKeyRequired"]:
        diffs["api key required"] = (bool(current.get("apiKeyRequired")), wanted["apiKeyRequired"])
        ops.append({"op": "replace", "path": "/apiKeyRequired", "value": str(wanted["apiKeyRequired"]).lower()})
    return diffs, ops

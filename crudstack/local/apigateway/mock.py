"""MOCK integrations: API Gateway answers by itself (the console's "Enable CORS" preflight)."""

from __future__ import annotations

import json
import logging
import re
from typing import Mapping

from crudstack.local.apigateway.models import DeployedMethod
from crudstack.local.apigateway.responses import INTERNAL_ERROR, HttpResponse, gateway_error

log = logging.getLogger(__name__)

# A mapping template that uses VTL (variables or directives) needs a VTL engine we do not have.
_VTL = re.compile(r"\$[A-Za-z{!]|#(?:set|if|elseif|else|end|foreach|define|macro|parse|include|break|stop|evaluate)\b")


def _pick_template(templates: Mapping[str, str | None], content_type: str | None) -> str | None:
    if not templates:
        return None
    mime = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if mime in templates:
        return templates[mime]
    return templates.get("application/json", next(iter(templates.values())))


def mock_response(method: DeployedMethod, content_type: str | None, where: str) -> HttpResponse:
    """MOCK: the request template's statusCode selects an integration response (by selectionPattern,
    else the default one), whose static header values and body template make the answer.

    As on AWS, the integration response's status must have a method response, and a header it
    maps must be declared there (AWS refuses such a mapping at put_integration_response; moto
    stores it, so it is caught here): otherwise 500 and a log line. Templates with VTL expressions
    are not evaluated here: 500 and a log line too."""
    integration = method.integration  # a MOCK method always has one (Gateway.handle checked)
    template = _pick_template(integration.request_templates, content_type)
    status = "200"
    if template:
        if _VTL.search(template):
            log.error("%s: MOCK request template uses VTL, which the local gateway does not evaluate: %r", where, template)
            return gateway_error(*INTERNAL_ERROR)
        try:
            status = str(json.loads(template)["statusCode"])
        except (ValueError, KeyError, TypeError):
            log.error("%s: MOCK request template has no statusCode: %r", where, template)
            return gateway_error(*INTERNAL_ERROR)
    chosen = next((r for r in integration.responses if r.selection_pattern and re.fullmatch(r.selection_pattern, status)), None)
    chosen = chosen or next((r for r in integration.responses if not r.selection_pattern), None)
    if chosen is None:
        log.error("%s: execution failed due to configuration error: no integration response matches status %s "
                  "and there is no default one", where, status)
        return gateway_error(*INTERNAL_ERROR)
    declared = method.responses.get(chosen.status_code)
    if declared is None:
        log.error("%s: execution failed due to configuration error: Output mapping refers to an invalid method "
                  "response: %s", where, chosen.status_code)
        return gateway_error(*INTERNAL_ERROR)
    headers: list[tuple[str, str]] = []
    for target, source in chosen.response_parameters.items():
        if not target.startswith("method.response.header."):
            continue
        if target[len("method.response.header."):] not in declared:
            log.error("%s: execution failed due to configuration error: %s is not declared by the %s method "
                      "response (AWS refuses this mapping at put_integration_response)", where, target, chosen.status_code)
            return gateway_error(*INTERNAL_ERROR)
        if not (len(source) >= 2 and source[0] == source[-1] == "'"):
            log.error("%s: MOCK response parameter %s = %s is not a static 'value'; the local gateway maps only those",
                      where, target, source)
            return gateway_error(*INTERNAL_ERROR)
        headers.append((target[len("method.response.header."):], source[1:-1]))
    body = _pick_template(chosen.response_templates, "application/json") or ""
    if _VTL.search(body):
        log.error("%s: MOCK response template uses VTL, which the local gateway does not evaluate: %r", where, body)
        return gateway_error(*INTERNAL_ERROR)
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(int(chosen.status_code), headers, body.encode("utf-8"))

"""The files a user calls the API with, written after each provision (default folder: outputs/).

    stack.json                the --json document: invoke URL, every resource, routes, call counts
    postman_collection.json   a Postman v2.1 collection: {{baseUrl}} is the invoke URL, one request per route
    endpoints.http            the same requests for VS Code's REST Client (and editors that read its format)

Everything here is a pure function of the --json document, so it is tested without AWS. The example
bodies are the ones the handlers in lambdas/ accept, and the curl examples use the same ones.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
STACK_FILE, POSTMAN_FILE, HTTP_FILE = "stack.json", "postman_collection.json", "endpoints.http"
METHOD_ORDER = ("POST", "GET", "PUT", "PATCH", "DELETE")  # create first: it makes the id the others use
_PARAM = re.compile(r"^\{(\w+)\}$")


def example_body(method: str) -> dict | None:
    """What the handlers accept: a new item for POST, a partial update for PUT/PATCH."""
    if method == "POST":
        return {"name": "Widget", "description": "A test item"}
    if method in ("PUT", "PATCH"):
        return {"name": "Renamed widget"}
    return None


def ordered_routes(routes: list[dict]) -> list[dict]:
    """Collection paths before item paths, and create, read, update, delete within each."""
    def key(route: dict):
        method = route["method"]
        return route["path"].count("/"), METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)

    return sorted(routes, key=key)


def variable_for(path: str, param: str) -> str:
    """{id} under /items is itemId: a name that still reads well next to other APIs' ids."""
    if param != "id":
        return param
    parts = path.strip("/").split("/")
    index = parts.index("{id}")
    parent = parts[index - 1] if index else "item"
    return parent.removesuffix("s") + "Id"


def _segments(path: str) -> list[str]:
    """/items/{id} -> ["items", "{{itemId}}"]: each path parameter becomes a variable."""
    segments = []
    for part in path.strip("/").split("/"):
        match = _PARAM.match(part)
        segments.append("{{" + variable_for(path, match.group(1)) + "}}" if match else part)
    return segments


def _request_name(route: dict, stack: str) -> str:
    """demo-CreateItemFunction -> createItem, a name REST Client and readers both accept."""
    base = route["function"].removeprefix(f"{stack}-").removesuffix("Function") or route["method"].lower()
    return base[0].lower() + base[1:]


def _created_ids(routes: list[dict]) -> dict[str, tuple[dict, str]]:
    """variable -> (the POST route whose answer holds it, its key in `item`), e.g. itemId <- POST /items."""
    found = {}
    for route in routes:
        for other in routes:
            parts = other["path"].rsplit("/", 1)
            match = _PARAM.match(parts[-1])
            if route["method"] == "POST" and match and parts[0] == route["path"]:
                found.setdefault(variable_for(other["path"], match.group(1)), (route, match.group(1)))
    return found


def postman_collection(doc: dict) -> dict:
    routes = ordered_routes(doc["routes"])
    created = _created_ids(routes)
    variables = {v for r in routes for v in re.findall(r"\{\{(\w+)\}\}", "/".join(_segments(r["path"])))}
    items = []
    for route in routes:
        segments = _segments(route["path"])
        request: dict = {
            "method": route["method"],
            "header": [],
            "url": {"raw": "{{baseUrl}}/" + "/".join(segments), "host": ["{{baseUrl}}"], "path": segments},
            "description": f"{route['method']} {route['path']}, served by Lambda function {route['function']}",
        }
        body = example_body(route["method"])
        if body is not None:
            request["header"].append({"key": "Content-Type", "value": "application/json"})
            request["body"] = {"mode": "raw", "raw": json.dumps(body, indent=2), "options": {"raw": {"language": "json"}}}
        item: dict = {"name": f"{route['method']} {route['path']}", "request": request}
        saves = [(var, key) for var, (source, key) in created.items() if source is route]
        if saves:  # the create's answer carries the new id: keep it for the requests that need one
            item["event"] = [{"listen": "test", "script": {"type": "text/javascript", "exec": [
                "const item = pm.response.json().item || {};",
                *[f"if (item.{key}) pm.collectionVariables.set('{var}', item.{key});" for var, key in saves],
            ]}}]
        items.append(item)
    return {
        "info": {
            "name": f"{doc['stack']} items API ({doc['target']})",
            "description": f"The CRUD API of stack {doc['stack']}, made by crudstack. Send the POST first: "
                           "it stores the new item's id for the requests that need one.",
            "schema": POSTMAN_SCHEMA,
        },
        "variable": [{"key": "baseUrl", "value": doc["invoke_url"] or "", "type": "string"}]
                    + [{"key": v, "value": "", "type": "string"} for v in sorted(variables)],
        "item": items,
    }


def rest_client_file(doc: dict) -> str:
    routes = ordered_routes(doc["routes"])
    created = _created_ids(routes)
    names = {id(r): _request_name(r, doc["stack"]) for r in routes}
    lines = [
        f"# The {doc['stack']} items API ({doc['target']}), made by crudstack: one request per route.",
        "# Open in VS Code with the REST Client extension and choose 'Send Request' above a request.",
        "# Send the POST first: the requests on one item take its id from the POST's answer.",
        "",
        f"@baseUrl = {doc['invoke_url'] or ''}",
    ]
    for var, (source, key) in sorted(created.items()):
        lines.append(f"@{var} = {{{{{names[id(source)]}.response.body.$.item.{key}}}}}")
    for route in routes:
        lines += ["", f"### {route['method']} {route['path']} ({route['function']})", f"# @name {names[id(route)]}",
                  f"{route['method']} {{{{baseUrl}}}}/{'/'.join(_segments(route['path']))}"]
        body = example_body(route["method"])
        if body is not None:
            lines += ["Content-Type: application/json", "", json.dumps(body)]
    return "\n".join(lines) + "\n"


def write_outputs(doc: dict, folder: Path) -> list[Path]:
    """Write the three files (stack.json last, so it lists the others); returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    postman, http, stack = folder / POSTMAN_FILE, folder / HTTP_FILE, folder / STACK_FILE
    postman.write_text(json.dumps(postman_collection(doc), indent=2) + "\n", encoding="utf-8")
    http.write_text(rest_client_file(doc), encoding="utf-8")
    doc["outputs"] = {"dir": str(folder), "files": [str(stack), str(postman), str(http)]}
    stack.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return [stack, postman, http]

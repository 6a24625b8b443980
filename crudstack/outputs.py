"""The files a user calls the API with, written after each provision (default folder: outputs/).

    stack.json                the --json document: invoke URL, every resource, routes, call counts
    postman_collection.json   a Postman v2.1 collection: {{baseUrl}} is the invoke URL, one request per route,
                              each checking its status; writes send back the ETag they read (If-Match); and a
                              "Contract checks" folder of requests the API must refuse (400, 412, 415)
    endpoints.http            the same requests for VS Code's REST Client (and editors that read its format)
    items.html                the browser client (crudstack/browser/items.html) with the invoke URL filled in
                              (and with api_key, its x-api-key field)

Everything here is a pure function of the --json document, so it is tested without AWS. The example
bodies are the ones the handlers in lambdas/ accept, and the curl examples use the same ones.

Who may call the API (the document's "auth", config.yaml's api.auth) is in each of them: with api_key the
key's value is sent as x-api-key (Postman's API Key auth, a REST Client header, curl -H); with iam every
request is signed with SigV4 for service execute-api (Postman's AWS Signature auth, REST Client's
"Authorization: AWS ..." line, curl --aws-sigv4), from credentials the user supplies, never written here.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crudstack.plan import Context

POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
API_KEY_HEADER = "x-api-key"   # the header API Gateway reads an API key from (apiKeySource HEADER, its default)
STACK_FILE, POSTMAN_FILE, HTTP_FILE = "stack.json", "postman_collection.json", "endpoints.http"
BROWSER_FILE = "items.html"
# The spots of the browser client's invoke URL and x-api-key fields that a copy in outputs/ fills in.
_URL_FIELD = 'id="invoke-url" type="url" value=""'
_KEY_FIELD = 'id="api-key" autocomplete="off"'
METHOD_ORDER = ("POST", "GET", "PUT", "PATCH", "DELETE")  # create first: it makes the id the others use
_PARAM = re.compile(r"^\{(\w+)\}$")


def example_body(method: str) -> dict | None:
    """What the handlers accept: a new item for POST, a partial update for PUT/PATCH."""
    if method == "POST":
        return {"name": "Widget", "description": "A test item"}
    if method in ("PUT", "PATCH"):
        return {"name": "Renamed widget"}
    return None


# What each route answers when the collection runs in order (create first, delete last).
EXPECTED_STATUS = {"POST": 201, "GET": 200, "PUT": 200, "PATCH": 200, "DELETE": 200}
CONDITIONAL = ("PUT", "PATCH", "DELETE")  # writes that take If-Match


def etag_variable(id_variable: str) -> str:
    """itemId -> itemEtag: where the collection keeps the ETag of the item it works on."""
    return id_variable.removesuffix("Id") + "Etag"


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


def _postman_request(method: str, segments: list[str], description: str, *, body=None, headers=(),
                     query=(), content_type: str = "application/json") -> dict:
    request: dict = {
        "method": method,
        "header": [],
        "url": {"raw": "{{baseUrl}}/" + "/".join(segments) + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else ""),
                "host": ["{{baseUrl}}"], "path": segments},
        "description": description,
    }
    if query:
        request["url"]["query"] = [{"key": k, "value": v} for k, v in query]
    if body is not None:
        request["header"].append({"key": "Content-Type", "value": content_type})
        raw = body if isinstance(body, str) else json.dumps(body, indent=2)
        request["body"] = {"mode": "raw", "raw": raw, "options": {"raw": {"language": "json" if not isinstance(body, str) else "text"}}}
    request["header"] += [{"key": k, "value": v} for k, v in headers]
    return request


def _tests(status: int, *lines: str) -> list[dict]:
    """A test script checking the status, then `lines` (run only when the status is the expected one)."""
    return [{"listen": "test", "script": {"type": "text/javascript", "exec": [
        f"pm.test('answers {status}', () => pm.response.to.have.status({status}));",
        *([f"if (pm.response.code === {status}) {{", *[f"  {line}" for line in lines], "}"] if lines else []),
    ]}}]


def _keep_etag(var: str) -> str:
    return f"if (pm.response.headers.get('ETag')) pm.collectionVariables.set('{etag_variable(var)}', pm.response.headers.get('ETag'));"


def contract_checks(routes: list[dict]) -> list[dict]:
    """Requests the API must refuse, each checking the answer the contract (openapi.yaml) gives it:
    only for a create on a collection whose item route takes PUT (the items API's shape)."""
    create = next((r for r in routes if r["method"] == "POST"), None)
    put = next((r for r in routes if create and r["method"] == "PUT" and r["path"].rsplit("/", 1)[0] == create["path"]), None)
    if put is None:
        return []
    collection, item = _segments(create["path"]), _segments(put["path"])
    var = item[-1].strip("{}")
    scratch = [*collection, "{{checkItemId}}"]
    unknown = {**example_body("POST"), "colour": "red"}
    return [
        {"name": "POST a scratch item", "event": _tests(201, "pm.collectionVariables.set('checkItemId', pm.response.json().item.id);"),
         "request": _postman_request("POST", collection, "An item for the checks below", body=example_body("POST"))},
        {"name": "PUT with a stale If-Match -> 412, nothing written", "event": _tests(412),
         "request": _postman_request("PUT", scratch, "Versions start at 1: ETag \"0\" is always stale",
                                     body=example_body("PUT"), headers=[("If-Match", '"0"')])},
        {"name": "DELETE with a stale If-Match -> 412", "event": _tests(412),
         "request": _postman_request("DELETE", scratch, "The item stays", headers=[("If-Match", '"0"')])},
        {"name": "DELETE the scratch item", "event": _tests(200),
         "request": _postman_request("DELETE", scratch, "Clean up", headers=[("If-Match", "*")])},
        {"name": "POST an unknown field -> 400 naming it", "event": _tests(400, "pm.expect(pm.response.json().errors[0].field).to.eql('colour');"),
         "request": _postman_request("POST", collection, "Unknown fields are refused, not ignored", body=unknown)},
        {"name": "POST a form instead of JSON -> 415", "event": _tests(415),
         "request": _postman_request("POST", collection, "Bodies must be application/json", body="name=Widget",
                                     content_type="application/x-www-form-urlencoded")},
        {"name": "GET an id no item has -> 404", "event": _tests(404),
         "request": _postman_request("GET", [*collection, "no-such-item"],
                                     f"Any {{{{{var}}}}} names an item (not only a UUID); this one names none")},
    ]


def auth_mode(doc: dict) -> str:
    return (doc.get("auth") or {}).get("mode", "none")


def postman_auth(doc: dict) -> tuple[dict | None, dict[str, str]]:
    """(the collection's auth, the variables it uses with their values): every request inherits it."""
    mode = auth_mode(doc)
    if mode == "api_key":
        fields = {"key": API_KEY_HEADER, "value": "{{apiKey}}", "in": "header"}
        return ({"type": "apikey", "apikey": [{"key": k, "value": v, "type": "string"} for k, v in fields.items()]},
                {"apiKey": (doc["auth"].get("api_key") or {}).get("value") or ""})
    if mode == "iam":
        # Credentials are the user's: left empty here, to fill in Postman (or from an environment).
        fields = {"accessKey": "{{awsAccessKeyId}}", "secretKey": "{{awsSecretAccessKey}}", "sessionToken": "{{awsSessionToken}}",
                  "region": doc.get("region") or "", "service": "execute-api"}
        return ({"type": "awsv4", "awsv4": [{"key": k, "value": v, "type": "string"} for k, v in fields.items()]},
                {"awsAccessKeyId": "", "awsSecretAccessKey": "", "awsSessionToken": ""})
    return None, {}


def postman_collection(doc: dict) -> dict:
    routes = ordered_routes(doc["routes"])
    created = _created_ids(routes)
    variables = {v for r in routes for v in re.findall(r"\{\{(\w+)\}\}", "/".join(_segments(r["path"])))}
    items = []
    for route in routes:
        segments = _segments(route["path"])
        method = route["method"]
        ids = [s.strip("{}") for s in segments if s.startswith("{{")]
        headers = [("If-Match", "{{" + etag_variable(ids[-1]) + "}}")] if ids and method in CONDITIONAL else []
        query = [("limit", "25")] if method == "GET" and not ids else []
        request = _postman_request(method, segments, f"{method} {route['path']}, served by Lambda function {route['function']}",
                                   body=example_body(method), headers=headers, query=query)
        saves = [(var, key) for var, (source, key) in created.items() if source is route]
        lines = []
        if saves:  # the create's answer carries the new id (and its ETag): keep them for the requests that need them
            lines = ["const item = pm.response.json().item || {};",
                     *[f"if (item.{key}) pm.collectionVariables.set('{var}', item.{key});" for var, key in saves],
                     *[_keep_etag(var) for var, _ in saves]]
        elif ids and method != "DELETE":  # a read or an update: the item's current ETag, for the next write
            lines = [_keep_etag(ids[-1])]
        items.append({"name": f"{method} {route['path']}", "event": _tests(EXPECTED_STATUS.get(method, 200), *lines),
                      "request": request})
    checks = contract_checks(routes)
    if checks:
        items.append({"name": "Contract checks", "description": "Requests the API must refuse (see openapi.yaml)", "item": checks})
        variables.add("checkItemId")
    etags = {etag_variable(v) for v in variables if v.endswith("Id") and v != "checkItemId"}
    auth, auth_variables = postman_auth(doc)
    collection = {
        "info": {
            "name": f"{doc['stack']} items API ({doc['target']})",
            "description": f"The CRUD API of stack {doc['stack']}, made by crudstack. Send the POST first: "
                           "it stores the new item's id for the requests that need one.",
            "schema": POSTMAN_SCHEMA,
        },
        "variable": [{"key": "baseUrl", "value": doc["invoke_url"] or "", "type": "string"}]
                    + [{"key": v, "value": "", "type": "string"} for v in sorted(variables | etags)]
                    + [{"key": k, "value": v, "type": "string"} for k, v in auth_variables.items()],
        "item": items,
    }
    if auth is not None:
        collection["auth"] = auth
        if auth["type"] == "awsv4":
            collection["info"]["description"] += (" Requests are signed (AWS Signature): set awsAccessKeyId and "
                                                  "awsSecretAccessKey (and awsSessionToken for temporary credentials).")
    return collection


def rest_client_auth(doc: dict) -> tuple[list[str], list[str]]:
    """(file variable lines, the header line every request carries) for the document's auth."""
    mode = auth_mode(doc)
    if mode == "api_key":
        return [f"@apiKey = {(doc['auth'].get('api_key') or {}).get('value') or ''}"], [f"{API_KEY_HEADER}: {{{{apiKey}}}}"]
    if mode == "iam":
        # REST Client signs with "Authorization: AWS <accessId> <accessKey> [token:..] [region:..] [service:..]"
        # (Huachao/vscode-restclient README, "AWS Signature v4"); the keys come from the environment.
        return ([f"@awsRegion = {doc.get('region') or ''}"],
                ["Authorization: AWS {{$processEnv AWS_ACCESS_KEY_ID}} {{$processEnv AWS_SECRET_ACCESS_KEY}} "
                 "token:{{$processEnv AWS_SESSION_TOKEN}} region:{{awsRegion}} service:execute-api"])
    return [], []


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
    auth_lines, auth_headers = rest_client_auth(doc)
    lines += auth_lines
    for var, (source, key) in sorted(created.items()):
        lines.append(f"@{var} = {{{{{names[id(source)]}.response.body.$.item.{key}}}}}")
    for route in routes:
        segments = _segments(route["path"])
        lines += ["", f"### {route['method']} {route['path']} ({route['function']})", f"# @name {names[id(route)]}",
                  f"{route['method']} {{{{baseUrl}}}}/{'/'.join(segments)}", *auth_headers]
        ids = [s.strip("{}") for s in segments if s.startswith("{{")]
        if ids and route["method"] in CONDITIONAL and ids[-1] in created:
            # The ETag of the item as created: a write after another write needs the newer one (412 otherwise).
            lines.append(f"If-Match: {{{{{names[id(created[ids[-1]][0])]}.response.headers.ETag}}}}")
        body = example_body(route["method"])
        if body is not None:
            lines += ["Content-Type: application/json", "", json.dumps(body)]
    return "\n".join(lines) + "\n"


def browser_client(invoke_url: str | None, api_key: str | None = None) -> str:
    """crudstack/browser/items.html with its invoke URL field filled in, and with api.auth api_key its x-api-key
    field too (both escaped: it is HTML)."""
    page = resources.files("crudstack.browser").joinpath(BROWSER_FILE).read_text(encoding="utf-8")
    for field, what in ((_URL_FIELD, "invoke URL"), (_KEY_FIELD, "x-api-key")):
        if field not in page:
            raise ValueError(f"crudstack/browser/{BROWSER_FILE} lost its {what} field ({field})")
    page = page.replace(_URL_FIELD, f'id="invoke-url" type="url" value="{html.escape(invoke_url or "", quote=True)}"', 1)
    if api_key:
        page = page.replace(_KEY_FIELD, f'{_KEY_FIELD} value="{html.escape(api_key, quote=True)}"', 1)
    return page


def api_key_value(doc: dict) -> str | None:
    """The key's value with api.auth api_key, else None."""
    return ((doc.get("auth") or {}).get("api_key") or {}).get("value") if auth_mode(doc) == "api_key" else None


def write_outputs(doc: dict, folder: Path) -> list[Path]:
    """Write the four files (stack.json last, so it lists the others); returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    postman, http, stack = folder / POSTMAN_FILE, folder / HTTP_FILE, folder / STACK_FILE
    browser = folder / BROWSER_FILE
    postman.write_text(json.dumps(postman_collection(doc), indent=2) + "\n", encoding="utf-8")
    http.write_text(rest_client_file(doc), encoding="utf-8")
    browser.write_text(browser_client(doc["invoke_url"], api_key_value(doc)), encoding="utf-8")
    doc["outputs"] = {"dir": str(folder), "files": [str(stack), str(postman), str(http), str(browser)]}
    stack.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return [stack, postman, http, browser]


# -- the invoke URL and its curl commands, as provision prints them ----------------------------------------


def invoke_url(ctx: Context, endpoint: str | None) -> str | None:
    if not ctx.api_id:
        return None
    stage = ctx.config.api.stage
    if endpoint:  # the local AWS (and LocalStack-style endpoints) serve the API under this path
        return f"{endpoint.rstrip('/')}/restapis/{ctx.api_id}/{stage}/_user_request_"
    return f"https://{ctx.api_id}.execute-api.{ctx.region}.{ctx.aws.dns_suffix}/{stage}"


def curl_auth(ctx: Context, api_key: str | None) -> str:
    """What each curl command adds for api.auth: the key's header, or curl's own SigV4 signing (curl 7.75+,
    --aws-sigv4 "aws:amz:REGION:execute-api" with the keys from the environment)."""
    auth = ctx.config.api.auth
    if auth == "api_key":
        return f"-H '{API_KEY_HEADER}: {api_key or '<your API key>'}' "
    if auth == "iam":
        # Temporary credentials also need -H "x-amz-security-token: $AWS_SESSION_TOKEN" (docs/api-access.md).
        return f"--aws-sigv4 'aws:amz:{ctx.region}:execute-api' --user \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\" "
    return ""


def curl_examples(ctx: Context, url: str, api_key: str | None = None) -> list[str]:
    routes = [{"method": f.method, "path": f.path} for f in ctx.config.lambda_.functions.values()]
    auth = curl_auth(ctx, api_key)
    examples = []
    for route in ordered_routes(routes):
        path = "/".join("<id>" if p.startswith("{") else p for p in route["path"].split("/"))
        method = "" if route["method"] == "GET" else f"-X {route['method']} "
        payload = example_body(route["method"])
        body = f" -H 'Content-Type: application/json' -d '{json.dumps(payload)}'" if payload is not None else ""
        examples.append(f"curl {auth}{method}'{url}{path}'{body}")
    return examples

"""The console over HTTP: the page and its files under /_console, and its JSON API under /_console/api.

    GET  /_console                          the page (static/index.html), its script and style sheet
    GET  /_console/api/stacks               {"regions": [...], "stacks": [{"region", "stack"}]}
    GET  /_console/api/stack?region=&stack= the tutorial's steps 1-7 with each resource and its state
    GET  /_console/api/items?region=&table=&limit=&next=     a page of the table's items (Scan)
    GET  /_console/api/logs?region=&function=                the function's log lines of the last hour
    POST /_console/api/invoke?region=&function=              the Lambda Test tab: invoke with the body as event
    GET  /_console/api/metrics?region=&stack=                charts, alarms and their history
    GET  /_console/api/outbox                                the alert e-mails SNS delivered, newest first

Every answer carries a strict Content-Security-Policy (nothing but the console's own files and
calls to its own origin); guard.py refuses other hosts and origins (403 JSON) before anything runs.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from botocore.exceptions import BotoCoreError, ClientError

from crudstack.local.console import charts, guard
from crudstack.local.console.exceptions import BadRequest, ConsoleError, Forbidden, NotFound
from crudstack.local.console.data import ConsoleData
from crudstack.local.wsgi import read_body

log = logging.getLogger(__name__)

PREFIX = "/_console"
STATIC = {"": ("index.html", "text/html; charset=utf-8"),
          "/": ("index.html", "text/html; charset=utf-8"),
          "/console.js": ("console.js", "text/javascript; charset=utf-8"),
          "/console.css": ("console.css", "text/css; charset=utf-8")}
# Only the console's own files and its own origin: no inline script, no external asset, no framing.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"), ("Cache-Control", "no-store")]


def is_console_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _static(name: str) -> bytes:
    return resources.files("crudstack.local.console").joinpath("static", name).read_bytes()


class Console:
    """The WSGI app for /_console. data: where its answers come from (models.ConsoleData)."""

    def __init__(self, data: ConsoleData):
        self.data = data
        self._routes: dict[tuple[str, str], Callable[[dict, dict], Any]] = {
            ("GET", "stacks"): self._stacks, ("GET", "stack"): self._stack, ("GET", "items"): self._items,
            ("GET", "logs"): self._logs, ("POST", "invoke"): self._invoke, ("GET", "metrics"): self._metrics,
            ("GET", "outbox"): self._outbox,
        }

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")[len(PREFIX):]
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            why = guard.refusal(environ)
            if why is not None:
                raise Forbidden(why)
            if path.startswith("/api/"):
                name = path[len("/api/"):]
                handler = self._routes.get((method, name))
                if handler is None:
                    if any(route == name for _, route in self._routes):
                        raise BadRequest(f"{method} is not allowed on {PREFIX}/api/{name}")
                    raise NotFound(f"no console API {PREFIX}/api/{name}")
                query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
                return self._json(start_response, "200 OK", handler(environ, query))
            if path in STATIC:
                if method not in ("GET", "HEAD"):
                    raise BadRequest(f"{method} is not allowed on {PREFIX}{path}")
                file, content_type = STATIC[path]
                body = _static(file)
                start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                          *SECURITY_HEADERS])
                return [body if method == "GET" else b""]
            raise NotFound(f"no console page {PREFIX}{path}; open {PREFIX}")
        except ConsoleError as exc:
            return self._json(start_response, exc.title, {"message": exc.message})
        except (ClientError, BotoCoreError) as exc:
            log.warning("console: %s %s: the local AWS answered %s", method, path, exc)
            return self._json(start_response, "502 Bad Gateway", {"message": f"the local AWS answered: {exc}"})
        except Exception:
            log.exception("console: %s %s failed", method, path)
            return self._json(start_response, "500 Internal Server Error",
                              {"message": "the console failed; see the local AWS's server.log"})

    @staticmethod
    def _json(start_response: Callable, status: str, body: Any) -> list[bytes]:
        data = json.dumps(body, default=str).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                                *SECURITY_HEADERS])
        return [data]

    # -- the API ----------------------------------------------------------------------------------

    @staticmethod
    def _need(query: dict, *names: str) -> list[str]:
        missing = [n for n in names if not query.get(n)]
        if missing:
            raise BadRequest(f"missing query parameter{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        return [query[n] for n in names]

    def _stacks(self, environ: dict, query: dict) -> Any:
        regions = self.data.regions()
        return {"regions": regions,
                "stacks": [{"region": r, "stack": s} for r in regions for s in self.data.stacks(r)]}

    def _stack(self, environ: dict, query: dict) -> Any:
        region, stack = self._need(query, "region", "stack")
        return self.data.overview(region, stack)

    def _items(self, environ: dict, query: dict) -> Any:
        region, table = self._need(query, "region", "table")
        try:
            limit = int(query.get("limit", "25"))
        except ValueError:
            raise BadRequest(f"limit must be a whole number, not {query['limit']!r}") from None
        return self.data.items(region, table, limit, query.get("next"))

    def _logs(self, environ: dict, query: dict) -> Any:
        region, function = self._need(query, "region", "function")
        return self.data.logs(region, function)

    def _invoke(self, environ: dict, query: dict) -> Any:
        region, function = self._need(query, "region", "function")
        return self.data.invoke(region, function, read_body(environ))

    def _metrics(self, environ: dict, query: dict) -> Any:
        region, stack = self._need(query, "region", "stack")
        # Only what the charts need (the overview's forty-odd calls are not repeated every refresh).
        overview = {"stack": stack, "functions": [f["name"] for f in self.data.functions(region, stack)]}
        alarms = self.data.alarms(region, stack)
        account = alarms[0]["AlarmArn"].split(":")[4] if alarms else "123456789012"
        cloudwatch = self.data.client("cloudwatch", region)
        return charts.charts(overview, alarms, charts.metric_data_of(account, region),
                             lambda name: charts.alarm_history(cloudwatch, name))

    def _outbox(self, environ: dict, query: dict) -> Any:
        return {"messages": self.data.outbox_messages()}

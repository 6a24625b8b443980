"""The WSGI middleware in front of moto that records what each CreateDeployment deployed."""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Iterable

from crudstack.local.apigateway.models import DeploymentSnapshots

log = logging.getLogger(__name__)


class DeploymentRecorder:
    """WSGI middleware in front of moto: after moto answers CreateDeployment with success, snapshot
    the API for the new deployment id; forget snapshots when deployments, APIs or all state go."""

    def __init__(self, app: Callable, snapshots: DeploymentSnapshots):
        self.app = app
        self.snapshots = snapshots

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        parts = path.strip("/").split("/")
        watched = (
            (method == "POST" and len(parts) == 3 and parts[0] == "restapis" and parts[2] == "deployments")
            or (method == "DELETE" and parts[0] == "restapis" and (len(parts) == 2 or (len(parts) == 4 and parts[2] == "deployments")))
            or (method == "POST" and path == "/moto-api/reset")
        )
        if not watched:
            return self.app(environ, start_response)

        captured: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        body = b"".join(self.app(environ, capture))
        ok = 200 <= captured.get("status", 500) < 300
        if ok and path == "/moto-api/reset":
            self.snapshots.clear()
        elif ok and method == "POST":
            try:
                deployment_id = json.loads(body)["id"]
            except (ValueError, KeyError, TypeError):
                log.error("API %s: CreateDeployment answer has no deployment id; nothing recorded", parts[1])
            else:
                self.snapshots.record(parts[1], deployment_id)
        elif ok:
            self.snapshots.forget(parts[1], parts[3] if len(parts) == 4 else None)
        return [body]

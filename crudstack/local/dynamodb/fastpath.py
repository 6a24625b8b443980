"""DynamoDB requests handed straight to moto's DynamoHandler.

Every route of the items API makes one DynamoDB call, served by moto. moto's server reaches the
handler through a dispatcher that infers the service from the request's headers, then a Flask app,
its URL map and request context: py-spy put that at about an eighth of the server's CPU for each
call, as much as moto's own parsing and serializing. A DynamoDB call says what it is in its
X-Amz-Target header, so it is handed to the same handler with the same Request and Response classes
moto's Flask view uses (moto.core.utils.convert_to_flask_response), and answers byte for byte as
before. Anything else, or anything moto's app would treat specially (a gzip body, a browser's Origin
for CORS), goes through moto's app.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

from crudstack.local import moto_backends, request as understood
from crudstack.local.wsgi import WsgiApp


class DirectDynamoDB:
    def __init__(self, app: WsgiApp):
        from botocore.exceptions import ClientError
        from flask import Request, Response
        from werkzeug.sansio.utils import get_current_url

        self.app = app
        # Request.url is get_current_url of these five parts, and its IRI decoding is a tenth of the
        # server's CPU per call (py-spy); a client sends the same few, so each is worked out once.
        self._url = functools.lru_cache(maxsize=256)(get_current_url)
        # moto's app runs flask-cors over every answer: with its defaults (any origin, always send)
        # a call without an Origin header gets this one header from it.
        self._dispatch, self._record, cors = moto_backends.dynamodb_handler()
        self._cors = [("Access-Control-Allow-Origin", "*")] if cors else []
        self._request_class, self._response_class = Request, Response
        self._client_error = ClientError

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if (environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != "/"
                or not understood.of(environ).dynamodb
                or "HTTP_ORIGIN" in environ or "HTTP_CONTENT_ENCODING" in environ):
            return self.app(environ, start_response)
        request = self._request_class(environ)
        request.__dict__["url"] = self._url(request.scheme, request.host, request.root_path, request.path,
                                            request.query_string)  # werkzeug's cached_property slot
        if request.mimetype.startswith("application/x-amz-json"):
            # Not a form: werkzeug's form parser (request.data runs it) would build itself to find nothing.
            request.__dict__["form"] = request.parameter_storage_class()
            request.__dict__["files"] = request.parameter_storage_class()
        self._record(request)
        try:
            result: Any = self._dispatch(request, request.url, dict(request.headers))
        except self._client_error as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        response = self._response_class(response=content, status=status, headers=headers)
        for name, value in self._cors:
            response.headers[name] = value
        return response(environ, start_response)

"""The console's errors, each answered as JSON {"message": ...} with its status (responses.py).

    ConsoleError
    ├── BadRequest      400  a parameter is missing or malformed
    ├── Forbidden       403  guard.py refused the request (Host, Origin)
    └── NotFound        404  no such page, stack, table, function or log group
"""

from __future__ import annotations


class ConsoleError(Exception):
    status = 500
    title = "500 Internal Server Error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(ConsoleError):
    status = 400
    title = "400 Bad Request"


class Forbidden(ConsoleError):
    status = 403
    title = "403 Forbidden"


class NotFound(ConsoleError):
    status = 404
    title = "404 Not Found"

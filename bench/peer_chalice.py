#!/usr/bin/env python3
"""The peer of `bench/api.py --peer`: the items API's own GET /items/{id} handler (lambdas/get_item.py)
behind `chalice local`, with TCP_NODELAY set on its sockets, its boto3 calls going to a stock moto
server. The handler runs in the server's own process, as chalice local runs every handler.

    python bench/peer_chalice.py --port PORT --endpoint http://127.0.0.1:MOTO_PORT --table TABLE

chalice local hands a view function a Request; the handler wants API Gateway's proxy event, which
chalice builds anyway (`to_original_event`), so the view passes that event on unchanged and turns the
handler's proxy result back into a chalice Response.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--endpoint", required=True, help="the moto server the handler's boto3 calls reach")
    parser.add_argument("--table", required=True)
    args = parser.parse_args()

    # What the function's configuration gives it on AWS, before its module creates the table resource.
    os.environ.update(TABLE_NAME=args.table, AWS_ENDPOINT_URL=args.endpoint, AWS_DEFAULT_REGION="us-east-1",
                      AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    sys.path.insert(0, str(ROOT / "lambdas"))
    import get_item  # noqa: E402 - needs the environment above

    from chalice import Chalice, Response
    from chalice.config import Config
    from chalice.local import ChaliceRequestHandler, create_local_server

    # Without it every keep-alive response waits for the client's delayed ACK (about 40 ms;
    # docs/performance.md): the peer is measured at its best.
    ChaliceRequestHandler.disable_nagle_algorithm = True

    app = Chalice(app_name="items-peer")

    @app.route("/items/{id}", methods=["GET"])
    def get_one(id: str) -> Response:  # noqa: A002 - chalice passes the path parameter by its name
        result = get_item.lambda_handler(app.current_request.to_original_event(), app.lambda_context)
        return Response(body=result["body"], status_code=result["statusCode"], headers=result.get("headers") or {})

    server = create_local_server(app, Config.create(), "127.0.0.1", args.port)
    server.serve_forever()


if __name__ == "__main__":
    main()

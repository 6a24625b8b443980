"""The embedded local AWS: one process, one port.

    python -m crudstack.local.server --port 4566 --state-dir .local-aws [--host 127.0.0.1] [--lambda-concurrency 10]

    serve.py        the composition root: builds every layer, recovers the state, serves, stops
    httpserver.py   the HTTP/1.1 keep-alive server (WSGI)
    dispatch.py     LocalAws, the edge: which front answers a request, by its path; what the request is
    record.py       <state-dir>/server.json and recovery.json, the names daemon.py reads

Requests are dispatched by path (dispatch.py):

    /restapis/{api}/{stage}/_user_request_/...   -> the API Gateway emulation (apigateway/app.py)
    /_aws/execute-api/{api}/{stage}/...
    POST /2015-03-31/functions/{name}/invocations -> the Lambda Invoke API (awslambda/responses.py)
    GET /_localaws/health                        -> {"status": "ok", "pid": ..., "port": ...}
    /_console, /_console/...                     -> the local console (console/responses.py)
    anything else                                -> moto's own WSGI app, behind the layers serve.py
                                                    lists in order (access check, journal, DynamoDB's
                                                    lock and fast path, deployment recorder)

dispatch.py is the edge: each control-plane request is understood there once (crudstack/local/request.py)
and every layer behind reads that record.

State survives a stop, a crash and a reboot: <state-dir>/data holds snapshots and the write-ahead
journal (crudstack/local/state/), replayed at start-up before the first request is served; what
the start recovered, and anything it had to drop, is in <state-dir>/recovery.json. Alongside moto
run an alarm evaluator (crudstack/local/cloudwatch/) and SNS delivery to <state-dir>/outbox
(crudstack/local/sns/).

The HTTP server is ours, not werkzeug's: werkzeug's development server closes the connection after
every response, and a Python server that writes headers and body in separate sends waits for the
client's delayed ACK (about 40 ms a response; docs/performance.md). This one keeps HTTP/1.1 connections alive, sets
TCP_NODELAY and writes each response with a single send; it runs only whole, unambiguous requests and
caps connections (httpserver.py's docstring; waitress and cheroot were measured against it, BENCHMARKS.md).

Nothing is written to the terminal per request: the process logs to <state-dir>/server.log.
SIGTERM or SIGINT stops it cleanly: the listener closes, the runtime's workers are shut down,
pending metrics are flushed, a last snapshot is written and <state-dir>/server.json is removed.

moto never tries Docker here (patches/moto_config.py); Lambda code runs in crudstack/local/awslambda/.

Exceptions: none of its own reach a caller. A start that cannot listen, recover its state or start the
Lambda runtime says why on stderr and exits with status 1 (daemon.py turns that into LocalAwsError);
a request whose body is too large or badly framed is answered 413 or 400 (JSON) by httpserver.py.
"""

"""API Gateway REST API (v1) for the embedded local AWS: the invoke URLs moto does not serve.

moto keeps API Gateway's control plane (create_rest_api, put_method, create_deployment...) but does
not serve invoke URLs in server mode. This package does, as a chain of small layers with one job
each, in the order a request meets them:

    app.py           Gateway: the WSGI app serving the invoke URLs, tying the layers together
    models.py        what is deployed: a frozen copy of the API taken at CreateDeployment
    recorder.py      the middleware in front of moto that takes those copies
    routing.py       resource tree + HTTP method -> the deployed method and its pathParameters
    auth.py          who may call: API keys and usage plans, AWS_IAM (SigV4 + identity policies)
    throttling.py    token buckets (usage plan, stage) and quota counters, on injected clocks
    gatewayresponses.py  the API's customizations of the answers below (DEFAULT_4XX, THROTTLED ...)
    events.py        the REST v1 "Lambda proxy" event a real function receives
    proxy.py         AWS_PROXY: permission check, the Lambda runtime, the function's result mapped
    mock.py          MOCK integrations (the console's "Enable CORS" preflight)
    responses.py     the answers API Gateway makes itself (403, 500, 502, 504)
    exceptions.py    the package's exceptions

Gateway answers copy what API Gateway sends for the same failure (responses.py):

    403 {"message":"Missing Authentication Token"}   unknown API id, stage, resource or method (app.py), or
                                                      an AWS_IAM method called without a signature (auth.py)
    403 {"message":"Forbidden"}                      no, wrong or disabled API key (auth.py)
    403 signature / {"Message":"User: ... is not authorized ..."}   AWS_IAM refusals (auth.py)
    429 {"message":"Too Many Requests"}              a usage plan's or the stage's bucket is empty
    429 {"message":"Limit Exceeded"}                 the key's quota is used up
    500 {"message": "Internal server error"}         the Lambda API rejected the call (no permission,
                                                      no such function, throttled), or MOCK misconfigured
    502 {"message": "Internal server error"}         the function failed, or returned a malformed result
    504 {"message": "Endpoint request timed out"}    no answer within the integration timeout (proxy.py)
"""

"""API Gateway REST API (v1) for the embedded local AWS: the invoke URLs moto does not serve.

moto keeps API Gateway's control plane (create_rest_api, put_method, create_deployment...) but does
not serve invoke URLs in server mode. This package does, as a chain of small layers with one job
each, in the order a request meets them:

    app.py           Gateway: the WSGI app serving the invoke URLs, tying the layers together
    models.py        what is deployed: a frozen copy of the API taken at CreateDeployment
    recorder.py      the middleware in front of moto that takes those copies
    routing.py       resource tree + HTTP method -> the deployed method and its pathParameters
    events.py        the REST v1 "Lambda proxy" event a real function receives
    proxy.py         AWS_PROXY: permission check, the Lambda runtime, the function's result mapped
    mock.py          MOCK integrations (the console's "Enable CORS" preflight)
    responses.py     the answers API Gateway makes itself (403, 500, 502, 504)
    exceptions.py    the package's exceptions

Gateway answers copy what API Gateway sends for the same failure (responses.py):

    403 {"message":"Missing Authentication Token"}   unknown API id, stage, resource or method (app.py)
    500 {"message": "Internal server error"}         the Lambda API rejected the call (no permission,
                                                      no such function, throttled), or MOCK misconfigured
    502 {"message": "Internal server error"}         the function failed, or returned a malformed result
    504 {"message": "Endpoint request timed out"}    no answer within the integration timeout (proxy.py)
"""

"""The embedded local AWS: moto's server plus the layers that make it behave as AWS (server/__init__.py
walks a request through them; server/serve.py lists them in order).

How files are named, in every folder here: a file is named by the one job it does.

    models.py       state: what the service holds, or reads from moto's (awslambda, apigateway, iam)
    responses.py    a WSGI app answering requests: parsing them and shaping the answer (apigateway,
                    awslambda, console)
    exceptions.py   the folder's exception tree
    middleware.py   a WSGI layer in front of another that enforces something (iam)
    fastpath.py     a speed-up around moto's own dispatch (dynamodb; switched in switches.py)
    anything else   its job in one word: atomicity, recorder, outbox, delivery, history, rules, guard ...

moto's own internals are reached through moto_backends.py only; what we change in moto is patches/
(one module per change). request.py is what the edge understands of each request; switches.py turns each
speed-up off for measuring.
"""

"""IAM, enforced locally for Lambda workers: each runs with its function role's session, and the
local AWS checks that role's identity-based policies for what it calls.

    sessions.py    the role session a worker gets (moto's STS AssumeRole, in-process)
    requests.py    what a request asks, in IAM's terms: signer, action, resources
    policy.py      identity-based policy evaluation (Allow, explicit Deny, wildcards)
    models.py      the access check: session -> role -> policies -> decision, cached until a write
    middleware.py  the check as WSGI middleware, and AccessDenied in each service's wire format
    denials.py     the bounded journal of denials (python -m crudstack.local denials)
    exceptions.py  the package's exception tree
"""

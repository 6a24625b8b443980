"""The local AWS's speed-ups, each behind one switch, all of them here.

Each exists only to make the local AWS faster and is coupled to moto's, werkzeug's or Flask's
internals; turning one off gives the same answers, slower. To weigh one, run bench/api.py with it on
and off on a quiet machine, e.g.

    LOCALAWS_SPEEDUPS_OFF=dynamodb_fastpath python bench/api.py

LOCALAWS_SPEEDUPS_OFF is a comma-separated list of the names below (read once, when this module loads).
"""

from __future__ import annotations

import os

_OFF = {name.strip() for name in os.environ.get("LOCALAWS_SPEEDUPS_OFF", "").split(",") if name.strip()}

# patches/speedups.py: caches for work moto redoes on every request (dispatch, DynamoDB expressions, serializer).
MOTO_CACHES = "moto_caches" not in _OFF
# dynamodb/fastpath.py: a DynamoDB call handed straight to moto's handler, past its dispatcher and Flask.
DYNAMODB_FASTPATH = "dynamodb_fastpath" not in _OFF
# crudstack/local/cache.py, enabled by server/serve.py: what the invoke-URL path reads from moto
# (stages, functions, resource policies, access decisions), kept until the next write.
READ_CACHES = "read_caches" not in _OFF

NAMES = ("moto_caches", "dynamodb_fastpath", "read_caches")
unknown = _OFF - set(NAMES)
if unknown:
    raise SystemExit(f"LOCALAWS_SPEEDUPS_OFF names {', '.join(sorted(unknown))}: the switches are {', '.join(NAMES)}")

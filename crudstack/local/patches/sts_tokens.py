"""STS session tokens drawn from moto's random object, so a replayed AssumeRole makes the same token.

moto makes a session's access key id and secret with `mock_random`, which the durable state seeds
for each write (crudstack/local/patches/determinism.py), but its session token with `os.urandom`
(moto/sts/utils.py, random_session_token). Replayed after a restart, a session would come back with
its old key and a new token, and a worker's (or anyone's) credentials from before the restart would
be refused as an invalid token by the access check (crudstack/local/iam/models.py). Same prefix and
length as moto's.
"""

from __future__ import annotations

import base64

from crudstack.local.patches.core import replace


def install() -> None:
    from moto.moto_api._internal import mock_random
    from moto.sts import models, utils

    def random_session_token() -> str:
        raw = bytes(mock_random.getrandbits(8) for _ in range(266))
        return utils.SESSION_TOKEN_PREFIX + base64.b64encode(raw)[len(utils.SESSION_TOKEN_PREFIX):].decode()

    replace(utils, "random_session_token", random_session_token)
    replace(models, "random_session_token", random_session_token)

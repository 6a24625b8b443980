"""The execution role's session each Lambda worker runs with, as Lambda gives one to every function.

Lambda assumes the function's execution role and hands the session to the function as
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, with the function's name as the
session name, so the caller is arn:aws:sts::<account>:assumed-role/<role>/<function>
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime,
https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html). Here the session is
made by moto's STS backend in-process (moto/sts/models.py, STSBackend.assume_role), so STS's
GetCallerIdentity, called by a handler, names it, and the local AWS's access check
(crudstack/local/iam/models.py) finds the role behind its access key.

A session lasts 12 hours. A worker keeps the credentials it was started with, as an execution
environment does, and the runtime replaces a worker before they have less than 15 minutes left
(botocore's own advisory refresh margin, botocore/credentials.py RefreshableCredentials), so a handler
never signs with expired credentials; a change of the function's role starts new workers (the role is
part of FunctionSpec.key).

Sessions are made through the durable state when there is one (the operation `sts.assume_role`),
so a restart brings back the same sessions and a snapshot never sees moto's dictionaries half-changed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from crudstack.aws import partition_of_region
from crudstack.local import moto_backends

SESSION_SECONDS = 12 * 3600
REFRESH_MARGIN_SECONDS = 15 * 60
ASSUME_ROLE_OP = "sts.assume_role"


@dataclass(frozen=True)
class RoleSession:
    access_key_id: str
    secret_access_key: str
    session_token: str
    arn: str              # arn:aws:sts::<account>:assumed-role/<role>/<session>
    expires_at: float     # on the sessions' clock

    def environment(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
                "AWS_SESSION_TOKEN": self.session_token, "AWS_SECURITY_TOKEN": self.session_token}


def assume_role(account: str, region: str, role_arn: str, session_name: str, duration: int) -> dict[str, str]:
    """moto's STS AssumeRole, in-process; the durable state's operation `sts.assume_role`."""
    sts_backends = moto_backends.backends('sts')

    role = sts_backends[account][partition_of_region(region)].assume_role(
        region_name=region, role_session_name=session_name, role_arn=role_arn, policy=None, duration=duration,
        external_id=None)
    return {"access_key_id": role.access_key_id, "secret_access_key": role.secret_access_key,
            "session_token": role.session_token, "arn": role.arn}


class RoleSessions:
    """One session per (role, function), reused by its workers until it nears its expiry."""

    def __init__(self, *, state: Any = None, clock: Callable[[], float] = time.time,
                 duration: int = SESSION_SECONDS, margin: float = REFRESH_MARGIN_SECONDS):
        self._state = state
        self._clock = clock
        self._duration = duration
        self._margin = margin
        self._sessions: dict[tuple[str, str, str, str], RoleSession] = {}
        self._lock = threading.Lock()

    def for_function(self, account: str, region: str, role_arn: str, function_name: str) -> RoleSession:
        key = (account, region, role_arn, function_name)
        with self._lock:
            session = self._sessions.get(key)
        if session is not None and not self.expiring(session):
            return session
        # Made outside the lock: the state's own lock is taken in there, and two cold starts racing
        # here merely make two sessions.
        started = self._clock()
        args = dict(account=account, region=region, role_arn=role_arn, session_name=function_name[:64],
                    duration=self._duration)
        made = self._state.apply(ASSUME_ROLE_OP, **args) if self._state is not None else assume_role(**args)
        session = RoleSession(made["access_key_id"], made["secret_access_key"], made["session_token"], made["arn"],
                              started + self._duration)
        with self._lock:
            self._sessions[key] = session
        return session

    def expiring(self, session: RoleSession | None) -> bool:
        """True when a worker holding this session should be replaced (None: it holds no session)."""
        return session is not None and session.expires_at - self._clock() < self._margin

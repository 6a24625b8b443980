"""The access check: is the caller of an AWS API request allowed to do what it asks?

Only callers signing with an assumed role's session (the Lambda workers, crudstack/local/iam/sessions.py,
or anyone who called STS AssumeRole) are checked, against their role's identity-based policies:
its inline policies and the default version of each attached managed policy, from moto's IAM
backend (as moto/iam/access_control.py AssumedRoleAccessKey.collect_policies gathers them). Any
other credentials, like the deployer's fake ones, keep full access: the local AWS has no users to
check them against.

Decisions are kept per (access key, action, resources) until the next write to the local AWS other
than DynamoDB's (crudstack/local/cache.py; the server empties it before an IAM write is answered), so a
repeated call costs a dictionary lookup.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

from crudstack.local.cache import UntilWrite
from crudstack.local.iam.denials import DenialJournal
from crudstack.local.iam.exceptions import AccessDenied, ExpiredToken, InvalidToken
from crudstack.local.iam.policy import Decision, evaluate, statements
from crudstack.local.iam.requests import Asked, Signer, asked

log = logging.getLogger("crudstack.local.iam")

# Operations AWS answers whatever the policies say
# (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html: "No permissions are
# required to perform this operation").
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})


@dataclass(frozen=True)
class Session:
    """An assumed-role session as moto's STS backend holds it."""
    account: str
    arn: str                   # arn:aws:sts::<account>:assumed-role/<role>/<session>
    role_name: str
    token: str
    expires_at: float          # seconds since the epoch (moto stamps a naive UTC datetime)
    secret_key: str = ""       # what a SigV4 signature is checked with (the gateway's AWS_IAM methods)
    user_id: str = ""          # AROA...:<session name>
    partition: str = "aws"     # the STS and IAM backends' key (moto keys global services by partition)

    @classmethod
    def find(cls, access_key: str) -> "Session | None":
        from moto.sts.models import sts_backends

        for account in list(sts_backends):
            for partition in list(sts_backends[account]):
                found = sts_backends[account][partition].get_assumed_role_from_access_key(access_key)
                if found is not None:
                    expires_at = found.expiration.replace(tzinfo=dt.timezone.utc).timestamp()
                    return cls(found.account_id, found.arn, found.role_arn.rsplit("/", 1)[-1], found.session_token,
                               expires_at, found.secret_access_key, found.user_id, partition)
        return None

    def policies(self, partition: str) -> list[tuple[str, Any]]:
        from moto.iam.models import iam_backends

        try:
            role = iam_backends[self.account][partition].get_role(self.role_name)
        except Exception:  # the role was deleted: its sessions keep no permissions
            return []
        found: list[tuple[str, Any]] = [(f"inline policy {name}", document) for name, document in role.policies.items()]
        for arn, policy in role.managed_policies.items():
            default = next((v for v in policy.versions if v.is_default), None)
            if default is not None:
                found.append((f"managed policy {arn}", default.document))
        return found


class AccessCheck:
    def __init__(self, journal: DenialJournal | None = None, *, clock=time.time):
        self.journal = journal
        self.decisions = UntilWrite()
        self._clock = clock

    def enforced(self, who: Signer) -> bool:
        """Temporary credentials (ASIA...) are the only ones checked (see the module docstring)."""
        return who.access_key.startswith("ASIA")

    def check(self, environ: Mapping, body: bytes, who: Signer) -> Asked | None:
        """Raise AccessDenied, ExpiredToken or InvalidToken, or return what was asked (None: not checked)."""
        session = self.decisions.get(("session", who.access_key), lambda: Session.find(who.access_key))
        if session is None:
            return None  # not a session of this local AWS: treated as the deployer's
        if who.token != session.token:
            raise InvalidToken("The security token included in the request is invalid.")
        if self._clock() >= session.expires_at:
            raise ExpiredToken("The security token included in the request is expired")
        request = asked(environ, body, who, session.account)
        if request.action in ALWAYS_ALLOWED:
            return request
        decision = self.decisions.get(("decision", who.access_key, request.action, request.resources),
                                      lambda: self._decide(session, request, session.partition))
        if not decision.allowed:
            self._report(session, decision)
            raise AccessDenied(_message(session, decision), decision, session.arn)
        return request

    @staticmethod
    def _decide(session: Session, request: Asked, partition: str) -> Decision:
        return evaluate(statements(session.policies(partition)), request.action, list(request.resources))

    def _report(self, session: Session, decision: Decision) -> None:
        entry = {
            "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "principal": session.arn, "action": decision.action, "resource": decision.resource,
            "reason": "explicit deny" if decision.explicit else "no identity-based policy allows it",
            "denied_by": decision.denied_by.describe() if decision.denied_by else None,
            "would_allow": decision.would_allow(),
            "conditions_not_evaluated": [s.describe() for s in decision.skipped_conditions],
        }
        fix = (f"remove or narrow {entry['denied_by']}" if decision.explicit
               else f"add to the role's policy: {_compact(decision.would_allow())}")
        log.warning("access denied: %s may not %s on %s (%s); %s", session.arn, decision.action, decision.resource,
                    entry["reason"], fix)
        if self.journal is not None:
            try:
                self.journal.record(entry)
            except OSError:
                log.exception("could not write the denial journal")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _message(session: Session, decision: Decision) -> str:
    """IAM's wording for an access denied error
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html#access_denied_error_messages)."""
    head = f"User: {session.arn} is not authorized to perform: {decision.action} on resource: {decision.resource}"
    if decision.explicit:
        return f"{head} with an explicit deny in an identity-based policy"
    return f"{head} because no identity-based policy allows the {decision.action} action"

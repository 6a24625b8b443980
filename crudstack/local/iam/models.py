"""The access check: who signed an AWS API request, and is that caller allowed to do what it asks?

Who: every signed request's access key must be one the local AWS knows (`find_caller`): the tool's
own credentials (the account's root user, crudstack/local/iam/credentials.py), an IAM user's access
key, or an assumed role's session; and its signature must be the one that key's secret gives
(crudstack/local/iam/signatures.py). Anything else is refused as AWS refuses it (exceptions.py), so
a handler cannot act as anyone by making up keys.

What: callers signing with an assumed role's session (the Lambda workers, crudstack/local/iam/sessions.py,
or anyone who called STS AssumeRole) are checked against their role's identity-based policies:
its inline policies and the default version of each attached managed policy, from moto's IAM
backend (as moto/iam/access_control.py AssumedRoleAccessKey.collect_policies gathers them). The root
user is never refused within its account, and IAM users' policies are not evaluated on the control
plane (only on the gateway's AWS_IAM methods, crudstack/local/apigateway/auth.py).

Decisions are kept per (access key, action, resources) until the next write to the local AWS other
than DynamoDB's (crudstack/local/cache.py; the server empties it before an IAM write is answered), so a
repeated call costs a dictionary lookup.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

from crudstack.local.cache import UntilWrite
from crudstack.local.iam import signatures
from crudstack.local.iam.credentials import LocalCredentials
from crudstack.local.iam.denials import DenialJournal
from crudstack.local.iam.exceptions import (
    AccessDenied,
    ExpiredToken,
    IncompleteSignature,
    InvalidSignature,
    InvalidToken,
)
from crudstack.local.iam.policy import Decision, Statement, evaluate, statements
from crudstack.local.iam.requests import Asked, Signer, asked
from crudstack.local import moto_backends

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
        sts_backends = moto_backends.backends('sts')

        for account in list(sts_backends):
            for partition in list(sts_backends[account]):
                found = sts_backends[account][partition].get_assumed_role_from_access_key(access_key)
                if found is not None:
                    expires_at = found.expiration.replace(tzinfo=dt.timezone.utc).timestamp()
                    return cls(found.account_id, found.arn, found.role_arn.rsplit("/", 1)[-1], found.session_token,
                               expires_at, found.secret_access_key, found.user_id, partition)
        return None

    def policies(self, partition: str) -> list[tuple[str, Any]]:
        iam_backends = moto_backends.backends('iam')

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


@dataclass(frozen=True)
class Caller:
    """The identity an access key stands for, with what it needs to check a signature and a policy."""

    access_key: str
    secret_key: str
    session_token: str | None       # an assumed role's session must send it; an IAM user's key must not
    arn: str
    account_id: str
    user_id: str
    policies: tuple[Statement, ...]
    root: bool = False


def find_caller(access_key: str, account: str, root: LocalCredentials, iam_backends: Any = None) -> Caller | None:
    """Who `access_key` belongs to: the root user (the tool's credentials, in `account`), an IAM user
    (moto's IAM backend), an assumed role's session (moto's STS backend), or None: nobody known."""
    if root.access_key_id and hmac.compare_digest(access_key, root.access_key_id):
        return Caller(access_key, root.secret_access_key, None, f"arn:aws:iam::{account}:root", account, account, (),
                      root=True)
    if iam_backends is None:
        iam_backends = moto_backends.backends('iam')
    for account_id, partitions in list(iam_backends.items()):
        for _, iam in list(partitions.items()):
            for user in list(iam.users.values()):
                key = next((k for k in user.access_keys if k.access_key_id == access_key), None)
                if key is None:
                    continue
                if getattr(key, "status", "Active") != "Active":
                    return None
                documents = [*user.policies.values(), *(_default_document(p) for p in user.managed_policies.values())]
                for group in list(iam.groups.values()):
                    if user in group.users:
                        documents += [*group.policies.values(),
                                      *(_default_document(p) for p in group.managed_policies.values())]
                return Caller(access_key, key.secret_access_key, None, user.arn, account_id, user.id,
                              identity_statements(documents))
    session = Session.find(access_key)
    if session is not None:
        return Caller(access_key, session.secret_key, session.token, session.arn, session.account,
                      session.user_id, tuple(statements(session.policies(session.partition))))
    return None


def _default_document(policy: Any) -> Any:
    """A managed policy's document: that of its default version."""
    version = next((v for v in getattr(policy, "versions", []) if v.is_default), None)
    return version.document if version is not None else getattr(policy, "document", None)


def identity_statements(documents: Any) -> tuple[Statement, ...]:
    return tuple(statements((f"identity policy {n}", document) for n, document in enumerate(documents, 1)))


class _Unknown(Exception):
    """No caller for an access key: raised, so that UntilWrite keeps no answer (a session made a moment
    later, outside any HTTP write, must be found)."""


class AccessCheck:
    def __init__(self, journal: DenialJournal | None = None, *, clock=time.time, root: LocalCredentials | None = None,
                 account: str | None = None):
        """root: the tool's credentials; without them only IAM users and sessions are known.
        account: the account the root user stands for (default: moto's, moto.core.DEFAULT_ACCOUNT_ID)."""
        if account is None:
            account = moto_backends.default_account()
        self.journal = journal
        self.decisions = UntilWrite()
        self._clock = clock
        self._root = root or LocalCredentials("", "")
        self._account = account

    def authenticate(self, environ: Mapping, body: bytes, who: Signer) -> Caller:
        """The caller who signed the request; else IncompleteSignature, InvalidSignature or InvalidToken,
        as the service would answer (see exceptions.py)."""
        with signatures.refused_as(IncompleteSignature, InvalidSignature):
            if environ.get("HTTP_AUTHORIZATION"):
                headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                           if key.startswith("HTTP_")}
                for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                    if environ.get(key):
                        headers[key.replace("_", "-").lower()] = environ[key]
                signed = signatures.parse_authorization(environ["HTTP_AUTHORIZATION"], headers)
            else:
                headers = {"host": environ.get("HTTP_HOST", "")}
                signed = signatures.parse_presigned(environ.get("QUERY_STRING", ""))
            signatures.check_date(signed.amz_date, self._clock(), expires=signed.expires)
        try:
            caller = self.decisions.get(("caller", signed.access_key), lambda: self._known(signed.access_key))
        except _Unknown:
            raise InvalidToken("The security token included in the request is invalid.") from None
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or _target(environ)
        with signatures.refused_as(IncompleteSignature, InvalidSignature):
            signatures.verify(environ.get("REQUEST_METHOD", "GET"), raw_uri, headers, body, signed, caller.secret_key)
        return caller

    def _known(self, access_key: str) -> Caller:
        caller = find_caller(access_key, self._account, self._root)
        if caller is None:
            raise _Unknown(access_key)
        return caller

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


def _target(environ: Mapping) -> str:
    """The request target as sent, rebuilt from a WSGI environ without RAW_URI."""
    from urllib.parse import quote

    query = environ.get("QUERY_STRING", "")
    return quote(environ.get("PATH_INFO", "") or "/", safe="/~!$&'()*+,;=:@") + (f"?{query}" if query else "")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _message(session: Session, decision: Decision) -> str:
    """IAM's wording for an access denied error
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html#access_denied_error_messages)."""
    head = f"User: {session.arn} is not authorized to perform: {decision.action} on resource: {decision.resource}"
    if decision.explicit:
        return f"{head} with an explicit deny in an identity-based policy"
    return f"{head} because no identity-based policy allows the {decision.action} action"

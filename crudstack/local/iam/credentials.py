"""The tool's own credentials for the local AWS: the account's root user, known only to its owner.

The local AWS checks every signature on its control plane against the credentials it knows (IAM
users' access keys, STS sessions, and these), so a handler that signs with made-up keys gets
UnrecognizedClientException instead of the whole account. provision, teardown and the console sign
with these; a Lambda worker never gets them (its environment is built from scratch, awslambda/
environment.py, and holds only its role's session).

They are made at random the first time a state dir is used and kept in <state-dir>/credentials.json,
0600 in a 0700 folder (crudstack/local/state/private.py): any program running as the same user can
read them, as it could read ~/.aws/credentials; a worker running as another user cannot
(README, "What the local AWS protects, and what it cannot").

    python -m crudstack.local credentials     # prints them as AWS_ACCESS_KEY_ID=... lines for the AWS CLI
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from crudstack.local.state.exceptions import StateUnreadable
from crudstack.local.state.private import check_trusted, open_private, private_folder

CREDENTIALS_NAME = "credentials.json"
# The shape of AWS's long-term access keys: AKIA and 16 upper-case letters or digits
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids),
# and a 40-character secret.
_KEY_ALPHABET = string.ascii_uppercase + "234567"


@dataclass(frozen=True)
class LocalCredentials:
    access_key_id: str
    secret_access_key: str

    def for_boto3(self) -> dict[str, str]:
        return {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key}

    def for_environment(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


def local_credentials(state_dir: Path) -> LocalCredentials:
    """The credentials of the local AWS kept in state_dir, made now if it has none yet."""
    # Resolved as daemon.ensure_running resolves it: a state dir that is a symlink to a folder of ours is
    # where the server runs (the symlink check is for the files inside, state/private.py).
    path = private_folder(Path(state_dir).resolve()) / CREDENTIALS_NAME
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    made = LocalCredentials("AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)),
                            secrets.token_urlsafe(30))
    tmp = path.with_name(f".{CREDENTIALS_NAME}.{os.getpid()}.tmp")
    with open(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w", encoding="utf-8") as handle:
        json.dump({"aws_access_key_id": made.access_key_id, "aws_secret_access_key": made.secret_access_key}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)  # never replaces: a server and a provision starting at once keep the first one made
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> LocalCredentials:
    """StateUnreadable, saying what to do, when the file is not the JSON object this module writes."""
    check_trusted(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        found = LocalCredentials(document["aws_access_key_id"], document["aws_secret_access_key"])
        if not (isinstance(found.access_key_id, str) and isinstance(found.secret_access_key, str)):
            raise TypeError("the keys are not strings")
        return found
    except (ValueError, KeyError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise StateUnreadable(
            f"{path} is damaged ({type(exc).__name__}: {exc}): it should hold the local AWS's own credentials as "
            f"JSON. Stop the local AWS if it runs (its pid is in {path.with_name('server.json')}), delete {path}, "
            f"and start it again: new credentials are made.") from None

"""The local SNS's outbox: <state-dir>/outbox/*.eml, one file per message sent to an e-mail or SMS
subscription (RFC 822: readable as text, opens in any mail program)."""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import os
import re
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

OUTBOX_DIR = "outbox"
SENDER = "AWS Notifications <no-reply@sns.amazonaws.com>"
DEFAULT_SUBJECT = "AWS Notification Message"



@dataclass(frozen=True)
class OutboxMessage:
    path: Path
    date: str
    to: str
    subject: str
    protocol: str
    body: str

    def as_dict(self) -> dict[str, str]:
        return {"file": str(self.path), "date": self.date, "to": self.to, "subject": self.subject,
                "protocol": self.protocol, "body": self.body}


class Outbox:
    """A folder of .eml files, one per delivered message, named so that a listing is in time order."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def write(self, *, to: str, subject: str, body: str, protocol: str, headers: dict[str, str], at: float) -> Path:
        # Headers folded only past RFC 5322's limit and 8-bit text: the file reads as it is, with cat
        # or in a mail program.
        message = EmailMessage(policy=email.policy.default.clone(max_line_length=998))
        message["From"] = SENDER
        if protocol.startswith("email"):
            message["To"] = to
        message["X-Amz-Sns-Endpoint"] = to  # an SMS number or a URL is no e-mail address: kept as it is
        message["Subject"] = subject
        message["Date"] = email.utils.formatdate(at, usegmt=True)
        message["Message-ID"] = f"<{headers.get('X-Amz-Sns-Message-Id', uuid.uuid4())}@sns.local>"
        message["X-Amz-Sns-Protocol"] = protocol
        for name, value in headers.items():
            message[name] = value
        long_lines = any(len(line.encode()) > 998 for line in body.splitlines())  # RFC 5322's line limit
        message.set_content(body, cte="quoted-printable" if long_lines else "8bit")
        stamp = dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        # A random suffix from the OS, not moto's generator: the outbox must not shift moto's ids.
        name = f"{stamp}-{_slug(subject)}-{_slug(to)}-{uuid.uuid4().hex[:6]}.eml"
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        tmp = self.folder / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(message.as_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return path

    def messages(self) -> list[OutboxMessage]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.eml")):
            try:
                parsed = BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
            except OSError:
                continue
            body = parsed.get_body(("plain",))
            found.append(OutboxMessage(path, str(parsed.get("Date", "")), str(parsed.get("X-Amz-Sns-Endpoint", "")),
                                       str(parsed.get("Subject", "")), str(parsed.get("X-Amz-Sns-Protocol", "")),
                                       body.get_content() if body is not None else ""))
        return found


def _slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:limit] or "message"



"""SNS delivery in the local AWS: a message published to a topic reaches its subscriptions, and
nothing leaves this machine.

    email, email-json, sms   one file per message in the outbox, <state-dir>/outbox/*.eml (RFC 822:
                             readable as text, opens in any mail program); `python -m crudstack.local outbox`
    lambda                   the function runs in the local runtime with SNS's event (asynchronously)
    http, https              POSTed as SNS does when the endpoint is on this machine (loopback);
                             any other host gets an outbox file saying the notification was not sent
    sqs and the rest         moto's own delivery (the message lands in the local queue)

moto's own Subscription.publish would POST to any host and, for Lambda, look for Docker;
`SnsDelivery.install` replaces it for the protocols above. While the journal is replayed at
start-up (crudstack.local.determinism.replaying) the messages are worked out exactly as the first
time, but no file is written and nothing is called: that happened already.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import ipaddress
import json
import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from crudstack.local import determinism

log = logging.getLogger(__name__)

OUTBOX_DIR = "outbox"
SENDER = "AWS Notifications <no-reply@sns.amazonaws.com>"
DEFAULT_SUBJECT = "AWS Notification Message"
_OURS = frozenset({"email", "email-json", "sms", "http", "https", "lambda"})


# --------------------------------------------------------------------------------------------
# The outbox
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Delivery
# --------------------------------------------------------------------------------------------

def _is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SnsDelivery:
    """Delivers published SNS messages locally; `install` hooks it into moto's SNS."""

    def __init__(self, outbox: Outbox, endpoint_url: str, runtime: Any = None):
        self.outbox = outbox
        self.endpoint_url = endpoint_url.rstrip("/")
        self.runtime = runtime

    def install(self) -> None:
        from moto.sns.models import Subscription

        original = getattr(Subscription.publish, "__wrapped__", Subscription.publish)
        delivery = self

        def publish(subscription: Any, message: str, message_id: str, subject: str | None = None,
                    message_attributes: dict | None = None, group_id: str | None = None,
                    deduplication_id: str | None = None, message_structure: str | None = None) -> None:
            if subscription.protocol not in _OURS:
                return original(subscription, message, message_id, subject=subject, message_attributes=message_attributes,
                                group_id=group_id, deduplication_id=deduplication_id, message_structure=message_structure)
            matcher = subscription._filter_policy_matcher
            if matcher is not None and not matcher.matches(message_attributes, message):
                return None
            if message_structure == "json":
                message = subscription._parse_message_structure(message, subscription.protocol)
            delivery.deliver(subscription, message, message_id, subject, message_attributes or {})
            return None

        publish.__wrapped__ = original  # type: ignore[attr-defined]
        Subscription.publish = publish

    # -- one message to one subscription ------------------------------------------------------
    def deliver(self, subscription: Any, message: str, message_id: str, subject: str | None,
                attributes: dict[str, Any]) -> None:
        at = determinism.frozen_time() or dt.datetime.now(dt.timezone.utc).timestamp()
        notification = self.notification(subscription, message, message_id, subject, attributes, at)
        protocol = subscription.protocol
        if determinism.replaying():
            return
        headers = {"X-Amz-Sns-Message-Id": message_id, "X-Amz-Sns-Topic-Arn": subscription.topic.arn,
                   "X-Amz-Sns-Subscription-Arn": subscription.arn}
        try:
            if protocol == "email":
                body = f"{message}\n\n--\n{self._unsubscribe_footer(subscription)}"
                self.outbox.write(to=subscription.endpoint, subject=subject or DEFAULT_SUBJECT, body=body,
                                  protocol=protocol, headers=headers, at=at)
            elif protocol == "email-json":
                self.outbox.write(to=subscription.endpoint, subject=subject or DEFAULT_SUBJECT,
                                  body=json.dumps(notification, indent=2), protocol=protocol, headers=headers, at=at)
            elif protocol == "sms":
                self.outbox.write(to=subscription.endpoint, subject=f"SMS to {subscription.endpoint}", body=message,
                                  protocol=protocol, headers=headers, at=at)
            elif protocol in ("http", "https"):
                self._post(subscription, notification, headers, at)
            elif protocol == "lambda":
                self._invoke(subscription, notification)
        except Exception:
            log.exception("could not deliver SNS message %s to %s %s", message_id, protocol, subscription.endpoint)

    def notification(self, subscription: Any, message: str, message_id: str, subject: str | None,
                     attributes: dict[str, Any], at: float) -> dict[str, Any]:
        """SNS's JSON notification (what HTTP endpoints, email-json and Lambda receive). Not signed:
        nothing here holds SNS's signing key."""
        body = {"Type": "Notification", "MessageId": message_id, "TopicArn": subscription.topic.arn,
                "Message": message, "Timestamp": _iso(at), "SignatureVersion": "1",
                "Signature": "unsigned-by-the-local-aws",
                "SigningCertURL": f"{self.endpoint_url}/SimpleNotificationService-local.pem",
                "UnsubscribeURL": self._unsubscribe_url(subscription)}
        if subject is not None:
            body["Subject"] = subject
        if attributes:
            body["MessageAttributes"] = {name: {"Type": value.get("Type", value.get("DataType")),
                                                "Value": value.get("Value", value.get("StringValue"))}
                                         for name, value in attributes.items()}
        return body

    def _unsubscribe_url(self, subscription: Any) -> str:
        return f"{self.endpoint_url}/?Action=Unsubscribe&SubscriptionArn={quote(subscription.arn, safe='')}"

    def _unsubscribe_footer(self, subscription: Any) -> str:
        return ("If you wish to stop receiving notifications from this topic, please click or visit the link below "
                f"to unsubscribe:\n{self._unsubscribe_url(subscription)}\n\n"
                "Delivered by the local AWS of crudstack to its outbox; no e-mail left this machine.")

    def _post(self, subscription: Any, notification: dict[str, Any], headers: dict[str, str], at: float) -> None:
        host = urlsplit(subscription.endpoint).hostname
        if not _is_loopback_host(host):
            self.outbox.write(
                to=subscription.endpoint, subject=f"Not sent: {notification.get('Subject') or DEFAULT_SUBJECT}",
                body=(f"This HTTP notification was not sent: {host} is not on this machine, and the local AWS "
                      f"delivers HTTP(S) notifications to loopback endpoints only.\n\n{json.dumps(notification, indent=2)}"),
                protocol=subscription.protocol, headers=headers, at=at)
            return
        post_headers = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification",
                        "x-amz-sns-message-id": headers["X-Amz-Sns-Message-Id"],
                        "x-amz-sns-topic-arn": headers["X-Amz-Sns-Topic-Arn"],
                        "x-amz-sns-subscription-arn": headers["X-Amz-Sns-Subscription-Arn"]}

        def send() -> None:
            import requests

            try:
                requests.post(subscription.endpoint, data=json.dumps(notification), headers=post_headers, timeout=15)
            except Exception as exc:
                log.warning("SNS delivery to %s failed: %s", subscription.endpoint, exc)

        # Not in this thread: the endpoint may call the local AWS back, which waits for this write to finish.
        threading.Thread(target=send, name="sns-http-delivery", daemon=True).start()

    def _invoke(self, subscription: Any, notification: dict[str, Any]) -> None:
        if self.runtime is None:
            log.warning("SNS message for %s not delivered: no Lambda runtime", subscription.endpoint)
            return
        parts = subscription.endpoint.split(":")
        region, account = parts[3], parts[4]
        qualifier = parts[7] if len(parts) == 8 else None
        sns = {key: notification[key] for key in ("Type", "MessageId", "TopicArn", "Message", "Timestamp",
                                                  "SignatureVersion", "Signature")}
        sns.update({"Subject": notification.get("Subject"), "SigningCertUrl": notification["SigningCertURL"],
                    "UnsubscribeUrl": notification["UnsubscribeURL"],
                    "MessageAttributes": notification.get("MessageAttributes", {})})
        event = {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
                              "EventSubscriptionArn": subscription.arn, "Sns": sns}]}
        self.runtime.invoke_async(":".join(parts[:7]), json.dumps(event).encode(), region=region, account_id=account,
                                  qualifier=qualifier, source="sns")


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

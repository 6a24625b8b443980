"""SNS delivery in the local AWS: a message published to a topic reaches its subscriptions, and
nothing leaves this machine.

    email, email-json, sms   one file per message in the outbox, <state-dir>/outbox/*.eml (RFC 822:
                             readable as text, opens in any mail program); `python -m crudstack.local outbox`
    lambda                   the function runs in the local runtime with SNS's event (asynchronously)
    http, https              POSTed as SNS does when the endpoint is on this machine (loopback);
                             any other host gets an outbox file saying the notification was not sent
    sqs and the rest         moto's own delivery (the message lands in the local queue)

moto's own Subscription.publish would POST to any host and, for Lambda, look for Docker;
patches/sns_delivery.py hands those protocols to `SnsDelivery`. While the journal is replayed at
start-up (crudstack.local.patches.determinism.replaying) the messages are worked out exactly as the first
time, but no file is written and nothing is called: that happened already.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import threading
from typing import Any
from urllib.parse import quote, urlsplit

from crudstack.local.sns.outbox import DEFAULT_SUBJECT, Outbox
from crudstack.local.patches import determinism

log = logging.getLogger(__name__)

OURS = frozenset({"email", "email-json", "sms", "http", "https", "lambda"})


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

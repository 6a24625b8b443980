"""moto's SNS, delivering locally: what is published to a subscription of a protocol we deliver
(sns/delivery.py) goes there; every other protocol (sqs, application, firehose) stays moto's."""

from __future__ import annotations

from typing import Any

from crudstack.local.patches.core import replace
from crudstack.local.sns.delivery import OURS, SnsDelivery


def install(delivery: SnsDelivery) -> None:
    """Hand what moto's SNS publishes to our protocols (e-mail, SMS, HTTP, Lambda) to `delivery`."""
    from moto.sns.models import Subscription

    original = getattr(Subscription.publish, "__wrapped__", Subscription.publish)

    def publish(subscription: Any, message: str, message_id: str, subject: str | None = None,
                message_attributes: dict | None = None, group_id: str | None = None,
                deduplication_id: str | None = None, message_structure: str | None = None) -> None:
        if subscription.protocol not in OURS:
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
    replace(Subscription, "publish", publish)


"""Every change the local AWS makes to moto, in one place; each fails loudly rather than patch nothing:

    MotoChanged (RuntimeError)   moto no longer has what a patch replaces, or now has what it adds (core.py)

    core.py                replace(): the one way a patch swaps a piece of moto
    moto_config.py         AWS's managed policies loaded in IAM; Docker never tried (Lambda runs in awslambda/);
                           no flask-cors on moto's answers (AWS's API endpoints send no CORS headers)
    speedups.py            caches for work moto redoes on every request (dispatch, DynamoDB expressions, serializer)
    apigateway_tags.py     TagResource / UntagResource on a REST API's, an API key's and a usage plan's own ARN
    sts_tokens.py          STS session tokens from moto's seeded random, so a replayed AssumeRole gives the same one
    apigateway_update_method.py  UpdateMethod (authorization, API key required)
    apigateway_access.py   a usage plan's rate as a double, DeleteUsagePlan of a plan gone answering NotFound
    cloudwatch_alarm_state.py    alarms start INSUFFICIENT_DATA and keep their state on update
    cloudwatch_alarm_history.py  a history of each alarm (cloudwatch/history.py), DescribeAlarmHistory,
                                 Enable/DisableAlarmActions
    cloudwatch_alarms.py   publish each state change to the alarm's actions; installs the two above first
    sns_delivery.py        SNS publishes to e-mail, SMS, HTTP and Lambda delivered locally (sns/delivery.py)

    determinism.py         moto's clock and random ids per thread and seeded per write, so a journaled
                           write replays the same (state/durable.py uses it; `install`)

The server runs configure_moto(), then determinism.install(), then install_behaviour(), in
server/serve.py.
"""

from __future__ import annotations

from typing import Any


def configure_moto() -> None:
    """What any process serving moto as our local AWS needs (the server, and tests that build moto's app):
    IAM's managed policies, no Docker, the caches, REST API tags, UpdateMethod and usage plans, STS tokens. Each is idempotent."""
    from crudstack.local.patches import (apigateway_access, apigateway_tags, apigateway_update_method, moto_config,
                                         speedups, sts_tokens)

    from crudstack.local import switches

    moto_config.install()
    if switches.MOTO_CACHES:
        speedups.install()
    apigateway_tags.install()
    sts_tokens.install()
    apigateway_access.install()
    apigateway_update_method.install()


def install_behaviour(sns_delivery: Any) -> None:
    """What the server adds on top, once its state is being prepared: alarms that behave as
    CloudWatch's, and SNS delivery through `sns_delivery` (the server's SnsDelivery)."""
    from crudstack.local.patches import cloudwatch_alarms, sns_delivery as sns_patch

    cloudwatch_alarms.install()
    sns_patch.install(sns_delivery)

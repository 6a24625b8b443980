"""SNS in the local AWS: what is published reaches its subscriptions, and nothing leaves this machine.

    outbox.py       the outbox: one .eml file per e-mail or SMS message (`python -m crudstack.local outbox`)
    delivery.py     SnsDelivery: e-mail, SMS, HTTP on loopback and Lambda subscriptions, delivered locally

moto's SNS is hooked to SnsDelivery by patches/sns_delivery.py. Nothing here raises an exception of its
own: a delivery that fails is written to the outbox or the log, as SNS would retry or drop it.
"""

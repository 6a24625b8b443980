"""The local AWS's durable state: it survives a stop, a crash and a reboot.

    durable.py       DurableState: journal every write, replay it at start-up, take snapshots
    journal.py       the write-ahead journal: append, group fsync, segments, reading damaged tails
    snapshot.py      a snapshot: a pickle of moto's backends and our own parts
    (moto's clock and random ids, seeded per write so a replay makes the same ids: patches/determinism.py)
    exceptions.py    the package's exception tree
"""

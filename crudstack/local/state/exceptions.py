"""Exceptions of the durable state.

    StateError
     +-- StateUnreadable            saved state exists but none of its snapshots can be read (the
     |   |                          server refuses to start rather than start empty)
     |   +-- StateUnsafe            a state file another user owns or can write: pickles run code, so the
     |                              server refuses to load it (state/private.py)
     +-- SnapshotError              a snapshot could not be written or read; the message says which and why
     +-- JournalError (also OSError)  the journal could not be written: the change it holds is not durable
"""


class StateError(Exception):
    """Base of the durable state's exceptions."""


class StateUnreadable(StateError):
    """Saved state exists but none of its snapshots can be read."""


class StateUnsafe(StateUnreadable):
    """A state file or folder another user owns or can write: it is not loaded (state/private.py)."""


class SnapshotError(StateError):
    """A snapshot could not be written or read; the message says which and why."""


class JournalError(StateError, OSError):
    """The journal could not be written: the change it holds is not durable."""

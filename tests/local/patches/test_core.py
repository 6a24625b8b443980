"""patches/core.replace refuses a replacement moto would call differently, and says which."""

import types

import pytest

from crudstack.local.patches.core import MotoChanged, replace


def _owner():
    def put(self, name, value, *, ttl=None):
        return name

    return types.SimpleNamespace(__name__="FakeBackend", put=put)


def test_a_replacement_taking_other_arguments_is_refused_naming_the_seam():
    owner = _owner()
    with pytest.raises(MotoChanged, match=r"FakeBackend\.put is now called as put\(self, name, value, \*, ttl=None\)"):
        replace(owner, "put", lambda self, name: name)


def test_a_replacement_taking_the_same_calls_or_any_call_is_accepted():
    owner = _owner()
    replace(owner, "put", lambda self, key, value, *, ttl=None: key)  # names of required arguments may differ
    assert owner.put(None, "k", 1) == "k"
    replace(owner, "put", lambda *args, **kwargs: "wrapped")
    assert owner.put(None, "k", 1) == "wrapped"

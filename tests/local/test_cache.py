"""UntilWrite: what the request path reads from moto, kept until the next write."""

from crudstack.local.cache import UntilWrite


def test_a_value_is_computed_once_between_two_writes():
    cache, calls = UntilWrite().enable(), []

    def compute():
        calls.append(1)
        return len(calls)

    assert [cache.get("k", compute) for _ in range(3)] == [1, 1, 1]
    cache.changed()
    assert cache.get("k", compute) == 2


def test_a_value_read_while_a_write_happened_is_not_kept():
    cache = UntilWrite().enable()

    def compute_during_a_write():
        cache.changed()  # the write lands after compute() began reading
        return "stale"

    assert cache.get("k", compute_during_a_write) == "stale"
    assert cache.get("k", lambda: "fresh") == "fresh"


def test_an_error_is_raised_each_time_and_not_kept():
    cache = UntilWrite().enable()

    def missing():
        raise LookupError("no such function")

    for _ in range(2):
        try:
            cache.get("k", missing)
        except LookupError:
            pass
        else:
            raise AssertionError("the error was kept as a value")
    assert cache.get("k", lambda: "created") == "created"


def test_without_enable_nothing_is_kept():
    cache, calls = UntilWrite(), []
    for _ in range(3):
        cache.get("k", lambda: calls.append(1))
    assert len(calls) == 3


def test_subscribers_hear_of_every_write_whether_or_not_the_cache_keeps_values():
    heard = []
    kept, unkept = UntilWrite().enable(), UntilWrite()
    for cache in (kept, unkept):
        cache.subscribe(lambda cache=cache: heard.append(cache))

    kept.changed()
    unkept.changed()
    kept.changed()

    assert heard == [kept, unkept, kept]

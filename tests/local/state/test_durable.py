"""The durable state on its own: a small key-value WSGI app stands in for moto.

Its ids come from moto's random object and its times from moto's clock, as moto's do, so the
tests see whether a replay reproduces them. moto's own backends are left out of these snapshots
(crudstack.local.state.snapshot is tested with moto in test_snapshot.py).
"""

from __future__ import annotations

import io
import json
import threading

import pytest

from crudstack.local.patches import determinism
from crudstack.local.state import journal, snapshot
from crudstack.local.state.durable import DurableState, StatePart, StateUnreadable, is_write
from crudstack.local.state.journal import encode, list_segments


class KeyValueApp:
    """POST /items makes an item with a moto-random id and a moto-clock time; PUT /items/x sets one;
    GET reads; POST /refuse answers 400 without changing anything."""

    def __init__(self):
        self.items: dict[str, dict] = {}

    def __call__(self, environ, start_response):
        from moto.core import utils
        from moto.moto_api._internal import mock_random

        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
        if method == "POST" and path == "/items":
            key = str(mock_random.uuid4())
            self.items[key] = {"value": body, "created": utils.utcnow().isoformat()}
            return self._answer(start_response, 201, {"id": key, **self.items[key]})
        if method == "PUT" and path.startswith("/items/"):
            self.items[path[len("/items/"):]] = {"value": body, "created": utils.utcnow().isoformat()}
            return self._answer(start_response, 200, {})
        if method == "GET":
            return self._answer(start_response, 200, self.items)
        return self._answer(start_response, 400, {"message": "refused"})

    @staticmethod
    def _answer(start_response, status, document):
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [json.dumps(document).encode()]


@pytest.fixture(autouse=True)
def without_moto_backends(monkeypatch):
    monkeypatch.setattr(snapshot, "capture_backends", lambda: ([], {}))
    determinism.install()


def make_state(state_dir, app, **options):
    state = DurableState(state_dir, app, **options)
    state.add_part("items", StatePart(lambda: dict(app.items), lambda value: app.items.update(value)))
    return state


def call(handler, method, path, body=b""):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": "text/plain", "HTTP_HOST": "127.0.0.1:4566", "wsgi.input": io.BytesIO(body)}
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = int(status.split()[0])

    answer = b"".join(handler(environ, start_response))
    return seen["status"], json.loads(answer)


def crash(state):
    """What SIGKILL leaves: whatever reached the disk, nothing flushed at exit, no last snapshot."""
    state._stop.set()


def test_a_replayed_write_makes_the_same_ids_and_times_as_when_it_was_first_served(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    handler = state.wsgi(app)
    created = [call(handler, "POST", "/items", f"item {i}".encode())[1] for i in range(20)]
    crash(state)

    again = KeyValueApp()
    report = make_state(tmp_path, again).recover()

    assert report.replayed == 20 and report.problems == []
    assert again.items == {c["id"]: {"value": c["value"], "created": c["created"]} for c in created}


def test_reads_and_refused_writes_are_not_journaled(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    handler = state.wsgi(app)
    assert call(handler, "PUT", "/items/a", b"1")[0] == 200
    assert call(handler, "GET", "/items")[0] == 200
    assert call(handler, "POST", "/refuse")[0] == 400
    state.journal.flush()

    records = [r for _, path in list_segments(state.folder) for r in journal.read_segment(path)[0]]

    assert [(r.header["environ"]["REQUEST_METHOD"], r.header["environ"]["PATH_INFO"]) for r in records] == [("PUT", "/items/a")]


def test_a_write_is_answered_only_once_its_record_is_on_disk(tmp_path, monkeypatch):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    events = []
    real_wait = state.journal.wait_durable

    def wait_durable(lsn):
        real_wait(lsn)
        events.append(("durable", lsn))

    monkeypatch.setattr(state.journal, "wait_durable", wait_durable)
    handler = state.wsgi(app)
    environ = {"REQUEST_METHOD": "PUT", "PATH_INFO": "/items/k", "CONTENT_LENGTH": "1", "wsgi.input": io.BytesIO(b"v")}
    list(handler(environ, lambda status, headers: events.append(("answer", status))))

    assert events == [("durable", 1), ("answer", "200 X")]


def test_a_write_that_cannot_be_made_durable_is_answered_500_not_acknowledged(tmp_path, monkeypatch):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()

    def full_disk(lsn):
        raise journal.JournalError("the local AWS could not write its journal: No space left on device")

    monkeypatch.setattr(state.journal, "wait_durable", full_disk)
    status, answer = call(state.wsgi(app), "PUT", "/items/k", b"v")

    assert status == 500 and "No space left on device" in answer["message"]


def test_recovery_loads_the_snapshot_and_replays_only_what_came_after_it(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    handler = state.wsgi(app)
    for key in "abc":
        call(handler, "PUT", f"/items/{key}", b"before")
    assert state.checkpoint()
    for key in "de":
        call(handler, "PUT", f"/items/{key}", b"after")
    crash(state)

    again = KeyValueApp()
    report = make_state(tmp_path, again).recover()

    assert (report.snapshot, report.replayed) == ("snapshot-000000000003.pickle", 2)
    assert {k: v["value"] for k, v in again.items.items()} == {"a": "before", "b": "before", "c": "before",
                                                              "d": "after", "e": "after"}


def test_compaction_keeps_the_newest_snapshot_the_one_before_it_and_the_journal_after_that(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    handler = state.wsgi(app)
    for round_ in range(4):
        for i in range(3):
            call(handler, "PUT", f"/items/{round_}-{i}", b"v")
        assert state.checkpoint()

    names = sorted(p.name for p in state.folder.iterdir())

    assert names == ["snapshot-000000000009.pickle", "snapshot-000000000012.pickle",
                     "wal-000000000010.log", "wal-000000000013.log"]


def test_a_clean_stop_snapshots_so_the_next_start_replays_nothing(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    call(state.wsgi(app), "PUT", "/items/k", b"v")
    state.close()

    again = KeyValueApp()
    report = make_state(tmp_path, again).recover()

    assert report.replayed == 0 and report.snapshot == "snapshot-000000000001.pickle"
    assert again.items["k"]["value"] == "v"


def test_a_record_cut_short_at_the_end_is_dropped_reported_and_set_aside(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    handler = state.wsgi(app)
    for key in "abc":
        call(handler, "PUT", f"/items/{key}", b"v")
    crash(state)
    segment = state.journal.segment_path
    with open(segment, "ab") as handle:
        handle.write(encode({"lsn": 4, "kind": "http"}, b"a write in progress")[:30])

    again = KeyValueApp()
    report = make_state(tmp_path, again).recover()

    assert sorted(again.items) == ["a", "b", "c"]
    assert len(report.dropped) == 1
    assert "the last record, cut short or damaged; dropped. Whether its request had been answered cannot be known" \
        in report.dropped[0]
    assert segment.name in report.dropped[0] and "30 bytes" in report.dropped[0]
    assert [p.stat().st_size for p in (state.folder / "damaged").iterdir()] == [30]
    # Set aside: the next start meets nothing damaged.
    assert make_state(tmp_path, KeyValueApp()).recover().dropped == []


def test_a_last_record_cut_after_its_write_was_answered_is_not_said_to_be_unacknowledged(tmp_path):
    """Issue 21 (12): the torn-tail fault cuts the newest record after its fsync, when its PUT was answered 200;
    recovery cannot tell that from a stop mid-write, so it says what it cannot know, and which request it was."""
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    handler = state.wsgi(app)
    answers = [call(handler, "PUT", f"/items/{key}", b"value")[0] for key in "abc"]
    crash(state)
    segment = state.journal.segment_path
    with open(segment, "r+b") as handle:   # the last 3 bytes of the answered PUT /items/c's frame are lost
        handle.truncate(segment.stat().st_size - 3)

    report = make_state(tmp_path, KeyValueApp()).recover()

    assert answers == [200, 200, 200]
    assert len(report.dropped) == 1
    assert "not been acknowledged" not in report.dropped[0]
    assert "the last record (lsn 3, PUT /items/c), cut short or damaged; dropped. Whether its request had been " \
           "answered cannot be known from the journal" in report.dropped[0]
    assert "the request may have been answered 2xx). If that change is missing, make it again" in report.dropped[0]


def test_a_damaged_record_in_the_middle_names_the_records_lost_and_keeps_those_after_it(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    handler = state.wsgi(app)
    for key in "abcd":
        call(handler, "PUT", f"/items/{key}", b"v")
    crash(state)
    segment = state.journal.segment_path
    data = bytearray(segment.read_bytes())
    second = data.find(journal.MAGIC, 1)
    data[second + 30] ^= 0xFF
    segment.write_bytes(bytes(data))

    again = KeyValueApp()
    report = make_state(tmp_path, again).recover()

    assert sorted(again.items) == ["a", "c", "d"]
    assert len(report.dropped) == 1 and "1 record (lsn 2-2) lost" in report.dropped[0]


def test_an_unreadable_newest_snapshot_falls_back_to_the_one_before_it(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    handler = state.wsgi(app)
    call(handler, "PUT", "/items/a", b"v")
    state.checkpoint()
    call(handler, "PUT", "/items/b", b"v")
    state.checkpoint()
    crash(state)
    newest = snapshot.list_snapshots(state.folder)[0][1]
    newest.write_bytes(newest.read_bytes()[:-10])

    again = KeyValueApp()
    report = make_state(tmp_path, again).recover()

    assert sorted(again.items) == ["a", "b"]  # the older snapshot, then the journal after it
    assert report.snapshot == "snapshot-000000000001.pickle"
    assert len(report.unreadable_snapshots) == 1 and "damaged" in report.unreadable_snapshots[0]


def test_when_no_snapshot_can_be_read_the_start_is_refused_rather_than_starting_empty(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    call(state.wsgi(app), "PUT", "/items/a", b"v")
    state.close()
    only = snapshot.list_snapshots(state.folder)[0][1]
    only.write_bytes(b"CSNAP1\n{broken")

    with pytest.raises(StateUnreadable, match="cannot be read"):
        make_state(tmp_path, KeyValueApp()).recover()


def test_an_operation_is_journaled_with_its_arguments_and_replayed(tmp_path):
    import datetime as dt

    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.register("items.stamp", lambda key, at: app.items.__setitem__(key, {"value": at.isoformat(), "created": ""}))
    state.recover()
    state.apply("items.stamp", wait=True, key="k", at=dt.datetime(2024, 6, 11, 10, 0))
    crash(state)

    again = KeyValueApp()
    replayed = make_state(tmp_path, again)
    replayed.register("items.stamp", lambda key, at: again.items.__setitem__(key, {"value": at.isoformat(), "created": ""}))
    replayed.recover()

    assert again.items == {"k": {"value": "2024-06-11T10:00:00", "created": ""}}


def test_an_operation_with_arguments_that_cannot_be_journaled_changes_nothing(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.register("items.set", lambda key, value: app.items.__setitem__(key, value))
    state.recover()

    with pytest.raises(TypeError, match="cannot journal"):
        state.apply("items.set", key="k", value=object())
    assert app.items == {}


def test_a_replayed_write_that_answers_differently_is_reported(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    call(state.wsgi(app), "PUT", "/items/k", b"v")
    crash(state)

    class Refusing(KeyValueApp):
        def __call__(self, environ, start_response):
            return self._answer(start_response, 409, {})

    report = make_state(tmp_path, Refusing()).recover()

    assert report.diverged == ["record 1 (PUT /items/k) answered 409 on replay, 200 when first served"]


def test_the_journal_is_snapshotted_once_it_would_take_too_long_to_replay(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app, replay_budget_s=0.0, housekeeping_interval=0.05)
    state.recover()
    state.start()
    try:
        call(state.wsgi(app), "PUT", "/items/k", b"v")
        done = threading.Event()
        for _ in range(100):
            if snapshot.list_snapshots(state.folder):
                done.set()
                break
            done.wait(0.05)
        assert done.is_set()
    finally:
        state.close()


@pytest.mark.parametrize("environ, body, expected", [
    ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.PutItem"}, b"{}", True),
    ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.GetItem"}, b"{}", False),
    ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.Scan"}, b"{}", False),
    ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "Logs_20140328.FilterLogEvents"}, b"{}", False),
    ({"REQUEST_METHOD": "POST", "PATH_INFO": "/service/GraniteServiceVersion20100801/operation/PutMetricAlarm"}, b"", True),
    ({"REQUEST_METHOD": "POST", "PATH_INFO": "/service/GraniteServiceVersion20100801/operation/DescribeAlarms"}, b"", False),
    ({"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded"}, b"Action=CreateTopic&Name=t", True),
    ({"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded"}, b"Action=ListTopics", False),
    ({"REQUEST_METHOD": "GET", "QUERY_STRING": "Action=DeleteTopic&TopicArn=x"}, b"", True),
    ({"REQUEST_METHOD": "GET", "PATH_INFO": "/restapis/abc/resources"}, b"", False),
    ({"REQUEST_METHOD": "PUT", "PATH_INFO": "/restapis/abc/resources/r/methods/GET"}, b"{}", True),
    ({"REQUEST_METHOD": "DELETE", "PATH_INFO": "/2015-03-31/functions/f"}, b"", True),
    ({"REQUEST_METHOD": "POST", "PATH_INFO": "/some/unknown/api"}, b"", True),  # unknown: a write, to be safe
])
def test_a_request_is_a_write_unless_its_action_only_reads(environ, body, expected):
    assert is_write(environ, body) is expected


def test_a_large_state_is_snapshotted_less_often_than_a_small_one(tmp_path):
    app = KeyValueApp()
    state = make_state(tmp_path, app, replay_budget_s=0.01, idle_s=3600)
    state.recover()
    state._tail_records, state._tail_cost = 1, 0.5
    assert state._should_checkpoint()
    state._last_dump_seconds = 0.4  # a snapshot that held the writes up for 0.4 s
    assert not state._should_checkpoint()
    state._tail_cost = 0.8
    assert state._should_checkpoint()


# -- secrets at rest (issue 21, finding 9) ----------------------------------------------------------

def test_the_state_folder_is_0700_and_its_snapshots_and_journal_0600_whatever_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        app = KeyValueApp()
        state = make_state(tmp_path, app)
        state.recover()
        state.start()
        call(state.wsgi(app), "PUT", "/items/a", b"secret")
        assert state.checkpoint()
        state.close()
    finally:
        os.umask(old)
    folder = tmp_path / "data"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = [path for path in folder.iterdir() if path.is_file()]
    assert any(path.suffix == ".pickle" for path in files) and any(path.suffix != ".pickle" for path in files)
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in files} == {path.name: 0o600 for path in files}


def test_a_snapshot_others_can_write_is_refused_with_its_name_and_what_to_do(tmp_path):
    import os

    from crudstack.local.state.exceptions import StateUnsafe

    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    call(state.wsgi(app), "PUT", "/items/a", b"x")
    assert state.checkpoint()
    state.close()
    newest = snapshot.list_snapshots(tmp_path / "data")[0][1]
    os.chmod(newest, 0o666)  # anyone could have put a pickle there that runs code when loaded
    with pytest.raises(StateUnsafe) as refused:
        make_state(tmp_path, KeyValueApp()).recover()
    assert newest.name in str(refused.value) and "written by other users" in str(refused.value)
    assert "chmod" in str(refused.value)


def test_saved_state_belonging_to_another_user_is_refused(tmp_path, monkeypatch):
    import os

    from crudstack.local.state import private
    from crudstack.local.state.exceptions import StateUnsafe

    app = KeyValueApp()
    state = make_state(tmp_path, app)
    state.recover()
    call(state.wsgi(app), "PUT", "/items/a", b"x")
    crash(state)
    monkeypatch.setattr(private.os, "geteuid", lambda: os.getuid() + 4242)  # as seen by another user
    with pytest.raises(StateUnsafe, match="belongs to uid"):
        make_state(tmp_path, KeyValueApp()).recover()


@pytest.mark.parametrize("header", [
    {"lsn": 7, "kind": "http", "environ": ["REQUEST_METHOD", "PUT"]},     # damaged bytes that still parse as JSON
    {"lsn": 7, "kind": "http", "environ": {"HTTP_DATE": {"$datetime": 5}}},
])
def test_a_damaged_last_record_whose_header_still_parses_into_odd_shapes_is_described_not_a_crash(header, tmp_path):
    # The header of a damaged record is read only to name the request: its bytes failed their CRC, so no shape
    # may be assumed. A crash here would stop the local AWS from starting at all.
    from crudstack.local.state.durable import _describe_damage
    from crudstack.local.state.journal import Damage

    chunk = encode(header, b"body")[:-2]   # cut short, as a stop mid-write leaves it
    damage = Damage(tmp_path / "00000001.log", 0, len(chunk), "truncated record")

    said = _describe_damage(damage, [], len(chunk), True, chunk)

    assert said.startswith("00000001.log: ") and "the last record" in said and "cut short or damaged; dropped" in said
    assert "None" not in said

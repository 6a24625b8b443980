"""The local AWS's write-ahead log: frames, damage, group commit."""

from __future__ import annotations

import datetime as dt
import os
import stat
import threading

import pytest

from crudstack.local.state import journal
from crudstack.local.state.journal import Journal, JournalError, encode, list_segments, read_segment


def write_records(folder, count, first_lsn=1, body=b"body"):
    log = Journal(folder, first_lsn)
    for i in range(count):
        log.wait_durable(log.append({"kind": "test", "n": i}, body + str(i).encode()))
    log.close()
    return log.segment_path


def test_records_come_back_in_order_with_their_lsn_header_and_body(tmp_path):
    path = write_records(tmp_path, 3, first_lsn=7)

    records, damages, end = read_segment(path)

    assert [(r.lsn, r.header["n"], r.body) for r in records] == [(7, 0, b"body0"), (8, 1, b"body1"), (9, 2, b"body2")]
    assert damages == [] and end == path.stat().st_size
    assert path.name == "wal-000000000007.log"


def test_a_datetime_in_a_header_comes_back_as_the_same_datetime(tmp_path):
    stamp = dt.datetime(2024, 6, 11, 10, 0, 5)
    log = Journal(tmp_path, 1)
    log.wait_durable(log.append({"args": {"Timestamp": stamp, "nested": [{"at": stamp}]}}))
    log.close()

    record = read_segment(log.segment_path)[0][0]

    assert record.header["args"] == {"Timestamp": stamp, "nested": [{"at": stamp}]}


def test_a_record_cut_short_at_the_end_is_reported_and_everything_before_it_is_kept(tmp_path):
    path = write_records(tmp_path, 4)
    whole = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(encode({"lsn": 5, "kind": "test"}, b"x" * 100)[:40])  # the process died mid-write

    records, damages, end = read_segment(path)

    assert [r.lsn for r in records] == [1, 2, 3, 4]
    assert end == whole
    assert [(d.start, d.end, d.reason) for d in damages] == [(whole, whole + 40, "record cut short")]


def test_a_damaged_record_in_the_middle_is_skipped_and_the_records_after_it_are_kept(tmp_path):
    path = write_records(tmp_path, 5)
    data = bytearray(path.read_bytes())
    second = data.find(journal.MAGIC, 1)
    data[second + 20] ^= 0xFF  # a flipped bit in record 2's payload
    path.write_bytes(bytes(data))

    records, damages, _ = read_segment(path)

    assert [r.lsn for r in records] == [1, 3, 4, 5]
    assert len(damages) == 1 and damages[0].reason == "checksum mismatch"
    assert damages[0].start == second and damages[0].end == data.find(journal.MAGIC, second + 1)


def test_garbage_that_is_not_a_record_at_all_is_reported_as_such(tmp_path):
    path = tmp_path / "wal-000000000001.log"
    path.write_bytes(b"not a journal at all")

    records, damages, end = read_segment(path)

    assert records == [] and end == 0
    assert [(d.start, d.end, d.reason) for d in damages] == [(0, 20, "no record marker")]


def test_segments_are_listed_oldest_first_and_rotation_starts_the_next_at_the_next_lsn(tmp_path):
    log = Journal(tmp_path, 1)
    log.append({"kind": "a"})
    log.append({"kind": "b"})
    closed = log.rotate()
    log.wait_durable(log.append({"kind": "c"}))
    log.close()

    assert [(first, path.name) for first, path in list_segments(tmp_path)] == [
        (1, "wal-000000000001.log"), (3, "wal-000000000003.log")]
    assert [r.lsn for r in read_segment(closed)[0]] == [1, 2]  # rotation flushed what was queued
    assert [r.lsn for r in read_segment(log.segment_path)[0]] == [3]


def test_concurrent_writers_share_fsyncs_and_every_one_returns_durable(tmp_path, monkeypatch):
    """Each writer is answered only once its whole frame lies inside bytes an fsync of the segment covered,
    and fewer fsyncs than records are made (group commit)."""
    synced = {"bytes": 0, "fsyncs": 0}   # the segment's size at the start of its latest completed fsync
    real_fsync = os.fsync

    def recording_fsync(fd):
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return real_fsync(fd)   # the folder's fsync (fsync_dir): makes the file's name durable, not its bytes
        size = os.fstat(fd).st_size   # what this fsync is sure to cover: bytes written before it began
        real_fsync(fd)
        with lock:
            synced["bytes"], synced["fsyncs"] = max(synced["bytes"], size), synced["fsyncs"] + 1

    monkeypatch.setattr(journal.os, "fsync", recording_fsync)
    log = Journal(tmp_path, 1)
    lock = threading.Lock()  # what the durable state's write lock gives: appends in one order
    start = threading.Barrier(8)
    acknowledged: dict[int, int] = {}   # lsn -> bytes of the segment fsynced when wait_durable returned

    def writer(k):
        start.wait()
        for i in range(25):
            with lock:
                lsn = log.append({"writer": k, "i": i})
            log.wait_durable(lsn)
            with lock:
                acknowledged[lsn] = synced["bytes"]

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fsyncs_for_records = synced["fsyncs"]
    log.close()

    records = read_segment(log.segment_path)[0]
    assert [r.lsn for r in records] == list(range(1, 201))
    late = [(r.lsn, r.offset + len(encode(r.header, r.body)), acknowledged[r.lsn]) for r in records
            if r.offset + len(encode(r.header, r.body)) > acknowledged[r.lsn]]
    assert late == []   # (lsn, end of its frame, bytes fsynced when it was answered): none answered before its fsync
    assert 1 <= fsyncs_for_records < 200  # group commit: fewer fsyncs than records, and at least one


def test_a_write_the_disk_refuses_is_an_error_for_the_writer_not_an_acknowledgement(tmp_path, monkeypatch):
    log = Journal(tmp_path, 1)

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal.os, "fsync", full_disk)
    lsn = log.append({"kind": "test"})

    with pytest.raises(JournalError, match="No space left on device"):
        log.wait_durable(lsn)


def test_a_write_after_close_is_an_error_for_the_writer_and_does_not_hang_the_next_one(tmp_path):
    log = Journal(tmp_path, 1)
    log.close()

    for _ in range(2):
        lsn = log.append({"kind": "late"})
        with pytest.raises(JournalError):
            log.wait_durable(lsn)

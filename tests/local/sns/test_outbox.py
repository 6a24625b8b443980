"""The local SNS outbox and `python -m crudstack.local outbox | status | wipe`."""

from __future__ import annotations

import json

from crudstack.local import commands
from crudstack.local.sns.outbox import Outbox

AT = 1_718_100_000.25  # 2024-06-11T10:00:00.25Z


def write(outbox, subject="ALARM: \"demo-Errors\" in US East (N. Virginia)", body="The alarm fired.\nReason: x",
          to="ops@example.com", at=AT):
    return outbox.write(to=to, subject=subject, body=body, protocol="email",
                        headers={"X-Amz-Sns-Message-Id": "m-1", "X-Amz-Sns-Topic-Arn": "arn:aws:sns:us-east-1:1:t"}, at=at)


def test_a_message_is_one_eml_file_readable_as_plain_text(tmp_path):
    path = write(Outbox(tmp_path))

    text = path.read_text(encoding="utf-8")

    assert path.name.startswith("20240611T100000.250000Z-ALARM-demo-Errors-in-US-East-N-Virginia-ops-example-com-")
    assert path.suffix == ".eml"
    assert "Subject: ALARM: \"demo-Errors\" in US East (N. Virginia)\n" in text
    assert "To: ops@example.com\n" in text and "X-Amz-Sns-Topic-Arn: arn:aws:sns:us-east-1:1:t\n" in text
    assert text.endswith("The alarm fired.\nReason: x\n")  # the body as written, not encoded


def test_messages_are_listed_in_time_order_with_subject_and_body(tmp_path):
    outbox = Outbox(tmp_path)
    write(outbox, subject="second", at=AT + 5)
    write(outbox, subject="first", at=AT)
    write(outbox, subject="Ünïcode ✓", body="a line " * 300, at=AT + 9)  # non-ASCII, and over 998 bytes a line

    messages = outbox.messages()

    assert [m.subject for m in messages] == ["first", "second", "Ünïcode ✓"]
    assert messages[0].body == "The alarm fired.\nReason: x\n" and messages[0].to == "ops@example.com"
    assert messages[2].body.strip() == ("a line " * 300).strip()


def test_an_empty_or_missing_outbox_lists_nothing(tmp_path):
    assert Outbox(tmp_path / "nowhere").messages() == []


def test_the_outbox_command_lists_shows_and_prints_json(tmp_path, capsys):
    outbox = Outbox(tmp_path / "outbox")
    write(outbox, subject="first")
    write(outbox, subject="second", body="second body", at=AT + 1)

    assert commands.main(["outbox", "--state-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "2 messages" in listing
    assert "  1  2024-06-11 10:00:00 UTC  ops@example.com  first" in listing
    assert "  2  2024-06-11 10:00:01 UTC  ops@example.com  second" in listing

    assert commands.main(["outbox", "--state-dir", str(tmp_path), "--last"]) == 0
    shown = capsys.readouterr().out
    assert "Subject: second" in shown and shown.rstrip().endswith("second body")

    assert commands.main(["outbox", "--state-dir", str(tmp_path), "--show", "3"]) == 2
    assert "holds messages 1 to 2" in capsys.readouterr().err

    assert commands.main(["outbox", "--state-dir", str(tmp_path), "--json"]) == 0
    assert [m["subject"] for m in json.loads(capsys.readouterr().out)] == ["first", "second"]


def test_wipe_needs_yes_when_not_asked_in_a_terminal_and_then_deletes_state_and_outbox(tmp_path, capsys, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "snapshot-000000000001.pickle").write_bytes(b"x")
    write(Outbox(tmp_path / "outbox"))
    (tmp_path / "server.log").write_text("kept")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)

    assert commands.main(["wipe", "--state-dir", str(tmp_path)]) == 2
    assert "pass --yes to confirm" in capsys.readouterr().err
    assert (tmp_path / "data").exists()

    assert commands.main(["wipe", "--state-dir", str(tmp_path), "--yes"]) == 0
    assert not (tmp_path / "data").exists() and not (tmp_path / "outbox").exists()
    assert (tmp_path / "server.log").read_text() == "kept"
    assert "start empty next time" in capsys.readouterr().out


def test_wipe_asks_in_a_terminal_and_a_no_deletes_nothing(tmp_path, capsys, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")

    assert commands.main(["wipe", "--state-dir", str(tmp_path)]) == 0
    assert (tmp_path / "data").exists() and "Nothing deleted." in capsys.readouterr().out


def test_status_reports_what_the_last_start_had_to_drop(tmp_path, capsys):
    (tmp_path / "recovery.json").write_text(json.dumps({
        "summary": "state recovered in 0.10 s from snapshot snapshot-000000000003.pickle (lsn 3) and 1 journal records",
        "dropped": ["wal-000000000004.log: 30 bytes at offset 120 (record cut short): the last record, ..."],
        "diverged": [], "unreadable_snapshots": []}))

    assert commands.main(["status", "--state-dir", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    assert "The local AWS is not running" in out
    assert "Last start: state recovered in 0.10 s" in out
    assert "  - wal-000000000004.log: 30 bytes at offset 120 (record cut short)" in out

"""`python provision.py --watch` as a user runs it: edit a handler, see the new answer at the invoke URL, Ctrl-C.

The stack's lambda.code_dir is a private copy of lambdas/ in the test's folder (the repository's
is never touched); the local AWS is the one the fixture provisions and stops.
"""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import requests
import yaml

from crudstack.config import ROOT
from tests.e2e.conftest import make_stack, provisioned


class Lines:
    """A subprocess's output, read by a thread, so the test can wait for a line without blocking forever."""

    def __init__(self, stream):
        self.seen: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 120) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                return None
            self.seen.append(line)
            if text in line:
                return line
        return None

    @property
    def text(self) -> str:
        return "".join(self.seen)


def test_a_saved_handler_edit_is_served_by_the_invoke_url_and_ctrl_c_stops_the_watch_cleanly(tmp_path):
    code_dir = tmp_path / "lambdas"
    shutil.copytree(ROOT / "lambdas", code_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    lambda_settings = yaml.safe_load((ROOT / "config.yaml").read_text())["lambda"]
    stack = make_stack(tmp_path / "stack", {"lambda": {**lambda_settings, "code_dir": str(code_dir)}})

    with provisioned(stack):
        items = f"{stack.invoke_url}/items"
        created = requests.post(items, json={"name": "Widget"}, timeout=30)
        assert created.status_code == 201, created.text
        item_url = f"{items}/{created.json()['item']['id']}"
        assert "watched" not in requests.get(item_url, timeout=30).json()

        watching = subprocess.Popen(
            [sys.executable, str(ROOT / "provision.py"), "--config", str(stack.config_path),
             "--outputs", str(stack.folder / "outputs"), "--watch"],
            cwd=stack.folder, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL)
        try:
            lines = Lines(watching.stdout)
            assert lines.wait_for("Watching"), lines.text

            handler = code_dir / "get_item.py"
            source = handler.read_text()
            assert "to_api(found[\"Item\"])" in source
            handler.write_text(source.replace("to_api(found[\"Item\"])", "{**to_api(found[\"Item\"]), \"watched\": True}"))

            updated = lines.wait_for("saved ")
            assert updated and "-> 1 function updated in" in updated, lines.text
            assert any(line.startswith("GetItemFunction: code updated in") for line in lines.seen), lines.text
            answer = requests.get(item_url, timeout=30)
            assert answer.status_code == 200 and answer.json().get("watched") is True, answer.text

            watching.send_signal(signal.SIGINT)
            assert watching.wait(timeout=60) == 0, lines.text
            assert lines.wait_for("Stopped watching.", timeout=10), lines.text
        finally:
            if watching.poll() is None:
                watching.kill()
                watching.wait(timeout=10)

"""The denial journal: the last requests the local AWS refused for want of a permission, kept in
<state-dir>/denials.jsonl (one JSON object a line, oldest first) for `python -m crudstack.local denials`.

Bounded: the newest LIMIT are kept. Denials are rare (a missing permission is fixed and stops), so
the file is rewritten whole at each one, atomically, and never read on the request path.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

DENIALS_NAME = "denials.jsonl"
LIMIT = 200


def read_denials(state_dir: Path) -> list[dict[str, Any]]:
    try:
        lines = (state_dir / DENIALS_NAME).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        try:
            found.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash while it was written by an older version
    return found


class DenialJournal:
    def __init__(self, state_dir: Path, limit: int = LIMIT):
        self.path = state_dir / DENIALS_NAME
        self._entries: deque[dict[str, Any]] = deque(read_denials(state_dir), maxlen=limit)
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)
            tmp = self.path.with_name(f".{DENIALS_NAME}.{os.getpid()}.tmp")
            tmp.write_text("".join(json.dumps(e) + "\n" for e in self._entries), encoding="utf-8")
            os.replace(tmp, self.path)

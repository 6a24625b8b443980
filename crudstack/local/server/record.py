"""What a running local AWS leaves in its state dir: server.json (pid, port, endpoint) while it runs,
server.log, and recovery.json (what its last start recovered). daemon.py reads them; standard library
only, so provision.py can import this without moto."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

HEALTH_PATH = "/_localaws/health"
RECORD_NAME = "server.json"
LOG_NAME = "server.log"
RECOVERY_NAME = "recovery.json"


def write_record(state_dir: Path, record: dict[str, Any]) -> None:
    path = state_dir / RECORD_NAME
    tmp = path.with_name(f".{RECORD_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def remove_record(state_dir: Path, pid: int) -> None:
    """Remove server.json if it is still this process's (a newer server may have replaced it)."""
    path = state_dir / RECORD_NAME
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def write_recovery(state_dir: Path, report: Any) -> None:
    """<state-dir>/recovery.json: what the last start recovered, and what it had to drop (shown by provision.py)."""
    path = state_dir / RECOVERY_NAME
    tmp = path.with_name(f".{RECOVERY_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**report.as_dict(), "reported": not report.problems}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)

"""Who may read and write the saved state: its owner only.

The state holds secrets (the role sessions' keys, the tool's own local credentials) and its
snapshots are pickles, and a pickle runs code when it is loaded
(https://docs.python.org/3/library/pickle.html: "Only unpickle data you trust"). moto keeps its
state in plain Python objects that only pickle can save whole (state/snapshot.py), so the format
stays; what is guarded is who can put a file there:

- the state dir and data/ are made 0700, and every file the server writes 0600 (serve.py sets the
  umask to 077 as well, for the log, the record, the denial journal);
- before a snapshot or a journal segment is read, it (and the folder holding it) must belong to this
  user and be writable by nobody else; otherwise the server refuses to start and says what to do
  (StateUnsafe), rather than run what another user may have written.

A file that is ours but readable by others (a state dir written by an older version, 0644) is
tightened to 0600 in place: it is ours, only its secrecy was wrong.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from crudstack.local.state.exceptions import StateUnsafe

FOLDER_MODE, FILE_MODE = 0o700, 0o600


def private_folder(folder: Path) -> Path:
    """Make `folder` (and missing parents) and leave it 0700; StateUnsafe if it is not ours to trust."""
    folder = Path(folder)
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    check_trusted(folder)
    if stat.S_IMODE(folder.stat().st_mode) != FOLDER_MODE:
        os.chmod(folder, FOLDER_MODE)
    return folder


def check_trusted(path: Path) -> None:
    """Refuse a state file or folder another user owns or can write (see the module docstring);
    tighten one of ours that others can read."""
    info = os.lstat(path)
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif info.st_uid != os.geteuid():
        problem = f"belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"can be written by other users (mode {stat.S_IMODE(info.st_mode):04o})"
    if problem is not None:
        raise StateUnsafe(
            f"{path} {problem}: the local AWS's saved state is loaded with pickle, which runs code, so it is loaded "
            f"only from files this user alone can write. If you trust it, run: chown -R {os.geteuid()} {path} && "
            f"chmod -R go-rwx {path}")
    wanted = FOLDER_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(info.st_mode) & wanted)


def open_private(path: Path, flags: int) -> int:
    """os.open for a state file: created 0600 whatever the umask."""
    return os.open(path, flags, FILE_MODE)

"""Deterministic function zips: same code, same bytes, same CodeSha256, no re-upload.

A function's zip holds its handler module plus the shared `common/` package, so a
change to one handler changes that one function's code only.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from crudstack.errors import ConfigError

FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold
SHARED_PACKAGE = "common"


@dataclass(frozen=True)
class Package:
    zip_bytes: bytes
    files: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """As Lambda reports it in CodeSha256: base64 of the SHA-256 digest."""
        return base64.b64encode(hashlib.sha256(self.zip_bytes).digest()).decode()


def escaping_links(code_dir: Path, module: str) -> list[str]:
    """The links in a function's package (its handler, common/ and every file or folder below it) that lead
    outside code_dir, each described: a zip is made of what a link points to, so a link out of code_dir would
    ship any file of this machine (/etc/passwd, ~/.aws/credentials) inside the function."""
    root = code_dir.resolve()
    found = []
    for path in _package_tree(code_dir, module):
        if not path.is_symlink():
            continue
        try:
            target = path.resolve()
        except (RuntimeError, OSError):   # Python 3.11 raises RuntimeError for a loop (a -> b -> a), 3.13 OSError
            found.append(f"{path.relative_to(code_dir).as_posix()} is a link that loops (it leads back to itself "
                         f"through links, never to a file): remove it or point it at a file inside {code_dir}")
            continue
        if not target.is_relative_to(root):
            what = ("the folder " if path.is_dir() else "the file " if path.exists() else "") + str(target)
            what += "" if path.exists() else ", which does not exist"   # a dangling link: nothing to pack, but still out
            found.append(f"{path.relative_to(code_dir).as_posix()} is a link to {what}, outside "
                         f"{root}: a function's zip may hold only what is inside lambda.code_dir; copy what is needed "
                         f"into {code_dir} or remove the link")
    return found


def _package_tree(code_dir: Path, module: str) -> list[Path]:
    """The handler, common/ and everything below common/, links not followed (folder links are listed, not entered)
    but for common/ itself when it links inside code_dir: package_files packs what is below it even then. A common/
    linking out is refused by itself, and not walked (it may be / or a home folder)."""
    tree = [code_dir / f"{module}.py", code_dir / SHARED_PACKAGE]
    if tree[1].is_dir() and (not tree[1].is_symlink() or tree[1].resolve().is_relative_to(code_dir.resolve())):
        for folder, folders, files in os.walk(tree[1]):
            folders[:] = [f for f in folders if f != "__pycache__"]
            tree += [Path(folder) / name for name in folders + files]
    return tree


def package_files(code_dir: Path, module: str) -> list[Path]:
    escaping = escaping_links(code_dir, module)
    if escaping:
        raise ConfigError(escaping, f"the package of {module}.py")
    files = [code_dir / f"{module}.py"]
    shared = code_dir / SHARED_PACKAGE
    if shared.is_dir():
        files += [p for p in shared.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return sorted(files, key=lambda p: p.relative_to(code_dir).as_posix())


def build_package(code_dir: Path, module: str) -> Package:
    buffer = io.BytesIO()
    names = []
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in package_files(code_dir, module):
            name = path.relative_to(code_dir).as_posix()
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r--, whatever the checkout's umask
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            archive.writestr(info, path.read_bytes(), compresslevel=9)
            names.append(name)
    return Package(buffer.getvalue(), tuple(names))

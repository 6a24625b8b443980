"""Deterministic function zips: same code, same bytes, same CodeSha256, no re-upload.

A function's zip holds its handler module plus the shared `common/` package, so a
change to one handler changes that one function's code only.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

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


def package_files(code_dir: Path, module: str) -> list[Path]:
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

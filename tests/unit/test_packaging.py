"""Function zips are deterministic: the same code gives the same bytes (so the same
CodeSha256 and no re-upload), whatever the files' times, modes or location, and a
change to one handler changes that function's package only."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from crudstack.config import ROOT
from crudstack.errors import ConfigError
from crudstack.packaging import FIXED_TIME, build_package

MODULES = ("create_item", "get_items", "get_item", "update_item", "delete_item")


def copy_code(target: Path) -> Path:
    shutil.copytree(ROOT / "lambdas", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


@pytest.fixture
def code(tmp_path) -> Path:
    return copy_code(tmp_path / "lambdas")


def packages(code_dir: Path) -> dict[str, bytes]:
    return {module: build_package(code_dir, module).zip_bytes for module in MODULES}


def test_the_same_code_packs_to_the_same_bytes_and_sha(code):
    first, second = build_package(code, "get_item"), build_package(code, "get_item")

    assert first.zip_bytes == second.zip_bytes
    assert first.sha256 == second.sha256


def test_the_same_code_in_another_folder_packs_to_the_same_bytes(code, tmp_path):
    elsewhere = copy_code(tmp_path / "somewhere" / "else")

    assert packages(elsewhere) == packages(code)


def test_file_modification_times_do_not_change_the_package(code):
    before = packages(code)
    for path in code.rglob("*.py"):
        os.utime(path, (1_700_000_000, 1_700_000_000))

    assert packages(code) == before


def test_file_modes_do_not_change_the_package(code):
    before = packages(code)
    for path in code.rglob("*.py"):
        path.chmod(0o755)

    assert packages(code) == before


def test_the_order_files_were_created_in_does_not_change_the_package(tmp_path):
    one, two = copy_code(tmp_path / "one"), copy_code(tmp_path / "two")
    for name in ("a.py", "b.py", "c.py"):
        (one / "common" / name).write_text(f"# {name}\n")
    for name in ("c.py", "b.py", "a.py"):
        (two / "common" / name).write_text(f"# {name}\n")

    assert packages(one) == packages(two)


def test_a_handler_change_changes_only_that_functions_package(code):
    before = packages(code)
    handler = code / "update_item.py"
    handler.write_text(handler.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")

    after = packages(code)

    assert [m for m in MODULES if after[m] != before[m]] == ["update_item"]


def test_a_change_to_the_shared_common_package_changes_every_package(code):
    before = packages(code)
    (code / "common" / "__init__.py").write_text((code / "common" / "__init__.py").read_text() + "\n# changed\n")

    after = packages(code)

    assert all(after[m] != before[m] for m in MODULES)


def test_a_package_holds_its_handler_and_the_common_package_without_bytecode(code):
    (code / "common" / "__pycache__").mkdir()
    (code / "common" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\x00bytecode")
    (code / "common" / "stray.pyc").write_bytes(b"\x00bytecode")
    (code / "common" / "helpers.py").write_text("X = 1\n")

    package = build_package(code, "get_item")

    assert package.files == ("common/__init__.py", "common/helpers.py", "common/http.py", "common/items.py", "get_item.py")
    with zipfile.ZipFile(io.BytesIO(package.zip_bytes)) as archive:
        assert archive.namelist() == list(package.files)
        assert archive.testzip() is None
        assert archive.read("get_item.py") == (code / "get_item.py").read_bytes()


def test_other_handlers_are_not_in_a_functions_package(code):
    package = build_package(code, "delete_item")

    assert not any(name in package.files for name in ("create_item.py", "get_item.py", "get_items.py", "update_item.py"))


def test_every_zip_entry_has_a_fixed_date_and_regular_file_mode(code):
    with zipfile.ZipFile(io.BytesIO(build_package(code, "create_item").zip_bytes)) as archive:
        for info in archive.infolist():
            assert info.date_time == FIXED_TIME
            assert info.external_attr >> 16 == 0o100644
            assert info.compress_type == zipfile.ZIP_DEFLATED


def test_sha256_is_what_lambda_reports_as_code_sha256(code):
    package = build_package(code, "get_items")

    assert package.sha256 == base64.b64encode(hashlib.sha256(package.zip_bytes).digest()).decode()


def test_the_repositorys_handlers_each_pack_to_a_distinct_package():
    shas = {build_package(ROOT / "lambdas", module).sha256 for module in MODULES}

    assert len(shas) == len(MODULES)


# -- links out of code_dir (issue 21, finding 10) ----------------------------------------------------------------


def outside_file(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0\n")
    return secret


def test_a_file_linked_from_outside_code_dir_into_common_is_refused_naming_it(code, tmp_path):
    secret = outside_file(tmp_path)
    (code / "common" / "leak.txt").symlink_to(secret)

    with pytest.raises(ConfigError) as raised:
        build_package(code, "get_item")

    assert raised.value.exit_code == 2
    assert "common/leak.txt is a link to the file " + str(secret) in str(raised.value)


def test_a_folder_linked_from_outside_code_dir_into_common_is_refused_naming_it(code, tmp_path):
    folder = outside_file(tmp_path).parent
    (code / "common" / "vendored").symlink_to(folder, target_is_directory=True)

    with pytest.raises(ConfigError, match="common/vendored is a link to the folder " + str(folder)):
        build_package(code, "get_item")


def test_a_handler_that_links_outside_code_dir_is_refused(code, tmp_path):
    outside = tmp_path / "elsewhere.py"
    outside.write_text((code / "get_item.py").read_text())
    (code / "get_item.py").unlink()
    (code / "get_item.py").symlink_to(outside)

    with pytest.raises(ConfigError) as raised:
        build_package(code, "get_item")

    assert raised.value.problems == [
        f"get_item.py is a link to the file {outside}, outside {code.resolve()}: a function's zip may hold only what "
        f"is inside lambda.code_dir; copy what is needed into {code} or remove the link"]


def test_links_that_stay_inside_code_dir_are_packed_as_the_files_they_point_to(code):
    (code / "common" / "alias.py").symlink_to(code / "common" / "items.py")

    package = build_package(code, "get_item")

    assert "common/alias.py" in package.files
    with zipfile.ZipFile(io.BytesIO(package.zip_bytes)) as archive:
        assert archive.read("common/alias.py") == (code / "common" / "items.py").read_bytes()


def test_a_link_out_of_code_dir_behind_a_common_that_is_itself_a_link_inside_is_refused(code, tmp_path):
    # common/ -> shared/ (inside code_dir, allowed), and shared/leak.txt -> a file outside: the zip is made through
    # common/, so the file outside would be packed as common/leak.txt unless the links below the linked common/ are checked.
    secret = outside_file(tmp_path)
    (code / "common").rename(code / "shared")
    (code / "common").symlink_to("shared", target_is_directory=True)
    (code / "shared" / "leak.txt").symlink_to(secret)

    with pytest.raises(ConfigError, match="common/leak.txt is a link to the file " + str(secret)):
        build_package(code, "get_item")


def test_a_link_loop_in_common_is_refused_naming_it_not_a_crash(code):
    (code / "common" / "a.py").symlink_to("b.py")
    (code / "common" / "b.py").symlink_to("a.py")

    with pytest.raises(ConfigError) as raised:
        build_package(code, "get_item")

    assert raised.value.exit_code == 2
    assert any(p.startswith("common/a.py is a link that loops") for p in raised.value.problems), raised.value.problems


def test_a_common_linked_out_of_code_dir_is_refused_without_walking_what_it_points_to(code, tmp_path, monkeypatch):
    # common -> / (or ~) must be named at once, not after walking the whole disk below it
    import crudstack.packaging

    outside = outside_file(tmp_path).parent
    shutil.rmtree(code / "common")
    (code / "common").symlink_to(outside, target_is_directory=True)
    walked = []
    monkeypatch.setattr(crudstack.packaging.os, "walk", lambda top, *a, **k: walked.append(top) or iter(()))

    with pytest.raises(ConfigError, match="common is a link to the folder " + str(outside)):
        build_package(code, "get_item")
    assert walked == []


def test_a_dangling_link_out_of_code_dir_is_not_called_a_link_to_a_file(code, tmp_path):
    gone = tmp_path / "gone" / "helper.py"
    (code / "common" / "helper.py").symlink_to(gone)

    with pytest.raises(ConfigError, match=re.escape(f"common/helper.py is a link to {gone}, which does not exist, outside")):
        build_package(code, "get_item")

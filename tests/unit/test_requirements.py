"""README's first command installs exactly what the main job imports, no more and no less.

The main job is provision.py and teardown.py on both targets: every crudstack module they can reach
(imports inside functions too), the local AWS's server process and commands (`python -m
crudstack.local.server`, `python -m crudstack.local`), and the handlers in lambdas/ that its Lambda runs.
Import names map to distributions with importlib.metadata.packages_distributions().
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ENTRY_FILES = [ROOT / "provision.py", ROOT / "teardown.py", ROOT / "crudstack/local/__main__.py",
               *sorted((ROOT / "lambdas").rglob("*.py"))]


def first_command() -> str:
    """The first line of README's 'Two commands' block."""
    text = README.read_text()
    block = re.search(r"^## Two commands\n.*?```bash\n(.*?)```", text, re.S | re.M)
    assert block, "README has no '## Two commands' section with a bash block"
    return block.group(1).strip().splitlines()[0]


def requirement_files(command: str) -> list[Path]:
    return [ROOT / name for name in re.findall(r"-r\s+(\S+)", command)]


def named_distributions(path: Path) -> set[str]:
    """Distribution names a requirements file names (following -r), normalised as PEP 503 does."""
    names: set[str] = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r"):
            names |= named_distributions(path.parent / line[2:].strip())
            continue
        names.add(normalise(re.match(r"[A-Za-z0-9._-]+", line).group(0)))
    return names


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def module_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_names(path: Path) -> set[str]:
    """Every absolute module name a file imports, anywhere in it (lazy imports in functions included)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            else:
                base = node.module
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}   # `from pkg import module`
    return names


def third_party_imports(entry_files: list[Path], entry_modules: list[str]) -> set[str]:
    """Top-level names of the packages outside the repository and the standard library that the main job
    imports, following every module of the repository it reaches."""
    local_top = {p.stem for p in (ROOT / "lambdas").iterdir()} | {"crudstack"}
    seen: set[Path] = set()
    # `python -m package` runs the package's __init__ and then its __main__.
    todo = list(entry_files) + [p for m in entry_modules for p in (module_path(m), module_path(m + ".__main__")) if p]
    outside: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            if top not in local_top:
                outside.add(top)
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):   # a package's __init__ runs before its modules
                found = module_path(".".join(parts[:i])) or module_path("lambdas." + ".".join(parts[:i]))
                if found:
                    todo.append(found)
    return outside


def distributions_of(top_names: set[str]) -> set[str]:
    mapping = importlib.metadata.packages_distributions()
    missing = sorted(name for name in top_names if name not in mapping)
    assert not missing, f"imported but not installed here: {missing}"
    return {normalise(dist) for name in top_names for dist in mapping[name]}


def server_extra_of_moto() -> set[str]:
    """moto[server]'s own packages: the server needs some we do not import ourselves (flask-cors)."""
    extra = set()
    for requirement in importlib.metadata.requires("moto") or []:
        if 'extra == "server"' in requirement:
            extra.add(normalise(re.match(r"[A-Za-z0-9._-]+", requirement).group(0)))
    return extra


def mismatch(named: set[str], imported: set[str], server_extra: set[str]) -> list[str]:
    """What is wrong between the packages a command installs and those the main job imports."""
    problems = [f"{name}: imported by the main job but not named by README's first command"
                for name in sorted(imported - named)]
    problems += [f"{name}: named by README's first command but not imported by the main job"
                 for name in sorted(named - imported - server_extra)]
    return problems


def main_job_distributions() -> set[str]:
    from crudstack.local.daemon import SERVER_MODULE

    return distributions_of(third_party_imports(ENTRY_FILES, [SERVER_MODULE]))


def test_readme_first_command_installs_a_requirements_file_and_runs_provision():
    command = first_command()

    assert requirement_files(command) == [ROOT / "requirements.txt"]
    assert "python provision.py" in command


def test_readme_first_command_names_exactly_the_packages_the_main_job_imports():
    named = set().union(*(named_distributions(path) for path in requirement_files(first_command())))

    assert mismatch(named, main_job_distributions(), server_extra_of_moto()) == []


def test_the_main_job_never_imports_what_only_tests_benchmarks_or_screenshots_need():
    assert main_job_distributions().isdisjoint({"selenium", "pytest", "schemathesis", "hypothesis", "cfn-lint",
                                                "python-hcl2", "chalice", "pexpect"})


@pytest.mark.parametrize("named, imported, problem", [
    ({"boto3", "selenium"}, {"boto3"}, "selenium: named by README's first command but not imported by the main job"),
    ({"boto3"}, {"boto3", "rich"}, "rich: imported by the main job but not named by README's first command"),
])
def test_the_check_fails_on_a_package_named_but_not_imported_or_imported_but_not_named(named, imported, problem):
    assert mismatch(named, imported, server_extra={"flask-cors"}) == [problem]


def test_only_moto_servers_own_packages_may_be_named_without_being_imported():
    assert mismatch({"boto3", "flask-cors"}, {"boto3"}, server_extra_of_moto()) == []
    assert "flask-cors" in server_extra_of_moto() and "selenium" not in server_extra_of_moto()


def test_the_dev_requirements_install_the_main_jobs_and_everything_the_tests_import():
    dev = named_distributions(ROOT / "requirements-dev.txt")
    tests = [p for p in (ROOT / "tests").rglob("*.py")] + [p for p in (ROOT / "bench").rglob("*.py")]
    # Our own top-level names: the packages, and the bench scripts that import each other from bench/.
    local = {"crudstack", "tests", "api", "get_item", "common"} | {p.stem for p in (ROOT / "bench").glob("*.py")}
    imported = {name.split(".")[0] for path in tests for name in imported_names(path)}
    outside = {name for name in imported if name not in sys.stdlib_module_names and name not in local
               and name != "__future__"}

    assert named_distributions(ROOT / "requirements.txt") <= dev
    assert sorted(distributions_of(outside) - dev) == []

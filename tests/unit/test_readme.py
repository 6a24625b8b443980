"""README is a front page: short, its links into docs/ resolve, and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_README_LINES = 250
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def commands() -> list[str]:
    block = re.search(r"^## Two commands\n.*?```bash\n(.*?)```", README.read_text(), re.S | re.M)
    assert block, "README has no '## Two commands' section with a bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).strip().splitlines()]


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as dashes."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Relative links of a page whose file, or whose heading after '#', does not exist."""
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue   # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{page.relative_to(root)}: {target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(f"{page.relative_to(root)}: {target}: no such heading")
    return broken


def test_readme_is_a_front_page_of_at_most_250_lines():
    assert len(README.read_text().splitlines()) <= MAX_README_LINES


def test_readme_links_into_docs_and_every_link_of_readme_and_docs_resolves():
    assert any(target.startswith("docs/") for target in LINK.findall(README.read_text()))
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]

    assert [problem for page in pages for problem in broken_links(page)] == []


def test_the_link_check_finds_a_missing_page_and_a_missing_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "api.md").write_text("# The items API\n## Errors\n")
    page = tmp_path / "README.md"
    page.write_text("[a](docs/api.md#errors) [b](docs/gone.md) [c](docs/api.md#nothing) [d](https://x.org/y)\n")

    assert [line.split(": ", 1)[1] for line in broken_links(page, tmp_path)] == [
        "docs/gone.md: no such file", "docs/api.md#nothing: no such heading"]


def test_ci_runs_readmes_second_command_exactly():
    install_and_test = commands()[1]

    assert install_and_test.startswith("python -m pip install -r requirements-dev.txt")
    assert install_and_test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_no_file_of_the_project_refers_to_a_path_outside_it():
    outside = ["/" + "work/", "../" + "shared", "PERF" + "-NOTES", "MOTO" + "-NOTES"]
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found = [f"{name}: {needle}" for name in files if (ROOT / name).is_file()
             for needle in outside if needle in (ROOT / name).read_text(errors="replace")]

    assert found == []

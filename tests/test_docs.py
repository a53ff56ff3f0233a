"""The documents users read: a short README, a benchmarks file whose links hold, and a docs site that builds.

The docs site is built with ``mkdocs build --strict`` (a broken link or a missing page fails), and its CLI
reference is generated from the typer app, so every command must appear in it.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BENCHMARKS = ROOT / "BENCHMARKS.md"

#: Ordinal words before "session", or "session" and a number: words that number the project's own working
#: sittings. The documents speak of the product and of dated measurements, never of how they were made.
ORDINALS = (
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
)
#: (``search/engine/session.py`` or ``search.engine.session``, a module's name, is not such a word)
DIARY = re.compile(
    r"\b(?:" + "|".join(ORDINALS) + r")[\s-]+session\b|(?<![./])\bsessions?\b(?!\.py)|\bsession\d+", re.IGNORECASE
)
#: An absolute path on a development machine, or the neighbouring folders a checkout does not have.
ABSOLUTE = re.compile(r"(?<![\w.:/~-])/(?:work|home|mnt|root)/|\bshared/(?:device|reference)\b")
RELATIVE = re.compile(r"(?:\.\./)+[\w./-]*")


def paths_outside(path: Path, text: str) -> list[str]:
    """Absolute development paths, and relative paths that climb out of the repository from ``path``'s folder."""
    found = [m.group(0) for m in ABSOLUTE.finditer(text)]
    for m in RELATIVE.finditer(text):
        if not (path.parent / m.group(0)).resolve().is_relative_to(ROOT):
            found.append(m.group(0))
    return found


def user_documents() -> list[Path]:
    """The README, BENCHMARKS.md, the docs site's pages and the benchmark history and scripts."""
    docs = sorted((ROOT / "docs").rglob("*.md")) + sorted((ROOT / "docs").rglob("*.py"))
    bench = sorted((ROOT / "bench").glob("*.py")) + sorted((ROOT / "bench").glob("*.sh"))
    history = sorted((ROOT / "bench" / "history").glob("*.md"))
    return [README, BENCHMARKS, ROOT / "mkdocs.yml", *docs, *bench, *history]


def test_the_readme_is_at_most_200_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("path", user_documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_tells_how_it_was_developed_or_names_a_path_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    diary = [m.group(0) for m in DIARY.finditer(text)]
    outside = paths_outside(path, text)
    assert not diary, f"{path.name}: diary words {diary[:5]}"
    assert not outside, f"{path.name}: paths outside the repository {outside[:5]}"


def headings_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings (lower case, punctuation dropped, spaces to hyphens)."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


@pytest.mark.parametrize("path", [README, BENCHMARKS], ids=lambda p: p.name)
def test_every_relative_link_of_the_readme_and_benchmarks_leads_somewhere(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file) if file else path
        if (
            not dest.exists()
            or anchor
            and dest.suffix == ".md"
            and anchor not in headings_anchors(dest.read_text(encoding="utf-8"))
        ):
            broken.append(target)
    assert not broken, f"{path.name}: links to nothing: {broken}"


def test_the_readme_headline_numbers_link_to_benchmarks() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Headline numbers") :].split("\n## ", 1)[0]
    assert len(re.findall(r"\]\(BENCHMARKS\.md#[\w-]+\)", section)) >= 5


def test_the_readme_says_how_to_install_without_a_gpu() -> None:
    text = README.read_text(encoding="utf-8")
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in text
    assert "--device cpu" in text and "--device sim" in text


@pytest.mark.slow
def test_the_docs_site_builds_strictly_with_the_cli_reference_generated_from_the_app(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip('mkdocs-material is not installed (pip install -e ".[docs]")')
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    from gpupair_search.search.cli.app import app

    cli_page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    missing = [name for name in commands if f"gpupair-search {name}" not in cli_page]
    assert not missing, f"the generated CLI reference lacks {missing}"
    assert "--confirm-margin" in cli_page

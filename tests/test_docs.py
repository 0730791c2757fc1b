"""The documentation site's sources hold together (``make docs`` builds the site itself).

Every page is in the navigation, the reference shows every public name, the
docstrings' reStructuredText habits render as Markdown, and the first query of
"Getting started" runs as printed.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest

import voiceapi_async
from voiceapi_async.testing import Dataset, SimulatorConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HOOKS = DOCS / "_hooks"


def nav_pages() -> list[str]:
    """Return the pages ``mkdocs.yml`` lists in its navigation, in order."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config.split("\nnav:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r":\s*(\S+\.md)\s*$", nav, re.MULTILINE)


def test_every_page_is_in_the_navigation_once() -> None:
    pages = sorted(
        page.relative_to(DOCS).as_posix()
        for page in DOCS.rglob("*.md")
        if HOOKS not in page.parents
    )
    assert sorted(nav_pages()) == pages


def test_the_reference_shows_every_public_name() -> None:
    reference = (DOCS / "reference" / "voiceapi_async.md").read_text(encoding="utf-8")
    shown = re.findall(r"^::: voiceapi_async\.(\w+)$", reference, re.MULTILINE)
    assert sorted(shown) == sorted(voiceapi_async.__all__)


def test_docstrings_render_as_markdown() -> None:
    griffe = pytest.importorskip("griffe")  # the docs group
    package = griffe.load(
        "voiceapi_async",
        search_paths=[str(ROOT)],
        extensions=griffe.load_extensions(str(HOOKS / "griffe_rst.py")),
    )
    backfill = package["backfill"].docstring.value
    assert "[`Backfill`][voiceapi_async.backfill.Backfill]" in backfill  # a public name: a link
    assert "[`voiceapi_async.export`][voiceapi_async.export]" in backfill  # a public module
    assert "raise [`OutputError`][voiceapi_async.backfill.OutputError]:\n" in backfill  # `::`
    lock = package["backfill._lock.OutputLock"].docstring.value
    assert "go to `tmp_dir`," in lock  # an attribute without a docstring: plain code
    client = package["client.VoiceClient"].docstring.value
    assert "shared by all its streams:\n" in client
    fastapi = package["contrib.fastapi"].docstring.value
    assert "| error | status | code, message / headers |\n|---|---|---|\n" in fastapi
    assert '| ``RequestTimeoutError`` | 504 | "upstream timed out" |' in fastapi
    assert not re.search(r":[a-z]+:`|::$|^=+ ", fastapi + backfill + client, re.MULTILINE)


def test_the_first_query_runs_as_printed() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "examples" / "first_query.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    defaults = SimulatorConfig()
    day = Dataset(defaults.seed, timezone="Asia/Kolkata", calls_per_day=defaults.calls_per_day)
    calls = day.ids_between("calls", dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 1, 23, 59, 59))
    lines = result.stdout.splitlines()
    assert lines[0] == f"{len(calls)} calls ended on 2024-03-01 (Asia/Kolkata)"
    assert len(lines) == 4
    assert all(line.startswith("2024-03-01 ") for line in lines[1:])

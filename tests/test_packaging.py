"""The package's identity: version, license, URLs, extras and supported Pythons."""

from __future__ import annotations

import email.parser
import importlib.metadata
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import voiceapi_async

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def supported_pythons() -> list[str]:
    """Return the Python versions `make test-all` runs, from the Makefile."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^SUPPORTED_PYTHONS\s*:?=\s*(.+)$", makefile, re.MULTILINE)
    assert match, "the Makefile names SUPPORTED_PYTHONS"
    return match.group(1).split()


def test_version_is_the_installed_distributions() -> None:
    """``__version__`` is the one hatchling writes into the distribution's metadata."""
    assert voiceapi_async.__version__ == importlib.metadata.version("voiceapi-async")
    assert re.fullmatch(
        r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", voiceapi_async.__version__
    )


def test_the_command_prints_the_version() -> None:
    """``voiceapi --version`` prints the package's version and exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "voiceapi_async", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"voiceapi, version {voiceapi_async.__version__}\n"


def test_the_license_file_is_mit_as_the_metadata_says() -> None:
    """LICENSE holds the MIT text and pyproject declares the same SPDX expression."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    assert PYPROJECT["project"]["license"] == "MIT"


def test_development_tools_are_a_dependency_group_not_an_extra() -> None:
    """``dev`` is a PEP 735 group; the published extras are integrations only."""
    project = PYPROJECT["project"]
    assert set(project["optional-dependencies"]) == {
        "cli",
        "parquet",
        "fastapi",
        "dagster",
    }
    dev = PYPROJECT["dependency-groups"]["dev"]
    assert any(requirement.startswith("pytest>=") for requirement in dev)
    assert not any(requirement.startswith("voiceapi-async") for requirement in dev)


def test_the_declared_pythons_are_the_tested_ones() -> None:
    """The classifiers name exactly the Pythons `make test-all` runs the suite under."""
    declared = [
        classifier.rpartition(" :: ")[2]
        for classifier in PYPROJECT["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    ]
    assert declared == supported_pythons() == ["3.11", "3.12", "3.13"]
    minimum = PYPROJECT["project"]["requires-python"]
    assert minimum == f">={declared[0]}"


def test_the_wheel_carries_version_license_urls_and_no_dev_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel built from the checkout has the metadata a user installs."""
    build = pytest.importorskip("hatchling.build", reason="hatchling is in the dev group")
    monkeypatch.chdir(ROOT)
    name = build.build_wheel(str(tmp_path))
    with zipfile.ZipFile(tmp_path / name) as wheel:
        files = set(wheel.namelist())
        dist_info = f"voiceapi_async-{voiceapi_async.__version__}.dist-info"
        metadata = email.parser.Parser().parsestr(
            wheel.read(f"{dist_info}/METADATA").decode("utf-8")
        )
        entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode("utf-8")
    assert metadata["Version"] == voiceapi_async.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert f"{dist_info}/licenses/LICENSE" in files
    assert {"voiceapi_async/py.typed", "voiceapi_async/_version.py"} <= files
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Source", "Issues", "Changelog"}
    assert all(url.startswith("https://") for url in urls.values())
    assert sorted(metadata.get_all("Provides-Extra") or []) == [
        "cli",
        "dagster",
        "fastapi",
        "parquet",
    ]
    assert not any("dev" in line for line in metadata.get_all("Requires-Dist") or [])
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = metadata.get_all("Classifier") or []
    for version in supported_pythons():
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "voiceapi = voiceapi_async.__main__:run" in entry_points
    assert "voiceapi_async = voiceapi_async.testing._plugin" in entry_points

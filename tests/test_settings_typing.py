"""VoiceClient's keyword settings are typed: a misspelt one fails type checking."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import attrs
import pytest

from voiceapi_async import AuthMode, ClientConfig, ClientSettings

ROOT = Path(__file__).resolve().parent.parent


def test_the_settings_name_every_config_field_with_its_type() -> None:
    """ClientSettings and ClientConfig agree, field by field (a new field needs both)."""
    config = typing.get_type_hints(ClientConfig)
    settings = typing.get_type_hints(ClientSettings)
    assert list(settings) == [field.name for field in attrs.fields(ClientConfig)]
    assert ClientSettings.__required_keys__ == frozenset()
    widened = {"auth": AuthMode | str}  # the config converts the mode's text
    assert {name: widened.get(name, kind) for name, kind in config.items()} == settings


BAD = """\
from voiceapi_async import VoiceClient

VoiceClient(base_url="http://127.0.0.1/", token="t", tiemzone="UTC")
VoiceClient(base_url="http://127.0.0.1/", token="t", timezone="UTC", max_in_flight="8")
"""
GOOD = """\
from voiceapi_async import ClientConfig, ClientSettings, VoiceClient

url = "http://127.0.0.1/"
settings: ClientSettings = {"base_url": url, "token": "t", "timezone": "UTC", "auth": "bearer"}
VoiceClient(**settings)
VoiceClient(base_url=url, token="t", timezone="Asia/Kolkata", deadline=None, per_page=None)
VoiceClient(ClientConfig(base_url=url, token="t", timezone="UTC"), max_in_flight=4)
"""


def test_mypy_rejects_a_misspelt_setting_and_accepts_correct_ones(tmp_path: Path) -> None:
    """Under mypy --strict, ``tiemzone=`` and a text ``max_in_flight`` fail; right calls pass."""
    pytest.importorskip("mypy", reason="mypy is in the dev group")
    (tmp_path / "bad.py").write_text(BAD, encoding="utf-8")
    (tmp_path / "good.py").write_text(GOOD, encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(tmp_path / "bad.py"),
            str(tmp_path / "good.py"),
        ],
        cwd=ROOT,  # this checkout's package, whatever is installed
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    errors = [line for line in done.stdout.splitlines() if ": error: " in line]
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(errors) == 2, done.stdout
    assert errors[0].startswith(f"{tmp_path / 'bad.py'}:3: error: ")
    assert 'Unexpected keyword argument "tiemzone" for "VoiceClient"' in errors[0]
    assert errors[1].startswith(f"{tmp_path / 'bad.py'}:4: error: ")
    assert '"max_in_flight"' in errors[1]
    assert "good.py" not in done.stdout

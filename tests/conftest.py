"""Shared helpers: the spec's response fixtures, copied into ``tests/fixtures``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    """Return the raw bytes of a fixture file."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    """Return a fixture file decoded as JSON."""
    return orjson.loads(fixture_bytes(name))


@pytest.fixture
def kolkata() -> str:
    return "Asia/Kolkata"

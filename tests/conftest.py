"""Shared helpers: the spec's response fixtures, copied into ``tests/fixtures``."""

from __future__ import annotations

import asyncio
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import settings

from voiceapi_async.testing import Observations

FIXTURES = Path(__file__).parent / "fixtures"

# CI explores the same examples on every run (a red build is then reproducible);
# local runs explore new ones and keep what fails in .hypothesis/.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def fixture_bytes(name: str) -> bytes:
    """Return the raw bytes of a fixture file."""
    return (FIXTURES / name).read_bytes()


def one_day(name: str) -> bytes:
    """Return a calls fixture with the call that ends past midnight moved back into 2019-06-11.

    The fixtures sample two days; a client asking for the one day 2019-06-11 would
    rightly refuse the call that ended on 2019-06-12 (``OutOfWindowError``).
    """
    return fixture_bytes(name).replace(b"2019-06-12 00:12:03", b"2019-06-11 23:12:03")


def fixture_json(name: str) -> Any:
    """Return a fixture file decoded as JSON."""
    return orjson.loads(fixture_bytes(name))


@pytest.fixture
def kolkata() -> str:
    return "Asia/Kolkata"


class EdgeResponse(aiohttp.ClientResponse):
    """A response class for aioresponses on aiohttp 3.14+.

    aioresponses 0.7.9 (the newest) builds responses without the ``stream_writer``
    argument aiohttp 3.14 made required (pnuckowski/aioresponses#289); this
    supplies a finished one. Pass it as ``response_class=`` to every mocked call.
    """

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


async def until(condition: Callable[[], bool], *, within: float = 30.0) -> None:
    """Wait, a loop turn at a time, until ``condition()`` holds (fail after ``within`` s)."""
    async with asyncio.timeout(within):
        # The simulator's log has no event to wait on; its state is polled instead.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


async def settled(observed: Observations, *, quiet_checks: int = 50) -> int:
    """Return the report requests seen once none is in flight and none came for a while.

    Only for an upper bound: a late request makes the count larger, never smaller.
    """
    seen, quiet = -1, 0
    async with asyncio.timeout(60):
        while quiet < quiet_checks:
            count = len(observed.report_requests())
            idle = observed.in_flight == 0
            quiet, seen = (quiet + 1 if idle and count == seen else 0), count
            await asyncio.sleep(0.01)
    return seen

"""Shared helpers for the simulator's tests: fixed moments, a served simulator, requests."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import attrs
import orjson
from multidict import CIMultiDict

from voiceapi_async import PageNumbers
from voiceapi_async._protocol import PageData, decipher
from voiceapi_async.testing import VoiceSimulator, run_simulator

TOKEN = "sim-token-5c1e9a"
ZONE = ZoneInfo("Asia/Kolkata")
DATE_PARAM = {"calls": "datetime[end_at]", "recordings": "datetime[r.created_at]"}
COLUMN = {"calls": "end_at", "recordings": "created_at"}
NOON = dt.datetime(2024, 3, 5, 12, 0, 0)
"""The fixed clocks' wall time in the account's zone."""
FIXED_NOW = NOON.replace(tzinfo=ZONE).timestamp()
MAR5 = "Mar 05, 2024 - Mar 05, 2024"
MAR5_ISO = "2024-03-05 - 2024-03-05"
MIDNIGHT = dt.time(0, 0, 0)
LAST_SECOND = dt.time(23, 59, 59)


def at(day: int, time: dt.time = MIDNIGHT, month: int = 3) -> dt.datetime:
    """Return a naive moment in 2024 (March unless told)."""
    return dt.datetime.combine(dt.date(2024, month, day), time)


def day_bounds(first: dt.date, last: dt.date | None = None) -> tuple[dt.datetime, dt.datetime]:
    """Return the inclusive bounds of the days from ``first`` to ``last``."""
    return dt.datetime.combine(first, dt.time()), dt.datetime.combine(last or first, LAST_SECOND)


def wall(value: str) -> dt.datetime:
    """Read a wire timestamp as a naive wall time."""
    return dt.datetime.fromisoformat(value)


def fixed_clock(moment: float = FIXED_NOW) -> Callable[[], float]:
    """Return a clock that always tells ``moment``."""
    return lambda: moment


class FakeClock:
    """A clock a test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        """Return the time the test set."""
        return self.now


@attrs.frozen
class Reply:
    """A response read in full."""

    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        """Return the body decoded as JSON."""
        return orjson.loads(self.body)

    def page(self) -> PageData:
        """Return the body deciphered as the client would (or raise its error)."""
        return decipher(self.status, self.headers, self.body)

    def numbers(self) -> PageNumbers:
        """Return the paging numbers the client reads from the body."""
        return self.page().numbers

    def ids(self) -> list[str]:
        """Return the ids of the records on this page, in order."""
        return [row["id"] for row in self.page().rows]


def api_headers(token: str = TOKEN) -> dict[str, str]:
    """Return the headers a well-behaved client sends."""
    return {"Accept": "application/json", "Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def serve(**settings: Any) -> AsyncIterator[tuple[VoiceSimulator, aiohttp.ClientSession]]:
    """Serve a simulator (no rate limit, 60 calls a day unless told) and open a session."""
    settings.setdefault("token", TOKEN)
    settings.setdefault("rate_limit", 0)
    settings.setdefault("calls_per_day", 60)
    async with run_simulator(**settings) as sim, aiohttp.ClientSession() as session:
        yield sim, session


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    allow_redirects: bool = True,
) -> Reply:
    """GET a URL and read the whole response."""
    async with session.get(
        url, params=params, headers=headers, allow_redirects=allow_redirects
    ) as response:
        body = await response.read()
        return Reply(response.status, CIMultiDict(response.headers), body)


async def report(
    session: aiohttp.ClientSession,
    sim: VoiceSimulator,
    name: str,
    when: str | None = MAR5,
    *,
    headers: dict[str, str] | None = None,
    **params: str | int,
) -> Reply:
    """GET one report for the range ``when`` (None: no filter), authenticated unless told."""
    query = {key: str(value) for key, value in params.items()}
    if when is not None:
        query[DATE_PARAM[name]] = when
    return await fetch(
        session,
        sim.base_url + f"voice/{name}",
        params=query,
        headers=api_headers() if headers is None else headers,
    )


async def all_ids(
    session: aiohttp.ClientSession, sim: VoiceSimulator, name: str, when: str, per_page: int
) -> list[str]:
    """Page through a range by page number (never by the next link), like a client must."""
    ids: list[str] = []
    page = 1
    while True:
        reply = await report(session, sim, name, when, page=page, per_page=per_page)
        numbers = reply.numbers()
        ids.extend(reply.ids())
        if numbers.current_page >= numbers.last_page:
            assert numbers.total == len(ids)
            return ids
        page += 1


def origin_of(sim: VoiceSimulator) -> str:
    """Return the simulator's scheme, host and port."""
    return sim.base_url.removesuffix("/api/v2/")


def get_json(url: str, token: str = "demo-token", **params: str) -> tuple[int, Any]:
    """GET a report for 5 March 2024 from a synchronous caller; return status and JSON body."""
    query = urllib.parse.urlencode({"datetime[end_at]": MAR5_ISO, **params})
    request = urllib.request.Request(
        f"{url}?{query}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())

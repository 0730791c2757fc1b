"""The simulator over HTTP: every rule of the spec it plays, traps included."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from voiceapi_async import (
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    Report,
    ResponseFormatError,
    ServerError,
    Shape,
)
from voiceapi_async._protocol import PageData, decipher
from voiceapi_async.testing import (
    FAULT_KINDS,
    Faults,
    Observations,
    SimulatorConfig,
    VoiceSimulator,
    run_simulator,
)

TOKEN = "sim-token-5c1e9a"
ZONE = ZoneInfo("Asia/Kolkata")
DATE_PARAM = {"calls": "datetime[end_at]", "recordings": "datetime[r.created_at]"}
COLUMN = {"calls": "end_at", "recordings": "created_at"}
NOON = dt.datetime(2024, 3, 5, 12, 0, 0)
"""The fixed clocks' wall time in the account's zone."""
FIXED_NOW = NOON.replace(tzinfo=ZONE).timestamp()
MAR5 = "Mar 05, 2024 - Mar 05, 2024"
LAST_SECOND = dt.time(23, 59, 59)


def day_bounds(first: dt.date, last: dt.date | None = None) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.combine(first, dt.time()), dt.datetime.combine(last or first, LAST_SECOND)


def wall(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def fixed_clock(moment: float = FIXED_NOW) -> Callable[[], float]:
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

    def ids(self) -> list[str]:
        """Return the ids of the records on this page, in order."""
        return [row["id"] for row in self.page().rows]


def api_headers(token: str = TOKEN) -> dict[str, str]:
    return {"Accept": "application/json", "Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def serve(**settings: Any) -> AsyncIterator[tuple[VoiceSimulator, aiohttp.ClientSession]]:
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
        data = (await report(session, sim, name, when, page=page, per_page=per_page)).page()
        ids.extend(row["id"] for row in data.rows)
        if data.current_page >= data.last_page:
            assert data.total == len(ids)
            return ids
        page += 1


def origin_of(sim: VoiceSimulator) -> str:
    return sim.base_url.removesuffix("/api/v2/")


# -- the date filter -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_range_splits_on_space_hyphen_space() -> None:
    """A "<from> - <to>" value selects every record from the first day to the last, both whole."""
    async with serve(shape="a") as (sim, session):
        ids = (await report(session, sim, "calls", "Mar 02, 2024 - Mar 04, 2024")).ids()
    assert set(ids) == sim.ids_between(
        "calls", *day_bounds(dt.date(2024, 3, 2), dt.date(2024, 3, 4))
    )
    assert len(ids) == len(set(ids))


@pytest.mark.asyncio
async def test_date_only_bounds_cover_midnight_to_the_last_second() -> None:
    """A date-only from starts at 00:00:00 and a date-only to ends at 23:59:59."""
    async with serve(shape="a", calls_per_day=200) as (sim, session):
        ids = set((await report(session, sim, "calls", "2024-03-05 - 2024-03-05")).ids())
        morning = set(
            (await report(session, sim, "calls", "2024-03-05 - 2024-03-05 09:00:00")).ids()
        )
        evening = set(
            (await report(session, sim, "calls", "2024-03-05 18:00:00 - 2024-03-05")).ids()
        )
    day = sim.dataset.day(dt.date(2024, 3, 5)).calls
    assert ids == sim.ids_between("calls", *day_bounds(dt.date(2024, 3, 5)))
    assert ids == {record["id"] for record in day}
    assert day[0]["id"] in ids
    assert day[-1]["id"] in ids
    assert morning == sim.ids_between("calls", dt.datetime(2024, 3, 5), dt.datetime(2024, 3, 5, 9))
    assert day[0]["id"] in morning
    assert evening == sim.ids_between(
        "calls", dt.datetime(2024, 3, 5, 18), dt.datetime(2024, 3, 5, 23, 59, 59)
    )
    assert day[-1]["id"] in evening


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_bounds_are_inclusive_to_the_second(name: str) -> None:
    """A record exactly at the from or the to is matched; a second beyond it is not."""
    async with serve(shape="a") as (sim, session):
        record = sim.dataset.day(dt.date(2024, 3, 5)).records(Report(name))[0][10]
        moment = record[COLUMN[name]]
        after = (wall(moment) + dt.timedelta(seconds=1)).isoformat(" ")
        before = (wall(moment) - dt.timedelta(seconds=1)).isoformat(" ")
        exact = (await report(session, sim, name, f"{moment} - {moment}")).ids()
        ending = (await report(session, sim, name, f"2024-03-05 - {moment}")).ids()
        starting = (await report(session, sim, name, f"{moment} - 2024-03-05")).ids()
        too_late = (await report(session, sim, name, f"{after} - 2024-03-05")).ids()
        too_early = (await report(session, sim, name, f"2024-03-05 - {before}")).ids()
    assert record["id"] in exact
    assert set(exact) == sim.ids_between(name, wall(moment), wall(moment))
    assert record["id"] in ending
    assert record["id"] in starting
    assert record["id"] not in too_late
    assert record["id"] not in too_early


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        (
            "Mar 03, 2024 - Mar 05, 2024",
            dt.datetime(2024, 3, 3),
            dt.datetime(2024, 3, 5, 23, 59, 59),
        ),
        ("2024-03-03 - 2024-03-05", dt.datetime(2024, 3, 3), dt.datetime(2024, 3, 5, 23, 59, 59)),
        (
            "2024-03-03 10:15:00 - 2024-03-04 08:00:30",
            dt.datetime(2024, 3, 3, 10, 15),
            dt.datetime(2024, 3, 4, 8, 0, 30),
        ),
        (
            "Mar 03, 2024 - 2024-03-04 12:00:00",
            dt.datetime(2024, 3, 3),
            dt.datetime(2024, 3, 4, 12),
        ),
    ],
)
async def test_documented_date_formats_are_parsed(
    value: str, start: dt.datetime, end: dt.datetime
) -> None:
    """%b %d, %Y, %Y-%m-%d and full datetimes all select the same ground truth."""
    async with serve(shape="a") as (sim, session):
        ids = (await report(session, sim, "calls", value)).ids()
    assert set(ids) == sim.ids_between("calls", start, end)
    assert ids


@pytest.mark.asyncio
async def test_slashes_are_read_day_first() -> None:
    """08/03/2024 means 8 March, not 3 August."""
    async with serve(shape="a") as (sim, session):
        ids = set((await report(session, sim, "calls", "08/03/2024 - 08/03/2024")).ids())
    assert ids == sim.ids_between("calls", *day_bounds(dt.date(2024, 3, 8)))
    assert ids != sim.ids_between("calls", *day_bounds(dt.date(2024, 8, 3)))


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_unparseable_dates_silently_become_now(name: str) -> None:
    """A part the server cannot read is replaced by "now", with no error."""
    async with serve(shape="a", clock=fixed_clock(), calls_per_day=150) as (sim, session):
        from_now = await report(session, sim, name, "not-a-date - Mar 05, 2024")
        until_now = await report(session, sim, name, "Mar 05, 2024 - 2024/99/99")
    assert from_now.status == 200
    assert set(from_now.ids()) == sim.ids_between(name, NOON, dt.datetime(2024, 3, 5, 23, 59, 59))
    assert set(until_now.ids()) == sim.ids_between(name, dt.datetime(2024, 3, 5), NOON)
    assert from_now.ids()
    assert until_now.ids()


@pytest.mark.asyncio
async def test_now_is_read_in_the_account_zone() -> None:
    """The "now" an unparseable date becomes is the clock's wall time in the account's zone."""
    new_york = dt.datetime.fromtimestamp(FIXED_NOW, ZoneInfo("America/New_York"))
    now = new_york.replace(tzinfo=None)
    async with serve(shape="a", clock=fixed_clock(), timezone="America/New_York") as (
        sim,
        session,
    ):
        ids = set((await report(session, sim, "calls", "garbage - Mar 05, 2024")).ids())
    assert now == dt.datetime(2024, 3, 5, 1, 30)
    assert ids == sim.ids_between("calls", now, dt.datetime(2024, 3, 5, 23, 59, 59))
    assert ids


@pytest.mark.asyncio
async def test_missing_to_means_a_single_day() -> None:
    """A from alone covers that whole day."""
    async with serve(shape="a") as (sim, session):
        ids = set((await report(session, sim, "calls", "Mar 04, 2024")).ids())
    assert ids == sim.ids_between("calls", *day_bounds(dt.date(2024, 3, 4)))
    assert ids


@pytest.mark.asyncio
async def test_missing_filter_means_today() -> None:
    """Without the date parameter the server answers for today (by its clock)."""
    async with serve(shape="a", clock=fixed_clock()) as (sim, session):
        ids = set((await report(session, sim, "calls", None)).ids())
    assert ids == sim.ids_between("calls", *day_bounds(NOON.date()))


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_each_report_filters_on_its_own_column(name: str) -> None:
    """Calls filter on end_at and recordings on created_at, each by its own parameter."""
    async with serve(shape="a", calls_per_day=200) as (sim, session):
        rows = (await report(session, sim, name, "2024-03-05 - 2024-03-05")).page().rows
    assert rows
    assert all(row[COLUMN[name]].startswith("2024-03-05 ") for row in rows)
    if name == "calls":
        assert any(row["start_at"] and row["start_at"] < "2024-03-05" for row in rows)


@pytest.mark.asyncio
async def test_aware_bounds_are_read_in_the_account_zone() -> None:
    """ids_between accepts aware datetimes and converts them to the account's wall time."""
    async with serve(shape="a", timezone="Asia/Kolkata") as (sim, _):
        aware = (
            dt.datetime(2024, 3, 4, 18, 30, tzinfo=dt.UTC),
            dt.datetime(2024, 3, 5, 18, 29, 59, tzinfo=dt.UTC),
        )
        assert sim.ids_between("calls", *aware) == sim.ids_between(
            "calls", *day_bounds(dt.date(2024, 3, 5))
        )


# -- authentication --------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("mode", "headers", "params"),
    [
        ("bearer", {"Authorization": f"Bearer {TOKEN}"}, {}),
        ("raw", {"Authorization": TOKEN}, {}),
        ("access_token", {}, {"access_token": TOKEN}),
        ("api_token", {}, {"api_token": TOKEN}),
    ],
)
async def test_every_documented_auth_mode_is_accepted(
    mode: str, headers: dict[str, str], params: dict[str, str]
) -> None:
    """Bearer, raw Authorization, access_token and api_token all authenticate."""
    async with serve() as (sim, session):
        reply = await report(
            session, sim, "calls", headers={"Accept": "application/json", **headers}, **params
        )
    assert reply.status == 200
    assert reply.json()["status"] == "OK"
    [observed] = sim.observed.requests
    assert observed.auth == mode
    assert TOKEN not in repr(observed)
    if mode in params:
        assert (mode, "[REDACTED]") in observed.params


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "credentials",
    [
        {"headers": {"Authorization": "Bearer wrong-token"}},
        {"headers": {"Authorization": "wrong-token"}},
        {"params": {"access_token": "wrong-token"}},
        {"headers": {"Authorization": "Bearer "}},
        {},
    ],
)
async def test_bad_token_with_accept_json_is_a_json_401(credentials: dict[str, Any]) -> None:
    """A wrong or missing token with Accept: application/json gets a JSON 401."""
    headers = {"Accept": "application/json", **credentials.get("headers", {})}
    async with serve() as (sim, session):
        reply = await fetch(
            session,
            sim.base_url + "voice/calls",
            params={"datetime[end_at]": MAR5, **credentials.get("params", {})},
            headers=headers,
        )
    assert reply.status == 401
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert body["status"] == "ERROR"
    assert body["code"] == 401
    assert body["message"]
    with pytest.raises(AuthenticationError):
        reply.page()
    assert sim.observed.requests[-1].status == 401


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong-token"},
        {},
        {"Accept": "text/html, application/json"},
        {"Accept": "application/json;q=0.5, text/html"},
    ],
)
async def test_bad_token_without_accept_json_redirects_to_login(headers: dict[str, str]) -> None:
    """Unless JSON is the preferred Accept type, a bad token is a 302 to the login page."""
    async with serve() as (sim, session):
        url = sim.base_url + "voice/calls"
        redirect = await fetch(session, url, headers=headers, allow_redirects=False)
        login = await fetch(session, url, headers=headers)
    assert redirect.status == 302
    assert urlsplit(redirect.headers["Location"]).path == "/login"
    with pytest.raises(AuthenticationError):
        redirect.page()
    assert login.status == 200
    assert login.headers["Content-Type"].startswith("text/html")
    assert b"<form" in login.body
    with pytest.raises(AuthenticationError):
        login.page()


# -- the three shapes ------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_shape_a_is_a_bare_list_with_everything(name: str) -> None:
    """Shape A is {"status": "OK", "data": [...]} with every record and no paging."""
    async with serve(shape="a", calls_per_day=100) as (sim, session):
        reply = await report(session, sim, name, "Mar 04, 2024 - Mar 05, 2024", per_page=5, page=2)
    body = reply.json()
    assert list(body) == ["status", "data"]
    assert body["status"] == "OK"
    assert isinstance(body["data"], list)
    ids = [row["id"] for row in body["data"]]
    assert set(ids) == sim.ids_between(name, *day_bounds(dt.date(2024, 3, 4), dt.date(2024, 3, 5)))
    assert len(ids) == len(set(ids))
    assert len(ids) > 5
    assert reply.page().shape is Shape.BARE_LIST


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_shape_b_is_a_nested_paginator_with_bare_links(name: str) -> None:
    """Shape B nests records in data.data; its page URLs carry no query string but page."""
    async with serve(shape="b", calls_per_day=100) as (sim, session):
        reply = await report(session, sim, name, "Mar 04, 2024 - Mar 05, 2024", per_page=10, page=2)
    body = reply.json()
    assert list(body) == ["status", "data"]
    assert body["status"] == "OK"
    paginator = body["data"]
    assert list(paginator) == [
        "current_page",
        "data",
        "first_page_url",
        "from",
        "last_page",
        "last_page_url",
        "next_page_url",
        "path",
        "per_page",
        "prev_page_url",
        "to",
        "total",
    ]
    path = f"{origin_of(sim)}/api/v2/voice/{name}"
    total = len(sim.ids_between(name, *day_bounds(dt.date(2024, 3, 4), dt.date(2024, 3, 5))))
    last = -(-total // 10)
    assert paginator["current_page"] == 2
    assert len(paginator["data"]) == 10
    assert paginator["from"] == 11
    assert paginator["to"] == 20
    assert paginator["per_page"] == 10
    assert paginator["total"] == total
    assert paginator["last_page"] == last
    assert paginator["path"] == path
    assert paginator["first_page_url"] == f"{path}?page=1"
    assert paginator["last_page_url"] == f"{path}?page={last}"
    assert paginator["next_page_url"] == f"{path}?page=3"
    assert paginator["prev_page_url"] == f"{path}?page=1"
    assert reply.page().shape is Shape.PAGINATOR


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_shape_c_is_a_resource_whose_links_point_at_calls(name: str) -> None:
    """Shape C has links and meta beside data; links point at voice/calls, even for recordings."""
    async with serve(shape="c", calls_per_day=100) as (sim, session):
        reply = await report(session, sim, name, "Mar 04, 2024 - Mar 05, 2024", per_page=10)
    body = reply.json()
    assert list(body) == ["status", "code", "message", "data", "links", "meta"]
    assert body["status"] == "OK"
    assert body["code"] == 200
    assert isinstance(body["data"], list)
    assert len(body["data"]) == 10
    wrong_path = f"{origin_of(sim)}/api/v2/voice/calls"
    total = len(sim.ids_between(name, *day_bounds(dt.date(2024, 3, 4), dt.date(2024, 3, 5))))
    last = -(-total // 10)
    assert body["links"] == {
        "first": f"{wrong_path}?page=1",
        "last": f"{wrong_path}?page={last}",
        "prev": None,
        "next": f"{wrong_path}?page=2",
    }
    meta = body["meta"]
    assert set(meta) == {
        "current_page",
        "from",
        "last_page",
        "links",
        "path",
        "per_page",
        "to",
        "total",
    }
    assert meta["current_page"] == 1
    assert meta["from"] == 1
    assert meta["to"] == 10
    assert meta["total"] == total
    assert meta["last_page"] == last
    assert meta["path"] == wrong_path
    assert meta["links"][0]["label"] == "&laquo; Previous"
    assert meta["links"][1] == {"url": f"{wrong_path}?page=1", "label": "1", "active": True}
    assert meta["links"][-1]["url"] == f"{wrong_path}?page=2"
    assert reply.page().shape is Shape.RESOURCE


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
async def test_page_links_drop_the_filter_and_the_token(shape: str) -> None:
    """No link in a paged body carries the date filter or the token."""
    async with serve(shape=shape) as (sim, session):
        reply = await report(
            session, sim, "recordings", MAR5, page=2, per_page=3, access_token=TOKEN
        )
    body = reply.body.decode()
    urls = [part.split('"')[0] for part in body.split('"http')[1:]]
    page_links = [url for url in urls if "/api/v2/" in url]
    assert page_links
    for url in page_links:
        assert set(dict(parse_qsl(urlsplit(url).query))) <= {"page"}
    assert any(url.endswith("?page=3") for url in page_links)
    assert TOKEN not in body


# -- paging ----------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
async def test_page_and_per_page_select_a_slice(shape: str) -> None:
    """Page N with per_page K returns rows (N-1)*K+1 to N*K of the server's order."""
    async with serve(shape=shape, calls_per_day=100) as (sim, session):
        everything = (await report(session, sim, "calls", per_page=100)).ids()
        second = await report(session, sim, "calls", page=2, per_page=7)
    data = second.page()
    assert second.ids() == everything[7:14]
    assert data.current_page == 2
    assert data.per_page == 7
    assert data.first_row == 8
    assert data.last_row == 14


@pytest.mark.asyncio
async def test_default_page_size_is_fifteen() -> None:
    """Without per_page or limit a page holds 15 records."""
    async with serve() as (sim, session):
        data = (await report(session, sim, "calls")).page()
    assert data.per_page == 15
    assert len(data.rows) == 15


@pytest.mark.asyncio
async def test_limit_is_read_when_per_page_is_absent() -> None:
    """A limit sets the page size when per_page is absent; per_page wins when both are sent."""
    async with serve() as (sim, session):
        limited = (await report(session, sim, "calls", limit=4)).page()
        both = (await report(session, sim, "calls", per_page=6, limit=4)).page()
    assert limited.per_page == 4
    assert len(limited.rows) == 4
    assert both.per_page == 6
    assert len(both.rows) == 6


@pytest.mark.asyncio
@pytest.mark.parametrize("asked", ["0", "-3", "ten", "2.5", "\u00b2", "9" * 30])
async def test_nonsense_page_size_falls_back_to_the_default(asked: str) -> None:
    """A per_page that is not a positive whole number in PHP's range is ignored."""
    async with serve() as (sim, session):
        reply = await report(session, sim, "calls", per_page=asked)
    assert reply.status == 200
    assert reply.page().per_page == 15


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
@pytest.mark.parametrize("asked", ["0", "-2", "two", "\u00b2", "\u0663", "9" * 30])
async def test_nonsense_page_number_reads_as_page_one(shape: str, asked: str) -> None:
    """A page that is not a positive whole number in PHP's range is page 1, never a crash."""
    async with serve(shape=shape) as (sim, session):
        first = await report(session, sim, "calls", per_page=5)
        reply = await report(session, sim, "calls", per_page=5, page=asked)
    assert reply.status == 200
    assert reply.page().current_page == 1
    assert reply.ids() == first.ids()


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
async def test_the_largest_page_number_is_past_the_end(shape: str) -> None:
    """Page PHP_INT_MAX is a valid, empty, past-the-end page."""
    async with serve(shape=shape) as (sim, session):
        reply = await report(session, sim, "calls", per_page=100, page=2**63 - 1)
    data = reply.page()
    assert data.current_page == 2**63 - 1
    assert data.rows == []
    assert data.first_row is None


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
async def test_per_page_max_caps_the_page_and_the_echo_tells(shape: str) -> None:
    """A per_page above per_page_max is cut to it, and the echoed per_page is what applied."""
    async with serve(shape=shape, per_page_max=12, calls_per_day=100) as (sim, session):
        data = (await report(session, sim, "calls", per_page=50)).page()
        limited = (await report(session, sim, "calls", limit=500)).page()
    assert data.per_page == 12
    assert len(data.rows) == 12
    assert data.last_page == -(-data.total // 12)
    assert limited.per_page == 12


@pytest.mark.asyncio
async def test_per_page_default_is_capped_by_the_maximum() -> None:
    """A default page size above the maximum is cut to the maximum too."""
    async with serve(per_page_default=40, per_page_max=25) as (sim, session):
        data = (await report(session, sim, "calls")).page()
    assert data.per_page == 25


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
async def test_past_the_end_page_is_empty(shape: str) -> None:
    """A page beyond the last returns empty data with null from and to, and no next link."""
    async with serve(shape=shape) as (sim, session):
        first = (await report(session, sim, "calls", per_page=10)).page()
        beyond = (await report(session, sim, "calls", per_page=10, page=first.last_page + 3)).page()
    assert beyond.rows == []
    assert beyond.first_row is None
    assert beyond.last_row is None
    assert beyond.has_next_link is False
    assert beyond.total == first.total


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
async def test_an_empty_range_is_one_empty_page(shape: str) -> None:
    """A range without records answers total 0, last_page 1, null from and to."""
    async with serve(shape=shape, calls_per_day=0) as (sim, session):
        data = (await report(session, sim, "calls")).page()
    assert data.rows == []
    assert data.total == 0
    assert data.last_page == 1
    assert data.first_row is None
    assert data.has_next_link is False


@pytest.mark.asyncio
async def test_record_order_is_deterministic_but_not_by_time() -> None:
    """The same seed serves the same order, which is not sorted by the filtered column."""
    async with serve(seed=21) as (first, session), serve(seed=21) as (second, _):
        ids = await all_ids(session, first, "calls", MAR5, 100)
        again = await all_ids(session, second, "calls", MAR5, 100)
        repeated = await all_ids(session, second, "calls", MAR5, 100)
        rows = (await report(session, first, "calls", per_page=100)).page().rows
    assert ids == again
    assert ids == repeated
    keys = [row["end_at"] for row in rows]
    assert keys != sorted(keys)
    assert keys != sorted(keys, reverse=True)


# -- ground truth ----------------------------------------------------------------------

RANGES = [
    ("Mar 05, 2024 - Mar 05, 2024", *day_bounds(dt.date(2024, 3, 5))),
    ("2024-03-02 - 2024-03-04", *day_bounds(dt.date(2024, 3, 2), dt.date(2024, 3, 4))),
    (
        "2024-03-03 22:10:00 - 2024-03-04 09:45:30",
        dt.datetime(2024, 3, 3, 22, 10),
        dt.datetime(2024, 3, 4, 9, 45, 30),
    ),
    (
        "2024-03-06 10:00:00 - 2024-03-06 10:59:59",
        dt.datetime(2024, 3, 6, 10),
        dt.datetime(2024, 3, 6, 10, 59, 59),
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
@pytest.mark.parametrize("name", ["calls", "recordings"])
@pytest.mark.parametrize("per_page", [1, 7, 15, 100])
async def test_pages_together_are_exactly_the_ground_truth(
    shape: str, name: str, per_page: int
) -> None:
    """For any range and page size, the pages' ids are the dataset's ids, without duplicates."""
    async with serve(shape=shape, calls_per_day=25, seed=per_page) as (sim, session):
        for value, start, end in RANGES:
            ids = await all_ids(session, sim, name, value, per_page)
            assert len(ids) == len(set(ids)), value
            assert set(ids) == sim.ids_between(name, start, end), value


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_shape_a_is_exactly_the_ground_truth(name: str) -> None:
    """Shape A's single page holds exactly the range's ids, for every range."""
    async with serve(shape="a", calls_per_day=25) as (sim, session):
        for value, start, end in RANGES:
            ids = (await report(session, sim, name, value)).ids()
            assert len(ids) == len(set(ids)), value
            assert set(ids) == sim.ids_between(name, start, end), value


async def _ground_truth_case(
    shape: str, name: str, per_page: int, start: dt.datetime, end: dt.datetime
) -> tuple[list[str], set[str]]:
    value = f"{start:%Y-%m-%d %H:%M:%S} - {end:%Y-%m-%d %H:%M:%S}"
    async with serve(shape=shape, calls_per_day=20, seed=per_page) as (sim, session):
        ids = await all_ids(session, sim, name, value, per_page)
        return ids, sim.ids_between(name, start, end)


@settings(max_examples=15, deadline=None)
@given(
    shape=st.sampled_from(["b", "c"]),
    name=st.sampled_from(["calls", "recordings"]),
    per_page=st.integers(min_value=1, max_value=30),
    start=st.datetimes(min_value=dt.datetime(2024, 3, 1), max_value=dt.datetime(2024, 3, 6)),
    length=st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=2)),
)
def test_any_range_shape_and_page_size_match_the_ground_truth(
    shape: str, name: str, per_page: int, start: dt.datetime, length: dt.timedelta
) -> None:
    """Random ranges to the second, shapes and page sizes all page to exactly the truth."""
    start = start.replace(microsecond=0)
    end = start + dt.timedelta(seconds=int(length.total_seconds()))
    ids, truth = asyncio.run(_ground_truth_case(shape, name, per_page, start, end))
    assert len(ids) == len(set(ids))
    assert set(ids) == truth


# -- determinism -----------------------------------------------------------------------


async def _bodies(seed: int, shape: str) -> list[bytes]:
    """Fetch a fixed series of pages from a fresh simulator, all under one Host name."""
    headers = {**api_headers(), "Host": "voice.example.test"}
    bodies = []
    async with serve(seed=seed, shape=shape, clock=fixed_clock()) as (sim, session):
        for name in ("calls", "recordings"):
            for page in (1, 2, 3):
                reply = await report(session, sim, name, headers=headers, page=page, per_page=9)
                assert reply.status == 200
                bodies.append(reply.body)
    return bodies


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["a", "b", "c"])
async def test_same_seed_gives_byte_identical_responses(shape: str) -> None:
    """Two simulators with one seed and a fixed clock serve the same bytes."""
    first = await _bodies(4, shape)
    second = await _bodies(4, shape)
    assert first == second
    assert b"X-Amz-Signature" in b"".join(first)


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["a", "b", "c"])
async def test_different_seed_gives_different_responses(shape: str) -> None:
    """Another seed serves other records."""
    first = await _bodies(4, shape)
    other = await _bodies(5, shape)
    assert all(a != b for a, b in zip(first, other, strict=True))


# -- the rate limit --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_rate_limit_answers_429_with_retry_after() -> None:
    """Past rate_limit requests in a window the server answers 429 with Retry-After."""
    async with serve(rate_limit=3, rate_window=30.0) as (sim, session):
        allowed = [await report(session, sim, "calls") for _ in range(3)]
        refused = await report(session, sim, "calls")
    assert [reply.status for reply in allowed] == [200, 200, 200]
    assert [reply.headers["X-RateLimit-Limit"] for reply in allowed] == ["3", "3", "3"]
    assert [reply.headers["X-RateLimit-Remaining"] for reply in allowed] == ["2", "1", "0"]
    assert refused.status == 429
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    body = refused.json()
    assert body["status"] == "ERROR"
    assert body["code"] == 429
    with pytest.raises(RateLimitError) as caught:
        refused.page()
    assert caught.value.retry_after == int(refused.headers["Retry-After"])
    assert sim.observed.requests[-1].status == 429


@pytest.mark.asyncio
async def test_rate_limit_window_resets() -> None:
    """Once the window has passed, requests succeed again."""
    async with serve(rate_limit=2, rate_window=0.3) as (sim, session):
        statuses = [(await report(session, sim, "calls")).status for _ in range(3)]
        await asyncio.sleep(0.35)
        after = await report(session, sim, "calls")
    assert statuses == [200, 200, 429]
    assert after.status == 200
    assert after.headers["X-RateLimit-Remaining"] == "1"


@pytest.mark.asyncio
async def test_rate_limit_counts_only_authenticated_requests() -> None:
    """A rejected token does not use up the account's allowance."""
    async with serve(rate_limit=1, rate_window=30.0) as (sim, session):
        for _ in range(3):
            await report(session, sim, "calls", headers=api_headers("wrong"))
        reply = await report(session, sim, "calls")
    assert reply.status == 200


@pytest.mark.asyncio
async def test_rate_limit_zero_means_no_limit() -> None:
    """rate_limit=0 never answers 429 and sends no rate-limit headers."""
    async with serve(rate_limit=0) as (sim, session):
        replies = await asyncio.gather(*(report(session, sim, "calls") for _ in range(40)))
    assert {reply.status for reply in replies} == {200}
    assert all("X-RateLimit-Limit" not in reply.headers for reply in replies)


@pytest.mark.asyncio
async def test_default_rate_limit_is_a_thousand_a_minute() -> None:
    """The default limit is the documented 1000 requests a minute."""
    async with run_simulator(token=TOKEN) as sim, aiohttp.ClientSession() as session:
        reply = await report(session, sim, "calls")
    assert sim.config.rate_limit == 1000
    assert sim.config.rate_window == 60.0
    assert reply.headers["X-RateLimit-Limit"] == "1000"
    assert reply.headers["X-RateLimit-Remaining"] == "999"


# -- faults ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_server_error_fault_is_a_json_5xx() -> None:
    """A server_error fault answers a JSON error body with status 500, 502 or 503."""
    async with serve(faults=Faults(server_error=1.0)) as (sim, session):
        replies = [await report(session, sim, "calls", page=n) for n in range(1, 21)]
    assert {reply.status for reply in replies} == {500, 502, 503}
    for reply in replies:
        body = reply.json()
        assert body["status"] == "ERROR"
        assert body["code"] == reply.status
        with pytest.raises(ServerError):
            reply.page()
    assert sim.observed.faults == {"server_error": 20}
    assert {r.fault for r in sim.observed.requests} == {"server_error"}


@pytest.mark.asyncio
async def test_reset_fault_cuts_the_connection_mid_body() -> None:
    """A reset fault sends the headers and part of the body, then drops the connection."""
    async with serve(faults=Faults(reset=1.0)) as (sim, session):
        for page in (1, 2):
            async with session.get(
                sim.base_url + "voice/calls",
                params={"datetime[end_at]": MAR5, "page": str(page)},
                headers=api_headers(),
            ) as response:
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
    assert sim.observed.faults == {"reset": 2}
    assert [r.fault for r in sim.observed.requests] == ["reset", "reset"]


@pytest.mark.asyncio
async def test_truncated_fault_is_a_complete_200_with_cut_json() -> None:
    """A truncated fault is a well-formed HTTP 200 whose JSON body ends early."""
    async with serve(faults=Faults(truncated=1.0)) as (sim, session):
        reply = await report(session, sim, "calls")
    assert reply.status == 200
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(reply.body)
    with pytest.raises(ResponseFormatError) as caught:
        reply.page()
    assert caught.value.truncated is True
    assert sim.observed.faults == {"truncated": 1}


@pytest.mark.asyncio
async def test_error_in_200_fault_is_a_failure_inside_success() -> None:
    """An error_in_200 fault delivers {"status": "ERROR", "code": 500} with HTTP 200."""
    async with serve(faults=Faults(error_in_200=1.0)) as (sim, session):
        reply = await report(session, sim, "calls")
    assert reply.status == 200
    body = reply.json()
    assert body["status"] == "ERROR"
    assert body["code"] == 500
    with pytest.raises(ServerError):
        reply.page()
    assert sim.observed.faults == {"error_in_200": 1}


@pytest.mark.asyncio
async def test_html_error_fault_is_a_proxy_502_page() -> None:
    """An html_error fault is a 502 with a text/html body, as a proxy sends."""
    async with serve(faults=Faults(html_error=1.0)) as (sim, session):
        reply = await report(session, sim, "calls")
    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.body.startswith(b"<html")
    with pytest.raises(ServerError):
        reply.page()
    assert sim.observed.faults == {"html_error": 1}


@pytest.mark.asyncio
async def test_stall_fault_hangs_the_body_until_the_client_times_out() -> None:
    """A stall fault sends headers and some body, then nothing: a reading client times out."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=0.2)
    async with serve(faults=Faults(stall=1.0, stall_seconds=0.5)) as (sim, session):
        response = await session.get(
            sim.base_url + "voice/calls",
            params={"datetime[end_at]": MAR5},
            headers=api_headers(),
            timeout=timeout,
        )
        async with response:
            assert response.status == 200
            with pytest.raises(asyncio.TimeoutError):
                await response.read()
    assert sim.observed.faults == {"stall": 1}


@pytest.mark.asyncio
async def test_latency_delays_but_does_not_break_answers() -> None:
    """With latency_ms set every request still succeeds, with no fault recorded."""
    async with serve(faults=Faults(latency_ms=5)) as (sim, session):
        replies = [await report(session, sim, "calls", page=n) for n in (1, 2, 3)]
    assert [reply.status for reply in replies] == [200, 200, 200]
    assert sim.observed.faults == {}
    assert [r.fault for r in sim.observed.requests] == [None, None, None]


@pytest.mark.asyncio
async def test_every_fault_kind_is_counted() -> None:
    """observed.faults counts each kind served, and the request log names it."""
    mixed = Faults(server_error=0.2, truncated=0.2, error_in_200=0.2, html_error=0.2)
    async with serve(faults=mixed) as (sim, session):
        for page in range(1, 41):
            await report(session, sim, "calls", page=page)
    served = [r.fault for r in sim.observed.requests if r.fault is not None]
    assert sum(sim.observed.faults.values()) == len(served)
    assert set(sim.observed.faults) == {"server_error", "truncated", "error_in_200", "html_error"}
    for kind in FAULT_KINDS:
        assert sim.observed.faults[kind] == served.count(kind)


FaultLog = list[tuple[str, tuple[tuple[str, str], ...], int, str | None]]


async def _fault_sequence(seed: int) -> FaultLog:
    mixed = Faults(server_error=0.2, reset=0.15, truncated=0.15, error_in_200=0.1, html_error=0.1)

    async def attempt(
        sim: VoiceSimulator, session: aiohttp.ClientSession, name: str, page: int
    ) -> None:
        with contextlib.suppress(aiohttp.ClientPayloadError):
            await report(session, sim, name, page=page)

    async with serve(seed=seed, faults=mixed) as (sim, session):
        for _ in range(3):
            for page in (1, 2, 3, 4, 5):
                await attempt(sim, session, "calls", page)
        await asyncio.gather(*(attempt(sim, session, "recordings", p) for p in (1, 2, 3, 4)))
    log = [(r.path, r.params, r.status, r.fault) for r in sim.observed.requests]
    calls = [entry for entry in log if entry[0].endswith("calls")]
    # Concurrent requests may arrive in any order: their fates still follow the request.
    recordings = sorted(entry for entry in log if entry[0].endswith("recordings"))
    return calls + recordings


@pytest.mark.asyncio
async def test_faults_are_reproducible_from_the_seed() -> None:
    """The same seed serves the same fault sequence; another seed a different one."""
    first = await _fault_sequence(8)
    again = await _fault_sequence(8)
    other = await _fault_sequence(9)
    assert first == again
    assert first != other
    assert {entry[3] for entry in first} > {None}


# -- live mode -------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", ["b", "c"])
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_live_mode_adds_records_while_paging(shape: str, name: str) -> None:
    """With live_every=1 each request adds a record to the range: totals move between pages."""
    bounds = day_bounds(dt.date(2024, 3, 5))
    async with serve(shape=shape, live_every=1, calls_per_day=40) as (sim, session):
        before = sim.ids_between(name, *bounds)
        pages = [(await report(session, sim, name, page=n, per_page=5)).page() for n in (1, 2, 3)]
        totals = [page.total for page in pages]
        after = sim.ids_between(name, *bounds)
        final = await all_ids(session, sim, name, MAR5, 100)
    assert totals == [len(before) + 1, len(before) + 2, len(before) + 3]
    assert after > before
    assert len(after) == len(before) + 3
    assert set(final) == sim.ids_between(name, *bounds)
    assert len(final) == len(before) + 4


@pytest.mark.asyncio
async def test_live_mode_every_n_requests() -> None:
    """live_every=3 adds one record every third report request."""
    async with serve(live_every=3) as (sim, session):
        totals = [(await report(session, sim, "calls")).page().total for _ in range(6)]
    assert totals[0] == totals[1]
    assert totals[2] == totals[0] + 1
    assert totals[3] == totals[4] == totals[2]
    assert totals[5] == totals[0] + 2


@pytest.mark.asyncio
async def test_still_dataset_keeps_totals() -> None:
    """Without live mode, repeating a request never changes its total."""
    async with serve() as (sim, session):
        totals = {(await report(session, sim, "calls", page=n)).page().total for n in (1, 2, 3)}
    assert len(totals) == 1


# -- audio storage ---------------------------------------------------------------------


async def _signed_audio(
    session: aiohttp.ClientSession, sim: VoiceSimulator, *, headers: dict[str, str] | None = None
) -> list[str]:
    reply = await report(session, sim, "recordings", per_page=100, headers=headers)
    origin = origin_of(sim) if headers is None or "Host" not in headers else ""
    return [
        row["audio"]
        for row in reply.page().rows
        if row["audio"] and row["audio"].startswith(f"{origin}/storage/")
    ]


@pytest.mark.asyncio
async def test_audio_urls_are_presigned_and_serve_deterministic_bytes() -> None:
    """A recording's presigned URL downloads fixed bytes with Content-Length, token-free."""
    async with (
        serve(clock=fixed_clock(), calls_per_day=80) as (sim, session),
        serve(clock=fixed_clock(), calls_per_day=80) as (twin, _),
    ):
        urls = await _signed_audio(session, sim)
        twin_urls = await _signed_audio(session, twin)
        url = urls[0]
        download = await fetch(session, url)
        again = await fetch(session, url)
        twin_download = await fetch(session, twin_urls[0])
    query = dict(parse_qsl(urlsplit(url).query))
    assert {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-Signature",
    } <= set(query)
    assert query["X-Amz-Expires"] == "3600"
    assert query["X-Amz-Date"] == dt.datetime.fromtimestamp(FIXED_NOW, dt.UTC).strftime(
        "%Y%m%dT%H%M%SZ"
    )
    assert download.status == 200
    assert download.headers["Content-Type"] == "audio/mpeg"
    assert int(download.headers["Content-Length"]) == len(download.body)
    assert len(download.body) >= 2048
    assert again.body == download.body
    assert twin_download.body == download.body
    assert sim.observed.token_leaks == []


@pytest.mark.asyncio
async def test_unsigned_and_null_audio_are_served_as_is() -> None:
    """Recordings whose audio is null or on another storage are not signed."""
    async with serve(calls_per_day=400, shape="a") as (sim, session):
        rows = (await report(session, sim, "recordings", "Mar 01, 2024 - Mar 07, 2024")).page().rows
    audio = [row["audio"] for row in rows]
    assert None in audio
    unsigned = [a for a in audio if a and a.startswith("https://cdn.example.test/")]
    assert unsigned
    assert all("X-Amz" not in a for a in unsigned)


@pytest.mark.asyncio
async def test_tampered_signature_is_refused_with_xml() -> None:
    """A URL whose signature was changed gets 403 SignatureDoesNotMatch in S3 XML."""
    async with serve() as (sim, session):
        url = (await _signed_audio(session, sim))[0]
        signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
        forged = url.replace(signature, signature[::-1])
        reply = await fetch(session, forged)
        unsigned = await fetch(session, url.split("?")[0])
    assert reply.status == 403
    assert reply.headers["Content-Type"].startswith("application/xml")
    assert b"<Code>SignatureDoesNotMatch</Code>" in reply.body
    assert unsigned.status == 403
    assert b"<Code>AuthorizationQueryParametersError</Code>" in unsigned.body


@pytest.mark.asyncio
async def test_expired_audio_url_is_access_denied_until_fetched_again() -> None:
    """Past audio_expiry the URL answers 403 AccessDenied; the report then mints a fresh one."""
    clock = FakeClock(FIXED_NOW)
    async with serve(clock=clock, audio_expiry=60) as (sim, session):
        url = (await _signed_audio(session, sim))[0]
        assert dict(parse_qsl(urlsplit(url).query))["X-Amz-Expires"] == "60"
        fresh = await fetch(session, url)
        clock.now += 60
        at_expiry = await fetch(session, url)
        clock.now += 1
        expired = await fetch(session, url)
        renewed = (await _signed_audio(session, sim))[0]
        refetched = await fetch(session, renewed)
    assert fresh.status == 200
    assert at_expiry.status == 200
    assert expired.status == 403
    assert b"<Code>AccessDenied</Code>" in expired.body
    assert b"Request has expired" in expired.body
    assert renewed != url
    assert refetched.status == 200
    assert refetched.body == fresh.body


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Authorization": f"Bearer {TOKEN}"}, {}),
        ({"Authorization": TOKEN}, {}),
        ({}, {"access_token": TOKEN}),
        ({}, {"api_token": TOKEN}),
    ],
)
async def test_token_sent_to_storage_is_recorded_as_a_leak(
    headers: dict[str, str], params: dict[str, str]
) -> None:
    """Fetching audio with the API token (header or query) is noted in token_leaks."""
    async with serve() as (sim, session):
        url = (await _signed_audio(session, sim))[0]
        query = dict(parse_qsl(urlsplit(url).query)) | params
        reply = await fetch(session, url.split("?")[0], params=query, headers=headers)
    assert reply.status == 200
    assert sim.observed.token_leaks == [urlsplit(url).path]
    assert TOKEN not in repr(sim.observed.requests)


# -- observation -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_request_log_records_what_clients_did() -> None:
    """Each request is logged with method, path, params, auth mode, time, status and fault."""
    async with serve(clock=fixed_clock()) as (sim, session):
        await report(session, sim, "recordings", page=2, per_page=5)
        await report(session, sim, "calls", headers={"Accept": "application/json"})
    ok, refused = sim.observed.requests
    assert ok.method == "GET"
    assert ok.path == "/api/v2/voice/recordings"
    assert dict(ok.params) == {"datetime[r.created_at]": MAR5, "page": "2", "per_page": "5"}
    assert ok.auth == "bearer"
    assert ok.time == FIXED_NOW
    assert ok.status == 200
    assert ok.fault is None
    assert refused.auth is None
    assert refused.status == 401
    assert sim.observed.report_requests("recordings") == [ok]
    assert sim.observed.report_requests() == [ok, refused]


@pytest.mark.asyncio
async def test_max_in_flight_reflects_concurrent_requests() -> None:
    """Eight requests held open together show as max_in_flight 8, then none in flight."""
    slow = Faults(latency_ms=300, latency_spread=0)
    async with serve(faults=slow) as (sim, session):
        replies = await asyncio.gather(
            *(report(session, sim, "calls", page=n) for n in range(1, 9))
        )
    assert {reply.status for reply in replies} == {200}
    assert sim.observed.max_in_flight == 8
    assert sim.observed.in_flight == 0


@pytest.mark.asyncio
async def test_sequential_requests_are_never_concurrent() -> None:
    """One request after another never has more than one in flight."""
    async with serve() as (sim, session):
        for page in (1, 2, 3):
            await report(session, sim, "calls", page=page)
    assert sim.observed.max_in_flight == 1


@pytest.mark.asyncio
async def test_request_rates_are_counted() -> None:
    """max_per_minute counts every request of a quick burst; max_per_second is within it."""
    async with serve() as (sim, session):
        for _ in range(6):
            await report(session, sim, "calls")
    assert sim.observed.max_per_minute == 6
    assert 1 <= sim.observed.max_per_second <= 6


def test_rate_windows_slide() -> None:
    """max_per_second and max_per_minute count the busiest sliding 1 s and 60 s windows."""
    observed = Observations()
    for moment in (0.0, 0.2, 0.4, 1.3, 1.35, 1.39, 1.42, 30.0, 61.5):
        observed.arrived(moment)
        observed.in_flight -= 1
    assert observed.max_per_second == 4
    assert observed.max_per_minute == 8
    assert observed.in_flight == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path", ["api/v2/voice/unknown", "api/v1/voice/calls", "api/v2/voice/calls/extra", ""]
)
async def test_unknown_paths_are_a_json_404(path: str) -> None:
    """Anything but the two reports, the login page and storage is a JSON 404."""
    async with serve() as (sim, session):
        reply = await fetch(session, f"{origin_of(sim)}/{path}", headers=api_headers())
    assert reply.status == 404
    body = reply.json()
    assert body["status"] == "ERROR"
    assert body["code"] == 404
    with pytest.raises(NotFoundError):
        reply.page()


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"shape": "d"}, "shape"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"rate_window": -1.0}, "rate_window"),
        ({"per_page_max": 0}, "per_page_max"),
        ({"per_page_default": 0}, "per_page_default"),
        ({"calls_per_day": -5}, "calls_per_day"),
        ({"live_every": -1}, "live_every"),
        ({"audio_expiry": -1}, "audio_expiry"),
    ],
)
def test_bad_settings_raise_value_error_naming_them(settings: dict[str, Any], name: str) -> None:
    """An invalid simulator setting raises ValueError that names it."""
    with pytest.raises(ValueError, match=name):
        SimulatorConfig(**settings)


def test_probability_above_one_is_refused() -> None:
    """A fault probability above 1 raises ValueError naming the fault."""
    with pytest.raises(ValueError, match="truncated"):
        SimulatorConfig(faults=Faults(truncated=1.01))


@pytest.mark.parametrize(("shape", "expected"), [("a", Shape.BARE_LIST), ("B", Shape.PAGINATOR)])
def test_shape_accepts_letters_in_any_case(shape: str, expected: Shape) -> None:
    """The shape setting takes "a", "b", "c" in either case, or a Shape."""
    assert SimulatorConfig(shape=shape).shape is expected


@pytest.mark.asyncio
async def test_run_simulator_refuses_bad_settings_before_serving() -> None:
    """run_simulator raises the ValueError and serves nothing."""
    with pytest.raises(ValueError, match="rate_limit"):
        async with run_simulator(rate_limit=-3):
            pass


def test_settings_override_a_given_config() -> None:
    """Keyword settings given with a config replace its fields."""
    simulator = VoiceSimulator(SimulatorConfig(seed=3, shape="a"), shape="c")
    assert simulator.config.seed == 3
    assert simulator.config.shape is Shape.RESOURCE

"""The three response shapes over HTTP, their page links, and the bytes a seed serves."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.simulator.conftest import (
    MAR5,
    TOKEN,
    api_headers,
    day_bounds,
    fixed_clock,
    origin_of,
    report,
    serve,
)
from voiceapi_async import Shape

MAR4_TO_5 = "Mar 04, 2024 - Mar 05, 2024"


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["calls", "recordings"])
async def test_shape_a_is_a_bare_list_with_everything(name: str) -> None:
    """Shape A is {"status": "OK", "data": [...]} with every record and no paging."""
    async with serve(shape="a", calls_per_day=100) as (sim, session):
        reply = await report(session, sim, name, MAR4_TO_5, per_page=5, page=2)
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
        reply = await report(session, sim, name, MAR4_TO_5, per_page=10, page=2)
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
        reply = await report(session, sim, name, MAR4_TO_5, per_page=10)
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


# -- the bytes a seed serves -----------------------------------------------------------


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

"""The simulator's pure rendering: request rules, paging numbers and links, the three shapes.

No server and no mocks: every function takes values and returns values.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceapi_async import Report, Shape
from voiceapi_async.testing._render import (
    LOGIN_PAGE,
    PHP_INT_MAX,
    PROXY_PAGE,
    EncodedRecords,
    PageLinks,
    Paging,
    bare_list,
    encode_records,
    error_body,
    links_path,
    page_number,
    page_size,
    paginator,
    positive_int,
    redirect_page,
    resource,
    sign_audio,
    wants_json,
)

PATH = "http://voice.example.test/api/v2/voice/calls"
ROWS = [b'{"id":"a"}', b'{"id":"b"}']


def record(ident: str, audio: str | None = None) -> dict[str, Any]:
    return {"id": ident, "end_at": "2024-03-05 10:00:00", "audio": audio}


def sign(path: str) -> str:
    return f"https://signed.example.test{path}?X-Amz-Signature=abc"


# -- the Accept header -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", True),
        ("Application/JSON", True),
        ("application/vnd.api+json", True),
        ("application/json, text/html", True),
        ("text/html;q=0.5, application/json", True),
        ("text/html, application/json", False),
        ("application/json;q=0.5, text/html", False),
        ("application/json;q=nonsense, text/html", False),
        ("*/*", False),
        ("text/html", False),
        ("", False),
    ],
)
def test_json_must_be_the_preferred_accept_type(accept: str, expected: bool) -> None:
    """JSON counts only when it ranks first by quality, then by position."""
    assert wants_json(accept) is expected


# -- page and per_page -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1),
        ("42", 42),
        (" 7 ", 7),
        (str(PHP_INT_MAX), PHP_INT_MAX),
        (str(PHP_INT_MAX + 1), None),
        ("0", None),
        ("-3", None),
        ("2.5", None),
        ("ten", None),
        ("\u00b2", None),
        ("\u0663", None),
        ("", None),
        (None, None),
    ],
)
def test_positive_int_reads_as_php_does(value: str | None, expected: int | None) -> None:
    """Only ASCII digits from 1 to PHP_INT_MAX are a whole number; the rest is None."""
    assert positive_int(value) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, 15),
        ({"per_page": "7"}, 7),
        ({"limit": "4"}, 4),
        ({"per_page": "6", "limit": "4"}, 6),
        ({"per_page": "nonsense", "limit": "4"}, 4),
        ({"per_page": "0"}, 15),
        ({"per_page": "500"}, 100),
        ({"limit": "500"}, 100),
    ],
)
def test_page_size_reads_per_page_then_limit_then_the_default(
    query: dict[str, str], expected: int
) -> None:
    """per_page wins over limit, a nonsense value is skipped, and the maximum caps all."""
    assert page_size(query, default=15, maximum=100) == expected


def test_the_default_page_size_is_capped_too() -> None:
    """A default above the maximum is cut to the maximum."""
    assert page_size({}, default=40, maximum=25) == 25


@pytest.mark.parametrize(("value", "expected"), [(None, 1), ("3", 3), ("0", 1), ("two", 1)])
def test_a_page_that_is_not_a_whole_number_is_page_one(value: str | None, expected: int) -> None:
    """page_number falls back to page 1 for anything but a valid whole number."""
    assert page_number(value) == expected


def test_paging_from_query_reads_page_and_size() -> None:
    """Paging.from_query takes page and the applied page size from the query."""
    paging = Paging.from_query({"page": "3", "limit": "9"}, 40, default=15, maximum=100)
    assert paging == Paging(page=3, per_page=9, total=40)


# -- paging numbers --------------------------------------------------------------------


def test_a_middle_page_has_full_numbers() -> None:
    """Page 2 of 41 records by 15 holds records 16 to 30 of 3 pages."""
    paging = Paging(page=2, per_page=15, total=41)
    assert (paging.first, paging.stop, paging.count) == (15, 30, 15)
    assert (paging.from_row, paging.to_row, paging.last_page) == (16, 30, 3)


def test_the_last_page_may_be_short() -> None:
    """The last page holds what is left."""
    paging = Paging(page=3, per_page=15, total=41)
    assert (paging.first, paging.stop, paging.count) == (30, 41, 11)
    assert (paging.from_row, paging.to_row) == (31, 41)


def test_a_page_past_the_end_is_empty_with_null_rows() -> None:
    """Beyond the last page there are no records, and from and to are None."""
    paging = Paging(page=PHP_INT_MAX, per_page=100, total=41)
    assert paging.count == 0
    assert paging.first >= paging.stop
    assert paging.from_row is None
    assert paging.to_row is None
    assert paging.last_page == 1


def test_an_empty_range_has_one_page() -> None:
    """Zero records make one empty last page."""
    paging = Paging(page=1, per_page=15, total=0)
    assert (paging.last_page, paging.count, paging.from_row, paging.to_row) == (1, 0, None, None)


@given(total=st.integers(min_value=0, max_value=500), per_page=st.integers(1, 60))
def test_pages_cover_the_range_exactly_once(total: int, per_page: int) -> None:
    """Pages 1 to last_page slice every record once, in order, numbered from and to."""
    last_page = Paging(page=1, per_page=per_page, total=total).last_page
    covered: list[int] = []
    for page in range(1, last_page + 1):
        paging = Paging(page=page, per_page=per_page, total=total)
        rows = list(range(total))[paging.first : paging.stop]
        assert len(rows) == paging.count
        if rows:
            assert (paging.from_row, paging.to_row) == (rows[0] + 1, rows[-1] + 1)
        covered.extend(rows)
    assert covered == list(range(total))
    assert Paging(page=last_page + 1, per_page=per_page, total=total).count == 0


# -- paging links ----------------------------------------------------------------------


def test_links_carry_only_the_page() -> None:
    """Every link is the path and ?page=N; next and prev are None at the ends."""
    middle = PageLinks(PATH, Paging(page=2, per_page=10, total=30))
    assert (middle.first, middle.last) == (f"{PATH}?page=1", f"{PATH}?page=3")
    assert (middle.prev, middle.next) == (f"{PATH}?page=1", f"{PATH}?page=3")
    first = PageLinks(PATH, Paging(page=1, per_page=10, total=30))
    assert first.prev is None
    last = PageLinks(PATH, Paging(page=3, per_page=10, total=30))
    assert last.next is None
    beyond = PageLinks(PATH, Paging(page=9, per_page=10, total=30))
    assert beyond.next is None
    assert beyond.prev == f"{PATH}?page=8"


def test_numbered_links_list_at_most_ten_pages_between_previous_and_next() -> None:
    """Shape C's meta.links: previous, pages 1 to min(last, 10) with the current active, next."""
    links = PageLinks(PATH, Paging(page=2, per_page=1, total=12)).numbered()
    assert links[0] == {"url": f"{PATH}?page=1", "label": "&laquo; Previous", "active": False}
    assert [link["label"] for link in links[1:-1]] == [str(n) for n in range(1, 11)]
    assert [link["active"] for link in links[1:-1]] == [n == 2 for n in range(1, 11)]
    assert links[-1] == {"url": f"{PATH}?page=3", "label": "Next &raquo;", "active": False}


@pytest.mark.parametrize(
    ("report", "shape", "expected"),
    [
        (Report.CALLS, Shape.PAGINATOR, "voice/calls"),
        (Report.RECORDINGS, Shape.PAGINATOR, "voice/recordings"),
        (Report.RECORDINGS, Shape.RESOURCE, "voice/calls"),
    ],
)
def test_shape_c_links_always_name_the_calls_report(
    report: Report, shape: Shape, expected: str
) -> None:
    """Shape B links to its own report; shape C's links point at voice/calls, as documented."""
    assert links_path("http://h", report, shape) == f"http://h/api/v2/{expected}"


# -- records ---------------------------------------------------------------------------


def test_records_are_ordered_by_the_seed_not_by_input() -> None:
    """The same records in any input order encode in one order, which the seed changes."""
    records = [record(f"id-{n}") for n in range(30)]
    first = encode_records(records, seed=1)
    assert encode_records(list(reversed(records)), seed=1) == first
    assert encode_records(records, seed=2).rows != first.rows
    assert sorted(first.rows) == sorted(orjson.dumps(r) for r in records)


def test_storage_audio_gets_a_placeholder_and_its_path() -> None:
    """Audio in the simulator's storage is set aside for signing; other audio stays as is."""
    records = [
        record("a", "/storage/rc/a.mp3"),
        record("b", "https://cdn.example.test/b.mp3"),
        record("c"),
    ]
    encoded = encode_records(records, seed=0)
    rows, paths = encoded.slice(0, 3)
    by_id = {orjson.loads(row)["id"]: (row, path) for row, path in zip(rows, paths, strict=True)}
    assert by_id["a"][1] == "/storage/rc/a.mp3"
    assert b"/storage/" not in by_id["a"][0]
    assert by_id["b"] == (orjson.dumps(records[1]), None)
    assert by_id["c"] == (orjson.dumps(records[2]), None)


def test_slices_outside_the_rows_are_empty() -> None:
    """A slice from past the end, or with first at or after stop, holds nothing."""
    encoded = EncodedRecords(list(ROWS), [None, None])
    assert encoded.slice(0, 2) == (ROWS, [None, None])
    assert encoded.slice(1, 2) == (ROWS[1:], [None])
    assert encoded.slice(2, 2) == ([], [])
    assert encoded.slice(5, 2) == ([], [])


def test_signing_replaces_the_placeholder_with_a_json_string() -> None:
    """sign_audio puts sign(path) where the placeholder was and leaves other rows alone."""
    encoded = encode_records([record("a", "/storage/rc/a.mp3"), record("b")], seed=0)
    rows, paths = encoded.slice(0, 2)
    signed = [orjson.loads(row) for row in sign_audio(rows, paths, sign)]
    by_id = {row["id"]: row["audio"] for row in signed}
    assert by_id == {"a": sign("/storage/rc/a.mp3"), "b": None}


# -- the three shapes ------------------------------------------------------------------


def test_shape_a_is_status_and_a_bare_list() -> None:
    """Shape A is the rows in data, nothing else."""
    assert bare_list(ROWS) == b'{"status":"OK","data":[{"id":"a"},{"id":"b"}]}'
    assert bare_list([]) == b'{"status":"OK","data":[]}'


def test_shape_b_nests_the_rows_in_the_paginator() -> None:
    """Shape B's data holds current_page, the rows and the paginator's fields in order."""
    body = orjson.loads(paginator(ROWS, Paging(page=2, per_page=2, total=5), PATH))
    assert list(body) == ["status", "data"]
    expected = {
        "current_page": 2,
        "data": [{"id": "a"}, {"id": "b"}],
        "first_page_url": f"{PATH}?page=1",
        "from": 3,
        "last_page": 3,
        "last_page_url": f"{PATH}?page=3",
        "next_page_url": f"{PATH}?page=3",
        "path": PATH,
        "per_page": 2,
        "prev_page_url": f"{PATH}?page=1",
        "to": 4,
        "total": 5,
    }
    assert list(body["data"].items()) == list(expected.items())


def test_shape_b_past_the_end_has_null_rows_and_links() -> None:
    """An empty shape B page has empty data, null from and to, and no next link."""
    body = orjson.loads(paginator([], Paging(page=4, per_page=2, total=5), PATH))["data"]
    assert (body["data"], body["from"], body["to"], body["next_page_url"]) == ([], None, None, None)


def test_shape_c_puts_paging_in_links_and_meta() -> None:
    """Shape C has status, code, message, data, links and meta, in that order."""
    body = orjson.loads(resource(ROWS, Paging(page=1, per_page=2, total=5), PATH))
    assert list(body) == ["status", "code", "message", "data", "links", "meta"]
    assert (body["status"], body["code"], body["message"]) == ("OK", 200, "OK")
    assert body["data"] == [{"id": "a"}, {"id": "b"}]
    assert body["links"] == {
        "first": f"{PATH}?page=1",
        "last": f"{PATH}?page=3",
        "prev": None,
        "next": f"{PATH}?page=2",
    }
    meta = body["meta"]
    assert list(meta) == [
        "current_page",
        "from",
        "last_page",
        "path",
        "per_page",
        "to",
        "total",
        "links",
    ]
    assert (meta["current_page"], meta["from"], meta["to"], meta["total"]) == (1, 1, 2, 5)
    assert meta["links"] == PageLinks(PATH, Paging(page=1, per_page=2, total=5)).numbered()


@pytest.mark.parametrize("render", [paginator, resource])
def test_paged_shapes_are_compact_json(render: Any) -> None:
    """The paged bodies are one compact JSON document, as orjson writes it."""
    body = render(ROWS, Paging(page=1, per_page=2, total=2), PATH)
    assert body == orjson.dumps(orjson.loads(body))


# -- errors and pages ------------------------------------------------------------------


def test_error_body_is_status_code_and_message() -> None:
    """The JSON error body names ERROR, the code and the message, in that order."""
    assert error_body(401, "Unauthenticated.") == (
        b'{"status":"ERROR","code":401,"message":"Unauthenticated."}'
    )


def test_html_pages_are_what_a_browser_would_get() -> None:
    """The login page has a form, the proxy page says 502, the redirect links its target."""
    assert b"<form" in LOGIN_PAGE
    assert PROXY_PAGE.startswith(b"<html")
    assert b"502 Bad Gateway" in PROXY_PAGE
    assert b'<a href="/login">/login</a>' in redirect_page("/login")

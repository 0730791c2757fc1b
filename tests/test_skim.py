"""The skim: a success page's paging numbers and ids, read as a full parse reads them."""

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import fixture_bytes
from voiceapi_async import ResponseFormatError, Shape, VoiceAPIError
from voiceapi_async._protocol import decipher, read_rows
from voiceapi_async._skim import skim

JSON = {"Content-Type": "application/json"}
PAGING_KEYS = ("current_page", "last_page", "per_page", "total", "from", "to")
SUCCESS_FIXTURES = [
    ("calls_shape_a.json", Shape.BARE_LIST),
    ("calls_shape_b_page1.json", Shape.PAGINATOR),
    ("calls_shape_b_page2.json", Shape.PAGINATOR),
    ("calls_shape_b_empty.json", Shape.PAGINATOR),
    ("recordings_shape_c.json", Shape.RESOURCE),
]
RAW_JUNK = [b"1e999", b"-1e999", b"1" * 5000, b'"\xff\xfe"', b'"\\ud800"', b"NaN", b"[" * 1100]
"""Values a full parse refuses, some of which the skim skips unread."""


def outcome(status: int, body: bytes, *, skimmed: bool) -> Any:
    """What decipher makes of a body: the error, or everything paging reads of the page."""
    try:
        page = decipher(status, JSON, body, skimmed=skimmed, url="https://x.test/")
    except VoiceAPIError as error:
        return type(error), str(error)
    ids = [row.get("id") if isinstance(row, Mapping) else type(row) for row in page.rows]
    return page.shape, page.rows_path, page.numbers, page.has_next_link, ids


@pytest.mark.parametrize(("name", "shape"), SUCCESS_FIXTURES)
def test_every_success_shape_is_skimmed_to_the_same_page(name: str, shape: Shape) -> None:
    """The three shapes skim to the page a full parse gives, rows cut down to their ids."""
    body = fixture_bytes(name)
    assert skim(body) is not None
    full = decipher(200, JSON, body)
    skimmed = decipher(200, JSON, body, skimmed=True)
    assert skimmed.shape is full.shape is shape
    assert (skimmed.numbers, skimmed.has_next_link) == (full.numbers, full.has_next_link)
    assert skimmed.rows == [{"id": row["id"]} for row in full.rows]
    assert read_rows(skimmed.body, skimmed.shape) == full.rows


@pytest.mark.parametrize(
    "name", ["error_401.json", "error_422.json", "error_429.json", "error_in_200.json"]
)
def test_error_bodies_are_left_to_the_full_parse(name: str) -> None:
    """A failure in the body is never a success page, so its message and fields survive."""
    assert skim(fixture_bytes(name)) is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"status":"OK","data":[{"id":17}]}',  # a numeric id
        b'{"status":"OK","data":[{"name":"no id"}]}',
        b'{"status":"OK","data":[["not", "an", "object"]]}',
        b'{"status":"OK","data":{"current_page":1}}',  # a paginator without rows
        b'{"status":"OK","data":null}',
        b'{"status":"OK","data":[],"meta":[]}',
        b'{"status":"OK","data":[],"meta":{"total":1.5}}',
        b'{"status":"OK","data":[],"meta":{"total":true}}',
        b'{"status":"OK","data":[],"meta":{"total":18446744073709551616}}',
        b'{"status":"OK","data":[],"links":"nowhere"}',
        b'{"status":"failed","data":[]}',
        b'{"data":[]}',
        b'["status","OK"]',
        b'{"status":"OK","data":[],"note":"\xff"}',  # not UTF-8 where nothing is read
        b'{"status":"OK","data":[]',
    ],
)
def test_anything_unusual_is_left_to_the_full_parse(body: bytes) -> None:
    """Odd ids, odd numbers, odd shapes, failures and bad bytes: all read in full."""
    assert skim(body) is None
    assert outcome(200, body, skimmed=True) == outcome(200, body, skimmed=False)


@pytest.mark.parametrize(
    "body",
    [
        b'{"status":"ERR","status":"OK","data":[]}',
        b'{"status":"OK","status":"ERR","data":[]}',
        b'{"status":"OK","data":[{"id":"a","id":"b"}]}',
        b'{"status":"OK","data":[{"id":"a"}],"data":{"data":[{"id":"c"}],"current_page":1}}',
        b'{"status":"OK","data":{"data":[],"current_page":1,"current_page":2,"last_page":2}}',
        b'{"status":"OK","data":[],"meta":{"total":1},"meta":{"total":2}}',
    ],
)
def test_a_repeated_key_is_read_as_a_full_parse_reads_it(body: bytes) -> None:
    """A server that repeats a key gets the last value in both reads (as orjson does)."""
    assert outcome(200, body, skimmed=True) == outcome(200, body, skimmed=False)


def test_integers_a_full_parse_keeps_whole_are_skimmed() -> None:
    """The largest integer orjson reads as one is kept; one more is a float there, so not."""
    assert skim(b'{"status":"OK","data":[],"meta":{"total":18446744073709551615}}') is not None
    assert skim(b'{"status":"OK","data":[],"meta":{"total":-9223372036854775808}}') is not None
    assert skim(b'{"status":"OK","data":[],"meta":{"total":-9223372036854775809}}') is None


def test_a_value_only_the_full_parse_refuses_fails_typed_when_the_rows_are_read() -> None:
    """The skim skips a row's number beyond a float's range; reading the rows names it."""
    body = b'{"status":"OK","data":[{"id":"a","charges":1e999}]}'
    page = decipher(200, JSON, body, skimmed=True)
    assert page.rows == [{"id": "a"}]
    with pytest.raises(ResponseFormatError, match="not JSON where it was skimmed") as caught:
        read_rows(page.body, page.shape)
    assert caught.value.__cause__ is None
    assert "1e999" not in str(caught.value)  # the body is not quoted: no secrets to mask


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
paging_numbers = st.integers(min_value=-2, max_value=2**66) | st.from_regex(
    r"[0-9]{1,3}", fullmatch=True
)
paging = st.fixed_dictionaries(
    {}, optional=dict.fromkeys(PAGING_KEYS, paging_numbers | json_values)
)
rows = st.lists(
    st.fixed_dictionaries(
        {}, optional={"id": st.text(max_size=3) | json_values, "end_at": json_values}
    )
    | json_values,
    max_size=4,
)
paginators = st.builds(
    lambda numbers, found, link: {**numbers, **found, **link},
    paging,
    st.fixed_dictionaries({}, optional={"data": rows | json_values}),
    st.fixed_dictionaries({}, optional={"next_page_url": json_values}),
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["OK", 200, "200", "failed", 500, "422", None]) | json_values,
        "data": paginators | rows | json_values,
        "meta": paging | json_values,
        "links": st.fixed_dictionaries({}, optional={"next": json_values}) | json_values,
        "message": st.text(max_size=5),
        "code": st.integers(min_value=0, max_value=600),
    },
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=documents | json_values,
    status=st.sampled_from([200, 201, 400, 422, 429, 500]),
    junk=st.none() | st.sampled_from(RAW_JUNK),
)
@example(
    document={"status": "OK", "data": {"current_page": 1, "data": [{"id": "a"}]}},
    status=200,
    junk=b"1e999",
)
def test_a_skimmed_read_agrees_with_a_full_one(
    document: Any, status: int, junk: bytes | None
) -> None:
    """Any body, any status: the same page or the same error as a full parse.

    The one difference allowed: a value the full parse refuses where the skim reads
    nothing. Then the page's other faults may be named first, or it is accepted and
    reading its rows fails typed: a format error either way, and never retried.
    """
    body = json.dumps(document).encode()
    if junk is not None and body.startswith(b"{"):
        body = b'{"junk":' + junk + (b"," + body[1:] if body != b"{}" else b"}")
    full = outcome(status, body, skimmed=False)
    skimmed = outcome(status, body, skimmed=True)
    if skimmed == full:
        return
    assert junk is not None
    assert full[0] is ResponseFormatError
    if skimmed[0] is ResponseFormatError:  # the page's own fault, found first
        return
    page = decipher(status, JSON, body, skimmed=True)
    with pytest.raises(ResponseFormatError):
        read_rows(page.body, page.shape)

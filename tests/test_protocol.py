import email.utils
from typing import Any

import orjson
import pendulum
import pytest

from tests.conftest import fixture_bytes
from voiceapi_async import (
    APIStatusError,
    AuthenticationError,
    AuthMode,
    NotFoundError,
    PageNumbers,
    PermissionDeniedError,
    RateLimitError,
    Report,
    ResponseFormatError,
    ServerError,
    Shape,
    ValidationError,
    Window,
)
from voiceapi_async._protocol import (
    build_request,
    decipher,
    format_range,
    implausible_numbers,
    next_page,
    read_rows,
    retry_after_seconds,
)

TZ = pendulum.timezone("Asia/Kolkata")
BASE = "https://portal.example.test/api/v2/"
TOKEN = "s3cr3t-t0ken-value"
JSON = {"Content-Type": "application/json"}


def day(report: Report = Report.CALLS) -> Window:
    return Window(
        report,
        pendulum.datetime(2019, 8, 12, tz=TZ),
        pendulum.datetime(2019, 8, 12, 23, 59, 59, tz=TZ),
    )


def part_of_day() -> Window:
    return Window(
        Report.RECORDINGS,
        pendulum.datetime(2019, 8, 12, 10, tz=TZ),
        pendulum.datetime(2019, 8, 12, 15, 59, 59, tz=TZ),
    )


def test_whole_days_use_the_documented_format() -> None:
    """A whole day is `Aug 12, 2019 - Aug 12, 2019`, zero-padded, English month names."""
    assert format_range(day()) == "Aug 12, 2019 - Aug 12, 2019"
    early = Window(
        Report.CALLS,
        pendulum.datetime(2024, 3, 5, tz=TZ),
        pendulum.datetime(2024, 3, 6, 23, 59, 59, tz=TZ),
    )
    assert format_range(early) == "Mar 05, 2024 - Mar 06, 2024"


def test_sub_day_windows_use_full_datetimes() -> None:
    """A part of a day is sent with both times, to the second, never with slashes."""
    assert format_range(part_of_day()) == "2019-08-12 10:00:00 - 2019-08-12 15:59:59"
    assert "/" not in format_range(part_of_day())


def test_build_request_for_calls_with_bearer_auth() -> None:
    """The default request carries the date filter, page, Accept and a Bearer header."""
    spec = build_request(BASE, day(), 3, token=TOKEN, per_page=100, user_agent="ua/1")
    assert spec.method == "GET"
    assert spec.url == BASE + "voice/calls"
    assert dict(spec.params) == {
        "datetime[end_at]": "Aug 12, 2019 - Aug 12, 2019",
        "page": "3",
        "per_page": "100",
    }
    assert spec.headers == {
        "Accept": "application/json",
        "Authorization": f"Bearer {TOKEN}",
        "User-Agent": "ua/1",
    }


def test_build_request_for_recordings_with_access_token() -> None:
    """access_token mode puts the token in the query; the recordings filter keeps `r.`."""
    spec = build_request(
        BASE.rstrip("/"), part_of_day(), 1, token=TOKEN, auth=AuthMode.ACCESS_TOKEN
    )
    assert spec.url == BASE + "voice/recordings"
    assert ("access_token", TOKEN) in spec.params
    assert "Authorization" not in spec.headers
    assert spec.headers["Accept"] == "application/json"
    assert (
        dict(spec.params)["datetime[r.created_at]"] == "2019-08-12 10:00:00 - 2019-08-12 15:59:59"
    )


def test_encoded_url_percent_encodes_spaces_commas_and_brackets() -> None:
    """The range value is URL-encoded: spaces, the comma and the brackets."""
    url = build_request(BASE, day(), 1, token=TOKEN).encoded_url()
    assert url == (
        BASE + "voice/calls?datetime%5Bend_at%5D=Aug%2012%2C%202019%20-%20Aug%2012%2C%202019&page=1"
    )


def test_request_repr_hides_the_token() -> None:
    """The repr never shows the token, in either auth mode."""
    for auth in AuthMode:
        spec = build_request(BASE, day(), 1, token=TOKEN, auth=auth)
        assert TOKEN not in repr(spec)
    assert (
        TOKEN
        in build_request(BASE, day(), 1, token=TOKEN, auth=AuthMode.ACCESS_TOKEN).encoded_url()
    )


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"token": ""}, "token is empty"), ({"token": "t", "per_page": 0}, "per_page")],
)
def test_build_request_rejects_bad_arguments(kwargs: dict[str, Any], needle: str) -> None:
    """An empty token or a zero page size is refused with a message."""
    with pytest.raises(ValueError, match=needle):
        build_request(BASE, day(), 1, **kwargs)
    with pytest.raises(ValueError, match="page must be 1"):
        build_request(BASE, day(), 0, token="t")


def test_shape_a_is_one_page() -> None:
    """A bare list is one page holding everything, with no next page."""
    page = decipher(200, JSON, fixture_bytes("calls_shape_a.json"))
    assert page.shape is Shape.BARE_LIST
    assert len(page.rows) == 2
    assert page.numbers == PageNumbers(
        current_page=1, last_page=1, per_page=2, total=2, first_row=1, last_row=2
    )
    assert page.rows_path == "$.data"
    assert next_page(page) is None


def test_shape_b_pages_are_followed_by_number_not_by_link() -> None:
    """Shape B: page 1 of 2 says go to page 2; page 2 is the last."""
    first = decipher(200, JSON, fixture_bytes("calls_shape_b_page1.json"))
    assert first.shape is Shape.PAGINATOR
    assert first.rows_path == "$.data.data"
    assert first.numbers == PageNumbers(
        current_page=1, last_page=2, per_page=1, total=2, first_row=1, last_row=1
    )
    assert next_page(first) == 2
    second = decipher(200, JSON, fixture_bytes("calls_shape_b_page2.json"))
    assert next_page(second) is None


def test_shape_b_empty_range() -> None:
    """An empty range has no rows, null from/to and no next page."""
    page = decipher(200, JSON, fixture_bytes("calls_shape_b_empty.json"))
    assert page.rows == []
    assert page.numbers.total == 0
    assert page.numbers.first_row is None
    assert page.numbers.last_row is None
    assert next_page(page) is None


def test_shape_c_reads_meta_and_ignores_the_wrong_endpoint_links() -> None:
    """Shape C's paging comes from meta; its links (pointing at calls) are not used."""
    page = decipher(200, JSON, fixture_bytes("recordings_shape_c.json"))
    assert page.shape is Shape.RESOURCE
    assert (
        page.numbers.current_page,
        page.numbers.last_page,
        page.numbers.total,
        page.numbers.per_page,
    ) == (1, 1, 2, 15)
    assert next_page(page) is None


@pytest.mark.parametrize(
    "fixture",
    [
        "calls_shape_a.json",
        "calls_shape_b_page1.json",
        "calls_shape_b_empty.json",
        "recordings_shape_c.json",
    ],
)
def test_rows_read_again_from_the_body_are_the_rows_deciphered(fixture: str) -> None:
    """Every shape: reading the kept body again gives exactly the rows decipher found."""
    page = decipher(200, JSON, fixture_bytes(fixture))
    assert page.body == fixture_bytes(fixture)
    assert read_rows(page.body, page.shape) == page.rows
    assert "body" not in repr(page)


def paginator(**meta: Any) -> bytes:
    data = {
        "current_page": 1,
        "data": [{"id": "a"}],
        "from": 1,
        "last_page": 3,
        "next_page_url": "https://x/?page=2",
        "per_page": 1,
        "to": 1,
        "total": 3,
    }
    data.update(meta)
    return orjson.dumps({"status": "OK", "data": data})


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({}, 2),
        ({"current_page": 3}, None),
        ({"next_page_url": None}, None),
        ({"data": []}, None),
        ({"from": None}, None),
        ({"to": None}, None),
        ({"per_page": "1", "total": "3"}, 2),
    ],
)
def test_paging_stop_rules(meta: dict[str, Any], expected: int | None) -> None:
    """Stop on the last page, a null next link, an empty page, or null from/to."""
    assert next_page(decipher(200, JSON, paginator(**meta))) == expected


@pytest.mark.parametrize("status", ["OK", 200, "200"])
def test_success_statuses(status: Any) -> None:
    """`status` may be "OK", 200 or "200" on success."""
    body = orjson.dumps({"status": status, "data": []})
    assert decipher(200, JSON, body).rows == []


def test_a_missing_paging_number_is_a_format_error() -> None:
    """A paginator without last_page names the missing key."""
    with pytest.raises(ResponseFormatError, match=r"\$\.data\.last_page"):
        decipher(200, JSON, paginator(last_page=None))


@pytest.mark.parametrize(
    "body",
    [
        {"status": "OK", "data": {"current_page": 1}},
        {"status": "OK", "data": "nope"},
        {"status": "OK"},
    ],
)
def test_unknown_shapes_are_format_errors(body: Any) -> None:
    """A body that is none of the three shapes raises ResponseFormatError."""
    with pytest.raises(ResponseFormatError, match="three shapes"):
        decipher(200, JSON, orjson.dumps(body))


def test_rows_that_are_not_a_list_and_bad_meta_are_format_errors() -> None:
    """data.data must be a list and meta an object."""
    with pytest.raises(ResponseFormatError, match=r"\$\.data\.data is not a list"):
        decipher(200, JSON, orjson.dumps({"status": "OK", "data": {"data": {}}}))
    with pytest.raises(ResponseFormatError, match=r"\$\.meta is list, not an object"):
        decipher(200, JSON, orjson.dumps({"status": "OK", "data": [], "meta": []}))


@pytest.mark.parametrize(
    "document",
    [
        {"status": "OK", "data": [{"id": "a"}], "meta": None},
        {"status": "OK", "data": [{"id": "a"}], "links": {"next": "https://x/?page=2"}},
    ],
)
def test_a_paginated_list_without_its_numbers_is_not_read_as_one_page(
    document: dict[str, Any],
) -> None:
    """A null meta, or a next link without meta: a format error, not a silent first page."""
    with pytest.raises(ResponseFormatError, match=r"paging numbers"):
        decipher(200, JSON, orjson.dumps(document))


def test_a_bare_list_with_a_null_next_link_is_still_one_page() -> None:
    """Links without a next page do not make a bare list paginated."""
    body = orjson.dumps({"status": "OK", "data": [{"id": "a"}], "links": {"next": None}})
    assert decipher(200, JSON, body).shape is Shape.BARE_LIST


def test_redirect_means_not_authenticated() -> None:
    """A 3xx (to the login page) is an AuthenticationError, never followed."""
    with pytest.raises(AuthenticationError, match="login page") as caught:
        decipher(302, {"Location": "/login"}, b"")
    assert caught.value.status == 302


@pytest.mark.parametrize("status", [200, 401])
def test_html_login_page_means_not_authenticated(status: int) -> None:
    """An HTML body on 200 or 401 is the login page: AuthenticationError."""
    html = fixture_bytes("login_redirect.html")
    with pytest.raises(AuthenticationError, match="HTML page"):
        decipher(status, {"Content-Type": "text/html; charset=UTF-8"}, html)
    with pytest.raises(AuthenticationError):
        decipher(status, {}, html)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (502, ServerError),
        (503, ServerError),
        (429, RateLimitError),
        (404, NotFoundError),
        (403, PermissionDeniedError),
        (422, ValidationError),
        (400, APIStatusError),
    ],
)
def test_html_error_pages_from_proxies_map_by_status(
    status: int, error: type[APIStatusError]
) -> None:
    """An HTML page with a 4xx (but 401) or 5xx is that failure, not a login problem."""
    with pytest.raises(error, match="HTML error page"):
        decipher(status, {"content-type": "text/html"}, b"<html><h1>Bad Gateway</h1></html>")
    with pytest.raises(error) as caught:
        decipher(status, {}, b"  <html><h1>Bad Gateway</h1></html>")
    assert not isinstance(caught.value, AuthenticationError)
    assert caught.value.retryable == (status >= 500 or status == 429)


def test_error_401_fixture() -> None:
    """The current 401 body raises AuthenticationError with its code and message."""
    with pytest.raises(AuthenticationError, match="Unauthenticated") as caught:
        decipher(
            401,
            JSON,
            fixture_bytes("error_401.json"),
            url=BASE + f"voice/calls?access_token={TOKEN}",
        )
    error = caught.value
    assert (error.status, error.code, error.message) == (401, 401, "Unauthenticated.")
    assert TOKEN not in str(error)
    assert TOKEN not in error.url
    assert "access_token=[REDACTED]" in error.url


def test_legacy_numeric_status_fixture() -> None:
    """The pre-2023 `{"status": 401}` body is an AuthenticationError too, even on HTTP 200."""
    for http in (401, 200):
        with pytest.raises(AuthenticationError) as caught:
            decipher(http, JSON, fixture_bytes("error_401_legacy.json"))
        assert caught.value.code == 401


def test_error_in_200_fixture_maps_by_code() -> None:
    """`status: "ERROR"` inside HTTP 200 maps by its code: 403 is PermissionDeniedError."""
    with pytest.raises(PermissionDeniedError, match="IP address not allowed") as caught:
        decipher(200, JSON, fixture_bytes("error_in_200.json"))
    assert (caught.value.status, caught.value.code) == (200, 403)
    assert "HTTP 200, code 403" in str(caught.value)


def test_error_422_fixture_carries_field_errors() -> None:
    """A 422 raises ValidationError with the server's field errors."""
    with pytest.raises(ValidationError) as caught:
        decipher(422, JSON, fixture_bytes("error_422.json"))
    assert caught.value.errors == {
        "datetime.end_at": ["The datetime.end_at is not a valid date range."]
    }
    assert "not a valid date range" in str(caught.value)


def test_error_429_fixture_with_retry_after_seconds() -> None:
    """A 429 carries Retry-After and the rate-limit headers."""
    headers = {"Retry-After": "17", "X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0"}
    with pytest.raises(RateLimitError) as caught:
        decipher(429, headers, fixture_bytes("error_429.json"))
    error = caught.value
    assert (error.retry_after, error.limit, error.remaining) == (17.0, 1000, 0)
    assert error.retryable
    assert "retry after 17s" in str(error)


def test_retry_after_as_http_date() -> None:
    """Retry-After may be an HTTP date: it is read relative to `now`."""
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 42, usegmt=True)
    with pytest.raises(RateLimitError) as caught:
        decipher(429, {"retry-after": header}, fixture_bytes("error_429.json"), now=now)
    assert caught.value.retry_after == 42.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("3.5", 3.5),
        (" 17 ", 17.0),
        ("0", 0.0),
        ("1000000000000", 1e12),
        ("-4", None),
        ("-0", None),
        ("+5", None),
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("-inf", None),
        ("1e3", None),
        ("1_000", None),
        ("9" * 400, None),
        ("", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 253402300799.0 - 1_700_000_000.0),
        ("Mon, 32 Oct 2015 07:28:00 GMT", None),
        ("Wed, 21 Oct 99999 07:28:00 GMT", None),
    ],
)
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    """Unusable Retry-After values (negative, nan, inf, not digits) give None, past dates 0."""
    assert retry_after_seconds(value, now=1_700_000_000.0) == expected


def test_debug_mode_500_fixture() -> None:
    """A debug body without `status` is a ServerError naming the exception, not the trace."""
    with pytest.raises(ServerError, match="Undefined offset: 1") as caught:
        decipher(500, JSON, fixture_bytes("error_500_debug.json"))
    assert caught.value.status == 500
    assert caught.value.retryable
    assert "ErrorException" in str(caught.value)


def test_debug_body_with_http_200_is_still_a_server_error() -> None:
    """A debug-mode body is a server failure whatever the HTTP status says."""
    with pytest.raises(ServerError):
        decipher(200, JSON, fixture_bytes("error_500_debug.json"))


def test_status_error_without_code_on_200() -> None:
    """`status: "ERROR"` with no code is a non-retryable APIStatusError."""
    with pytest.raises(APIStatusError, match="broken") as caught:
        decipher(200, JSON, orjson.dumps({"status": "ERROR", "message": "broken"}))
    assert type(caught.value) is APIStatusError
    assert not caught.value.retryable


def test_no_status_key_on_200_is_a_format_error() -> None:
    """A body with data but no `status` is not a success."""
    with pytest.raises(ResponseFormatError, match="no 'status'"):
        decipher(200, JSON, orjson.dumps({"data": []}))


@pytest.mark.parametrize(
    ("http", "error"),
    [(403, PermissionDeniedError), (404, NotFoundError), (418, APIStatusError), (503, ServerError)],
)
def test_json_error_statuses_map_to_the_tree(http: int, error: type[Exception]) -> None:
    """HTTP error statuses with a JSON error body map to their error types."""
    body = orjson.dumps({"status": "ERROR", "code": http, "message": "nope"})
    with pytest.raises(error, match="nope"):
        decipher(http, JSON, body)


def test_non_json_error_bodies_map_by_http_status() -> None:
    """Plain-text 502s and empty 429s still raise their status's error."""
    with pytest.raises(ServerError, match="failed with 502"):
        decipher(502, {}, b"Bad Gateway")
    with pytest.raises(RateLimitError):
        decipher(429, {"Retry-After": "1"}, b"")
    with pytest.raises(ServerError):
        decipher(500, JSON, b"[1, 2]")


def test_truncated_body_is_a_retryable_format_error() -> None:
    """A body cut mid-way is ResponseFormatError(truncated=True), worth retrying."""
    body = fixture_bytes("calls_shape_b_page1.json")
    for cut in (body[:-5], body[: len(body) // 2], b""):
        with pytest.raises(ResponseFormatError, match="truncated") as caught:
            decipher(200, JSON, cut)
        assert caught.value.truncated
        assert caught.value.retryable


def test_non_json_body_is_a_format_error_that_is_not_retried() -> None:
    """Garbage that is not a cut-off JSON document is not retryable."""
    with pytest.raises(ResponseFormatError, match="not JSON") as caught:
        decipher(200, JSON, b"hello world, this is not json")
    assert not caught.value.truncated
    assert not caught.value.retryable
    with pytest.raises(ResponseFormatError, match="not an object"):
        decipher(200, JSON, b"[1, 2, 3]")


def test_decipher_masks_the_token_echoed_in_a_body() -> None:
    """A server that echoes the token in its message never leaks it into the error."""
    body = orjson.dumps({"status": "ERROR", "code": 401, "message": f"token {TOKEN} revoked"})
    with pytest.raises(AuthenticationError) as caught:
        decipher(401, JSON, body, secrets=[TOKEN])
    for text in (str(caught.value), caught.value.body, caught.value.message):
        assert TOKEN not in text
    with pytest.raises(ResponseFormatError) as format_error:
        decipher(200, JSON, f"not json {TOKEN}".encode(), secrets=[TOKEN])
    assert TOKEN not in str(format_error.value)


@pytest.mark.parametrize(
    ("meta", "asked", "reason"),
    [
        ({}, 1, None),
        ({"current_page": 3, "from": 3, "to": 3, "next_page_url": None}, 3, None),
        ({"last_page": 1000000000}, 1, "last_page 1000000000 does not follow from total 3"),
        ({"total": -1, "last_page": 1}, 1, "cannot be true together"),
        ({"per_page": 0}, 1, "cannot be true together"),
        ({}, 2, "page 1 came back when page 2 was asked for"),
        ({"data": [{"id": "a"}, {"id": "b"}]}, 1, "2 rows on a page of 1"),
        ({"from": 2, "to": 2}, 1, "rows 2..2 announced for the 1 rows of page 1"),
        ({"data": [], "from": None, "to": None}, 1, None),
        ({"data": [], "from": None, "to": None, "total": 0, "last_page": 0}, 1, None),
        ({"data": [], "from": None, "to": None, "total": 0, "last_page": 2}, 1, "last_page 2"),
        ({"data": [], "from": None, "to": None, "total": 3, "last_page": 0}, 1, "last_page 0"),
    ],
)
def test_paging_numbers_that_cannot_be_true(
    meta: dict[str, Any], asked: int, reason: str | None
) -> None:
    """last_page follows from total and per_page; the page asked for comes back, numbered."""
    page = decipher(200, JSON, paginator(**meta))
    found = implausible_numbers(page, asked)
    assert found == reason if reason is None else reason in (found or "")


def test_a_bare_list_has_no_paging_numbers_to_doubt() -> None:
    """Shape A is one page: nothing to check."""
    page = decipher(200, JSON, fixture_bytes("calls_shape_a.json"))
    assert implausible_numbers(page, 1) is None


@pytest.mark.parametrize("http", [500, 503])
@pytest.mark.parametrize(
    "document",
    [{"status": "ERROR", "code": 200, "message": "x"}, {"status": "OK", "code": 200}],
)
def test_a_success_code_in_a_failed_answer_does_not_hide_the_http_status(
    http: int, document: dict[str, Any]
) -> None:
    """HTTP 5xx with "code": 200 in the body is a ServerError, and so retried."""
    with pytest.raises(ServerError) as caught:
        decipher(http, JSON, orjson.dumps(document))
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (http, 200, True)


@pytest.mark.parametrize("text", ["²", "١٢", "9" * 5000, "1" * 19])
def test_digit_strings_int_cannot_read_are_typed_errors(text: str) -> None:
    """A status or paging number like '²' or 5,000 nines is a typed error, never a raw one."""
    with pytest.raises(APIStatusError, match="reported status"):
        decipher(200, JSON, orjson.dumps({"status": text}))
    paginator = {"current_page": 1, "last_page": text, "per_page": 1, "total": 1, "data": []}
    with pytest.raises(ResponseFormatError, match="last_page"):
        decipher(200, JSON, orjson.dumps({"status": "OK", "data": paginator}))

"""Edges of decipher that mutation testing found untested: each test pins one rule."""

import email.utils
import time
from typing import Any

import orjson
import pendulum
import pytest

from voiceapi_async import (
    APIStatusError,
    AuthenticationError,
    AuthMode,
    PermissionDeniedError,
    Report,
    ResponseFormatError,
    ServerError,
    ValidationError,
    Window,
)
from voiceapi_async._protocol import (
    RequestSpec,
    build_request,
    decipher,
    format_range,
    retry_after_seconds,
)

JSON = {"Content-Type": "application/json"}
TOKEN = "s3cr3t-t0ken-value"
BASE = "https://portal.example.test/api/v2/"
DAY = Window(
    Report.CALLS,
    pendulum.datetime(2019, 8, 12, tz="Asia/Kolkata"),
    pendulum.datetime(2019, 8, 12, 23, 59, 59, tz="Asia/Kolkata"),
)


def test_http_400_is_a_plain_status_error_naming_the_status() -> None:
    """A 400 is neither retried nor mistaken for a known subclass."""
    with pytest.raises(APIStatusError, match="failed with 400") as caught:
        decipher(400, {}, b"Bad Request")
    assert type(caught.value) is APIStatusError
    assert caught.value.status == 400
    assert not caught.value.retryable


@pytest.mark.parametrize("status", ["403", 403])
def test_a_numeric_status_in_the_body_picks_the_error(status: Any) -> None:
    """`"status": "403"` (a string) or 403 in a 200 body is a PermissionDeniedError, code 403."""
    body = orjson.dumps({"status": status, "message": "IP not allowed"})
    with pytest.raises(PermissionDeniedError, match="IP not allowed") as caught:
        decipher(200, JSON, body)
    assert caught.value.code == 403
    assert caught.value.status == 200


def test_an_html_content_type_is_the_login_page_whatever_the_body_starts_with() -> None:
    """The Content-Type alone marks HTML: a body not starting with `<` is still the login page."""
    with pytest.raises(AuthenticationError, match="HTML page"):
        decipher(200, {"Content-Type": "text/html"}, b"  Please log in")
    with pytest.raises(AuthenticationError, match="HTML page"):
        decipher(200, {"CONTENT-TYPE": "text/html"}, b'{"status": "OK"}')
    with pytest.raises(ResponseFormatError, match="not JSON"):
        decipher(200, {"Content-Type": "text/plain"}, b"Please log in")


def test_a_body_that_is_not_utf8_fails_typed_and_readable() -> None:
    """Invalid UTF-8 is a format error on 200 and a server error on 5xx, readable either way."""
    with pytest.raises(ResponseFormatError, match="not JSON") as caught:
        decipher(200, JSON, b"\xff\xfe\x00garbage")
    assert "\ufffd" in caught.value.body
    with pytest.raises(ServerError) as server:
        decipher(500, {}, b"\xc3(" + TOKEN.encode("latin-1"), secrets=[TOKEN])
    assert TOKEN not in str(server.value)


def test_a_json_error_body_keeps_no_chained_decode_error() -> None:
    """The decode error (which holds the whole body) is not chained to the typed error."""
    for status in (200, 502):
        with pytest.raises((ResponseFormatError, ServerError)) as caught:
            decipher(status, {}, f"not json {TOKEN}".encode(), secrets=[TOKEN])
        assert caught.value.__context__ is None
        assert caught.value.__cause__ is None


def test_encoded_url_encodes_slashes_in_keys_and_values() -> None:
    """Every reserved character of a parameter, `/` included, is percent-encoded."""
    spec = RequestSpec(method="GET", url="https://h/x", params=(("a/b", "c/d"),), headers={})
    assert spec.encoded_url() == "https://h/x?a%2Fb=c%2Fd"
    token_url = build_request(BASE, DAY, 1, token="to/ken", auth=AuthMode.ACCESS_TOKEN)
    assert "access_token=to%2Fken" in token_url.encoded_url()


def test_request_repr_masks_token_parameters_and_keeps_the_others() -> None:
    """access_token and api_token are masked; the date range and page stay readable."""
    spec = RequestSpec(
        method="GET",
        url="https://h/x",
        params=(("api_token", TOKEN), ("access_token", TOKEN), ("page", "2")),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    text = repr(spec)
    assert TOKEN not in text
    assert "('page', '2')" in text
    assert "('api_token', '[REDACTED]')" in text


def test_a_window_from_midnight_to_noon_uses_datetimes() -> None:
    """Only midnight to 23:59:59 is a whole day; a range that starts at midnight is not."""
    window = Window(Report.CALLS, DAY.start, DAY.start.add(hours=12))
    assert format_range(window) == "2019-08-12 00:00:00 - 2019-08-12 12:00:00"


def test_a_page_size_of_one_is_accepted() -> None:
    """per_page=1 is valid and sent."""
    assert ("per_page", "1") in build_request(BASE, DAY, 1, token=TOKEN, per_page=1).params


def test_errors_without_a_url_name_none() -> None:
    """Errors deciphered without a URL point nowhere."""
    with pytest.raises(APIStatusError) as caught:
        decipher(400, {}, b"")
    assert " for " not in str(caught.value)
    assert caught.value.url == ""


def test_a_300_is_a_redirect_too() -> None:
    """Every 3xx, 300 included, means the login redirect."""
    with pytest.raises(AuthenticationError, match="redirected"):
        decipher(300, {}, b"")


def test_an_html_body_after_leading_whitespace_is_recognised() -> None:
    """Whitespace before `<html>` does not hide the login page."""
    with pytest.raises(AuthenticationError, match="HTML page"):
        decipher(200, {}, b"\n   <html><body>Login</body></html>")


@pytest.mark.parametrize(
    ("body", "truncated"),
    [(b"[1, 2,", True), (b'{"a": 1.5e', True), (b'{"a": ', True), (b"[1 2]", False)],
)
def test_truncation_is_told_from_garbage_by_where_the_parser_stopped(
    body: bytes, truncated: bool
) -> None:
    """A body that ends where the parser wanted more is truncated; garbage before the end is not."""
    with pytest.raises(ResponseFormatError) as caught:
        decipher(200, JSON, body)
    assert caught.value.truncated is truncated


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"null"])
def test_a_json_error_status_with_a_body_that_is_no_object_is_that_status(body: bytes) -> None:
    """A 400 whose body is JSON but not an object is an HTTP 400, not a format error."""
    with pytest.raises(APIStatusError, match="failed with 400") as caught:
        decipher(400, JSON, body)
    assert type(caught.value) is APIStatusError
    with pytest.raises(ResponseFormatError, match="a JSON list, not an object") as format_error:
        decipher(200, JSON, b"[1, 2]")
    assert not format_error.value.retryable
    assert format_error.value.url == ""


def test_a_400_with_a_success_body_is_still_a_failure() -> None:
    """HTTP 400 wins over a body that says OK."""
    with pytest.raises(APIStatusError, match="failed with 400"):
        decipher(400, JSON, orjson.dumps({"status": "OK", "data": []}))
    with pytest.raises(APIStatusError, match="bad") as caught:
        decipher(400, JSON, orjson.dumps({"message": "bad"}))
    assert type(caught.value) is APIStatusError


def test_format_errors_are_not_retried_and_name_the_url() -> None:
    """A body of the wrong shape is final and says where it came from (redacted)."""
    url = f"https://h/x?access_token={TOKEN}"
    with pytest.raises(ResponseFormatError) as caught:
        decipher(200, JSON, orjson.dumps({"status": "OK", "data": "x"}), url=url)
    assert not caught.value.retryable
    assert caught.value.url == "https://h/x?access_token=[REDACTED]"


@pytest.mark.parametrize(("status", "error"), [(500, ServerError), (403, PermissionDeniedError)])
def test_html_error_pages_at_the_edges_map_by_status(status: int, error: type[Exception]) -> None:
    """An HTML 500 is a server failure and an HTML 403 a permission failure, not the login page."""
    with pytest.raises(error, match="HTML error page"):
        decipher(status, {"Content-Type": "text/html"}, b"<html>oops</html>")


def test_a_debug_body_keeps_its_code_and_an_empty_exception_adds_nothing() -> None:
    """A debug body's code is kept; an empty exception name leaves the default message."""
    body = orjson.dumps({"message": "boom", "exception": "QueryException", "code": 503})
    with pytest.raises(ServerError, match=r"^boom \(QueryException\)") as caught:
        decipher(200, JSON, body)
    assert caught.value.code == 503
    with pytest.raises(ServerError, match=r"^boom \(HTTP 500\)"):
        decipher(500, JSON, orjson.dumps({"message": "boom", "exception": ""}))
    with pytest.raises(ServerError, match="failed with 500"):
        decipher(200, JSON, orjson.dumps({"exception": None}))


def test_known_statuses_get_their_default_message() -> None:
    """A bare 401 says what is wrong with the token."""
    with pytest.raises(AuthenticationError, match="the token is missing or wrong"):
        decipher(401, {}, b"")


def test_an_empty_bare_list_has_no_rows_and_no_next_page() -> None:
    """Shape A with no records has null from/to and no next link."""
    page = decipher(200, JSON, orjson.dumps({"status": "OK", "data": []}))
    assert page.numbers.first_row is None
    assert page.numbers.last_row is None
    assert page.has_next_link is False


META = {"current_page": 1, "last_page": 2, "per_page": 1, "total": 2, "from": 1, "to": 1}


@pytest.mark.parametrize(
    ("links", "has_next"),
    [
        ({"next": "https://h/?page=2"}, True),
        ({"next": None}, False),
        ("next", False),
        (None, False),
    ],
)
def test_shape_c_reads_its_next_link_from_links(links: Any, has_next: bool) -> None:
    """Only a non-null links.next counts as a next link; rows are at $.data."""
    body = {"status": "OK", "data": [{"id": "1"}], "meta": META, "links": links}
    page = decipher(200, JSON, orjson.dumps(body))
    assert page.has_next_link is has_next
    assert page.rows_path == "$.data"


def test_a_bad_meta_number_is_named_by_its_path() -> None:
    """A paging number that is not a whole number is named as $.meta.<key>."""
    body = {"status": "OK", "data": [], "meta": {**META, "total": "many"}, "links": {}}
    with pytest.raises(ResponseFormatError, match=r"\$\.meta\.total is 'many'"):
        decipher(200, JSON, orjson.dumps(body))


def test_a_field_error_that_is_one_message_is_kept_whole() -> None:
    """`errors: {"field": "message"}` is one message, not one per character."""
    body = {"status": "ERROR", "code": 422, "message": "invalid", "errors": {"date": "bad date"}}
    with pytest.raises(ValidationError) as caught:
        decipher(422, JSON, orjson.dumps(body))
    assert caught.value.errors == {"date": ["bad date"]}


def test_retry_after_dates_are_read_without_a_clock_and_in_utc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An HTTP date is relative to now (the clock when not given) and a zoneless one is GMT."""
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:27:00 GMT").timestamp()
        assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00", now=now) == 60.0
    finally:
        monkeypatch.undo()
        time.tzset()

"""Edges of decipher that mutation testing found untested: each test pins one rule."""

from typing import Any

import orjson
import pytest

from voiceapi_async import (
    APIStatusError,
    AuthenticationError,
    PermissionDeniedError,
    ResponseFormatError,
    ServerError,
)
from voiceapi_async._protocol import decipher

JSON = {"Content-Type": "application/json"}
TOKEN = "s3cr3t-t0ken-value"


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

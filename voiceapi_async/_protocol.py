"""The sans-I/O core: build requests and decipher responses of the Voice API.

Pure functions of their arguments, in the style of gidgethub's
``decipher_response``: no sockets, no awaits, no clock except where a caller may
pass one. The rules come from the wire contract (``docs/wire-contract.md``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import enum
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import attrs
import orjson

from voiceapi_async._errors import (
    APIStatusError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    ValidationError,
)
from voiceapi_async._models import PageNumbers, Report, Shape, Window
from voiceapi_async._redact import REDACTED, redact_headers
from voiceapi_async._skim import OK_STATUSES, skim

REPORT_PATHS: Mapping[Report, str] = {
    Report.CALLS: "voice/calls",
    Report.RECORDINGS: "voice/recordings",
}
"""Each report's path, relative to the base URL (``{domain}/api/v2/``)."""

DATE_FILTERS: Mapping[Report, str] = {
    Report.CALLS: "datetime[end_at]",
    Report.RECORDINGS: "datetime[r.created_at]",
}
"""Each report's date-range query parameter (``r.`` is literal: sent as is)."""

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DIGITS_RE = re.compile(r"[0-9]{1,18}", re.ASCII)
_SECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


class AuthMode(enum.StrEnum):
    """How the token travels with each request."""

    BEARER = "bearer"
    """``Authorization: Bearer <token>`` (the default and the preferred form)."""
    ACCESS_TOKEN = "access_token"
    """``access_token=<token>`` in the query string."""


@attrs.frozen(slots=True, kw_only=True)
class RequestSpec:
    """Everything needed to send one request; its repr never shows the token."""

    method: str
    url: str
    params: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]

    def encoded_url(self) -> str:
        """Return the URL with the query string, every reserved character percent-encoded."""
        if not self.params:
            return self.url
        query = "&".join(
            f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in self.params
        )
        return f"{self.url}?{query}"

    def __repr__(self) -> str:
        params = tuple(
            (key, REDACTED if key in ("access_token", "api_token") else value)
            for key, value in self.params
        )
        return (
            f"RequestSpec(method={self.method!r}, url={self.url!r}, params={params!r}, "
            f"headers={redact_headers(self.headers)!r})"
        )


def format_range(window: Window) -> str:
    """Format a window as the server's inclusive date-range value.

    Whole days use the documented ``Aug 12, 2019 - Aug 12, 2019``; anything else
    uses full wall-clock datetimes, ``2019-08-12 10:00:00 - 2019-08-12 15:59:59``.
    Never slashes (the server reads those day-first).
    """
    start, end = window.start, window.end
    if (start.hour, start.minute, start.second) == (0, 0, 0) and (
        end.hour,
        end.minute,
        end.second,
    ) == (23, 59, 59):
        return f"{_day(start)} - {_day(end)}"
    return f"{_moment(start)} - {_moment(end)}"


def _day(value: dt.datetime) -> str:
    return f"{_MONTHS[value.month - 1]} {value.day:02d}, {value.year:04d}"


def _moment(value: dt.datetime) -> str:
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )


def build_request(
    base_url: str,
    window: Window,
    page: int,
    *,
    token: str,
    auth: AuthMode = AuthMode.BEARER,
    per_page: int | None = None,
    user_agent: str | None = None,
) -> RequestSpec:
    """Build the request for one page of one window.

    Args:
        base_url: the API root, like ``https://portal.example.com/api/v2/``.
        window: the report and date range to ask for.
        page: the 1-based page number.
        token: the API token.
        auth: send the token as a Bearer header (default) or an ``access_token`` parameter.
        per_page: the page size to ask for; the server may apply another.
        user_agent: a ``User-Agent`` header value.

    Raises:
        ValueError: an empty token, a page below 1, or a page size below 1.
    """
    if not token:
        raise ValueError("token is empty: set it to the account's API token")
    if page < 1:
        raise ValueError(f"page must be 1 or more, not {page}")
    params: list[tuple[str, str]] = [
        (DATE_FILTERS[window.report], format_range(window)),
        ("page", str(page)),
    ]
    if per_page is not None:
        if per_page < 1:
            raise ValueError(f"per_page must be 1 or more, not {per_page}")
        params.append(("per_page", str(per_page)))
    headers = {"Accept": "application/json"}
    if auth is AuthMode.BEARER:
        headers["Authorization"] = f"Bearer {token}"
    else:
        params.append(("access_token", token))
    if user_agent:
        headers["User-Agent"] = user_agent
    url = base_url if base_url.endswith("/") else base_url + "/"
    return RequestSpec(
        method="GET", url=url + REPORT_PATHS[window.report], params=tuple(params), headers=headers
    )


@attrs.frozen(slots=True, kw_only=True)
class PageData:
    """A successful response, deciphered but not yet structured into records."""

    shape: Shape
    rows: Sequence[Any]
    """The rows as the server sent them; skimmed (see :func:`decipher`), ``{"id": ...}`` each."""
    rows_path: str
    """Where the rows are in the body, for error paths: ``$.data`` or ``$.data.data``."""
    numbers: PageNumbers
    has_next_link: bool
    body: bytes = attrs.field(repr=False)
    """The raw body the rows were read from: see :func:`read_rows`."""


def read_rows(body: bytes, shape: Shape) -> list[Any]:
    """Read the rows of a body that :func:`decipher` accepted as ``shape`` again.

    A page waiting to be handed on keeps its compact body rather than its parsed rows:
    parsing again when the rows are taken costs less than keeping them parsed.

    Raises:
        ResponseFormatError: the body does not parse in full; a skimmed read skips
            values it has no field for, such as a number beyond a float's range.
    """
    try:
        data = orjson.loads(body)["data"]
    except orjson.JSONDecodeError as exc:
        # Neither the body nor the decoder's message (which quotes it) is passed on:
        # no secrets are at hand here to mask in it.
        raise ResponseFormatError(
            f"response body is not JSON where it was skimmed (at byte {exc.pos}); "
            "it was read as a success page at first"
        ) from None
    rows: list[Any] = data["data"] if shape is Shape.PAGINATOR else data
    return rows


def decipher(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    url: str = "",
    now: float | None = None,
    secrets: Sequence[str] = (),
    skimmed: bool = False,
) -> PageData:
    """Read one response: return its page data or raise the matching error.

    Args:
        status: the HTTP status code.
        headers: the response headers (any case).
        body: the raw response body.
        url: the request URL, for error messages (redacted there).
        now: the current time as a Unix timestamp, to read a ``Retry-After`` date.
        secrets: values to mask in error messages wherever they appear (the token).
        skimmed: read only each row's id from a success page, in about a third of the
            time (:mod:`voiceapi_async._skim`); :func:`read_rows` reads the rows whole
            later. Any other body is read in full, with the same result or error.

    Raises:
        AuthenticationError: a redirect, the HTML login page, or a 401.
        APIStatusError: (and its subclasses) any failure status, in HTTP or in the body.
        ResponseFormatError: the body is not JSON or not one of the three shapes.
    """
    reply = _Reply(status, headers, body, url=url, now=now, secrets=tuple(secrets))
    return reply.decipher(skimmed=skimmed)


_DEFAULT_MESSAGES = {
    401: "authentication failed: the token is missing or wrong",
    403: "permission denied: this token may not do this (for example from this IP address)",
    404: "not found: check the base URL and the API version (v2)",
    422: "the server rejected the request's parameters",
    429: "rate limited by the server",
}
_STATUS_ERRORS: Mapping[int, type[APIStatusError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
}


class _Reply:
    """One response being deciphered; knows how to raise errors about itself."""

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        url: str,
        now: float | None,
        secrets: tuple[str, ...],
    ) -> None:
        self.status = status
        self.headers = {key.lower(): value for key, value in headers.items()}
        self.body = body
        self.url = url
        self.now = now
        self.secrets = secrets

    def decipher(self, *, skimmed: bool) -> PageData:
        status, body = self.status, self.body
        if 300 <= status < 400:
            raise AuthenticationError(
                "redirected to the login page: the token is missing or wrong "
                "(or the request lacked Accept: application/json)",
                **self._common(),
            )
        if "html" in self.headers.get("content-type", "") or body.lstrip()[:1] == b"<":
            self._raise_for_html()
        if skimmed and status < 300 and (skim_document := skim(body)) is not None:
            return self._page_data(skim_document)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            # Handled outside this block: the decode error holds the whole body.
            not_json: tuple[int, str] | None = (exc.pos, exc.msg)
        else:
            not_json = None
        if not_json is not None:
            if status >= 400:
                self._raise_for_status(status)
            position, why = not_json
            truncated = not body.strip() or position >= len(body.rstrip()) - 1
            reason = "ends early (truncated)" if truncated else f"is not JSON ({why})"
            raise self._format_error(f"response body {reason}", truncated=truncated)
        if not isinstance(document, dict):
            if status >= 400:
                self._raise_for_status(status)
            kind = type(document).__name__
            raise self._format_error(f"response body is a JSON {kind}, not an object")
        body_status = document.get("status")
        if status >= 400 or type(body_status) not in (str, int) or body_status not in OK_STATUSES:
            self._raise_for_body(document)
        return self._page_data(document)

    def _common(self, code: int | None = None) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": code,
            "url": self.url,
            "body": self.body,
            "secrets": self.secrets,
        }

    def _format_error(self, message: str, *, truncated: bool = False) -> ResponseFormatError:
        return ResponseFormatError(
            message, url=self.url, body=self.body, truncated=truncated, secrets=self.secrets
        )

    def _raise_for_html(self) -> None:
        if self.status >= 400 and self.status != 401:  # a proxy's or server's error page
            self._raise_for_status(self.status, "the server answered with an HTML error page")
        raise AuthenticationError(
            "got an HTML page (the login page) instead of JSON: the token is missing or wrong",
            **self._common(),
        )

    def _raise_for_body(self, document: dict[str, Any]) -> None:
        body_status = document.get("status")
        message = document.get("message")
        message = message if isinstance(message, str) and message else None
        code = document.get("code")
        code = code if type(code) is int else None
        if type(body_status) is int:
            code = body_status
        elif (whole := _whole_number(body_status)) is not None:
            code = whole
        if body_status is None and "exception" in document:
            exception = document.get("exception")
            message = f"{message or 'server error'} ({exception})" if exception else message
            self._raise_for_status(max(self.status, 500), message, code=code)
        if code is None and self.status < 400:
            if body_status is None:
                raise self._format_error(
                    "response has no 'status' key and is not one of the three shapes"
                )
            raise APIStatusError(
                message or f"the API reported status {body_status!r}", **self._common()
            )
        effective = code if code is not None and code >= 400 else self.status
        if effective < 400:  # "failed" with a success code in the body and in HTTP
            raise APIStatusError(
                message or f"the API reported status {body_status!r} with code {code}",
                **self._common(code),
            )
        self._raise_for_status(effective, message, code=code, errors=document.get("errors"))

    def _raise_for_status(
        self,
        effective: int,
        message: str | None = None,
        *,
        code: int | None = None,
        errors: Any = None,
    ) -> None:
        text = message or _DEFAULT_MESSAGES.get(effective) or f"the server failed with {effective}"
        common = self._common(code)
        if effective in _STATUS_ERRORS:
            raise _STATUS_ERRORS[effective](text, **common)
        if effective == 422:
            raise ValidationError(text, errors=_field_errors(errors), **common)
        if effective == 429:
            raise RateLimitError(
                text,
                retry_after=retry_after_seconds(self.headers.get("retry-after"), now=self.now),
                limit=_int_header(self.headers.get("x-ratelimit-limit")),
                remaining=_int_header(self.headers.get("x-ratelimit-remaining")),
                **common,
            )
        if effective >= 500:
            raise ServerError(text, **common)
        raise APIStatusError(text, **common)

    def _page_data(self, document: dict[str, Any]) -> PageData:
        data = document.get("data")
        if isinstance(data, dict) and "data" in data:
            rows = data["data"]
            if not isinstance(rows, list):
                raise self._format_error("$.data.data is not a list of records")
            next_link = data.get("next_page_url")
            return self._paged(Shape.PAGINATOR, rows, "$.data.data", data, "$.data", next_link)
        if isinstance(data, list):
            if "meta" not in document:
                links = document.get("links")
                if isinstance(links, dict) and links.get("next") is not None:
                    raise self._format_error(
                        "response links to a next page ($.links.next) but has no $.meta: "
                        "its paging numbers are missing"
                    )
                return PageData(
                    shape=Shape.BARE_LIST,
                    rows=data,
                    rows_path="$.data",
                    numbers=PageNumbers(
                        current_page=1,
                        last_page=1,
                        per_page=len(data),
                        total=len(data),
                        first_row=1 if data else None,
                        last_row=len(data) or None,
                    ),
                    has_next_link=False,
                    body=self.body,
                )
            meta = document["meta"]
            if not isinstance(meta, dict):
                raise self._format_error(
                    f"$.meta is {type(meta).__name__}, not an object: a paginated answer "
                    "without its paging numbers"
                )
            links = document.get("links")
            next_link = links.get("next") if isinstance(links, dict) else None
            return self._paged(Shape.RESOURCE, data, "$.data", meta, "$.meta", next_link)
        raise self._format_error(
            "response is not one of the three shapes: $.data is neither a list nor a paginator"
        )

    def _paged(
        self,
        shape: Shape,
        rows: list[Any],
        rows_path: str,
        meta: dict[str, Any],
        meta_path: str,
        next_link: Any,
    ) -> PageData:
        def number(key: str, *, nullable: bool = False) -> Any:
            value = meta.get(key)
            if value is None and nullable:
                return None
            if type(value) is int:
                return value
            if (whole := _whole_number(value)) is not None:
                return whole
            raise self._format_error(f"{meta_path}.{key} is {value!r}, not a whole number")

        return PageData(
            shape=shape,
            rows=rows,
            rows_path=rows_path,
            numbers=PageNumbers(
                current_page=number("current_page"),
                last_page=number("last_page"),
                per_page=number("per_page"),
                total=number("total"),
                first_row=number("from", nullable=True),
                last_row=number("to", nullable=True),
            ),
            has_next_link=next_link is not None,
            body=self.body,
        )


def _whole_number(value: Any) -> int | None:
    """Return a digit string's number (ASCII digits, at most 18 of them), else ``None``.

    ``str.isdigit`` also accepts digits ``int`` cannot read (``"²"``), and ``int``
    refuses strings of more than 4,300 digits: neither may escape as a raw ValueError.
    """
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value):
        return int(value)
    return None


def _field_errors(errors: Any) -> dict[str, list[str]]:
    if not isinstance(errors, dict):
        return {}
    return {
        str(field): [str(m) for m in messages] if isinstance(messages, list) else [str(messages)]
        for field, messages in errors.items()
    }


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: seconds, or an HTTP date (then relative to ``now``).

    Seconds are digits with an optional fraction (``"17"``, ``"0.5"``); a date already
    past gives ``0.0``. Returns ``None`` when the header is absent or unusable: a
    negative number, ``nan``, ``inf``, a number too large for a float, or text that is
    neither digits nor a date. A very long wait is returned as asked: the transport
    caps it (``RetryPolicy.max_retry_after``) and waits its default for ``None``.
    """
    if value is None:
        return None
    text = value.strip()
    if _SECONDS_RE.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        target = when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    current = time.time() if now is None else now
    return max(0.0, target - current)


def next_page(page: PageData) -> int | None:
    """Return the number of the page after ``page``, or ``None`` when it was the last.

    The next link in the body is never followed (the server drops the query string
    from it); only its presence counts. Stops on ``current_page >= last_page``, a null
    next link, an empty page, or a null ``from``/``to``.
    """
    numbers = page.numbers
    if page.shape is Shape.BARE_LIST:
        return None
    if (
        numbers.current_page >= numbers.last_page
        or not page.has_next_link
        or not page.rows
        or numbers.first_row is None
        or numbers.last_row is None
    ):
        return None
    return numbers.current_page + 1


def implausible_numbers(page: PageData, requested: int) -> str | None:
    """Return why ``page``'s paging numbers cannot be true, or ``None`` when they agree.

    An honest paginator derives ``last_page`` from ``total`` and ``per_page``,
    answers the page it was asked for, and puts at most ``per_page`` rows on it,
    numbered ``from``..``to``. Numbers that break these rules would make the client
    plan requests (and splits) for records that do not exist.
    """
    if page.shape is Shape.BARE_LIST:
        return None
    n, rows = page.numbers, len(page.rows)
    if n.per_page < 1 or n.current_page < 1 or n.total < 0:
        return (
            f"per_page {n.per_page}, current_page {n.current_page} and total {n.total} "
            "cannot be true together"
        )
    # An empty range is one page in Laravel; some other paginators call it none.
    if n.last_page != max(1, -(-n.total // n.per_page)) and (n.last_page, n.total) != (0, 0):
        return f"last_page {n.last_page} does not follow from total {n.total}, {n.per_page} a page"
    if n.current_page != requested:
        return f"page {n.current_page} came back when page {requested} was asked for"
    if rows > n.per_page:
        return f"{rows} rows on a page of {n.per_page}"
    first = (n.current_page - 1) * n.per_page + 1
    if rows and (n.first_row, n.last_row) != (first, first + rows - 1):
        return (
            f"rows {n.first_row}..{n.last_row} announced for the {rows} rows of page "
            f"{n.current_page} (expected {first}..{first + rows - 1})"
        )
    return None

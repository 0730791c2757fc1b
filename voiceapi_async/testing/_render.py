"""What the simulator answers, as pure functions: no aiohttp, no awaits, no sockets.

The rules that read a report request (the preferred ``Accept`` type, ``page``,
``per_page`` and ``limit``) and the bytes that answer it: the records encoded in
the server's order, the paging numbers and links, the three response shapes
(A bare list, B nested paginator, C resource collection), the JSON error body and
the HTML pages. The date-range filter is read by ``_dates``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import orjson

from voiceapi_async import Report, Shape
from voiceapi_async.testing._dataset import STORAGE_PREFIX, WireRecord

PHP_INT_MAX = 2**63 - 1
"""The largest whole number the server accepts for ``page`` or ``per_page``."""

LOGIN_PAGE = (
    b'<!DOCTYPE html>\n<html><head><title>Login</title></head><body><form method="post" '
    b'action="/login"><input name="email"><input name="password" type="password"></form>'
    b"</body></html>\n"
)
"""The HTML login page a request without JSON in ``Accept`` is redirected to."""

PROXY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
)
"""The HTML page a proxy in front of the server sends for a 502."""

# Rows carry this in place of a storage path's URL until the page is served and signed.
_AUDIO_PLACEHOLDER = "\x00audio\x00"
_AUDIO_MARK = orjson.dumps(_AUDIO_PLACEHOLDER)


# -- reading the request -----------------------------------------------------------


def wants_json(accept: str) -> bool:
    """Tell whether the most preferred type in ``Accept`` is JSON, as the server framework reads it.

    Args:
        accept: the ``Accept`` header's value (empty when absent).
    """
    ranked = []
    for position, part in enumerate(accept.split(",")):
        media, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, position, media.strip().lower()))
    if not ranked:
        return False
    preferred = min(ranked)[2]
    return "/json" in preferred or "+json" in preferred


def positive_int(value: str | None) -> int | None:
    """Read a whole number >= 1 as PHP's FILTER_VALIDATE_INT does, else None.

    Only ASCII digits count (``"²".isdigit()`` is true but ``int("²")`` fails), and a
    number beyond PHP's integer range is invalid rather than a crash.
    """
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if 0 < number <= PHP_INT_MAX else None


def page_size(query: Mapping[str, str], *, default: int, maximum: int) -> int:
    """Return the page size applied: ``per_page``, else ``limit``, else the default, capped."""
    for name in ("per_page", "limit"):
        value = positive_int(query.get(name))
        if value is not None:
            return min(value, maximum)
    return min(default, maximum)


def page_number(value: str | None) -> int:
    """Return the page asked for; anything but a valid whole number is page 1."""
    return positive_int(value) or 1


# -- paging ------------------------------------------------------------------------


@attrs.frozen
class Paging:
    """Where one page falls in a range of ``total`` records.

    Attributes:
        page: the page number (1-based; may lie past the last page).
        per_page: the page size applied.
        total: the number of records in the whole range.
    """

    page: int
    per_page: int
    total: int

    @classmethod
    def from_query(
        cls, query: Mapping[str, str], total: int, *, default: int, maximum: int
    ) -> Paging:
        """Return the paging a request's ``page``, ``per_page`` and ``limit`` ask for."""
        size = page_size(query, default=default, maximum=maximum)
        return cls(page_number(query.get("page")), size, total)

    @property
    def last_page(self) -> int:
        """The last page number; 1 for an empty range."""
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def first(self) -> int:
        """The 0-based index in the range of the page's first record."""
        return (self.page - 1) * self.per_page

    @property
    def stop(self) -> int:
        """The index just past the page's last record (at most ``total``)."""
        return min(self.first + self.per_page, self.total)

    @property
    def count(self) -> int:
        """How many records the page holds (0 past the end)."""
        return max(0, self.stop - self.first)

    @property
    def from_row(self) -> int | None:
        """The 1-based number of the page's first record, or None when it is empty."""
        return self.first + 1 if self.count else None

    @property
    def to_row(self) -> int | None:
        """The 1-based number of the page's last record, or None when it is empty."""
        return self.first + self.count if self.count else None


def links_path(origin: str, report: Report, shape: Shape) -> str:
    """Return the URL page links are built on.

    Shape C's links always name ``voice/calls``, even for recordings, as the
    documented server does.
    """
    links_report = Report.CALLS if shape is Shape.RESOURCE else report
    return f"{origin}/api/v2/voice/{links_report}"


@attrs.frozen
class PageLinks:
    """The page URLs of a paged body: the path and ``?page=N``, without the filter or token."""

    path: str
    paging: Paging

    def url(self, page: int) -> str:
        """Return the link to ``page``."""
        return f"{self.path}?page={page}"

    @property
    def first(self) -> str:
        """The link to page 1."""
        return self.url(1)

    @property
    def last(self) -> str:
        """The link to the last page."""
        return self.url(self.paging.last_page)

    @property
    def next(self) -> str | None:
        """The link to the next page, or None on the last page and past it."""
        page = self.paging.page
        return self.url(page + 1) if page < self.paging.last_page else None

    @property
    def prev(self) -> str | None:
        """The link to the previous page, or None on page 1."""
        page = self.paging.page
        return self.url(page - 1) if page > 1 else None

    def numbered(self) -> list[dict[str, Any]]:
        """Return shape C's ``meta.links``: previous, pages 1 to 10 at most, next."""
        current = self.paging.page
        return [
            {"url": self.prev, "label": "&laquo; Previous", "active": False},
            *(
                {"url": self.url(n), "label": str(n), "active": n == current}
                for n in range(1, min(self.paging.last_page, 10) + 1)
            ),
            {"url": self.next, "label": "Next &raquo;", "active": False},
        ]


# -- records -----------------------------------------------------------------------


@attrs.frozen
class EncodedRecords:
    """A range's records, encoded once and ordered as the server returns them."""

    rows: list[bytes]
    audio: list[str | None]
    """For each row, the storage path its audio URL is signed for (or None)."""

    def slice(self, first: int, stop: int) -> tuple[list[bytes], list[str | None]]:
        """Return the rows from ``first`` to before ``stop`` and their storage paths."""
        if first >= stop:
            return [], []
        return self.rows[first:stop], self.audio[first:stop]


def encode_records(records: Iterable[WireRecord], *, seed: int) -> EncodedRecords:
    """Encode records in the server's order: fixed by the seed, not sorted by time.

    A recording whose audio lies in the simulator's storage gets a placeholder that
    :func:`sign_audio` replaces with a presigned URL when its page is served.
    """
    ordered = sorted(records, key=lambda record: zlib.crc32(f"{seed}:{record['id']}".encode()))
    rows: list[bytes] = []
    audio: list[str | None] = []
    for record in ordered:
        path = record.get("audio")
        if isinstance(path, str) and path.startswith(STORAGE_PREFIX):
            rows.append(orjson.dumps({**record, "audio": _AUDIO_PLACEHOLDER}))
            audio.append(path)
        else:
            rows.append(orjson.dumps(record))
            audio.append(None)
    return EncodedRecords(rows, audio)


def sign_audio(
    rows: Sequence[bytes], paths: Sequence[str | None], sign: Callable[[str], str]
) -> list[bytes]:
    """Return the rows with each audio placeholder replaced by ``sign(path)``."""
    return [
        row if path is None else row.replace(_AUDIO_MARK, orjson.dumps(sign(path)))
        for row, path in zip(rows, paths, strict=True)
    ]


# -- the three shapes --------------------------------------------------------------


def bare_list(rows: Sequence[bytes]) -> bytes:
    """Render shape A: every record of the range in one ``data`` list, no paging."""
    return b'{"status":"OK","data":[' + b",".join(rows) + b"]}"


def paginator(rows: Sequence[bytes], paging: Paging, path: str) -> bytes:
    """Render shape B: the records in ``data.data`` beside the paginator's numbers and URLs."""
    links = PageLinks(path, paging)
    head = b'{"status":"OK","data":{"current_page":' + str(paging.page).encode() + b',"data":['
    tail = orjson.dumps(
        {
            "first_page_url": links.first,
            "from": paging.from_row,
            "last_page": paging.last_page,
            "last_page_url": links.last,
            "next_page_url": links.next,
            "path": path,
            "per_page": paging.per_page,
            "prev_page_url": links.prev,
            "to": paging.to_row,
            "total": paging.total,
        }
    )
    return head + b",".join(rows) + b"]," + tail[1:] + b"}"


def resource(rows: Sequence[bytes], paging: Paging, path: str) -> bytes:
    """Render shape C: the records in ``data``, paging in ``links`` and ``meta``."""
    links = PageLinks(path, paging)
    meta = {
        "current_page": paging.page,
        "from": paging.from_row,
        "last_page": paging.last_page,
        "path": path,
        "per_page": paging.per_page,
        "to": paging.to_row,
        "total": paging.total,
        "links": links.numbered(),
    }
    tail = orjson.dumps(
        {
            "links": {
                "first": links.first,
                "last": links.last,
                "prev": links.prev,
                "next": links.next,
            },
            "meta": meta,
        }
    )
    head = b'{"status":"OK","code":200,"message":"OK","data":['
    return head + b",".join(rows) + b"]," + tail[1:]


# -- errors and pages --------------------------------------------------------------


def error_body(status: int, message: str) -> bytes:
    """Render the JSON error body: ``{"status": "ERROR", "code": status, "message": ...}``."""
    return orjson.dumps({"status": "ERROR", "code": status, "message": message})


def redirect_page(location: str) -> bytes:
    """Render the HTML body of a redirect to ``location``."""
    body = f'<!DOCTYPE html>\n<html><body>Redirecting to <a href="{location}">{location}</a>.'
    return (body + "</body></html>\n").encode()

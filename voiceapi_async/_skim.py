"""The quick first read of a success page: its status, paging numbers and row ids.

Paging needs only these; the rows themselves are read whole when the consumer takes
them. msgspec reads a typed subset of the document and skips the rest without
building it, in about half the time a full parse takes. :func:`skim` returns
the document as :mod:`voiceapi_async._protocol` would read it, its rows cut down to
``{"id": ...}``, or ``None`` for anything but a plain success page: the caller then
parses the body in full, so every error and every odd shape is handled in one place.
"""

from __future__ import annotations

from typing import Any

import msgspec

OK_STATUSES = frozenset({"OK", 200, "200"})
"""The body ``status`` values of a success page."""
_INT_RANGE = range(-(2**63), 2**64)
"""Integers a full parse (orjson) reads as ``int``; beyond them it gives floats."""
_TEXT = frozenset({str})


class _Row(msgspec.Struct):
    id: Any = msgspec.UNSET


class _Numbers(msgspec.Struct, kw_only=True, rename={"from_": "from"}):
    current_page: Any = msgspec.UNSET
    last_page: Any = msgspec.UNSET
    per_page: Any = msgspec.UNSET
    total: Any = msgspec.UNSET
    from_: Any = msgspec.UNSET
    to: Any = msgspec.UNSET


class _Paginator(_Numbers, kw_only=True):
    data: list[_Row]
    next_page_url: Any = msgspec.UNSET


class _Links(msgspec.Struct):
    next: Any = msgspec.UNSET


class _Document(msgspec.Struct):
    status: Any = msgspec.UNSET
    data: _Paginator | list[_Row] | msgspec.UnsetType = msgspec.UNSET
    meta: _Numbers | msgspec.UnsetType = msgspec.UNSET
    links: _Links | msgspec.UnsetType = msgspec.UNSET


_DECODER = msgspec.json.Decoder(_Document)


def skim(body: bytes) -> dict[str, Any] | None:
    """Return a success page's document with its rows cut down to their ids.

    ``None`` when the body is not a success page in one of the three shapes with a
    text id on every row, or holds anything a full parse might read differently (text
    that is not UTF-8, an integer beyond 64 bits among the paging numbers).
    """
    try:
        document = _DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    status = document.status
    if type(status) not in (str, int) or status not in OK_STATUSES:
        return None
    if not body.isascii():
        try:  # the skim skips strings it has no field for without checking them
            body.decode()
        except UnicodeDecodeError:
            return None
    data = document.data
    if isinstance(data, _Paginator):
        numbers = _numbers(data)
        rows = _rows(data.data)
        if numbers is None or rows is None:
            return None
        page: dict[str, Any] = {"data": rows, **numbers}
        if data.next_page_url is not msgspec.UNSET:
            page["next_page_url"] = data.next_page_url
        return {"status": status, "data": page}
    if isinstance(data, list):
        rows = _rows(data)
        if rows is None:
            return None
        skimmed: dict[str, Any] = {"status": status, "data": rows}
        if not isinstance(document.meta, msgspec.UnsetType):
            if (meta := _numbers(document.meta)) is None:
                return None
            skimmed["meta"] = meta
        if not isinstance(document.links, msgspec.UnsetType):
            links = document.links
            skimmed["links"] = {} if links.next is msgspec.UNSET else {"next": links.next}
        return skimmed
    return None


def _rows(rows: list[_Row]) -> list[dict[str, str]] | None:
    ids = [row.id for row in rows]
    if not set(map(type, ids)) <= _TEXT:
        return None
    return [{"id": value} for value in ids]


def _numbers(numbers: _Numbers) -> dict[str, Any] | None:
    present = {
        key: value
        for key, value in (
            ("current_page", numbers.current_page),
            ("last_page", numbers.last_page),
            ("per_page", numbers.per_page),
            ("total", numbers.total),
            ("from", numbers.from_),
            ("to", numbers.to),
        )
        if value is not msgspec.UNSET
    }
    for value in present.values():
        whole = type(value) is int and value in _INT_RANGE
        if not (whole or value is None or type(value) is str):
            return None
    return present

"""The records the client yields and the units it pages by.

Pure data: frozen, slotted attrs classes with no I/O and no wire-format rules
(those live in the converter, ``_convert.py``).
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Generic, TypeVar

import attrs
import pendulum

from voiceapi_async._redact import redact_json

JSON = Any
"""A value as decoded from JSON: ``None``, bool, int, float, str, list or dict."""


class Report(enum.StrEnum):
    """The two reports of the Voice API."""

    CALLS = "calls"
    RECORDINGS = "recordings"


class CallStatus(enum.StrEnum):
    """Known call outcomes. The set is open: a new value arrives as a plain ``str``."""

    ANSWER = "ANSWER"
    BUSY = "BUSY"
    NOANSWER = "NOANSWER"
    CANCEL = "CANCEL"
    CONGESTION = "CONGESTION"
    CHANUNAVAIL = "CHANUNAVAIL"
    RECEIVED = "RECEIVED"
    MISSED = "MISSED"
    COMPLETED = "COMPLETED"


class HangupBy(enum.StrEnum):
    """Who ended the call. The set is open: a new value arrives as a plain ``str``."""

    CALLER = "caller"
    AGENT = "agent"


class Shape(enum.StrEnum):
    """The three success shapes of a response body (docs/wire-contract.md)."""

    BARE_LIST = "A"
    """``data`` is the list of records; one page holds everything."""
    PAGINATOR = "B"
    """``data`` is an object with the records in ``data.data`` and paging beside them."""
    RESOURCE = "C"
    """Records in ``data``, paging in ``meta`` and ``links``."""


_NO_EXTRA: Mapping[str, Any] = types.MappingProxyType({})


def _safe_repr(self: Any) -> str:
    """Return the attrs-style repr of a record, every value redacted however deeply nested.

    An unknown field in ``extra`` or the raw ``agent`` may hold a presigned URL too,
    not only ``audio``: its signature and credential are masked wherever they are.
    """
    fields = ", ".join(
        f"{field.name}={redact_json(getattr(self, field.name))!r}"
        for field in attrs.fields(type(self))
    )
    return f"{type(self).__name__}({fields})"


@attrs.frozen(slots=True, repr=False)
class Call:
    """One call from the call-log report (``voice/calls``).

    Timestamps are in the account's time zone; ``extra`` keeps every key the
    server sent that is not a field here, so nothing is lost.
    """

    id: str
    call_from: str
    call_to: str
    service: str | None
    bridge: str | None
    status: CallStatus | str
    duration: pendulum.Duration
    billing: pendulum.Duration
    pulsing: int
    charges: Decimal
    start_at: pendulum.DateTime | None
    end_at: pendulum.DateTime | None
    hangup_by: HangupBy | str | None
    dtmf: str | None
    location: str | None
    region: str | None
    provider: str | None
    notes: str | None
    name: str | None
    audio: str | None
    extra: Mapping[str, JSON] = attrs.field(default=_NO_EXTRA, eq=False, hash=False)

    __repr__ = _safe_repr


@attrs.frozen(slots=True, repr=False)
class Recording:
    """One recording from the recordings report (``voice/recordings``).

    ``audio`` is usually a presigned URL valid for an hour; its signature is
    redacted in the repr (so is any secret in ``agent`` or ``extra``). ``agent`` is
    kept as raw JSON (its shape is undocumented).
    """

    id: str
    call_from: str
    call_to: str
    audio: str | None
    duration: pendulum.Duration
    agent: JSON = attrs.field(eq=False, hash=False)
    created_at: pendulum.DateTime
    extra: Mapping[str, JSON] = attrs.field(default=_NO_EXTRA, eq=False, hash=False)

    __repr__ = _safe_repr


Record = Call | Recording
"""Either kind of record."""

RecordT = TypeVar("RecordT", Call, Recording)


@attrs.frozen(slots=True, order=True)
class Window:
    """One date range of one report: from ``start`` to ``end``, both inclusive, to the second.

    Both ends are aware datetimes in the account's time zone. Build windows with
    :func:`voiceapi_async.plan_windows` rather than by hand.
    """

    report: Report = attrs.field(order=False)
    start: pendulum.DateTime
    end: pendulum.DateTime

    @property
    def is_whole_day(self) -> bool:
        """Whether the window is exactly one calendar day, midnight to 23:59:59."""
        start, end = self.start, self.end
        return (
            start.date() == end.date()
            and (start.hour, start.minute, start.second) == (0, 0, 0)
            and (end.hour, end.minute, end.second) == (23, 59, 59)
        )

    @property
    def key(self) -> str:
        """A stable id: ``calls/2024-03-05`` for a day, with the times for a part of one."""
        if self.is_whole_day:
            return f"{self.report}/{self.start.date().isoformat()}"
        return (
            f"{self.report}/{self.start.strftime('%Y-%m-%dT%H:%M:%S')}"
            f"--{self.end.strftime('%Y-%m-%dT%H:%M:%S')}"
        )

    def __str__(self) -> str:
        return self.key


@attrs.frozen(slots=True, kw_only=True)
class PageNumbers:
    """The server's paging numbers of one response, as it announced them."""

    current_page: int
    last_page: int
    per_page: int
    total: int
    """Records in the whole window."""
    first_row: int | None = None
    """The server's ``from``: the 1-based position of the page's first record, null when empty."""
    last_row: int | None = None
    """The server's ``to``."""


@attrs.frozen(slots=True, kw_only=True)
class Page(Generic[RecordT]):
    """One page of one window: its records and the server's paging numbers."""

    records: Sequence[RecordT]
    window: Window
    shape: Shape
    numbers: PageNumbers

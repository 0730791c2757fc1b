"""The server's reading of the date-range filter, trap for trap.

``"<from> - <to>"`` split on the first space-hyphen-space; each part parsed with
the first format that fits; a ``from`` without a time starts at 00:00:00 and a
``to`` without one ends at 23:59:59; a missing ``to`` means the ``from`` day;
slashes are read day-first; anything unparseable silently becomes "now".
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping

from voiceapi_async import Report

DATE_PARAMS: Mapping[Report, str] = {
    Report.CALLS: "datetime[end_at]",
    Report.RECORDINGS: "datetime[r.created_at]",
}
"""The query parameter each report's range is read from."""

_WITH_TIME = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M")
_DATE_ONLY = ("%b %d, %Y", "%B %d, %Y", "%Y-%m-%d", "%d/%m/%Y")
_START_OF_DAY = dt.time(0, 0, 0)
_END_OF_DAY = dt.time(23, 59, 59)


def _parse_part(text: str, *, is_end: bool, now: dt.datetime) -> dt.datetime:
    parsed = _parse_text(text.strip(), is_end)
    return now if parsed is None else parsed


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str, is_end: bool) -> dt.datetime | None:
    """Parse one part with the first format that fits (cached: strptime is slow)."""
    for fmt in _WITH_TIME:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            pass
    for fmt in _DATE_ONLY:
        try:
            day = dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        return dt.datetime.combine(day, _END_OF_DAY if is_end else _START_OF_DAY)
    return None


def parse_range(value: str | None, *, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Return the naive, inclusive ``(from, to)`` the server filters on.

    Args:
        value: the filter parameter as received, or ``None`` when absent (then today).
        now: the server's current wall-clock time in the account's zone.
    """
    if value is None or not value.strip():
        today = now.date()
        return dt.datetime.combine(today, _START_OF_DAY), dt.datetime.combine(today, _END_OF_DAY)
    first, separator, second = value.partition(" - ")
    start = _parse_part(first, is_end=False, now=now)
    if not separator or not second.strip():
        return start, dt.datetime.combine(start.date(), _END_OF_DAY)
    return start, _parse_part(second, is_end=True, now=now)

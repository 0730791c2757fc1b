"""Date planning: turn a range into per-day windows in the account's time zone.

Pure code. The server filters on naive wall-clock timestamps in the account's
time zone, ``BETWEEN from AND to`` to the second, so windows are planned in wall
time: consecutive windows meet at ``end + 1 second`` and cover a range exactly
once, daylight-saving changes included.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from zoneinfo import ZoneInfo

import attrs
import pendulum

from voiceapi_async._models import Report, Window

Timezone = pendulum.Timezone | pendulum.FixedTimezone
"""A resolved time zone."""
TimezoneLike = str | dt.tzinfo
"""A time-zone name (``"Asia/Kolkata"``) or a ``tzinfo`` such as ``ZoneInfo``."""
DateLike = dt.date | dt.datetime | str
"""A ``date``, an aware ``datetime``, or an ISO 8601 string of either."""

_ONE_SECOND = dt.timedelta(seconds=1)
_LAST_SECOND = dt.time(23, 59, 59)

FIRST_DAY = dt.date(1, 1, 2)
"""The earliest day a range may cover.

A day short of ``datetime``'s limits on either side, so that any window can still be
converted to another time zone and stepped by a second.
"""
LAST_DAY = dt.date(9999, 12, 30)
"""The latest day a range may cover (see :data:`FIRST_DAY`)."""
_SUPPORTED = f"the supported range is {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"


def resolve_timezone(tz: TimezoneLike) -> Timezone:
    """Return the pendulum time zone for a name or a ``tzinfo``.

    Raises:
        ValueError: the name is not a known IANA time zone.
        TypeError: ``tz`` is neither a name nor a ``tzinfo``.
    """
    if isinstance(tz, pendulum.Timezone | pendulum.FixedTimezone):
        return tz
    if isinstance(tz, ZoneInfo):
        tz = tz.key
    elif isinstance(tz, dt.tzinfo):
        offset = tz.utcoffset(None)
        if offset is None:
            raise ValueError(f"time zone {tz!r} has no fixed offset; pass an IANA name instead")
        return pendulum.FixedTimezone(int(offset.total_seconds()))
    if not isinstance(tz, str):
        raise TypeError(f"timezone must be an IANA name or a tzinfo, not {type(tz).__name__}")
    try:
        return pendulum.timezone(tz)
    except Exception as exc:  # pendulum raises InvalidTimezone, a ValueError in some versions
        raise ValueError(
            f"unknown time zone {tz!r}: use an IANA name such as 'Asia/Kolkata' or 'UTC'"
        ) from exc


def wall_time(value: dt.datetime) -> dt.datetime:
    """Return the naive wall-clock time of ``value``, floored to the second."""
    return dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second)


def localize(wall: dt.datetime, tz: Timezone) -> pendulum.DateTime:
    """Attach ``tz`` to a naive wall-clock time, as the server reads it."""
    return pendulum.DateTime(
        wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second, tzinfo=tz
    )


def _bound(value: DateLike, tz: Timezone, *, name: str, is_end: bool) -> dt.datetime:
    """Return a range bound as naive wall time in ``tz`` (an end is inclusive)."""
    if isinstance(value, str):
        text, value = value, _parse_iso(value, name=name)
        if isinstance(value, dt.datetime) and value.utcoffset() is None:
            raise TypeError(
                f"{name}={text!r} has no UTC offset, which is ambiguous: add one, like "
                f"'{value:%Y-%m-%dT%H:%M:%S}+05:30', or give a date ('{value:%Y-%m-%d}') "
                "for the whole day"
            )
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TypeError(
                f"{name}={value.isoformat()!r} is a naive datetime, which is ambiguous: "
                "give it a time zone (pendulum.datetime(..., tz='Asia/Kolkata') or "
                "dt.replace(tzinfo=ZoneInfo('Asia/Kolkata'))), or pass a date for whole days"
            )
        try:
            wall = wall_time(pendulum.instance(value).in_timezone(tz))
        except OverflowError:
            raise _unsupported(name, value, None) from None
    elif isinstance(value, dt.date):
        wall = dt.datetime.combine(value, _LAST_SECOND if is_end else dt.time())
    else:
        raise TypeError(
            f"{name} must be a date, an aware datetime or an ISO 8601 string, "
            f"not {type(value).__name__}"
        )
    if not FIRST_DAY <= wall.date() <= LAST_DAY:
        raise _unsupported(name, value, wall.date())
    return wall


def _unsupported(name: str, value: dt.date, there: dt.date | None) -> ValueError:
    """The error for a bound outside FIRST_DAY..LAST_DAY (``there``: its day in the zone)."""
    day = value.date() if isinstance(value, dt.datetime) else value
    if there is None:
        where = " (it falls outside the calendar there)"
    elif there != day:
        where = f" (it is {there.isoformat()} there)"
    else:
        where = ""
    return ValueError(
        f"{name}={value.isoformat()!r} is outside the dates the planner supports in the account's "
        f"time zone{where}: {_SUPPORTED}; ask for a range within it"
    )


def _parse_iso(text: str, *, name: str) -> dt.date | dt.datetime:
    stripped = text.strip()
    try:
        if len(stripped) <= 10:  # a date: 2024-03-05, 20240305, 2024-W10-2
            return dt.date.fromisoformat(stripped)
        return dt.datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(
            f"{name}={text!r} is not an ISO 8601 date ('2024-03-05') "
            "or datetime with an offset ('2024-03-05T10:00:00+05:30')"
        ) from None


@attrs.frozen
class WindowPlan:
    """The per-day windows of one range, made one at a time as they are iterated.

    Building a plan costs the same for a day as for a century: only its bounds are
    checked and kept. Iterating it yields the windows of :func:`plan_windows`.
    """

    report: Report
    zone: Timezone
    first: dt.datetime
    """The range's first second, naive wall time in ``zone``."""
    last: dt.datetime
    """The range's last second (inclusive), naive wall time in ``zone``."""

    @property
    def days(self) -> int:
        """The number of calendar days (and so of windows) in the range."""
        return (self.last.date() - self.first.date()).days + 1

    @property
    def start(self) -> pendulum.DateTime:
        """The first window's start."""
        return localize(self.first, self.zone)

    @property
    def end(self) -> pendulum.DateTime:
        """The last window's end."""
        return localize(self.last, self.zone)

    def __len__(self) -> int:
        return self.days

    def __iter__(self) -> Iterator[Window]:
        report, zone = self.report, self.zone
        for lo, hi in _day_spans(self.first, self.last):
            yield Window(report, localize(lo, zone), localize(hi, zone))


def plan_range(
    report: Report | str,
    start: DateLike,
    end: DateLike,
    tz: TimezoneLike,
    *,
    max_days: int | None = None,
    setting: str = "max_days",
) -> WindowPlan:
    """Check the range ``start``..``end`` and return its lazy :class:`WindowPlan`.

    Same arguments and errors as :func:`plan_windows`; ``setting`` names where
    ``max_days`` comes from in the error message. Runs in constant time.
    """
    report = Report(report)
    zone = resolve_timezone(tz)
    first = _bound(start, zone, name="start", is_end=False)
    last = _bound(end, zone, name="end", is_end=True)
    if last < first:
        raise ValueError(
            f"end ({last:%Y-%m-%d %H:%M:%S}) is before start ({first:%Y-%m-%d %H:%M:%S}) "
            f"in {zone.name}: swap them"
        )
    plan = WindowPlan(report, zone, first, last)
    if max_days is not None and plan.days > max_days:
        raise ValueError(
            f"the range {first:%Y-%m-%d}..{last:%Y-%m-%d} covers {plan.days:,} days, "
            f"more than the limit of {max_days:,} days ({setting}): ask for a shorter "
            "range, or raise the limit"
        )
    return plan


def plan_windows(
    report: Report | str,
    start: DateLike,
    end: DateLike,
    tz: TimezoneLike,
    *,
    max_days: int | None = None,
) -> list[Window]:
    """Split the inclusive range ``start``..``end`` into one window per calendar day.

    Dates and ISO date strings cover whole days; aware datetimes are exact to the
    second (and converted to ``tz``). The first and last windows may be parts of days.
    Days run from 0001-01-02 to 9999-12-30 (a day short of ``datetime``'s limits); a
    range may cover at most ``max_days`` days (None: no limit).

    Raises:
        TypeError: a naive datetime, or a value of the wrong type.
        ValueError: ``end`` is before ``start``, a string is not ISO 8601, a day lies
            outside the supported range, or the range covers more than ``max_days`` days.
    """
    return list(plan_range(report, start, end, tz, max_days=max_days))


def _day_spans(first: dt.datetime, last: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    day = first.date()
    while day <= last.date():
        lo = max(first, dt.datetime.combine(day, dt.time()))
        hi = min(last, dt.datetime.combine(day, _LAST_SECOND))
        yield lo, hi
        day += dt.timedelta(days=1)


def split_window(window: Window, parts: int) -> list[Window]:
    """Split ``window`` into ``parts`` contiguous windows of near-equal wall-clock length.

    Used when one day holds too many pages. A window is never split below one
    second, so fewer parts come back when the window is shorter than ``parts`` seconds.

    Raises:
        ValueError: ``parts`` is less than 1.
    """
    if parts < 1:
        raise ValueError(f"parts must be at least 1, not {parts}")
    zone = window.start.tzinfo
    assert isinstance(zone, pendulum.Timezone | pendulum.FixedTimezone)
    lo, hi = wall_time(window.start), wall_time(window.end)
    seconds = int((hi - lo).total_seconds()) + 1
    parts = min(parts, seconds)
    size, rest = divmod(seconds, parts)
    windows = []
    for index in range(parts):
        length = size + (1 if index < rest else 0)
        piece_end = lo + dt.timedelta(seconds=length) - _ONE_SECOND
        windows.append(Window(window.report, localize(lo, zone), localize(piece_end, zone)))
        lo = piece_end + _ONE_SECOND
    return windows


def first_outside(window: Window, times: Sequence[dt.datetime | None]) -> int | None:
    """Return the position of the first time outside ``window``, or ``None``.

    Both ends of the window are inclusive, to the second, as the server filters: on
    naive wall-clock times in the account's zone. So times are compared as wall
    times in the window's zone, never as instants: in a day's repeated hour (a
    fall-back change) 01:30 belongs to the part 01:00:00..01:59:59 whatever its fold.
    ``None`` times (a call that has not ended) are not judged.
    """
    zone = window.start.tzinfo
    present = [time for time in times if time is not None]
    if not present:
        return None
    # Aware datetimes that share one tzinfo object compare by wall time, fold ignored:
    # the common case (every record read in the account's zone) needs no conversion.
    stop = wall_time(window.end) + _ONE_SECOND
    if (
        {time.tzinfo for time in present} == {zone}
        and window.start <= min(present)
        and max(present) < stop.replace(tzinfo=zone)
    ):
        return None
    start = wall_time(window.start)
    for position, time in enumerate(times):
        if time is not None and not start <= _wall_in(time, zone) < stop:
            return position
    return None


def _wall_in(time: dt.datetime, zone: dt.tzinfo | None) -> dt.datetime:
    """Return ``time``'s naive wall-clock time in ``zone`` (with its fraction of a second)."""
    if time.tzinfo is not zone and time.tzinfo is not None:
        time = time.astimezone(zone)
    return time.replace(tzinfo=None)


def wall_date(value: object, zone: dt.tzinfo) -> dt.date | None:
    """Return the calendar day in ``zone`` of a wire timestamp, or ``None`` if it is not one.

    Naive timestamps (``"2019-06-11 05:57:24"``) are wall time in the account's zone
    already; ones with an offset are converted to it.
    """
    if type(value) is not str:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(zone)
    return parsed.date()

"""Backfill planning: per-day windows with stable ids, never too close to now."""

from __future__ import annotations

import datetime as dt

import pendulum

from voiceapi_async import DateLike, Report, TimezoneLike, Window, plan_windows

DEFAULT_SAFETY_LAG = dt.timedelta(hours=1)
"""Data younger than this may still change on the server: windows stop before it."""


def plan(
    report: Report | str,
    start: DateLike,
    end: DateLike,
    tz: TimezoneLike,
    *,
    now: dt.datetime | None = None,
    safety_lag: dt.timedelta = DEFAULT_SAFETY_LAG,
    max_days: int | None = None,
) -> list[Window]:
    """Return the windows of a backfill, one a day, each with a stable ``key``.

    Windows end no later than ``now - safety_lag`` in the account's time zone: a
    window reaching past that point is cut there (and gets a sub-day key), and
    windows entirely after it are dropped. A range of more than ``max_days`` days
    (None: no limit) is refused before any window is made.

    Raises:
        TypeError: a naive datetime.
        ValueError: ``end`` before ``start``, a day the planner cannot represent, a
            range longer than ``max_days``, a ``safety_lag`` reaching before year 1,
            or the whole range is too recent.
    """
    windows = plan_windows(report, start, end, tz, max_days=max_days)
    zone = windows[0].start.tzinfo
    current = pendulum.instance(now or dt.datetime.now(dt.UTC)).astimezone(zone)
    try:
        cutoff = current - safety_lag
    except OverflowError:
        raise ValueError(
            f"safety lag {safety_lag} reaches before the year 1: use a shorter lag"
        ) from None
    kept = []
    for window in windows:
        if window.start > cutoff:
            break
        if window.end > cutoff:
            window = Window(window.report, window.start, _floor_second(cutoff))
        kept.append(window)
    if not kept:
        raise ValueError(
            f"nothing to do: the range starts after {_floor_second(cutoff):%Y-%m-%d %H:%M:%S} "
            f"({safety_lag} before now in {zone}); newer data may still change"
        )
    return kept


def lookback_start(days: int, tz: TimezoneLike, *, now: dt.datetime | None = None) -> dt.date:
    """Return the first day of the last ``days`` days (today included) in ``tz``."""
    if days < 1:
        raise ValueError(f"lookback days must be 1 or more, not {days}")
    zone = tz if isinstance(tz, dt.tzinfo) else pendulum.timezone(tz)
    current = pendulum.instance(now or dt.datetime.now(dt.UTC)).astimezone(zone)
    try:
        return current.date() - dt.timedelta(days=days - 1)
    except OverflowError:
        raise ValueError(
            f"lookback of {days:,} days reaches before the year 1: use fewer days"
        ) from None


def _floor_second(value: pendulum.DateTime) -> pendulum.DateTime:
    return value.replace(microsecond=0)

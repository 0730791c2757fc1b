"""How the simulator behaves: its one frozen configuration."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs

from voiceapi_async import Shape
from voiceapi_async.testing._faults import Faults
from voiceapi_async.testing._storage import DEFAULT_AUDIO_SIZE


def _shape(value: Shape | str) -> Shape:
    if isinstance(value, Shape):
        return value
    try:
        return Shape(value.upper())
    except ValueError:
        raise ValueError(f"shape must be 'a', 'b' or 'c', not {value!r}") from None


def _sizes(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    low, high = value
    return (int(low), int(high))


def _check_sizes(instance: object, attribute: attrs.Attribute[Any], value: tuple[int, int]) -> None:
    low, high = value
    if not 1 <= low <= high:
        raise ValueError(
            f"audio_size must be (smallest, largest) bytes with 1 <= smallest <= largest, "
            f"not {value}"
        )


DEFAULT_CALLS_PER_DAY = 200
"""The simulator's average calls a day, everywhere: ``SimulatorConfig``, ``serve`` and
``voiceapi serve-fake``, and ``voiceapi --demo``."""
DEFAULT_TIMEZONE = "Asia/Kolkata"
"""The simulated account's time zone unless told (``voiceapi --demo`` reads days in it)."""
DEFAULT_TOKEN = "demo-token"
"""The one API token the simulator accepts unless told."""

_AT_LEAST_ONE = attrs.validators.ge(1)
_NOT_NEGATIVE = attrs.validators.ge(0)


@attrs.frozen(kw_only=True)
class SimulatorConfig:
    """How the simulator behaves.

    Attributes:
        seed: the dataset, the record order, the faults and the signing key follow it.
        timezone: the account's time zone (record timestamps are naive wall times in it).
        calls_per_day: average calls a day; recordings are about 30% of that.
        token: the one API token accepted.
        shape: the response shape served: A (bare list), B (paginator) or C (resource).
        per_page_default: the page size when the request names none.
        per_page_max: the largest page size applied (the echoed ``per_page`` tells).
        rate_limit: requests a minute per token before 429 (0 for no limit).
        rate_window: the rate-limit window in seconds (60 on the real server).
        rate_mode: ``"fixed"`` (the server framework's throttle: a window starts with
            a token's first request and resets whole) or ``"sliding"`` (at most
            ``rate_limit`` requests in any ``rate_window`` seconds).
        live_every: every N-th report request adds a record inside the requested
            range, so totals change while a client pages (0 for a still dataset).
        audio_expiry: seconds a presigned audio URL stays valid.
        audio_size: the range of audio file sizes in bytes, both ends included
            (an int for one size); each recording's size is fixed by the seed.
        faults: what goes wrong, and how often.
        clock: returns the current Unix time; fix it for byte-identical responses.
    """

    seed: int = 0
    timezone: str = DEFAULT_TIMEZONE
    calls_per_day: int = attrs.field(default=DEFAULT_CALLS_PER_DAY, validator=_NOT_NEGATIVE)
    token: str = DEFAULT_TOKEN
    shape: Shape = attrs.field(default=Shape.PAGINATOR, converter=_shape)
    per_page_default: int = attrs.field(default=15, validator=_AT_LEAST_ONE)
    per_page_max: int = attrs.field(default=100, validator=_AT_LEAST_ONE)
    rate_limit: int = attrs.field(default=1000, validator=_NOT_NEGATIVE)
    rate_window: float = attrs.field(default=60.0, validator=attrs.validators.ge(0.0))
    rate_mode: str = attrs.field(
        default="fixed", validator=attrs.validators.in_(("fixed", "sliding"))
    )
    live_every: int = attrs.field(default=0, validator=_NOT_NEGATIVE)
    audio_expiry: int = attrs.field(default=3600, validator=_NOT_NEGATIVE)
    audio_size: tuple[int, int] = attrs.field(
        default=DEFAULT_AUDIO_SIZE, converter=_sizes, validator=_check_sizes
    )
    faults: Faults = attrs.field(factory=Faults)
    clock: Callable[[], float] = attrs.field(default=time.time, eq=False, repr=False)

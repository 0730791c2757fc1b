"""Fault injection for the simulator, reproducible from a seed.

Each request's fate is drawn from ``(seed, request, attempt)``, where the request
is its path and query without the token and the attempt counts how often that
exact request was seen. Concurrency does not change which request gets which
fault, so a failing test can be replayed.
"""

from __future__ import annotations

import math
import random

import attrs

FAULT_KINDS = ("server_error", "reset", "truncated", "error_in_200", "html_error", "stall")
"""Every fault the simulator can serve, in the order they are drawn."""

STORAGE_FAULT_KINDS = ("storage_error", "storage_reset", "storage_stall")
"""Every fault the simulator's audio storage can serve, in the order they are drawn."""


_PROBABILITY = attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.le(1.0))
_NOT_NEGATIVE = attrs.validators.ge(0.0)


@attrs.frozen(kw_only=True)
class Faults:
    """What can go wrong, and how often (each a probability per request).

    Attributes:
        latency_ms: median added latency in milliseconds (log-normal; 0 for none).
        latency_spread: the log-normal sigma of the latency.
        server_error: a JSON 500, 502 or 503.
        reset: the connection is cut half-way through the body.
        truncated: a complete HTTP response whose JSON body ends early.
        error_in_200: ``{"status": "ERROR", "code": 500}`` delivered with HTTP 200.
        html_error: a proxy's HTML 502 page.
        stall: headers and part of the body, then nothing for ``stall_seconds``.
        stall_seconds: how long a stalled body hangs before the connection closes.
        storage_latency_ms: median added latency of audio downloads (log-normal).
        storage_error: an audio download answers an S3 500 or 503.
        storage_reset: an audio download's connection is cut half-way through the body.
        storage_stall: an audio download sends half its body, then nothing for
            ``stall_seconds``, then the connection closes.
        storage_bandwidth: the most bytes a second each audio download is sent at
            (per connection; 0 for no limit).
    """

    latency_ms: float = attrs.field(default=0.0, validator=_NOT_NEGATIVE)
    latency_spread: float = attrs.field(default=0.5, validator=_NOT_NEGATIVE)
    server_error: float = attrs.field(default=0.0, validator=_PROBABILITY)
    reset: float = attrs.field(default=0.0, validator=_PROBABILITY)
    truncated: float = attrs.field(default=0.0, validator=_PROBABILITY)
    error_in_200: float = attrs.field(default=0.0, validator=_PROBABILITY)
    html_error: float = attrs.field(default=0.0, validator=_PROBABILITY)
    stall: float = attrs.field(default=0.0, validator=_PROBABILITY)
    stall_seconds: float = attrs.field(default=30.0, validator=_NOT_NEGATIVE)
    storage_latency_ms: float = attrs.field(default=0.0, validator=_NOT_NEGATIVE)
    storage_error: float = attrs.field(default=0.0, validator=_PROBABILITY)
    storage_reset: float = attrs.field(default=0.0, validator=_PROBABILITY)
    storage_stall: float = attrs.field(default=0.0, validator=_PROBABILITY)
    storage_bandwidth: float = attrs.field(default=0.0, validator=_NOT_NEGATIVE)

    @classmethod
    def demo(cls) -> Faults:
        """A little of everything a real server does on a bad day (no stalls)."""
        return cls(
            latency_ms=15.0,
            server_error=0.02,
            reset=0.005,
            truncated=0.005,
            error_in_200=0.005,
            html_error=0.005,
        )

    def draw(self, seed: int, request: str, attempt: int) -> Fate:
        """Return the fate of the ``attempt``-th sight of ``request``."""
        if all(getattr(self, kind) == 0 for kind in FAULT_KINDS) and self.latency_ms == 0:
            return _CALM
        return self._draw(f"{seed}:{request}:{attempt}", self.latency_ms, FAULT_KINDS)

    def draw_storage(self, seed: int, path: str, attempt: int) -> Fate:
        """Return the fate of the ``attempt``-th download of the audio at ``path``."""
        kinds = STORAGE_FAULT_KINDS
        if all(getattr(self, kind) == 0 for kind in kinds) and self.storage_latency_ms == 0:
            return _CALM
        return self._draw(f"{seed}:storage:{path}:{attempt}", self.storage_latency_ms, kinds)

    def _draw(self, key: str, latency_ms: float, kinds: tuple[str, ...]) -> Fate:
        rng = random.Random(key)
        latency = 0.0
        if latency_ms > 0:
            latency = rng.lognormvariate(math.log(latency_ms), self.latency_spread) / 1000
        for kind in kinds:
            if rng.random() < getattr(self, kind):
                return Fate(kind, latency, rng.choice((500, 502, 503)))
        return Fate(None, latency, 200)


@attrs.frozen
class Fate:
    """One request's drawn fault (or none), added latency in seconds and error status."""

    fault: str | None
    latency: float
    status: int


_CALM = Fate(None, 0.0, 200)

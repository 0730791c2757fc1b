"""What the simulator saw: the request log, concurrency, request rates and faults served."""

from __future__ import annotations

import collections

import attrs

from voiceapi_async import Report


@attrs.frozen
class ObservedRequest:
    """One request the simulator answered, as tests see it (tokens removed)."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    auth: str | None
    """How the token came: ``bearer``, ``raw``, ``access_token``, ``api_token`` or None."""
    time: float
    status: int
    fault: str | None


class Observations:
    """What the simulator saw: requests, concurrency, rate and faults served.

    The request log keeps the latest ``max_requests`` entries, so a long-running
    simulator does not grow without end.
    """

    def __init__(self, max_requests: int | None = 100_000) -> None:
        self.requests: collections.deque[ObservedRequest] = collections.deque(maxlen=max_requests)
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_per_minute = 0
        self.max_per_second = 0
        self.faults: collections.Counter[str] = collections.Counter()
        self.token_leaks: list[str] = []
        """Storage paths fetched with the API token attached (a client bug)."""
        self.storage_leaks: list[tuple[str, str]] = []
        """``(path, what)`` for each storage request that carried the token or an API
        header (``Authorization``, a JSON ``Accept``, the client's ``User-Agent``,
        the token in the query or any header): a client bug."""
        self.storage_requests = 0
        """Requests to the audio storage."""
        self.storage_in_flight = 0
        self.storage_max_in_flight = 0
        """The most audio downloads served at once."""
        self.storage_bytes = 0
        """Audio body bytes sent."""
        self.storage_faults: collections.Counter[str] = collections.Counter()
        """Storage faults served, by kind."""
        self._minute: collections.deque[float] = collections.deque()
        self._second: collections.deque[float] = collections.deque()

    def arrived(self, now: float) -> None:
        """Count a request arriving at monotonic time ``now``."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        for window, span in ((self._minute, 60.0), (self._second, 1.0)):
            window.append(now)
            while window[0] <= now - span:
                window.popleft()
        self.max_per_minute = max(self.max_per_minute, len(self._minute))
        self.max_per_second = max(self.max_per_second, len(self._second))

    def report_requests(self, report: Report | str | None = None) -> list[ObservedRequest]:
        """Return the requests made to the report endpoints (or to one of them)."""
        suffixes = (
            ("voice/calls", "voice/recordings") if report is None else (f"voice/{Report(report)}",)
        )
        return [r for r in self.requests if r.path.endswith(suffixes)]

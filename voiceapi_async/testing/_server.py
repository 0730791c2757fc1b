"""The simulator: a local aiohttp server that plays the Voice API, traps included."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import math
import random
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import attrs
import orjson
import pendulum
from aiohttp import web

from voiceapi_async._models import Report, Shape
from voiceapi_async.testing._dataset import STORAGE_PREFIX, Dataset, WireRecord
from voiceapi_async.testing._dates import parse_range
from voiceapi_async.testing._faults import Faults
from voiceapi_async.testing._storage import AudioStorage, audio_bytes, s3_error

_DATE_PARAMS: Mapping[Report, str] = {
    Report.CALLS: "datetime[end_at]",
    Report.RECORDINGS: "datetime[r.created_at]",
}
_TOKEN_PARAMS = ("access_token", "api_token")
_AUDIO_MARK = b'"\\u0000audio\\u0000"'
_LOGIN_PAGE = (
    b'<!DOCTYPE html>\n<html><head><title>Login</title></head><body><form method="post" '
    b'action="/login"><input name="email"><input name="password" type="password"></form>'
    b"</body></html>\n"
)
_PROXY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
)
_JSON = "application/json"


def _shape(value: Shape | str) -> Shape:
    if isinstance(value, Shape):
        return value
    try:
        return Shape(value.upper())
    except ValueError:
        raise ValueError(f"shape must be 'a', 'b' or 'c', not {value!r}") from None


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
        live_every: every N-th report request adds a record inside the requested
            range, so totals change while a client pages (0 for a still dataset).
        audio_expiry: seconds a presigned audio URL stays valid.
        faults: what goes wrong, and how often.
        clock: returns the current Unix time; fix it for byte-identical responses.
    """

    seed: int = 0
    timezone: str = "Asia/Kolkata"
    calls_per_day: int = attrs.field(default=200, validator=_NOT_NEGATIVE)
    token: str = "demo-token"
    shape: Shape = attrs.field(default=Shape.PAGINATOR, converter=_shape)
    per_page_default: int = attrs.field(default=15, validator=_AT_LEAST_ONE)
    per_page_max: int = attrs.field(default=100, validator=_AT_LEAST_ONE)
    rate_limit: int = attrs.field(default=1000, validator=_NOT_NEGATIVE)
    rate_window: float = attrs.field(default=60.0, validator=attrs.validators.ge(0.0))
    live_every: int = attrs.field(default=0, validator=_NOT_NEGATIVE)
    audio_expiry: int = attrs.field(default=3600, validator=_NOT_NEGATIVE)
    faults: Faults = attrs.field(factory=Faults)
    clock: Callable[[], float] = attrs.field(default=time.time, eq=False, repr=False)


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


class _RateLimiter:
    """A fixed-window limit per token, like the server framework's throttle."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, token: str, now: float) -> tuple[bool, int, float]:
        """Return (allowed, remaining, seconds until the window resets)."""
        started, count = self._windows.get(token, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        count += 1
        self._windows[token] = (started, count)
        reset = max(0.0, started + self.window - now)
        return count <= self.limit, max(0, self.limit - count), reset


@attrs.frozen
class _Encoded:
    """A range's records, encoded once and ordered as the server returns them."""

    rows: list[bytes]
    audio: list[str | None]
    """For each row, the storage path its audio URL is signed for (or None)."""


class VoiceSimulator:
    """The Voice API's behaviour as an aiohttp application.

    Use :func:`run_simulator` to serve it; ``app`` builds the application for other
    runners. ``dataset`` answers ground-truth questions, ``observed`` tells what
    clients did.
    """

    def __init__(self, config: SimulatorConfig | None = None, **settings: Any) -> None:
        self.config = config if config is not None else SimulatorConfig(**settings)
        if config is not None and settings:
            self.config = attrs.evolve(config, **settings)
        cfg = self.config
        self.dataset = Dataset(cfg.seed, timezone=cfg.timezone, calls_per_day=cfg.calls_per_day)
        self.observed = Observations()
        self.storage = AudioStorage(cfg.seed, expires=cfg.audio_expiry)
        self.base_url = ""
        """Set once serving: ``http://127.0.0.1:<port>/api/v2/``."""
        self._zone = pendulum.timezone(cfg.timezone)
        self._limiter = _RateLimiter(cfg.rate_limit, cfg.rate_window)
        self._attempts: collections.Counter[str] = collections.Counter()
        self._now: tuple[int, dt.datetime] = (-1, dt.datetime.min)
        self._cache: collections.OrderedDict[tuple[Any, ...], _Encoded] = collections.OrderedDict()
        self._report_requests = 0

    def __repr__(self) -> str:
        return f"VoiceSimulator(base_url={self.base_url!r}, config={self.config!r})"

    def app(self) -> web.Application:
        """Build the aiohttp application."""
        app = web.Application()
        app.router.add_get("/api/v2/voice/calls", self._calls)
        app.router.add_get("/api/v2/voice/recordings", self._recordings)
        app.router.add_get("/login", self._login)
        app.router.add_get(STORAGE_PREFIX + "{key:.+}", self._audio)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    def now(self) -> dt.datetime:
        """Return the server's current naive wall-clock time in the account's zone."""
        second = int(self.config.clock())
        if second != self._now[0]:
            moment = pendulum.from_timestamp(second, tz=self._zone)
            wall = dt.datetime(
                moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second
            )
            self._now = (second, wall)
        return self._now[1]

    def ids_between(self, report: Report | str, start: dt.datetime, end: dt.datetime) -> set[str]:
        """Ground truth: the ids the server matches for the range (naive or aware)."""
        return self.dataset.ids_between(report, self._wall(start), self._wall(end))

    def _wall(self, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is not None:
            value = pendulum.instance(value).in_timezone(self._zone)
        return dt.datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second
        )

    # -- handlers ------------------------------------------------------------------

    async def _calls(self, request: web.Request) -> web.StreamResponse:
        return await self._report(request, Report.CALLS)

    async def _recordings(self, request: web.Request) -> web.StreamResponse:
        return await self._report(request, Report.RECORDINGS)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=_LOGIN_PAGE, content_type="text/html")

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return self._observe(request, None, None, _error(404, "Not Found."))

    async def _audio(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        query = dict(request.query.items())
        auth = _auth_mode(request)
        if auth is not None:
            self.observed.token_leaks.append(path)
        problem = self.storage.check(
            path, query, dt.datetime.fromtimestamp(self.config.clock(), dt.UTC)
        )
        if problem is not None:
            response = web.Response(
                status=403, body=s3_error(problem), content_type="application/xml"
            )
        else:
            response = web.Response(body=audio_bytes(path), content_type="audio/mpeg")
        return self._observe(request, auth, None, response)

    async def _report(self, request: web.Request, report: Report) -> web.StreamResponse:
        observed = self.observed
        observed.arrived(time.monotonic())
        try:
            return await self._answer(request, report)
        finally:
            observed.in_flight -= 1

    async def _answer(self, request: web.Request, report: Report) -> web.StreamResponse:
        cfg = self.config
        auth, token = _credentials(request)
        wants_json = _wants_json(request.headers.get("Accept", ""))
        if token != cfg.token:
            if not wants_json:
                return self._observe(request, auth, None, _redirect("/login"))
            return self._observe(request, auth, None, _error(401, "Unauthenticated."))
        headers: dict[str, str] = {}
        if cfg.rate_limit:
            allowed, remaining, reset = self._limiter.hit(token, time.monotonic())
            headers = {
                "X-RateLimit-Limit": str(cfg.rate_limit),
                "X-RateLimit-Remaining": str(remaining),
            }
            if not allowed:
                headers["Retry-After"] = str(max(1, math.ceil(reset)))
                return self._observe(
                    request, auth, None, _error(429, "Too Many Attempts.", headers)
                )
        key = _request_key(request)
        self._attempts[key] += 1
        fate = cfg.faults.draw(cfg.seed, key, self._attempts[key])
        if fate.latency:
            await asyncio.sleep(fate.latency)
        body = self._render(request, report)
        if fate.fault is not None:
            self.observed.faults[fate.fault] += 1
            return await self._faulty(request, auth, fate.fault, fate.status, body, headers)
        response = web.Response(body=body, content_type=_JSON, headers=headers)
        return self._observe(request, auth, None, response)

    async def _faulty(
        self,
        request: web.Request,
        auth: str | None,
        fault: str,
        status: int,
        body: bytes,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        if fault == "server_error":
            return self._observe(request, auth, fault, _error(status, "Server Error", headers))
        if fault == "error_in_200":
            error = orjson.dumps({"status": "ERROR", "code": 500, "message": "Server Error"})
            return self._observe(request, auth, fault, web.Response(body=error, content_type=_JSON))
        if fault == "html_error":
            page = web.Response(status=502, body=_PROXY_PAGE, content_type="text/html")
            return self._observe(request, auth, fault, page)
        if fault == "truncated":
            cut = body[: max(1, len(body) * 2 // 3)]
            return self._observe(request, auth, fault, web.Response(body=cut, content_type=_JSON))
        self._observe(request, auth, fault, web.Response(status=200))
        response = web.StreamResponse(
            headers={"Content-Type": _JSON, "Content-Length": str(len(body))}
        )
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        if fault == "stall":
            await asyncio.sleep(self.config.faults.stall_seconds)
        if request.transport is not None:
            request.transport.close()
        return response

    def _observe(
        self,
        request: web.Request,
        auth: str | None,
        fault: str | None,
        response: web.StreamResponse,
    ) -> web.StreamResponse:
        params = tuple(
            (key, "[REDACTED]" if key in _TOKEN_PARAMS else value)
            for key, value in request.query.items()
        )
        self.observed.requests.append(
            ObservedRequest(
                request.method,
                request.path,
                params,
                auth,
                self.config.clock(),
                response.status,
                fault,
            )
        )
        return response

    # -- rendering -----------------------------------------------------------------

    def _render(self, request: web.Request, report: Report) -> bytes:
        cfg = self.config
        query = request.query
        now = self.now()
        start, end = parse_range(query.get(_DATE_PARAMS[report]), now=now)
        self._report_requests += 1
        if cfg.live_every and self._report_requests % cfg.live_every == 0 and start <= end:
            self._arrive(report, start, min(end, max(start, now)))
        encoded = self._encoded(report, start, end)
        total = len(encoded.rows)
        origin = f"{request.scheme}://{request.host}"
        if cfg.shape is Shape.BARE_LIST:
            return self._envelope(b'{"status":"OK","data":[', encoded, 0, total, b"]}", origin)
        per_page = _page_size(query, cfg.per_page_default, cfg.per_page_max)
        page = _page_number(query.get("page"))
        last_page = max(1, math.ceil(total / per_page))
        first = (page - 1) * per_page
        stop = min(first + per_page, total)
        count = max(0, stop - first)
        links_report = Report.CALLS if cfg.shape is Shape.RESOURCE else report
        path = f"{origin}/api/v2/voice/{links_report}"
        meta: dict[str, Any] = {
            "current_page": page,
            "from": first + 1 if count else None,
            "last_page": last_page,
            "path": path,
            "per_page": per_page,
            "to": first + count if count else None,
            "total": total,
        }
        next_url = f"{path}?page={page + 1}" if page < last_page else None
        prev_url = f"{path}?page={page - 1}" if page > 1 else None
        if cfg.shape is Shape.PAGINATOR:
            head = b'{"status":"OK","data":{"current_page":' + str(page).encode() + b',"data":['
            tail = orjson.dumps(
                {
                    "first_page_url": f"{path}?page=1",
                    "from": meta["from"],
                    "last_page": last_page,
                    "last_page_url": f"{path}?page={last_page}",
                    "next_page_url": next_url,
                    "path": path,
                    "per_page": per_page,
                    "prev_page_url": prev_url,
                    "to": meta["to"],
                    "total": total,
                }
            )
            return self._envelope(head, encoded, first, stop, b"]," + tail[1:] + b"}", origin)
        links = {
            "first": f"{path}?page=1",
            "last": f"{path}?page={last_page}",
            "prev": prev_url,
            "next": next_url,
        }
        meta["links"] = [
            {"url": prev_url, "label": "&laquo; Previous", "active": False},
            *(
                {"url": f"{path}?page={n}", "label": str(n), "active": n == page}
                for n in range(1, min(last_page, 10) + 1)
            ),
            {"url": next_url, "label": "Next &raquo;", "active": False},
        ]
        tail = orjson.dumps({"links": links, "meta": meta})
        head = b'{"status":"OK","code":200,"message":"OK","data":['
        return self._envelope(head, encoded, first, stop, b"]," + tail[1:], origin)

    def _envelope(
        self, head: bytes, encoded: _Encoded, first: int, stop: int, tail: bytes, origin: str
    ) -> bytes:
        rows = encoded.rows[first:stop] if first < stop else []
        paths = encoded.audio[first:stop] if first < stop else []
        if any(paths):
            sign = self.storage.signer(
                origin, dt.datetime.fromtimestamp(self.config.clock(), dt.UTC)
            )
            rows = [
                row if path is None else row.replace(_AUDIO_MARK, orjson.dumps(sign(path)))
                for row, path in zip(rows, paths, strict=True)
            ]
        return head + b",".join(rows) + tail

    def _encoded(self, report: Report, start: dt.datetime, end: dt.datetime) -> _Encoded:
        days = []
        day = start.date()
        while day <= end.date():
            days.append(self.dataset.version(report, day))
            day += dt.timedelta(days=1)
        key = (report, start, end, tuple(days))
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        records = self.dataset.between(report, start, end) if start <= end else []
        seed = self.config.seed
        records.sort(key=lambda record: zlib.crc32(f"{seed}:{record['id']}".encode()))
        rows: list[bytes] = []
        audio: list[str | None] = []
        for record in records:
            path = record.get("audio")
            if isinstance(path, str) and path.startswith(STORAGE_PREFIX):
                rows.append(orjson.dumps({**record, "audio": "\x00audio\x00"}))
                audio.append(path)
            else:
                rows.append(orjson.dumps(record))
                audio.append(None)
        encoded = _Encoded(rows, audio)
        self._cache[key] = encoded
        if len(self._cache) > 256:
            self._cache.popitem(last=False)
        return encoded

    def _arrive(self, report: Report, start: dt.datetime, end: dt.datetime) -> WireRecord:
        rng = random.Random(f"{self.config.seed}:arrival:{self._report_requests}")
        span = int((end - start).total_seconds())
        moment = start + dt.timedelta(seconds=rng.randint(0, max(0, span)))
        return self.dataset.add_live(report, moment, self._report_requests)


def _credentials(request: web.Request) -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value:
            return "bearer", value.strip()
        return "raw", header.strip()
    for name in _TOKEN_PARAMS:
        if name in request.query:
            return name, request.query[name]
    return None, None


def _wants_json(accept: str) -> bool:
    """Whether the most preferred type in ``Accept`` is JSON, as the server framework reads it."""
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


def _auth_mode(request: web.Request) -> str | None:
    return _credentials(request)[0]


def _request_key(request: web.Request) -> str:
    params = sorted((k, v) for k, v in request.query.items() if k not in _TOKEN_PARAMS)
    return request.path + "?" + "&".join(f"{k}={v}" for k, v in params)


_PHP_INT_MAX = 2**63 - 1


def _positive_int(value: str | None) -> int | None:
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
    return number if 0 < number <= _PHP_INT_MAX else None


def _page_size(query: Mapping[str, str], default: int, maximum: int) -> int:
    for name in ("per_page", "limit"):
        value = _positive_int(query.get(name))
        if value is not None:
            return min(value, maximum)
    return min(default, maximum)


def _page_number(value: str | None) -> int:
    return _positive_int(value) or 1


def _redirect(location: str) -> web.Response:
    # A plain response, not web.HTTPFound: returning an HTTPException from a handler
    # is deprecated in aiohttp and breaks the connection where warnings are errors.
    body = f'<!DOCTYPE html>\n<html><body>Redirecting to <a href="{location}">{location}</a>.'
    return web.Response(
        status=302,
        body=(body + "</body></html>\n").encode(),
        content_type="text/html",
        headers={"Location": location},
    )


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = orjson.dumps({"status": "ERROR", "code": status, "message": message})
    return web.Response(status=status, body=body, content_type=_JSON, headers=headers)


@contextlib.asynccontextmanager
async def run_simulator(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **settings: Any,
) -> AsyncIterator[VoiceSimulator]:
    """Serve a simulator on a free loopback port for the duration of the block.

    ``settings`` are :class:`SimulatorConfig` fields (``shape="c"``, ``seed=7``...).
    The yielded simulator's ``base_url`` is ready for a client.
    """
    simulator = VoiceSimulator(config, **settings)
    runner = web.AppRunner(simulator.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        simulator.base_url = f"http://{_url_host(bound[0])}:{bound[1]}/api/v2/"
        yield simulator
    finally:
        await runner.cleanup()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host

"""The simulator: a local aiohttp server that plays the Voice API, traps included.

This module holds the aiohttp side: the routes and handlers, the fault wiring and
the rate limit. What an answer contains is decided by the pure ``_render`` and
``_dates`` modules.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import math
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import attrs
import pendulum
from aiohttp import web

from voiceapi_async import Report, Shape
from voiceapi_async.testing import _render as render
from voiceapi_async.testing._config import SimulatorConfig
from voiceapi_async.testing._dataset import STORAGE_PREFIX, Dataset, WireRecord
from voiceapi_async.testing._dates import DATE_PARAMS, parse_range
from voiceapi_async.testing._observations import Observations, ObservedRequest
from voiceapi_async.testing._storage import AudioContent, AudioStorage, s3_error

_TOKEN_PARAMS = ("access_token", "api_token")
_JSON = "application/json"
_CACHED_RANGES = 256
_AUDIO_CHUNK = 64 * 1024


class _RateLimiter:
    """A fixed-window limit per token, like the server framework's throttle."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        """Returns the monotonic time in seconds that windows are measured on."""
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, token: str) -> tuple[bool, int, float]:
        """Count a request; return (allowed, remaining, seconds until the window resets)."""
        now = self.clock()
        started, count = self._windows.get(token, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        count += 1
        self._windows[token] = (started, count)
        reset = max(0.0, started + self.window - now)
        return count <= self.limit, max(0, self.limit - count), reset


class _SlidingRateLimiter(_RateLimiter):
    """A sliding-window limit per token: at most ``limit`` requests in any ``window``."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(limit, window, clock)
        self._hits: dict[str, collections.deque[float]] = {}

    def hit(self, token: str) -> tuple[bool, int, float]:
        """Count a request; return (allowed, remaining, seconds until one more is allowed)."""
        now = self.clock()
        hits = self._hits.setdefault(token, collections.deque())
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        allowed = len(hits) < self.limit
        if allowed:  # a refused request does not count, as in the server's throttle
            hits.append(now)
        wait = hits[0] + self.window - now if len(hits) >= self.limit else 0.0
        return allowed, max(0, self.limit - len(hits)), max(0.0, wait)


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
        limiter = _SlidingRateLimiter if cfg.rate_mode == "sliding" else _RateLimiter
        self._limiter: _RateLimiter = limiter(cfg.rate_limit, cfg.rate_window)
        self._attempts: collections.Counter[str] = collections.Counter()
        self._now: tuple[int, dt.datetime] = (-1, dt.datetime.min)
        self._cache: collections.OrderedDict[tuple[Any, ...], render.EncodedRecords] = (
            collections.OrderedDict()
        )
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

    def _utc_now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.config.clock(), dt.UTC)

    # -- handlers ------------------------------------------------------------------

    async def _calls(self, request: web.Request) -> web.StreamResponse:
        return await self._report(request, Report.CALLS)

    async def _recordings(self, request: web.Request) -> web.StreamResponse:
        return await self._report(request, Report.RECORDINGS)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=render.LOGIN_PAGE, content_type="text/html")

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return self._observe(request, None, None, _error(404, "Not Found."))

    async def _audio(self, request: web.Request) -> web.StreamResponse:
        observed = self.observed
        observed.storage_requests += 1
        observed.storage_in_flight += 1
        observed.storage_max_in_flight = max(
            observed.storage_max_in_flight, observed.storage_in_flight
        )
        try:
            return await self._serve_audio(request)
        finally:
            observed.storage_in_flight -= 1

    async def _serve_audio(self, request: web.Request) -> web.StreamResponse:
        cfg = self.config
        path = request.path
        query = dict(request.query.items())
        auth = _credentials(request)[0]
        if auth is not None:
            self.observed.token_leaks.append(path)
        self.observed.storage_leaks.extend((path, what) for what in _api_traces(request, cfg.token))
        problem = self.storage.check(path, query, self._utc_now())
        if problem is not None:
            response = web.Response(
                status=403, body=s3_error(problem), content_type="application/xml"
            )
            return self._observe(request, auth, None, response)
        key = "storage:" + path
        self._attempts[key] += 1
        fate = cfg.faults.draw_storage(cfg.seed, path, self._attempts[key])
        if fate.latency:
            await asyncio.sleep(fate.latency)
        if fate.fault is not None:
            self.observed.storage_faults[fate.fault] += 1
        if fate.fault == "storage_error":
            code = "SlowDown" if fate.status == 503 else "InternalError"
            error = web.Response(
                status=500 if fate.status == 502 else fate.status,
                body=s3_error(code),
                content_type="application/xml",
            )
            return self._observe(request, auth, fate.fault, error)
        content = AudioContent(path, seed=cfg.seed, sizes=cfg.audio_size)
        self._observe(request, auth, fate.fault, web.Response(status=200))
        stream = web.StreamResponse(
            headers={"Content-Type": "audio/mpeg", "Content-Length": str(content.size)}
        )
        await stream.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the client left: not an error
            await self._send_audio(request, stream, content, fate.fault)
        return stream

    async def _send_audio(
        self,
        request: web.Request,
        response: web.StreamResponse,
        content: AudioContent,
        fault: str | None,
    ) -> None:
        """Send the file in chunks, at most ``storage_bandwidth`` bytes a second."""
        faults = self.config.faults
        bandwidth = faults.storage_bandwidth
        chunk = _AUDIO_CHUNK if not bandwidth else max(1024, min(_AUDIO_CHUNK, int(bandwidth / 20)))
        cut = content.size // 2 if fault in ("storage_reset", "storage_stall") else None
        started = time.monotonic()
        sent = 0
        for piece in content.chunks(chunk):
            if cut is not None and sent + len(piece) > cut:
                await response.write(piece[: cut - sent])
                if fault == "storage_stall":
                    await asyncio.sleep(faults.stall_seconds)
                if request.transport is not None:
                    request.transport.close()
                return
            sent += len(piece)
            if bandwidth:  # a chunk leaves when its last byte would have arrived
                ahead = started + sent / bandwidth - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await response.write(piece)
            self.observed.storage_bytes += len(piece)
        await response.write_eof()

    def audio_content(self, url_or_path: str) -> bytes:
        """Ground truth: the whole audio file a storage URL (or path) serves."""
        path = urllib.parse.urlsplit(url_or_path).path
        content = AudioContent(path, seed=self.config.seed, sizes=self.config.audio_size)
        return content.read(0, content.size)

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
        if token != cfg.token:
            if not render.wants_json(request.headers.get("Accept", "")):
                return self._observe(request, auth, None, _redirect("/login"))
            return self._observe(request, auth, None, _error(401, "Unauthenticated."))
        headers: dict[str, str] = {}
        if cfg.rate_limit:
            allowed, remaining, reset = self._limiter.hit(token)
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
            error = render.error_body(500, "Server Error")
            answer = web.Response(body=error, content_type=_JSON, headers=headers)
            return self._observe(request, auth, fault, answer)
        if fault == "html_error":
            page = web.Response(
                status=502, body=render.PROXY_PAGE, content_type="text/html", headers=headers
            )
            return self._observe(request, auth, fault, page)
        if fault == "truncated":
            cut = body[: max(1, len(body) * 2 // 3)]
            answer = web.Response(body=cut, content_type=_JSON, headers=headers)
            return self._observe(request, auth, fault, answer)
        # "reset" and "stall": headers and half the body, then the connection is cut.
        self._observe(request, auth, fault, web.Response(status=200))
        response = web.StreamResponse(
            headers={"Content-Type": _JSON, "Content-Length": str(len(body)), **headers}
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

    # -- the report body -----------------------------------------------------------

    def _render(self, request: web.Request, report: Report) -> bytes:
        cfg = self.config
        query = request.query
        now = self.now()
        start, end = parse_range(query.get(DATE_PARAMS[report]), now=now)
        self._report_requests += 1
        if cfg.live_every and self._report_requests % cfg.live_every == 0 and start <= end:
            self._arrive(report, start, min(end, max(start, now)))
        encoded = self._encoded(report, start, end)
        total = len(encoded.rows)
        origin = f"{request.scheme}://{request.host}"
        if cfg.shape is Shape.BARE_LIST:
            return render.bare_list(self._page_rows(encoded, 0, total, origin))
        paging = render.Paging.from_query(
            query, total, default=cfg.per_page_default, maximum=cfg.per_page_max
        )
        rows = self._page_rows(encoded, paging.first, paging.stop, origin)
        path = render.links_path(origin, report, cfg.shape)
        if cfg.shape is Shape.PAGINATOR:
            return render.paginator(rows, paging, path)
        return render.resource(rows, paging, path)

    def _page_rows(
        self, encoded: render.EncodedRecords, first: int, stop: int, origin: str
    ) -> list[bytes]:
        rows, paths = encoded.slice(first, stop)
        if not any(paths):
            return rows
        return render.sign_audio(rows, paths, self.storage.signer(origin, self._utc_now()))

    def _encoded(
        self, report: Report, start: dt.datetime, end: dt.datetime
    ) -> render.EncodedRecords:
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
        encoded = render.encode_records(records, seed=self.config.seed)
        self._cache[key] = encoded
        if len(self._cache) > _CACHED_RANGES:
            self._cache.popitem(last=False)
        return encoded

    def _arrive(self, report: Report, start: dt.datetime, end: dt.datetime) -> WireRecord:
        rng = random.Random(f"{self.config.seed}:arrival:{self._report_requests}")
        span = int((end - start).total_seconds())
        moment = start + dt.timedelta(seconds=rng.randint(0, max(0, span)))
        return self.dataset.add_live(report, moment, self._report_requests)


def _credentials(request: web.Request) -> tuple[str | None, str | None]:
    """Return how the token came (see ``ObservedRequest.auth``) and the token."""
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


def _api_traces(request: web.Request, token: str) -> list[str]:
    """Name what in a storage request belongs to the API: its token or its headers."""
    headers = request.headers
    traces = [name for name in ("Authorization", "X-Api-Key") if name in headers]
    if "json" in headers.get("Accept", "").lower():
        traces.append("Accept")
    if "voiceapi" in headers.get("User-Agent", "").lower():
        traces.append("User-Agent")
    traces.extend(name for name in _TOKEN_PARAMS if name in request.query)
    if token and any(token in value for value in headers.values()):
        traces.append("token")
    return traces


def _request_key(request: web.Request) -> str:
    """Return the request's path and sorted query without the token: what faults follow."""
    params = sorted((k, v) for k, v in request.query.items() if k not in _TOKEN_PARAMS)
    return request.path + "?" + "&".join(f"{k}={v}" for k, v in params)


def _redirect(location: str) -> web.Response:
    # A plain response, not web.HTTPFound: returning an HTTPException from a handler
    # is deprecated in aiohttp and breaks the connection where warnings are errors.
    return web.Response(
        status=302,
        body=render.redirect_page(location),
        content_type="text/html",
        headers={"Location": location},
    )


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = render.error_body(status, message)
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

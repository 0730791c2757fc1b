"""The one place that speaks HTTP: session, limits, timeouts and retries.

Every request of a client goes through :meth:`Transport.get_page`: it takes a slot
of the in-flight limit, waits out a server-requested pause (a 429 pauses the whole
client) and the pacer's spacing (:mod:`voiceapi_async._pacing`: the quota the
server announces, the ``rate_limit`` cap), sends the request with per-attempt
timeouts, tells the pacer the answer's rate-limit headers, deciphers the answer,
and retries what is worth retrying with jittered exponential backoff (stamina),
bounded by attempts and a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

import aiohttp
import attrs
import stamina
import yarl
from aiohttp.http_exceptions import ContentEncodingError

from voiceapi_async._config import ClientConfig
from voiceapi_async._errors import (
    RateLimitError,
    RequestTimeoutError,
    ResponseFormatError,
    TransportError,
    VoiceAPIError,
)
from voiceapi_async._pacing import DEFAULT_PER_MINUTE, Pacer, Ticket
from voiceapi_async._protocol import PageData, RequestSpec, decipher, retry_after_seconds
from voiceapi_async._redact import redact

logger = logging.getLogger("voiceapi_async")
logger.addHandler(logging.NullHandler())
# stamina reports each scheduled retry on its own logger; without this, an
# application that never configured logging would see them on stderr.
logging.getLogger("stamina").addHandler(logging.NullHandler())

_DEFAULT_RETRY_AFTER = 1.0
_EXCERPT_BYTES = 1024


@attrs.define
class TransportCounts:
    """What the transport counts as it sends: only it writes these."""

    requests: int = 0
    """HTTP requests sent (attempts, retries included)."""
    retries: int = 0
    """Attempts that were retries."""
    rate_limited: int = 0
    """429 answers received."""
    bytes: int = 0
    """Response body bytes received."""
    paced_seconds: float = 0.0
    """Seconds requests waited for the token's quota (pacing and the ``rate_limit``
    cap), summed over requests; waits after a 429 are not included."""


class Transport:
    """Owns the aiohttp session (or borrows the caller's) and every request's limits."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        self._config = config
        self._session = session
        self._owns_session = session is None
        self._trace_configs = list(trace_configs)
        self._slots = asyncio.Semaphore(config.max_in_flight)
        self._pacer = _pacer(config)
        self._paused_until = 0.0
        self._secrets = (config.token,)
        self._timeout = aiohttp.ClientTimeout(
            total=config.attempt_timeout,
            connect=config.connect_timeout,
            sock_read=config.read_timeout,
        )
        self.counts = TransportCounts()

    @property
    def has_open_session(self) -> bool:
        """Whether a session this transport owns is open."""
        return self._owns_session and self._session is not None and not self._session.closed

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._config.max_in_flight, limit_per_host=self._config.max_in_flight
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=self._config.trust_env,
                trace_configs=self._trace_configs or None,
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session if this transport created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def get_page(self, spec: RequestSpec, *, bulk: bool | None = None) -> PageData:
        """Fetch and decipher one page, retrying transient failures.

        The first attempt goes straight out; only a retryable failure enters the
        retry loop (stamina), which replays that failure to schedule the first retry.
        ``bulk`` paces it as bulk work (None: the client's ``bulk`` setting).

        Raises:
            VoiceAPIError: the typed error of the last attempt, or a non-retryable one.
        """
        bulk = self._config.bulk if bulk is None else bulk
        started = time.monotonic()
        try:
            return await self._attempt(spec, bulk)
        except VoiceAPIError as exc:
            if not exc.retryable:
                raise
            first_failure = exc
        policy = self._config.retry
        timeout = policy.deadline - (time.monotonic() - started)
        if timeout <= 0:
            self._backoff(first_failure)  # no retry, but a 429 still pauses the client
            raise first_failure
        failure: VoiceAPIError | None = first_failure
        async for attempt in stamina.retry_context(
            on=self._backoff,
            attempts=policy.attempts,
            timeout=timeout,
            wait_initial=policy.wait_initial,
            wait_max=policy.wait_max,
            wait_jitter=policy.wait_jitter,
        ):
            with attempt:
                if failure is not None:
                    error, failure = failure, None
                    raise error
                self.counts.retries += 1
                return await self._attempt(spec, bulk)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _backoff(self, exc: Exception) -> bool | float:
        """Decide a retry for stamina: ``False`` (none), ``True`` (backoff) or seconds.

        A 429 waits its ``Retry-After`` cut to ``max_retry_after``, or 1 s (also cut)
        when the header is absent or unusable: never no wait because of a bad header.
        """
        if not isinstance(exc, VoiceAPIError) or not exc.retryable:
            return False
        if isinstance(exc, RateLimitError):
            wait = self._retry_wait(exc.retry_after)
            self._paused_until = max(self._paused_until, time.monotonic() + wait)
            logger.warning("rate limited: pausing every request for %.1fs", wait)
            return wait
        logger.info("retrying after %s", exc)
        return True

    async def _wait_turn(self, bulk: bool) -> Ticket | None:
        """Wait out a 429 pause and the pacer, then take the pacer's ticket."""
        pacer = self._pacer
        while True:
            # A 429 seen while sleeping moves the deadline: re-check after each sleep.
            if (delay := self._paused_until - time.monotonic()) > 0:
                await asyncio.sleep(delay)
                continue
            if pacer is None:
                return None
            if (delay := pacer.delay(bulk=bulk)) > 0:
                await asyncio.sleep(delay)
                self.counts.paced_seconds += delay
                continue
            return pacer.issue(bulk=bulk)

    async def _attempt(self, spec: RequestSpec, bulk: bool) -> PageData:
        session = self._open_session()
        url = spec.encoded_url()  # errors redact it themselves; so does the debug log below
        async with self._slots:
            ticket = await self._wait_turn(bulk)
            self.counts.requests += 1
            started = time.monotonic()
            failure: VoiceAPIError | None = None
            try:
                async with session.request(
                    spec.method,
                    yarl.URL(url, encoded=True),
                    headers=dict(spec.headers),
                    allow_redirects=False,
                    timeout=self._timeout,
                ) as response:
                    status, headers = response.status, response.headers
                    if ticket is not None:
                        self._tell_pacer(ticket, status, headers)
                        ticket = None
                    body = await self._read_body(response, url)
            except TimeoutError:
                failure = RequestTimeoutError(
                    f"no complete answer within the attempt timeout "
                    f"({self._config.attempt_timeout:g}s, read {self._config.read_timeout:g}s)",
                    url=url,
                    secrets=self._secrets,
                )
            except aiohttp.ClientError as exc:
                if (reason := _undecodable(exc)) is not None:
                    # Corrupt or unasked-for compression: the same request gets the same body.
                    failure = ResponseFormatError(
                        f"response body cannot be decompressed ({reason})",
                        url=url,
                        secrets=self._secrets,
                    )
                else:
                    failure = TransportError(
                        f"{type(exc).__name__}: {exc}", url=url, secrets=self._secrets
                    )
            finally:
                if ticket is not None and self._pacer is not None:
                    self._pacer.abandoned(ticket)
        if failure is not None:
            # Raised outside the handler: aiohttp's error (which holds the request's
            # headers, token included) must not ride along as __context__.
            raise failure
        self.counts.bytes += len(body)
        if logger.isEnabledFor(logging.DEBUG):
            elapsed = (time.monotonic() - started) * 1000
            safe_url = redact(url, *self._secrets)
            logger.debug(
                "%s %s -> %d (%d bytes, %.0f ms)", spec.method, safe_url, status, len(body), elapsed
            )
        try:
            return decipher(status, headers, body, url=url, secrets=self._secrets, skimmed=True)
        except RateLimitError:
            self.counts.rate_limited += 1
            raise

    def _retry_wait(self, retry_after: float | None) -> float:
        """Return the wait a 429 asks for: its ``Retry-After`` (else 1 s), cut to the cap."""
        wait = retry_after if retry_after is not None else _DEFAULT_RETRY_AFTER
        return min(wait, self._config.retry.max_retry_after)

    def _tell_pacer(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        assert self._pacer is not None
        wait = None
        if status == 429:
            wait = self._retry_wait(retry_after_seconds(headers.get("Retry-After")))
        self._pacer.answered(
            ticket,
            status=status,
            limit=headers.get("X-RateLimit-Limit"),
            remaining=headers.get("X-RateLimit-Remaining"),
            retry_after=wait,
        )

    async def _read_body(self, response: aiohttp.ClientResponse, url: str) -> bytes:
        """Read the body, decompressed, failing as soon as it passes ``max_response_bytes``.

        ``readany`` keeps aiohttp's bounded inflation: each step inflates at most its
        read buffer (64 KiB by default), where ``read()`` would inflate whole network
        chunks without limit.
        """
        limit = self._config.max_response_bytes
        announced = response.content_length
        if (
            announced is not None
            and announced > limit
            and not response.headers.get("Content-Encoding")
        ):
            response.close()
            raise self._too_large(f"announces {announced} bytes (Content-Length)", url, b"")
        content = response.content
        chunks: list[bytes] = []
        size = 0
        while chunk := await content.readany():
            size += len(chunk)
            if size > limit:
                response.close()
                start = chunks[0] if chunks else chunk
                raise self._too_large(f"passed {size} bytes", url, start[:_EXCERPT_BYTES])
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, what: str, url: str, start: bytes) -> ResponseFormatError:
        return ResponseFormatError(
            f"response body {what}, more than max_response_bytes "
            f"({self._config.max_response_bytes} bytes; raise it only if the server "
            f"really sends pages this large)",
            url=url,
            body=start,
            secrets=self._secrets,
        )


def _undecodable(exc: BaseException) -> str | None:
    """Return aiohttp's reason when ``exc`` comes from a body it could not decompress."""
    cause: BaseException | None = exc
    for _ in range(8):  # aiohttp wraps it twice at most; a cycle must not hang
        if cause is None:
            break
        if isinstance(cause, ContentEncodingError):
            return str(cause.message)
        cause = cause.__cause__ or cause.__context__
    return None


def _pacer(config: ClientConfig) -> Pacer | None:
    """Return the client's pacer, or None with ``rate_limit=0`` (no pacing at all)."""
    cap = config.rate_limit
    if cap == 0:
        return None
    return Pacer(
        window=config.rate_window,
        per_minute=DEFAULT_PER_MINUTE if cap is None else cap,
        cap=cap,
        burst=config.max_in_flight,
    )

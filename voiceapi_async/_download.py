"""Audio downloads: the storage's own session, limits, timeouts and retries.

Storage is not the API. Downloads go through their own aiohttp session and
connector, with no default headers: never the token, ``Accept`` or the client's
``User-Agent``; their own in-flight limit (``audio_max_in_flight``), their own
timeouts and their own retries; nothing counts against the API's rate limit.

Each file is streamed in chunks to a temporary file beside its destination,
hashed as it arrives, checked against ``Content-Length`` and the size limit,
flushed to disk and renamed into place: a partial file is never visible.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from pathlib import Path
from typing import IO

import aiohttp
import attrs
import stamina
import yarl

from voiceapi_async._config import ClientConfig
from voiceapi_async._errors import AudioError, AudioExpiredError, AudioTooLargeError
from voiceapi_async._redact import redact

logger = logging.getLogger("voiceapi_async")

CHUNK_BYTES = 256 * 1024
"""The most bytes read from the network and written to disk at once."""
_ERROR_BODY_BYTES = 4096
_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MAX_REDIRECTS = 3
_HEADERS = {"Accept-Encoding": "identity"}
"""The only header sent: the bytes on the wire are the file (Content-Length counts them)."""


@attrs.frozen
class Downloaded:
    """A file written in full: its size and SHA-256 (hex)."""

    size: int
    sha256: str


class StorageClient:
    """Downloads presigned URLs to files, with the storage's own limits and retries."""

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(config.audio_max_in_flight)
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=config.connect_timeout, sock_read=config.audio_timeout
        )

    @property
    def has_open_session(self) -> bool:
        """Whether this client's storage session is open."""
        return self._session is not None and not self._session.closed

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            limit = self._config.audio_max_in_flight
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit),
                trust_env=self._config.trust_env,
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def aclose(self) -> None:
        """Close the storage session (idempotent)."""
        if self._session is not None:
            await self._session.close()

    async def download(
        self, url: str, target: Path, *, recording_id: str, temp_dir: Path | None = None
    ) -> Downloaded:
        """Download ``url`` to ``target``, retrying 5xx, resets, stalls and cut bodies.

        The temporary file goes beside ``target``, or to ``temp_dir`` (which must be
        on the same file system).

        Raises:
            AudioExpiredError: storage answered that the link has expired (not retried).
            AudioTooLargeError: the file passes ``audio_max_bytes`` (not retried).
            AudioError: any other failure, after the retry policy's attempts.
        """
        policy = self._config.retry
        async for attempt in stamina.retry_context(
            on=_worth_retrying,
            attempts=policy.attempts,
            timeout=None,
            wait_initial=policy.wait_initial,
            wait_max=policy.wait_max,
            wait_jitter=policy.wait_jitter,
        ):
            with attempt:
                return await self._attempt(url, target, recording_id, temp_dir)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    async def _attempt(
        self, url: str, target: Path, recording_id: str, temp_dir: Path | None
    ) -> Downloaded:
        def fail(message: str, *, status: int | None = None, retryable: bool = False) -> AudioError:
            return AudioError(
                message, recording_id=recording_id, url=url, status=status, retryable=retryable
            )

        async with self._slots:
            session = self._open_session()
            try:
                async with session.get(
                    yarl.URL(url, encoded=True),
                    headers=_HEADERS,
                    max_redirects=_MAX_REDIRECTS,
                    timeout=self._timeout,
                ) as response:
                    if response.status != 200:
                        raise await _status_error(response, url, recording_id)
                    temporary = _temporary(target, temp_dir)
                    return await self._stream(response, target, temporary, url, recording_id)
            except TimeoutError:
                raise fail(
                    f"storage sent nothing for {self._config.audio_timeout:g}s "
                    "(audio_timeout) or did not connect in time",
                    retryable=True,
                ) from None
            except aiohttp.ClientError as exc:
                raise fail(f"{type(exc).__name__}: {exc}", retryable=True) from None

    async def _stream(
        self,
        response: aiohttp.ClientResponse,
        target: Path,
        temporary: Path,
        url: str,
        recording_id: str,
    ) -> Downloaded:
        limit = self._config.audio_max_bytes
        announced = response.content_length
        if announced is not None and announced > limit:
            raise _too_large(f"announces {announced} bytes", limit, url, recording_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        # Local writes of a chunk take microseconds; only fsync goes to a thread.
        handle = open(temporary, "wb")  # noqa: ASYNC230, SIM115 - closed by _finish or below
        try:
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise _too_large(f"passed {size} bytes", limit, url, recording_id)
                digest.update(chunk)
                handle.write(chunk)
            if announced is not None and size != announced:
                raise AudioError(
                    f"storage sent {size} of the {announced} bytes it announced",
                    recording_id=recording_id,
                    url=url,
                    retryable=True,
                )
            await _off_loop(handle, temporary, target)
        except BaseException:
            if not handle.closed:
                handle.close()
            temporary.unlink(missing_ok=True)  # noqa: ASYNC240 - must run even when cancelled
            raise
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("audio %s -> %s (%d bytes)", redact(url), target, size)
        return Downloaded(size, digest.hexdigest())


def _temporary(target: Path, temp_dir: Path | None) -> Path:
    """Return a fresh temporary path: hidden beside ``target``, or in ``temp_dir``."""
    unique = uuid.uuid4().hex[:12]
    if temp_dir is None:
        return target.with_name(f".{target.name}.{unique}.part")
    return temp_dir / f"{unique}.{target.name}.part"


async def _off_loop(handle: IO[bytes], temporary: Path, target: Path) -> None:
    """Flush, fsync and rename in a thread; a cancelled caller still waits for it to end.

    Waiting keeps the file's fate decided before cleanup runs: either the rename
    happened (the file is complete) or the temporary file is removed.
    """
    done = asyncio.get_running_loop().run_in_executor(None, _finish, handle, temporary, target)
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        await asyncio.wait({done})
        raise


def _finish(handle: IO[bytes], temporary: Path, target: Path) -> None:
    try:
        handle.flush()
        os.fsync(handle.fileno())
    finally:
        handle.close()
    os.replace(temporary, target)
    descriptor = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _worth_retrying(exc: Exception) -> bool:
    return isinstance(exc, AudioError) and exc.retryable


def _too_large(what: str, limit: int, url: str, recording_id: str) -> AudioTooLargeError:
    return AudioTooLargeError(
        f"the audio file {what}, more than audio_max_bytes ({limit} bytes); nothing was kept",
        recording_id=recording_id,
        url=url,
    )


def is_expiry_answer(status: int, body: bytes) -> bool:
    """Whether a storage answer says the presigned link has expired (S3's 403)."""
    text = body.decode("utf-8", "replace").lower()
    return status in (400, 403) and (
        "request has expired" in text or "<code>expiredtoken</code>" in text
    )


async def _status_error(
    response: aiohttp.ClientResponse, url: str, recording_id: str
) -> AudioError:
    status = response.status
    try:
        body = await response.content.read(_ERROR_BODY_BYTES)
    except (aiohttp.ClientError, TimeoutError):
        body = b""
    if is_expiry_answer(status, body):
        return AudioExpiredError(
            "storage answered that the link has expired",
            recording_id=recording_id,
            url=url,
            status=status,
        )
    code = _s3_code(body)
    detail = f" ({code})" if code else ""
    return AudioError(
        f"storage answered HTTP {status}{detail}",
        recording_id=recording_id,
        url=url,
        status=status,
        retryable=status in _RETRYABLE_STATUSES,
    )


def _s3_code(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    start = text.find("<Code>")
    end = text.find("</Code>", start)
    if start < 0 or end < 0:
        return ""
    return redact(text[start + len("<Code>") : end])[:64]

"""FastAPI integration: one long-lived client, streamed responses, mapped errors.

Needs the ``fastapi`` extra (``pip install 'voiceapi-async[fastapi]'``)::

    app = FastAPI(lifespan=voice_client_lifespan())
    install_error_handlers(app)

    @app.get("/calls")
    async def calls(start: date, end: date, client: VoiceClient = Depends(get_voice_client)):
        return await ndjson_response(open_stream(lambda: client.calls(start, end)))

The lifespan opens one :class:`~voiceapi_async.VoiceClient` for the application (its
session, in-flight limit and rate limiter are shared by every request) and closes
it at shutdown. The responses fetch lazily, and stop fetching the moment the HTTP
client disconnects.

Errors map to HTTP answers through :data:`DEFAULT_ERROR_STATUSES` (override by
passing your own mapping to :func:`install_error_handlers`):

==========================================  ======  ===============================
client error                                status  body / headers
==========================================  ======  ===============================
bad range (``ValueError``/``TypeError``)    422     the reason
``AuthenticationError``, ``PermissionDenied``  502  "upstream authentication failed"
``RateLimitError``                          503     ``Retry-After`` when known
``RequestTimeoutError``                     504     "upstream timed out"
``TransportError``, ``ServerError``, other  502     "upstream failed"
==========================================  ======  ===============================

Messages never carry the token (the client's errors are redacted already).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from voiceapi_async import (
    AuthenticationError,
    ClientConfig,
    PermissionDeniedError,
    RateLimitError,
    RecordStream,
    RequestTimeoutError,
    VoiceAPIError,
    VoiceClient,
)
from voiceapi_async.export import Csv, ExportFormat, JsonLines, sort_records

__all__ = [
    "DEFAULT_ERROR_STATUSES",
    "RecordStreamResponse",
    "csv_response",
    "error_response",
    "get_voice_client",
    "install_error_handlers",
    "ndjson_response",
    "open_stream",
    "voice_client_lifespan",
]

DEFAULT_ERROR_STATUSES: Mapping[type[VoiceAPIError], tuple[int, str]] = {
    AuthenticationError: (502, "upstream authentication failed"),
    PermissionDeniedError: (502, "upstream authentication failed"),
    RateLimitError: (503, "upstream rate limit reached; try again later"),
    RequestTimeoutError: (504, "upstream timed out"),
    VoiceAPIError: (502, "upstream failed"),
}
"""Client error type → (HTTP status, message). The most specific type listed wins."""

_STATE_KEY = "voice_client"


def voice_client_lifespan(
    config: ClientConfig | Callable[[], ClientConfig] = ClientConfig.from_env,
    **client_options: Any,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Return a FastAPI ``lifespan`` that opens one client for the app and closes it.

    Args:
        config: a config, or a callable returning one (default: from ``VOICEAPI_*``).
        **client_options: passed to :class:`~voiceapi_async.VoiceClient`.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = config() if callable(config) else config
        async with VoiceClient(resolved, **client_options) as client:
            setattr(app.state, _STATE_KEY, client)
            try:
                yield
            finally:
                delattr(app.state, _STATE_KEY)

    return lifespan


def get_voice_client(request: Request) -> VoiceClient:
    """FastAPI dependency: the application's client (from :func:`voice_client_lifespan`)."""
    client = getattr(request.app.state, _STATE_KEY, None)
    if not isinstance(client, VoiceClient):
        raise RuntimeError("no VoiceClient: create the app with lifespan=voice_client_lifespan()")
    return client


def open_stream(factory: Callable[[], RecordStream[Any]]) -> RecordStream[Any]:
    """Call ``factory`` and turn a bad range into an HTTP 422 with the reason."""
    try:
        return factory()
    except (ValueError, TypeError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


class RecordStreamResponse(StreamingResponse):
    """A streamed response that owns a record stream and closes it however it ends.

    It listens for the HTTP client's disconnect while streaming, so a client that
    goes away stops the upstream fetching at once, even between two pages.
    """

    def __init__(
        self, stream: RecordStream[Any], body: AsyncIterator[bytes], media_type: str
    ) -> None:
        super().__init__(body, media_type=media_type)
        self.record_stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream until done or disconnected; always close the record stream."""

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        try:
            streaming = asyncio.ensure_future(self.stream_response(send))
            watching = asyncio.ensure_future(watch_disconnect())
            try:
                await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (streaming, watching):
                    task.cancel()
                await asyncio.wait({streaming, watching})
            if streaming.done() and not streaming.cancelled():
                with contextlib.suppress(OSError):
                    streaming.result()
        finally:
            await self.record_stream.aclose()


async def ndjson_response(stream: RecordStream[Any]) -> RecordStreamResponse:
    """Stream records as NDJSON (one export row a line, :mod:`voiceapi_async.export`).

    The first page is fetched before the response starts, so an upstream failure
    still becomes a proper HTTP error (see :func:`install_error_handlers`).
    """
    return await _response(stream, JsonLines(), "application/x-ndjson")


async def csv_response(stream: RecordStream[Any]) -> RecordStreamResponse:
    """Stream records as CSV with one header row (the backfill's columns), even when empty."""
    return await _response(stream, Csv(), "text/csv; charset=utf-8")


async def _response(
    stream: RecordStream[Any], export_format: ExportFormat, media_type: str
) -> RecordStreamResponse:
    pages = stream.pages()
    try:
        first = await anext(pages, None)
    except BaseException:
        await stream.aclose()
        raise
    buffer = io.BytesIO()
    writer = export_format.open(buffer, stream.report)

    def drain() -> bytes:
        data = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return data

    async def body() -> AsyncIterator[bytes]:
        if first is not None:
            writer.write(sort_records(first.records))
            yield drain()
            async for page in pages:
                writer.write(sort_records(page.records))
                if chunk := drain():
                    yield chunk
        writer.close()
        if chunk := drain():
            yield chunk

    return RecordStreamResponse(stream, body(), media_type)


def error_response(
    exc: VoiceAPIError,
    statuses: Mapping[type[VoiceAPIError], tuple[int, str]] = DEFAULT_ERROR_STATUSES,
) -> JSONResponse:
    """Return the HTTP answer for a client error, by the most specific mapped type."""
    for cls in type(exc).__mro__:
        if cls in statuses:
            status, message = statuses[cls]
            break
    else:
        status, message = 502, "upstream failed"
    headers = {}
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    detail = {"detail": message, "error": type(exc).__name__}
    return JSONResponse(detail, status_code=status, headers=headers)


def install_error_handlers(
    app: FastAPI, statuses: Mapping[type[VoiceAPIError], tuple[int, str]] = DEFAULT_ERROR_STATUSES
) -> None:
    """Answer every client error raised in a handler with its mapped status."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VoiceAPIError)
        return error_response(exc, statuses)

    app.add_exception_handler(VoiceAPIError, handle)

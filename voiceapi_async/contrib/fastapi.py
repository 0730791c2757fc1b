"""FastAPI integration: one long-lived client, streamed responses, mapped errors.

Needs the ``fastapi`` extra (``pip install 'voiceapi-async[fastapi]'``)::

    app = FastAPI(lifespan=voice_client_lifespan())
    install_error_handlers(app)

    @app.get("/calls")
    async def calls(start: date, end: date, client: VoiceClient = Depends(get_voice_client)):
        return await ndjson_response(open_stream(lambda: client.calls(start, end)))

The lifespan opens one :class:`~voiceapi_async.VoiceClient` for the application (its
session, in-flight limit and rate pacer are shared by every request) and closes
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

A range longer than the client's ``max_days`` (:class:`~voiceapi_async.ClientConfig`,
``VOICEAPI_MAX_DAYS``, default 3660 days) is a 422 naming the limit, answered before
anything is fetched; checking a range takes the same time for a day as for a
millennium. A web app usually wants a tighter limit:
``voice_client_lifespan(max_days=92)``.

**A failure after the response started** (the status line is sent once the first
page is in, so an upstream error on a later page) cannot change the status any more.
The body then ends with one error line, after the last complete record, and the
response is aborted: the server closes the connection without the final chunk, so
an HTTP client sees an incomplete body (aiohttp: ``ClientPayloadError``; curl: exit
18), never a clean end. The error line is, for NDJSON, a JSON object with a single
key ``error``::

    {"error": {"type": "ServerError", "status": 502, "message": "upstream failed"}}

and for CSV, a row whose first field is ``#error`` (no record id starts with ``#``)::

    #error,ServerError,502,upstream failed

``type`` is the client error's class (``InternalError`` for anything else),
``status`` and ``message`` what :data:`DEFAULT_ERROR_STATUSES` (or the mapping given)
says for it. The failure is logged on this module's logger: a warning for a client
error, an error with its traceback for anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
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
    "ErrorStatuses",
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

logger = logging.getLogger(__name__)

ErrorStatuses = Mapping[type[VoiceAPIError], tuple[int, str]]
"""Client error type → (HTTP status, message), as in :data:`DEFAULT_ERROR_STATUSES`."""


def voice_client_lifespan(
    config: ClientConfig | Callable[[], ClientConfig] = ClientConfig.from_env,
    **client_options: Any,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Return a FastAPI ``lifespan`` that opens one client for the app and closes it.

    Args:
        config: a config, or a callable returning one (default: from ``VOICEAPI_*``).
        **client_options: passed to :class:`~voiceapi_async.VoiceClient`; config fields
            given here override the config's, e.g. ``max_days=92`` for the longest
            range a request may ask for.
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


class _AbortedError(Exception):
    """The body ended with an error line: the response must not end cleanly."""


class RecordStreamResponse(StreamingResponse):
    """A streamed response that owns a record stream and closes it however it ends.

    It listens for the HTTP client's disconnect while streaming, so a client that
    goes away stops the upstream fetching at once, even between two pages. When the
    body fails after the response started, it returns without the response's final
    message, which makes the server abort the connection.
    """

    def __init__(
        self, stream: RecordStream[Any], body: AsyncIterator[bytes], media_type: str
    ) -> None:
        super().__init__(body, media_type=media_type)
        self.record_stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream until done, failed or disconnected; always close the record stream."""

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
                with contextlib.suppress(OSError, _AbortedError):
                    streaming.result()
        finally:
            await self.record_stream.aclose()


async def ndjson_response(
    stream: RecordStream[Any], *, statuses: ErrorStatuses = DEFAULT_ERROR_STATUSES
) -> RecordStreamResponse:
    """Stream records as NDJSON (one export row a line, :mod:`voiceapi_async.export`).

    The first page is fetched before the response starts, so an upstream failure
    still becomes a proper HTTP error (see :func:`install_error_handlers`). A later
    failure ends the body with one error line and aborts it (see the module's notes).
    """
    return await _response(stream, JsonLines(), "application/x-ndjson", _ndjson_error, statuses)


async def csv_response(
    stream: RecordStream[Any], *, statuses: ErrorStatuses = DEFAULT_ERROR_STATUSES
) -> RecordStreamResponse:
    """Stream records as CSV with one header row (the backfill's columns), even when empty.

    A failure after the response started ends the body with one ``#error`` row and
    aborts it (see the module's notes).
    """
    return await _response(stream, Csv(), "text/csv; charset=utf-8", _csv_error, statuses)


_ErrorLine = Callable[[str, int, str], bytes]


def _ndjson_error(kind: str, status: int, message: str) -> bytes:
    line = {"error": {"type": kind, "status": status, "message": message}}
    return json.dumps(line).encode() + b"\n"


def _csv_error(kind: str, status: int, message: str) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(["#error", kind, status, message])
    return text.getvalue().encode()


async def _response(
    stream: RecordStream[Any],
    export_format: ExportFormat,
    media_type: str,
    error_line: _ErrorLine,
    statuses: ErrorStatuses,
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
        try:
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
        except Exception as exc:
            drain()  # a page that failed half-written is dropped whole
            yield error_line(*_failed_after_start(exc, stream, statuses))
            raise _AbortedError from None

    return RecordStreamResponse(stream, body(), media_type)


def _failed_after_start(
    exc: Exception, stream: RecordStream[Any], statuses: ErrorStatuses
) -> tuple[str, int, str]:
    """Log a failure after the response started; return its (type, status, message)."""
    if isinstance(exc, VoiceAPIError):
        status, message = _status_of(exc, statuses)
        logger.warning(
            "%r failed after the response started (%s, aborting the response): %s",
            stream,
            type(exc).__name__,
            exc,
        )
        return type(exc).__name__, status, message
    logger.error("%r failed after the response started", stream, exc_info=exc)
    return "InternalError", 500, "internal error"


def error_response(
    exc: VoiceAPIError, statuses: ErrorStatuses = DEFAULT_ERROR_STATUSES
) -> JSONResponse:
    """Return the HTTP answer for a client error, by the most specific mapped type."""
    status, message = _status_of(exc, statuses)
    headers = {}
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    detail = {"detail": message, "error": type(exc).__name__}
    return JSONResponse(detail, status_code=status, headers=headers)


def _status_of(exc: VoiceAPIError, statuses: ErrorStatuses) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in statuses:
            return statuses[cls]
    return 502, "upstream failed"


def install_error_handlers(app: FastAPI, statuses: ErrorStatuses = DEFAULT_ERROR_STATUSES) -> None:
    """Answer every client error raised in a handler with its mapped status."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VoiceAPIError)
        return error_response(exc, statuses)

    app.add_exception_handler(VoiceAPIError, handle)

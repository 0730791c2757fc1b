"""FastAPI integration: one long-lived client, streamed responses, mapped errors.

Needs the ``fastapi`` extra (``pip install 'voiceapi-async[fastapi]'``)::

    app = FastAPI(lifespan=voice_client_lifespan())
    install_error_handlers(app)

    @app.get("/calls", **stream_route(Report.CALLS))
    async def calls(start: date, end: date, client: VoiceClient = Depends(get_voice_client)):
        return await ndjson_response(open_stream(lambda: client.calls(start, end)))

The lifespan reads the client's settings from ``VOICEAPI_*`` (``ClientConfig.from_env``):
``VOICEAPI_BASE_URL``, ``VOICEAPI_TOKEN`` and the account's time zone,
``VOICEAPI_TIMEZONE`` (in the account's settings in the provider's dashboard), are
required; without one, the application fails at startup with a
:class:`~voiceapi_async.ConfigError` saying which and where to find it.

The lifespan opens one :class:`~voiceapi_async.VoiceClient` for the application (its
session, in-flight limit and rate limiter are shared by every request) and closes
it at shutdown. The responses fetch lazily, and stop fetching the moment the HTTP
client disconnects.

**One error body.** :func:`install_error_handlers` answers every error with one
JSON shape, :class:`ErrorBody`::

    {"error": {"code": "invalid_request", "status": 422, "message": "...", "details": [...]}}

``code`` is machine-readable, ``details`` lists what FastAPI's request validation
found (``type``, ``loc``, ``message``; empty otherwise). Client errors map to HTTP
answers through :data:`DEFAULT_ERROR_STATUSES` (override by passing your own
mapping to :func:`install_error_handlers`):

==================================================  ======  =================================
error                                               status  code, message / headers
==================================================  ======  =================================
a parameter FastAPI cannot read                     422     ``invalid_request``, with details
bad range (:func:`open_stream`)                     422     ``invalid_range``, the reason
``AuthenticationError``, ``PermissionDeniedError``  502     "upstream authentication failed"
``RateLimitError``                                  503     ``Retry-After`` when known
``RequestTimeoutError``                             504     "upstream timed out"
``TransportError``, ``ServerError``, other          502     "upstream failed"
any other ``HTTPException``                         its     the status's name (``not_found``)
an unhandled exception                              500     ``internal_error``
==================================================  ======  =================================

A client error's code is ``upstream_`` and its class in snake case
(``upstream_server_error``, ``upstream_rate_limit_error``). Messages never carry the
token (the client's errors are redacted already).

**OpenAPI.** ``@app.get(path, **stream_route(Report.CALLS))`` documents a streamed
route as FastAPI users expect: ``application/x-ndjson`` (one ``CallRow`` a line)
and ``text/csv`` for 200, and the 422, 502, 503 and 504 answers with their
``ErrorBody``; :func:`error_responses` documents the errors of a JSON route. The row
schemas (``CallRow``, ``RecordingRow``, from :data:`voiceapi_async.export.COLUMNS`)
and ``ErrorBody`` are added to the document's components by
:func:`install_error_handlers`.

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

    {"error": {"code": "upstream_server_error", "status": 502,
               "message": "upstream failed", "details": []}}

(an :class:`ErrorBody`, like every error answer) and for CSV, a row whose first
field is ``#error`` (no record id starts with ``#``)::

    #error,upstream_server_error,502,upstream failed

``code`` names the client error (``internal_error`` for anything else), ``status``
and ``message`` what :data:`DEFAULT_ERROR_STATUSES` (or the mapping given) says for
it. The failure is logged on this module's logger: a warning for a client
error, an error with its traceback for anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import http
import io
import logging
import math
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from voiceapi_async import (
    AuthenticationError,
    ClientConfig,
    PermissionDeniedError,
    RateLimitError,
    RecordStream,
    Report,
    RequestTimeoutError,
    VoiceAPIError,
    VoiceClient,
)
from voiceapi_async.export import COLUMNS, JSON_COLUMNS, Csv, ExportFormat, JsonLines, sort_records

__all__ = [
    "DEFAULT_ERROR_STATUSES",
    "ErrorBody",
    "ErrorDetail",
    "ErrorInfo",
    "ErrorStatuses",
    "InvalidRangeError",
    "RecordStreamResponse",
    "csv_response",
    "error_body",
    "error_response",
    "error_responses",
    "get_voice_client",
    "install_error_handlers",
    "ndjson_response",
    "open_stream",
    "row_schema",
    "stream_route",
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


class ErrorDetail(BaseModel):
    """One thing wrong with a request: its kind, where it is and what it is."""

    type: str = Field(
        description="the kind of problem, e.g. FastAPI's 'date_from_datetime_parsing'"
    )
    loc: list[str | int] = Field(
        default_factory=list, description="where: ['query', 'from'] for a query parameter"
    )
    message: str


class ErrorInfo(BaseModel):
    """What went wrong: a machine-readable code, the HTTP status and a sentence."""

    code: str = Field(description="e.g. invalid_request, invalid_range, upstream_server_error")
    status: int = Field(description="the HTTP status of the answer")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every error answer's body (and a streamed body's last line when it fails)."""

    error: ErrorInfo


class InvalidRangeError(HTTPException):
    """A range the client refuses (reversed, too long, outside the calendar): HTTP 422.

    Its body's code is ``invalid_range`` and its message the client's reason.
    """

    code = "invalid_range"

    def __init__(self, message: str) -> None:
        super().__init__(status_code=422, detail=message)


def open_stream(factory: Callable[[], RecordStream[Any]]) -> RecordStream[Any]:
    """Call ``factory`` and turn a bad range into an :class:`InvalidRangeError` (422)."""
    try:
        return factory()
    except (ValueError, TypeError) as exc:
        raise InvalidRangeError(str(exc)) from None


class _AbortedError(Exception):
    """The body ended with an error line: the response must not end cleanly."""


class RecordStreamResponse(StreamingResponse):
    """A streamed response that owns a record stream and closes it however it ends.

    As a route's ``response_class`` (:func:`stream_route` sets it), it leaves the
    200 answer's media types to the route's ``responses`` instead of FastAPI's
    ``application/json``.

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


def _ndjson_error(code: str, status: int, message: str) -> bytes:
    return error_body(code, status, message).model_dump_json().encode() + b"\n"


def _csv_error(code: str, status: int, message: str) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(["#error", code, status, message])
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
    """Log a failure after the response started; return its (code, status, message)."""
    if isinstance(exc, VoiceAPIError):
        status, message = _status_of(exc, statuses)
        logger.warning(
            "%r failed after the response started (%s, aborting the response): %s",
            stream,
            type(exc).__name__,
            exc,
        )
        return _upstream_code(exc), status, message
    logger.error("%r failed after the response started", stream, exc_info=exc)
    return "internal_error", 500, "internal error"


def error_body(
    code: str, status: int, message: str, details: list[ErrorDetail] | None = None
) -> ErrorBody:
    """Return the one error body: ``{"error": {"code", "status", "message", "details"}}``."""
    info = ErrorInfo(code=code, status=status, message=message, details=details or [])
    return ErrorBody(error=info)


def _json_error(body: ErrorBody, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        body.model_dump(mode="json"), status_code=body.error.status, headers=headers
    )


def _upstream_code(exc: VoiceAPIError) -> str:
    """``upstream_`` and the client error's class in snake case: ``upstream_server_error``."""
    return "upstream_" + re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def error_response(
    exc: VoiceAPIError, statuses: ErrorStatuses = DEFAULT_ERROR_STATUSES
) -> JSONResponse:
    """Return the HTTP answer for a client error, by the most specific mapped type.

    Its body is an :class:`ErrorBody`; a rate limit's answer carries ``Retry-After``
    when the upstream said how long to wait.
    """
    status, message = _status_of(exc, statuses)
    headers = {}
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return _json_error(error_body(_upstream_code(exc), status, message), headers)


def _status_of(exc: VoiceAPIError, statuses: ErrorStatuses) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in statuses:
            return statuses[cls]
    return 502, "upstream failed"


def install_error_handlers(app: FastAPI, statuses: ErrorStatuses = DEFAULT_ERROR_STATUSES) -> None:
    """Answer every error with an :class:`ErrorBody`, and document it in the app's OpenAPI.

    Installs handlers for the client's errors (mapped by ``statuses``), FastAPI's
    request validation (422, ``invalid_request``, with details), every
    ``HTTPException`` (:class:`InvalidRangeError` included) and any other exception
    (500, ``internal_error``; the exception still reaches the server's log). Adds
    ``ErrorBody`` and the row schemas ``CallRow`` and ``RecordingRow`` to the OpenAPI
    document's components, which :func:`stream_route` and :func:`error_responses`
    refer to.
    """

    async def upstream(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VoiceAPIError)
        return error_response(exc, statuses)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            ErrorDetail(type=str(e.get("type", "")), loc=list(e.get("loc", ())), message=e["msg"])
            for e in exc.errors()
        ]
        message = "; ".join(f"{_where(d.loc)}: {d.message}" for d in details)
        return _json_error(error_body("invalid_request", 422, message, details))

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        phrase = _phrase(status)
        code = getattr(exc, "code", None) or re.sub(r"\W+", "_", phrase.lower()).strip("_")
        message = exc.detail if isinstance(exc.detail, str) else phrase
        return _json_error(error_body(code, status, message), exc.headers)

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        return _json_error(error_body("internal_error", 500, "internal error"))

    app.add_exception_handler(VoiceAPIError, upstream)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, refused)
    app.add_exception_handler(Exception, crashed)
    _add_components(app)


def _where(loc: list[str | int]) -> str:
    """``query from`` for ``['query', 'from']``: the parameter a detail is about."""
    return " ".join(str(part) for part in loc) or "request"


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


# -- OpenAPI ------------------------------------------------------------------------------

_REF = "#/components/schemas/{model}"
_ROW_NAMES = {Report.CALLS: "CallRow", Report.RECORDINGS: "RecordingRow"}
_IDENTITY = frozenset({"id", "call_from", "call_to"})


def _column_schema(column: str) -> dict[str, Any]:
    """The JSON Schema of one export column as :func:`voiceapi_async.export.json_row` writes it."""
    if column in JSON_COLUMNS:
        return {"description": "the record's raw JSON (presigned URLs in it cut to the address)"}
    if column.endswith("_seconds") or column == "pulsing":
        return {"type": "integer"}
    if column == "charges":
        return {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": "exact decimal"}
    if column.endswith("_at"):
        return {"type": ["string", "null"], "format": "date-time"}
    if column in _IDENTITY:
        return {"type": "string"}
    return {"type": ["string", "null"]}


def row_schema(report: Report | str) -> dict[str, Any]:
    """Return the JSON Schema of one row of ``report`` (an NDJSON line; a CSV row's columns).

    Its properties are :data:`voiceapi_async.export.COLUMNS` of the report, in order;
    every row has every column (``null`` where the record has no value).
    """
    report = Report(report)
    columns = COLUMNS[report]
    return {
        "title": _ROW_NAMES[report],
        "description": f"One {report} record as an export row (voiceapi_async.export.json_row).",
        "type": "object",
        "properties": {column: _column_schema(column) for column in columns},
        "required": list(columns),
    }


def _components() -> dict[str, Any]:
    _, definitions = models_json_schema([(ErrorBody, "serialization")], ref_template=_REF)
    schemas: dict[str, Any] = dict(definitions["$defs"])
    for report in Report:
        schemas[_ROW_NAMES[report]] = row_schema(report)
    return schemas


def _add_components(app: FastAPI) -> None:
    """Add the error and row schemas to the app's OpenAPI document, once built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in _components().items():
            schemas.setdefault(name, schema)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension


def _error(description: str, **extra: Any) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}}
    return {"description": description, "content": content, **extra}


def error_responses() -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI ``responses`` of a route's error answers: 422, 502, 503, 504.

    Pass it as a route's ``responses=`` (for streamed routes, :func:`stream_route`
    does); each answer's body is an ``ErrorBody`` (the schemas are added by
    :func:`install_error_handlers`).
    """
    retry_after = {
        "Retry-After": {
            "description": "seconds to wait, when the upstream said",
            "schema": {"type": "integer"},
        }
    }
    return {
        422: _error(
            "a parameter FastAPI cannot read (invalid_request), or a bad range (invalid_range)"
        ),
        502: _error("the upstream Voice API failed, or refused the application's token"),
        503: _error("the upstream Voice API's rate limit was reached", headers=retry_after),
        504: _error("the upstream Voice API timed out"),
    }


def stream_route(report: Report | str) -> dict[str, Any]:
    """Return the route options of a streamed report: ``@app.get(path, **stream_route(r))``.

    The route's OpenAPI then says what it streams: ``application/x-ndjson`` (one
    ``CallRow`` or ``RecordingRow`` a line) or ``text/csv`` (a header row, then one row
    a record), and the :func:`error_responses`. Its ``response_class`` is
    :class:`RecordStreamResponse`, which keeps FastAPI from announcing
    ``application/json``.
    """
    report = Report(report)
    row = {"$ref": _REF.format(model=_ROW_NAMES[report])}
    columns = ", ".join(COLUMNS[report])
    ok = {
        "description": (
            f"The {report} of the range, streamed: NDJSON, one {_ROW_NAMES[report]} a line, "
            f"or CSV with a header row ({columns}). A failure after the answer started "
            "ends the body with one error line (an ErrorBody, or a '#error' CSV row) and "
            "aborts it."
        ),
        "content": {
            "application/x-ndjson": {"itemSchema": row, "schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
    return {
        "response_class": RecordStreamResponse,
        "status_code": 200,
        "responses": {200: ok, **error_responses()},
    }

"""The exception tree of ``voiceapi_async``.

Every error the client raises on purpose derives from :class:`VoiceAPIError`::

    VoiceAPIError
    ├── TransportError            connection reset, DNS, TLS (retried)
    │   └── RequestTimeoutError   (retried)
    ├── APIStatusError            .status, .code, .message, .url (redacted), .body (truncated)
    │   ├── AuthenticationError   401, 3xx/HTML login page
    │   ├── PermissionDeniedError 403
    │   ├── NotFoundError         404
    │   ├── ValidationError       422, with .errors {field: [messages]}
    │   ├── RateLimitError        429, with .retry_after (retried)
    │   └── ServerError           5xx (retried)
    ├── ResponseFormatError       body is not JSON or not one of the three shapes
    ├── RecordError               a record cannot be structured: record id and field path
    ├── OutOfWindowError          a record lies outside the range it was fetched for
    ├── PagingError               the range changed while paging, or the paging numbers
    │                             cannot be true
    └── AudioError                a recording's audio could not be downloaded: .recording_id
        ├── AudioExpiredError     its link expired and renewing it did not help
        └── AudioTooLargeError    the file is larger than audio_max_bytes

Caller mistakes (an end before the start, a naive datetime, a closed client)
raise ``ValueError``, ``TypeError`` or ``RuntimeError`` instead; a missing setting
(the account's time zone, a ``VOICEAPI_*`` variable) is a :class:`ConfigError`, a
``ValueError``.

Messages and attributes never carry a secret: URLs and bodies are redacted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from voiceapi_async._redact import excerpt, redact


class ConfigError(ValueError):
    """A required setting is missing or unusable; the message says where to find it.

    Raised where the setting enters (``ClientConfig``, ``VoiceClient``,
    ``ClientConfig.from_env()``), before any request. Not a :class:`VoiceAPIError`:
    nothing was asked of the API.
    """


class VoiceAPIError(Exception):
    """Base class of every error raised by ``voiceapi_async``."""

    retryable: bool = False
    """Whether trying the same request again may succeed."""


class TransportError(VoiceAPIError):
    """The request did not get a complete answer: connection reset, DNS or TLS failure."""

    retryable = True

    def __init__(self, message: str, *, url: str = "", secrets: Sequence[str] = ()) -> None:
        self.url = redact(url, *secrets)
        text = redact(message, *secrets)
        super().__init__(f"{text} ({self.url})" if self.url else text)


class RequestTimeoutError(TransportError):
    """An attempt took longer than its timeout."""


class APIStatusError(VoiceAPIError):
    """The server answered with a failure status.

    Attributes:
        status: the HTTP status code.
        code: the API-level ``code`` from the body, when there is one.
        message: the server's message, or a description of the failure.
        url: the request URL with secrets redacted.
        body: the start of the response body, redacted.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        url: str = "",
        body: bytes | str = b"",
        secrets: Sequence[str] = (),
    ) -> None:
        self.status = status
        self.code = code
        self.message = redact(message, *secrets)
        self.url = redact(url, *secrets)
        self.body = excerpt(body, secrets=secrets)
        detail = (
            f"HTTP {status}" if code is None or code == status else f"HTTP {status}, code {code}"
        )
        where = f" for {self.url}" if self.url else ""
        super().__init__(f"{self.message} ({detail}){where}")


class AuthenticationError(APIStatusError):
    """The token is missing or wrong (401, or a redirect to the HTML login page)."""


class PermissionDeniedError(APIStatusError):
    """The token may not do this, for example from this IP address (403)."""


class NotFoundError(APIStatusError):
    """The path or API version does not exist (404)."""


class ValidationError(APIStatusError):
    """The server rejected the request's parameters (422).

    Attributes:
        errors: the server's field errors, ``{field: [message, ...]}``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        url: str = "",
        body: bytes | str = b"",
        errors: Mapping[str, Sequence[str]] | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.errors: dict[str, list[str]] = {
            redact(field, *secrets): [redact(text, *secrets) for text in messages]
            for field, messages in (errors or {}).items()
        }
        if self.errors:
            fields = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in self.errors.items())
            message = f"{message} [{fields}]"
        super().__init__(message, status=status, code=code, url=url, body=body, secrets=secrets)


class RateLimitError(APIStatusError):
    """Too many requests (429).

    Attributes:
        retry_after: seconds the server asked to wait, when it said.
        limit: the ``X-RateLimit-Limit`` header, when sent.
        remaining: the ``X-RateLimit-Remaining`` header, when sent.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        url: str = "",
        body: bytes | str = b"",
        retry_after: float | None = None,
        limit: int | None = None,
        remaining: int | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.retry_after = retry_after
        self.limit = limit
        self.remaining = remaining
        if retry_after is not None:
            message = f"{message} (retry after {retry_after:g}s)"
        super().__init__(message, status=status, code=code, url=url, body=body, secrets=secrets)


class ServerError(APIStatusError):
    """The server failed (5xx, or a debug-mode error body)."""

    retryable = True


class ResponseFormatError(VoiceAPIError):
    """The body is not JSON, or not one of the three documented response shapes.

    Attributes:
        truncated: whether the body ended early (a cut connection: worth retrying).
        url: the request URL with secrets redacted.
        body: the start of the response body, redacted.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        body: bytes | str = b"",
        truncated: bool = False,
        secrets: Sequence[str] = (),
    ) -> None:
        self.truncated = truncated
        self.retryable = truncated
        self.url = redact(url, *secrets)
        self.body = excerpt(body, limit=200, secrets=secrets)
        where = f" for {self.url}" if self.url else ""
        super().__init__(f"{redact(message, *secrets)}{where}; body starts: {self.body!r}")


class RecordError(VoiceAPIError):
    """A record cannot be structured into its model.

    Attributes:
        record_id: the record's ``id`` when it has one (redacted).
        path: where the bad value is, like ``$.data[3].charges``.

    It never chains the exception it explains (which holds the raw value): the
    message says what was wrong, redacted.
    """

    def __init__(
        self, message: str, *, record_id: str | None, path: str, secrets: Sequence[str] = ()
    ) -> None:
        self.record_id = None if record_id is None else redact(record_id, *secrets)
        self.path = redact(path, *secrets)
        which = f"record {self.record_id!r}" if record_id is not None else "record without an id"
        super().__init__(f"{which} at {self.path}: {redact(message, *secrets)}")


class OutOfWindowError(VoiceAPIError):
    """A record lies outside the window it was fetched for.

    A server does this when it did not apply the date filter (a date it could not
    read, or a filter key it does not know), so the same records would come back
    for every range.

    Attributes:
        window: the window's key, like ``calls/2024-03-05``.
        record_id: the record's ``id``.
        timestamp: the record's filtered timestamp, in the account's time zone.
    """

    def __init__(self, *, window: str, record_id: str, field: str, timestamp: str) -> None:
        self.window = window
        self.record_id = record_id
        self.timestamp = timestamp
        super().__init__(
            f"record {record_id!r} has {field} {timestamp}, outside the window {window} it was "
            "fetched for: the server did not apply the date filter (check the base URL and the "
            "API version)"
        )


class PagingError(VoiceAPIError):
    """The range changed while it was paged, or the paging numbers cannot be true."""


class AudioError(VoiceAPIError):
    """A recording's audio could not be downloaded from storage.

    Attributes:
        recording_id: the recording whose audio failed ("" when not known).
        url: the storage URL with its signature and credential redacted.
        status: the storage's HTTP status, when it answered one.
    """

    def __init__(
        self,
        message: str,
        *,
        recording_id: str = "",
        url: str = "",
        status: int | None = None,
        retryable: bool = False,
    ) -> None:
        self.recording_id = recording_id
        self.url = redact(url)
        self.status = status
        self.retryable = retryable
        which = f"recording {recording_id!r}: " if recording_id else ""
        where = f" ({self.url})" if self.url else ""
        super().__init__(f"{which}{redact(message)}{where}")


class AudioExpiredError(AudioError):
    """The audio link expired (by its ``X-Amz-Date`` + ``X-Amz-Expires``, or storage said so).

    The client renews such a link by fetching the recording again; this error
    reaches the caller only when ``audio_renewals`` renewals did not help.
    """


class AudioTooLargeError(AudioError):
    """The audio file is larger than ``audio_max_bytes`` (announced or while streaming)."""


def first_error(exc: BaseException) -> BaseException:
    """Unwrap task-group errors: callers get the typed error, not a group."""
    while isinstance(exc, BaseExceptionGroup):
        exc = next(
            (e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)),
            exc.exceptions[0],
        )
    return exc

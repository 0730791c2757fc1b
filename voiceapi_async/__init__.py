"""An asyncio client for the Voice API call-log and recording reports.

Only the names in ``__all__`` are public; everything else may change.
"""

from voiceapi_async._audio import AudioResult, AudioStatus, audio_filename, link_expires_at
from voiceapi_async._config import ClientConfig, RetryPolicy
from voiceapi_async._convert import VoiceConverter, make_converter
from voiceapi_async._errors import (
    APIStatusError,
    AudioError,
    AudioExpiredError,
    AudioTooLargeError,
    AuthenticationError,
    ConfigError,
    NotFoundError,
    OutOfWindowError,
    PagingError,
    PermissionDeniedError,
    RateLimitError,
    RecordError,
    RequestTimeoutError,
    ResponseFormatError,
    ServerError,
    TransportError,
    ValidationError,
    VoiceAPIError,
)
from voiceapi_async._models import (
    Call,
    CallStatus,
    HangupBy,
    Page,
    PageNumbers,
    Record,
    Recording,
    Report,
    Shape,
    Window,
)
from voiceapi_async._protocol import AuthMode
from voiceapi_async._stream import RecordStream
from voiceapi_async._windows import DateLike, TimezoneLike, plan_windows, split_window
from voiceapi_async.client import ClientStats, VoiceClient

__all__ = [
    "APIStatusError",
    "AudioError",
    "AudioExpiredError",
    "AudioResult",
    "AudioStatus",
    "AudioTooLargeError",
    "AuthMode",
    "AuthenticationError",
    "Call",
    "CallStatus",
    "ClientConfig",
    "ClientStats",
    "ConfigError",
    "DateLike",
    "HangupBy",
    "NotFoundError",
    "OutOfWindowError",
    "Page",
    "PageNumbers",
    "PagingError",
    "PermissionDeniedError",
    "RateLimitError",
    "Record",
    "RecordError",
    "RecordStream",
    "Recording",
    "Report",
    "RequestTimeoutError",
    "ResponseFormatError",
    "RetryPolicy",
    "ServerError",
    "Shape",
    "TimezoneLike",
    "TransportError",
    "ValidationError",
    "VoiceAPIError",
    "VoiceClient",
    "VoiceConverter",
    "Window",
    "audio_filename",
    "link_expires_at",
    "make_converter",
    "plan_windows",
    "split_window",
]

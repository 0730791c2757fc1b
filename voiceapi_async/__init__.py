"""An asyncio client for the Voice API call-log and recording reports.

Only the names in ``__all__`` are public; everything else may change. They are
loaded on first use (PEP 562), so ``import voiceapi_async`` costs a few
milliseconds and pulls in neither aiohttp nor pendulum until a name needs them;
type checkers and IDEs read the imports under ``TYPE_CHECKING`` below.
"""

from __future__ import annotations

from voiceapi_async._version import __version__ as __version__

TYPE_CHECKING = False  # typing's, without importing typing (most of a cold import's cost)
if TYPE_CHECKING:
    from voiceapi_async._audio import AudioResult, AudioStatus, audio_filename, link_expires_at
    from voiceapi_async._config import ClientConfig, ClientSettings, RetryPolicy
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
    from voiceapi_async.export import to_dict

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
    "ClientSettings",
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
    "to_dict",
]

_SOURCES = {
    "APIStatusError": "_errors",
    "AudioError": "_errors",
    "AudioExpiredError": "_errors",
    "AudioResult": "_audio",
    "AudioStatus": "_audio",
    "AudioTooLargeError": "_errors",
    "AuthMode": "_protocol",
    "AuthenticationError": "_errors",
    "Call": "_models",
    "CallStatus": "_models",
    "ClientConfig": "_config",
    "ClientSettings": "_config",
    "ClientStats": "client",
    "ConfigError": "_errors",
    "DateLike": "_windows",
    "HangupBy": "_models",
    "NotFoundError": "_errors",
    "OutOfWindowError": "_errors",
    "Page": "_models",
    "PageNumbers": "_models",
    "PagingError": "_errors",
    "PermissionDeniedError": "_errors",
    "RateLimitError": "_errors",
    "Record": "_models",
    "RecordError": "_errors",
    "RecordStream": "_stream",
    "Recording": "_models",
    "Report": "_models",
    "RequestTimeoutError": "_errors",
    "ResponseFormatError": "_errors",
    "RetryPolicy": "_config",
    "ServerError": "_errors",
    "Shape": "_models",
    "TimezoneLike": "_windows",
    "TransportError": "_errors",
    "ValidationError": "_errors",
    "VoiceAPIError": "_errors",
    "VoiceClient": "client",
    "VoiceConverter": "_convert",
    "Window": "_models",
    "audio_filename": "_audio",
    "link_expires_at": "_audio",
    "make_converter": "_convert",
    "plan_windows": "_windows",
    "split_window": "_windows",
    "to_dict": "export",
}
"""The module of each public name, relative to this package."""

if not TYPE_CHECKING:  # pragma: no branch - type checkers see the imports above instead
    from voiceapi_async._lazy import lazy_names

    __getattr__, __dir__ = lazy_names(__name__, _SOURCES, globals(), __all__)
    del lazy_names

"""Client configuration: one frozen attrs class, validated at construction."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from voiceapi_async._protocol import AuthMode
from voiceapi_async._redact import REDACTED
from voiceapi_async._windows import resolve_timezone

_ENV_PREFIX = "VOICEAPI_"
_POSITIVE = attrs.validators.gt(0.0)
_AT_LEAST_ONE = attrs.validators.ge(1)
_NOT_NEGATIVE = attrs.validators.ge(0.0)
_NOT_NEGATIVE_INT = attrs.validators.ge(0)

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The default ``max_response_bytes``: 64 MiB, hundreds of times a paged answer."""


def _base_url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("http://", "https://")):
        raise ValueError(
            f"base_url must start with http:// or https://, like "
            f"'https://portal.example.com/api/v2/', not {value!r}"
        )
    return value if value.endswith("/") else value + "/"


def _check_token(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or not value.strip():
        raise ValueError("token is empty: pass the account's API token (or set VOICEAPI_TOKEN)")


def _check_timezone(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    resolve_timezone(value)


def _check_per_page(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 1:
        raise ValueError(f"'per_page' must be >= 1, or None for the server's default: {value}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How failed requests are retried: jittered exponential backoff, bounded twice.

    Attributes:
        attempts: the most attempts per request, the first included.
        deadline: the most seconds spent on one request, retries and waits included.
        wait_initial: the first backoff, in seconds.
        wait_max: the longest backoff between two attempts.
        wait_jitter: the most random seconds added to each backoff.
        max_retry_after: the longest wait after a 429; longer ``Retry-After`` asks (a
            date years ahead too) are cut to it. A 429 whose ``Retry-After`` is absent
            or unusable (negative, not a finite number, not a date) waits 1 s, at most
            this.
    """

    attempts: int = attrs.field(default=6, validator=_AT_LEAST_ONE)
    deadline: float = attrs.field(default=120.0, validator=_POSITIVE)
    wait_initial: float = attrs.field(default=0.5, validator=_NOT_NEGATIVE)
    wait_max: float = attrs.field(default=20.0, validator=_NOT_NEGATIVE)
    wait_jitter: float = attrs.field(default=1.0, validator=_NOT_NEGATIVE)
    max_retry_after: float = attrs.field(default=120.0, validator=_NOT_NEGATIVE)


@attrs.frozen(kw_only=True)
class ClientConfig:
    """Everything a :class:`~voiceapi_async.VoiceClient` needs, checked up front.

    Attributes:
        base_url: the API root, like ``https://portal.example.com/api/v2/``.
        token: the API token (never shown in reprs, logs or errors).
        timezone: the account's time zone: ranges and timestamps are read in it.
        auth: the token as a Bearer header (default) or an ``access_token`` parameter.
        per_page: the page size to ask for; the server may apply another.
        max_in_flight: requests in flight at once, across all windows.
        max_windows: windows (days) read at once.
        rate_limit: requests a minute, shared by every request of the client (0: none).
        retry: the retry policy.
        connect_timeout: seconds to connect, per attempt.
        read_timeout: seconds to wait for more of a response, per attempt.
        attempt_timeout: seconds for a whole attempt.
        deadline: seconds a whole stream may take (None: no limit).
        max_response_bytes: the most bytes one response body may hold, counted after
            decompression while it streams in; a larger body is a
            ``ResponseFormatError`` and is not retried. 64 MiB by default: a paged
            answer is far smaller, but a server that answers a whole day as one bare
            list (about 650 bytes a call) reaches it near 100,000 calls a day.
            At most ``max_in_flight`` bodies are read at once.
        split_pages: a day whose first page announces more pages is read as smaller windows.
        rereads: times a window is read again when its records do not match its total.
        trust_env: let aiohttp read proxy settings from the environment.
        user_agent: the ``User-Agent`` header.
    """

    base_url: str = attrs.field(converter=_base_url)
    token: str = attrs.field(validator=_check_token, repr=lambda _: repr(REDACTED))
    timezone: str = attrs.field(default="UTC", validator=_check_timezone)
    auth: AuthMode = attrs.field(default=AuthMode.BEARER, converter=AuthMode)
    per_page: int | None = attrs.field(default=100, validator=_check_per_page)
    max_in_flight: int = attrs.field(default=16, validator=_AT_LEAST_ONE)
    max_windows: int = attrs.field(default=8, validator=_AT_LEAST_ONE)
    rate_limit: int = attrs.field(default=900, validator=_NOT_NEGATIVE_INT)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    connect_timeout: float = attrs.field(default=10.0, validator=_POSITIVE)
    read_timeout: float = attrs.field(default=30.0, validator=_POSITIVE)
    attempt_timeout: float = attrs.field(default=60.0, validator=_POSITIVE)
    deadline: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_POSITIVE)
    )
    max_response_bytes: int = attrs.field(
        default=DEFAULT_MAX_RESPONSE_BYTES, validator=_AT_LEAST_ONE
    )
    split_pages: int = attrs.field(default=50, validator=_AT_LEAST_ONE)
    rereads: int = attrs.field(default=2, validator=_NOT_NEGATIVE_INT)
    trust_env: bool = False
    user_agent: str = "voiceapi-async"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """Build a config from ``VOICEAPI_*`` environment variables, then ``overrides``.

        Reads ``VOICEAPI_BASE_URL``, ``VOICEAPI_TOKEN``, ``VOICEAPI_TIMEZONE``,
        ``VOICEAPI_AUTH``, ``VOICEAPI_PER_PAGE``, ``VOICEAPI_MAX_IN_FLIGHT``,
        ``VOICEAPI_MAX_WINDOWS``, ``VOICEAPI_RATE_LIMIT``, ``VOICEAPI_ATTEMPT_TIMEOUT``,
        ``VOICEAPI_READ_TIMEOUT``, ``VOICEAPI_MAX_RESPONSE_BYTES`` and
        ``VOICEAPI_MAX_ATTEMPTS`` (attempts per request).

        Raises:
            ValueError: a variable is missing or malformed (named in the message).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, convert in _ENV_SETTINGS.items():
            raw = env.get(_ENV_PREFIX + name.upper())
            if raw is None or raw == "":
                continue
            try:
                values[name] = convert(raw)
            except ValueError:
                raise ValueError(
                    f"{_ENV_PREFIX}{name.upper()}={raw!r} is not valid for {name}"
                ) from None
        attempts = values.pop("max_attempts", None)
        if attempts is not None:
            values["retry"] = RetryPolicy(attempts=attempts)
        values.update(overrides)
        for required in ("base_url", "token"):
            if required not in values:
                raise ValueError(
                    f"{_ENV_PREFIX}{required.upper()} is not set: export it or pass {required}="
                )
        return cls(**values)


_ENV_SETTINGS: Mapping[str, Any] = {
    "base_url": str,
    "token": str,
    "timezone": str,
    "auth": AuthMode,
    "per_page": int,
    "max_in_flight": int,
    "max_windows": int,
    "rate_limit": int,
    "attempt_timeout": float,
    "read_timeout": float,
    "max_response_bytes": int,
    "max_attempts": int,
}

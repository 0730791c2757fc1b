"""Client configuration: one frozen attrs class, validated at construction."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from typing import Any, Self, TypedDict
from urllib.parse import urlsplit

import attrs

from voiceapi_async._errors import ConfigError
from voiceapi_async._protocol import AuthMode
from voiceapi_async._redact import REDACTED
from voiceapi_async._windows import resolve_timezone

_ENV_PREFIX = "VOICEAPI_"
_POSITIVE = attrs.validators.gt(0.0)
_NOT_NEGATIVE = attrs.validators.ge(0.0)

DEFAULT_MAX_DAYS = 3660
"""The longest range a stream may cover by default: about ten years."""
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The default ``max_response_bytes``: 64 MiB, hundreds of times a paged answer."""

DEFAULT_AUDIO_MAX_BYTES = 512 * 1024 * 1024
"""The default ``audio_max_bytes``: 512 MiB, hours of compressed speech."""

_EXAMPLE_URL = "'https://portal.example.com/api/v2/'"


def _base_url(value: str) -> str:
    """Check the API root and give it its trailing slash.

    Messages show the URL without its query, fragment or user info: those are
    where a careless caller puts a secret.
    """
    if not isinstance(value, str):
        raise TypeError(
            f"base_url must be a string like {_EXAMPLE_URL}, not {type(value).__name__}"
        )
    value = value.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ValueError(
            f"base_url is not a valid URL ({exc}): give the API root, like {_EXAMPLE_URL}"
        ) from None
    host = parts.netloc.rpartition("@")[2]
    shown = repr(parts._replace(netloc=host, query="", fragment="").geturl())
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(
            f"base_url must start with http:// or https://, like {_EXAMPLE_URL}, not {shown}"
        )
    if not parts.hostname:
        raise ValueError(f"base_url {shown} has no host: give the API root, like {_EXAMPLE_URL}")
    if "?" in value or "#" in value:
        raise ValueError(
            f"base_url {shown} has a query string or a fragment ('?...' or '#...'), which "
            "would swallow the report's path: give only the API root, like "
            f"{_EXAMPLE_URL} (the token goes in token=)"
        )
    if "@" in parts.netloc:
        raise ValueError(
            f"base_url {shown} carries user info ('user:password@'): give only the API "
            f"root, like {_EXAMPLE_URL} (the API authenticates with token=)"
        )
    if any(char.isspace() or unicodedata.category(char) in ("Cc", "Cf") for char in value):
        raise ValueError(
            f"base_url {shown} contains whitespace or a control character: remove it "
            f"(an API root looks like {_EXAMPLE_URL})"
        )
    return value if value.endswith("/") else value + "/"


def _check_token(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    """Refuse a token that cannot be sent as it is; never show it."""
    if not isinstance(value, str):
        raise TypeError(f"token must be a string, not {type(value).__name__}")
    if not value or not value.strip():
        raise ValueError("token is empty: pass the account's API token (or set VOICEAPI_TOKEN)")
    for index, char in enumerate(value):
        if "!" <= char <= "~":
            continue
        if char.isspace():
            kind = "whitespace"
        elif unicodedata.category(char) in ("Cc", "Cf"):
            kind = "a control character"
        else:
            kind = "a character outside printable ASCII"
        where = (
            "at its start"
            if index == 0
            else "at its end"
            if index == len(value) - 1
            else "inside it"
        )
        raise ValueError(
            f"the token contains {kind} ({_char_name(char)}) {where}: an API token is "
            "printable ASCII without spaces; check for a stray newline or space copied "
            "with it (the token itself is not shown)"
        )


def _char_name(char: str) -> str:
    """Name a character by code point only (a name like LATIN SMALL LETTER would reveal it)."""
    return f"U+{ord(char):04X}"


MISSING_TIMEZONE = (
    "the account's time zone is required, with no default: the API reads every date and "
    "time in it, so a wrong zone silently moves calls to other days. Find it in the "
    "account's settings in the provider's dashboard (an IANA name such as 'Asia/Kolkata' "
    "or 'UTC') and pass it as timezone='Asia/Kolkata' (VOICEAPI_TIMEZONE in the "
    "environment, --timezone for the voiceapi command)"
)
"""The message of a missing time zone: where to find it, how to pass it."""


def _check_timezone(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value is None or value == "":
        raise ConfigError(MISSING_TIMEZONE)
    resolve_timezone(value)


def _whole_number(minimum: int) -> Any:
    """Return a validator of a whole number of at least ``minimum`` (not a bool or text)."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not int:
            raise TypeError(
                f"'{attribute.name}' must be a whole number (int), not "
                f"{type(value).__name__} {value!r}: convert it first, e.g. int(text)"
            )
        if value < minimum:
            raise ValueError(f"'{attribute.name}' must be >= {minimum}: {value}")

    return check


_AT_LEAST_ONE = _whole_number(1)
_NOT_NEGATIVE_INT = _whole_number(0)


def _check_rate_limit(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _NOT_NEGATIVE_INT(instance, attribute, value)


def _flag(text: str) -> bool:
    """Read a yes/no environment value (1/0, true/false, yes/no, on/off)."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a yes/no value: {text!r}")


def _check_per_page(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if type(value) is int and value < 1:
        raise ValueError(f"'per_page' must be >= 1, or None to learn the server's largest: {value}")
    _AT_LEAST_ONE(instance, attribute, value)


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
        timezone: the account's time zone (required): ranges and timestamps are read
            in it. It is in the account's settings in the provider's dashboard; a
            missing one is a :class:`~voiceapi_async.ConfigError` saying so.
        auth: the token as a Bearer header (default) or an ``access_token`` parameter.
        per_page: the page size to ask for, pinned; the server may apply another.
            None (the default) learns it: the client asks for ``max_per_page`` and, from
            the first answer on, for the size the server applied.
        max_per_page: the largest page size asked for when ``per_page`` is None (1,000:
            about 650 KB a page of calls, far below ``max_response_bytes`` and quick
            to read).
        max_in_flight: requests in flight at once, across all windows.
        max_windows: windows (days) read at once.
        rate_limit: a hard cap in requests a minute, shared by every request of the
            client, never exceeded in any 60 seconds. ``None`` (the default): no cap
            of its own; the client paces by the limit the server announces
            (``X-RateLimit-*`` headers), assuming 1000 a minute until it does.
            ``0``: no pacing at all (only 429s slow it down).
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
        max_days: the most calendar days one stream may cover; a longer range is a
            ``ValueError`` before anything is fetched (default 3660, about ten years).
        trust_env: let aiohttp read proxy settings from the environment.
        user_agent: the ``User-Agent`` header.
        audio_max_in_flight: audio downloads in flight at once, on their own
            connections: storage requests never count against ``max_in_flight`` or
            ``rate_limit`` and never carry the token or the API's headers.
        audio_max_bytes: the largest audio file accepted (512 MiB by default); a
            larger one is an ``AudioTooLargeError`` and nothing is written.
        audio_timeout: seconds to wait for more bytes of an audio download (it has
            no limit on its whole length: large files on slow links take long).
            Downloads are retried with ``retry``'s attempts and waits (not its
            deadline).
        audio_renewals: times an expired audio link is renewed (by fetching its
            recording again) before the download is reported as expired.
        bulk: pace requests as bulk work: leave a reserve of the token's quota (10%
            of the limit) for interactive clients on the same token, and wait for
            the next window instead. Interactive clients (the default) may use the
            reserve. A stream's ``bulk=`` overrides it; the backfill sets it.
        rate_window: the server's rate-limit window in seconds (a minute on the
            API; for a simulator that counts a shorter one).
    """

    base_url: str = attrs.field(converter=_base_url)
    token: str = attrs.field(validator=_check_token, repr=lambda _: repr(REDACTED))
    timezone: str = attrs.field(validator=_check_timezone)
    auth: AuthMode = attrs.field(default=AuthMode.BEARER, converter=AuthMode)
    per_page: int | None = attrs.field(default=None, validator=_check_per_page)
    max_per_page: int = attrs.field(default=1_000, validator=_AT_LEAST_ONE)
    max_in_flight: int = attrs.field(default=16, validator=_AT_LEAST_ONE)
    max_windows: int = attrs.field(default=8, validator=_AT_LEAST_ONE)
    rate_limit: int | None = attrs.field(default=None, validator=_check_rate_limit)
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
    max_days: int = attrs.field(default=DEFAULT_MAX_DAYS, validator=_AT_LEAST_ONE)
    trust_env: bool = False
    user_agent: str = "voiceapi-async"
    audio_max_in_flight: int = attrs.field(default=8, validator=_AT_LEAST_ONE)
    audio_max_bytes: int = attrs.field(default=DEFAULT_AUDIO_MAX_BYTES, validator=_AT_LEAST_ONE)
    audio_timeout: float = attrs.field(default=30.0, validator=_POSITIVE)
    audio_renewals: int = attrs.field(default=2, validator=_NOT_NEGATIVE_INT)
    bulk: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    rate_window: float = attrs.field(default=60.0, validator=_POSITIVE)

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        """Refuse a missing time zone with a message saying where to find it.

        attrs' own ``__init__`` would say only that an argument is missing. Copying
        and unpickling create the object without arguments, and are let through.
        """
        if kwargs and kwargs.get("timezone") is None:
            raise ConfigError(MISSING_TIMEZONE)
        return super().__new__(cls)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """Build a config from ``VOICEAPI_*`` environment variables, then ``overrides``.

        Reads ``VOICEAPI_BASE_URL``, ``VOICEAPI_TOKEN``, ``VOICEAPI_TIMEZONE``,
        ``VOICEAPI_AUTH``, ``VOICEAPI_PER_PAGE``, ``VOICEAPI_MAX_PER_PAGE``,
        ``VOICEAPI_MAX_IN_FLIGHT``,
        ``VOICEAPI_MAX_WINDOWS``, ``VOICEAPI_RATE_LIMIT``, ``VOICEAPI_ATTEMPT_TIMEOUT``,
        ``VOICEAPI_READ_TIMEOUT``, ``VOICEAPI_MAX_DAYS``, ``VOICEAPI_MAX_RESPONSE_BYTES``,
        ``VOICEAPI_MAX_ATTEMPTS`` (attempts per request), ``VOICEAPI_AUDIO_MAX_IN_FLIGHT``,
        ``VOICEAPI_AUDIO_MAX_BYTES``, ``VOICEAPI_AUDIO_TIMEOUT``,
        ``VOICEAPI_AUDIO_RENEWALS``, ``VOICEAPI_BULK`` (1/0, true/false, yes/no,
        on/off) and ``VOICEAPI_RATE_WINDOW``.

        ``VOICEAPI_BASE_URL``, ``VOICEAPI_TOKEN`` and ``VOICEAPI_TIMEZONE`` (the
        account's time zone, from the account's settings in the provider's dashboard)
        are required, unless given in ``overrides``.

        Raises:
            ConfigError: a required variable is missing (named in the message).
            ValueError: a variable is malformed (named in the message).
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
                raise ConfigError(
                    f"{_ENV_PREFIX}{required.upper()} is not set: export it or pass {required}="
                )
        if values.get("timezone") is None:
            raise ConfigError(
                f"{_ENV_PREFIX}TIMEZONE is not set: the account's time zone is required, with "
                "no default (the API reads every date and time in it). Find it in the "
                "account's settings in the provider's dashboard and export it, like "
                f"{_ENV_PREFIX}TIMEZONE=Asia/Kolkata, or pass timezone="
            )
        return cls(**values)


_ENV_SETTINGS: Mapping[str, Any] = {
    "base_url": str,
    "token": str,
    "timezone": str,
    "auth": AuthMode,
    "per_page": int,
    "max_per_page": int,
    "max_in_flight": int,
    "max_windows": int,
    "rate_limit": int,
    "attempt_timeout": float,
    "read_timeout": float,
    "max_days": int,
    "max_response_bytes": int,
    "max_attempts": int,
    "audio_max_in_flight": int,
    "audio_max_bytes": int,
    "audio_timeout": float,
    "audio_renewals": int,
    "bulk": _flag,
    "rate_window": float,
}


class ClientSettings(TypedDict, total=False):
    """The :class:`ClientConfig` fields as keyword arguments of ``VoiceClient``.

    Every key is optional here (``base_url``, ``token`` and ``timezone`` are required
    unless a ``config`` is given); a misspelt or mistyped setting fails type checking::

        settings: ClientSettings = {"base_url": url, "token": token, "timezone": "UTC"}
        client = VoiceClient(**settings)

    The keys and types are :class:`ClientConfig`'s (the tests keep them in step);
    ``auth`` also takes the mode's text, as the config converts it.
    """

    base_url: str
    token: str
    timezone: str
    auth: AuthMode | str
    per_page: int | None
    max_per_page: int
    max_in_flight: int
    max_windows: int
    rate_limit: int | None
    retry: RetryPolicy
    connect_timeout: float
    read_timeout: float
    attempt_timeout: float
    deadline: float | None
    max_response_bytes: int
    split_pages: int
    rereads: int
    max_days: int
    trust_env: bool
    user_agent: str
    audio_max_in_flight: int
    audio_max_bytes: int
    audio_timeout: float
    audio_renewals: int
    bulk: bool
    rate_window: float

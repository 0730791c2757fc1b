"""Keep secrets out of logs, exception messages and reprs.

The API token and the signature and credential of presigned storage URLs are
replaced wherever they appear in a URL, a header value or a body excerpt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

REDACTED = "[REDACTED]"
BODY_EXCERPT_CHARS = 500

_SECRET_PARAMS = (
    "access_token",
    "api_token",
    "token",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
)
_PARAM_RE = re.compile(
    r"(?P<key>(?<![A-Za-z0-9_-])(?:" + "|".join(map(re.escape, _SECRET_PARAMS)) + r"))"
    r"(?P<sep>=|%3D)(?P<value>[^&#\s\"'<>]*)",
    re.IGNORECASE,
)
_BEARER_RE = re.compile(r"(?P<scheme>Bearer\s+)[^\s\"',;]+", re.IGNORECASE)
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "cookie"})


def redact(text: str, *secrets: str) -> str:
    """Return ``text`` with secret query values, Bearer tokens and given secrets masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _PARAM_RE.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)
    return _BEARER_RE.sub(lambda m: f"{m['scheme']}{REDACTED}", text)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``headers`` safe to print: credential headers are masked."""
    return {
        name: REDACTED if name.lower() in _SECRET_HEADERS else redact(value)
        for name, value in headers.items()
    }


def excerpt(body: bytes | str, limit: int = BODY_EXCERPT_CHARS, secrets: Sequence[str] = ()) -> str:
    """Return the redacted start of a response body, at most ``limit`` characters."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if len(text) > limit:
        text = text[:limit] + f"... [{len(text) - limit} more characters]"
    return redact(text, *secrets)

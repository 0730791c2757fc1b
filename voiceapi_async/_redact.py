r"""Keep secrets out of logs, exception messages, reprs and tracebacks.

What is masked, wherever it appears in a text:

- every given secret (the API token), in plain text and in any mix of the forms
  a server or a library writes it in: percent-encoded (``quote``, ``quote_plus``,
  twice encoded), JSON-escaped (``\/``, ``\"``, ``\uXXXX`` with surrogate pairs,
  as orjson or PHP's ``json_encode`` write it), Python ``repr`` escapes and HTML
  entities;
- the values of secret query parameters, with ``=``, ``%3D`` or ``%253D`` as the
  separator, whatever their case: the token parameters and the signatures and
  credentials of presigned URLs (AWS S3 SigV4 and v2, Google Cloud Storage v4 and
  v2, Azure SAS ``sig``, CloudFront ``Signature``/``Key-Pair-Id``/``Policy``);
- the same names as JSON or Python dictionary keys (``"token": "..."``);
- ``Bearer`` credentials and ``Authorization``/``Cookie``/``X-Api-Key`` header lines.

Redaction always runs on the whole text before it is cut to an excerpt, so a
secret that straddles the cut cannot leave its first characters behind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

REDACTED = "[REDACTED]"
BODY_EXCERPT_CHARS = 500

SECRET_PARAMS = (
    "access_token",
    "api_token",
    "token",
    "api_key",
    "apikey",
    "password",
    "client_secret",
    "refresh_token",
    # AWS S3 presigned URLs: SigV4, then v2 (Signature is shared with CloudFront and GCS v2).
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    # Google Cloud Storage: v4, then v2.
    "X-Goog-Signature",
    "X-Goog-Credential",
    "GoogleAccessId",
    # Azure shared access signatures.
    "sig",
    # CloudFront signed URLs.
    "Key-Pair-Id",
    "Policy",
)
"""Query parameters (and dictionary keys) whose values are secret, matched in any case."""

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
"""Header names whose whole value is secret (lower case)."""

_NAMES = "|".join(map(re.escape, SECRET_PARAMS))
# A parameter starts the text or follows a character that cannot be part of a
# name, or an encoded ``&``/``?`` (a presigned URL inside another URL or a JSON string).
_PARAM_START = r"(?:(?<![A-Za-z0-9_-])|(?<=%26)|(?<=%3F)|(?<=%2526)|(?<=%253F)|(?<=\\u0026))"
_PARAM_RE = re.compile(
    rf"(?P<key>{_PARAM_START}(?:{_NAMES}))(?P<sep>=|%3D|%253D|\\u003d)"
    r"(?P<value>[^&#\s\"'<>]*)",
    re.IGNORECASE,
)
# The value may run to the end of the text: a cut excerpt keeps nothing of it.
_PAIR_RE = re.compile(
    rf"(?P<key>(?P<quote>[\"'])(?:{_NAMES})(?P=quote)\s*:\s*)"
    r"(?P<open>[\"'])(?P<value>(?:\\.|(?!(?P=open))[^\\])*)",
    re.IGNORECASE,
)
_HEADER_RE = re.compile(
    r"(?P<key>(?<![A-Za-z0-9_-])(?:proxy-authorization|authorization|set-cookie|cookie|x-api-key)"
    r":[ \t]*)(?P<value>[^\r\n\"'<>]*)",
    re.IGNORECASE,
)
_BEARER_RE = re.compile(r"(?P<scheme>Bearer(?:\s+|%20|\+))[^\s\"',;<>&]+", re.IGNORECASE)

_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "'": "\\'",  # Python's repr
}
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
_LONGEST_FORM = 20
"""The most characters one character of a secret takes in any form (``%25F0%259F%2598%2580``)."""


def redact(text: str, *secrets: str) -> str:
    """Return ``text`` with the given secrets, secret parameters and credentials masked."""
    # Known names first: a given secret that is part of a name ("ignature") must not
    # break the name before its value is masked.
    text = _PARAM_RE.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)
    text = _PAIR_RE.sub(lambda m: f"{m['key']}{m['open']}{REDACTED}", text)
    text = _HEADER_RE.sub(lambda m: f"{m['key']}{REDACTED}", text)
    text = _BEARER_RE.sub(lambda m: f"{m['scheme']}{REDACTED}", text)
    for secret in secrets:
        if secret:
            text = _secret_pattern(secret).sub(REDACTED, text)
    return text


def redact_headers(headers: Mapping[str, str], *secrets: str) -> dict[str, str]:
    """Return a copy of ``headers`` safe to print: credential headers are masked."""
    return {
        name: REDACTED if name.lower() in SECRET_HEADERS else redact(value, *secrets)
        for name, value in headers.items()
    }


def redact_json(value: Any, *secrets: str) -> Any:
    """Return a copy of decoded JSON safe to print, however deeply a secret is nested.

    Every text is redacted, and the value of a secret key (``token``, ``signature``,
    ``authorization``...) is masked whole.
    """
    if isinstance(value, str):
        return redact(value, *secrets)
    if isinstance(value, Mapping):
        return {
            redact_json(key, *secrets): REDACTED
            if _is_secret_key(key) and item is not None
            else redact_json(item, *secrets)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_json(item, *secrets) for item in value]
    return value


def excerpt(body: bytes | str, limit: int = BODY_EXCERPT_CHARS, secrets: Sequence[str] = ()) -> str:
    """Return the start of a response body, redacted first, at most ``limit`` characters.

    Only a prefix of a long body is read: enough that a secret cut at its end lies
    beyond the ``limit`` characters kept, whatever redaction shortened before it.
    """
    # A secret cut at the prefix's end is left in its last `guard` characters at most.
    guard = _LONGEST_FORM * max((len(secret) for secret in secrets), default=0)
    span = 4 * (limit + guard)
    while True:
        whole = span >= len(body)
        safe = redact(_text(body[:span]), *secrets)
        if whole or len(safe) - guard >= limit:
            break
        span *= 4
    if whole and len(safe) <= limit:
        return safe
    unit = "bytes" if isinstance(body, bytes) else "characters"
    return f"{safe[:limit]}... [{len(body)} {unit} in all]"


def _text(body: bytes | str) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and (key.lower() in _SECRET_KEYS)


_SECRET_KEYS = frozenset(name.lower() for name in SECRET_PARAMS) | SECRET_HEADERS


def _secret_pattern(secret: str) -> re.Pattern[str]:
    """Return a pattern matching ``secret`` with each character in any of its written forms.

    Not cached here: ``re`` caches compiled patterns, and errors are rare.
    """
    return re.compile("".join(_char_pattern(char) for char in secret))


def _char_pattern(char: str) -> str:
    code = ord(char)
    forms = [re.escape(char)]
    # Hexadecimal digits may be written in either case: those forms match ignoring case.
    # Escapes may be escaped again (JSON inside JSON): a run of backslashes starts one.
    any_case = ["".join(f"%(?:25)*{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))]
    if code > 0xFFFF:
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        any_case += [rf"\\++u{high:04x}\\++u{low:04x}", rf"\\++U{code:08x}"]
    else:
        any_case.append(rf"\\++u{code:04x}")
    if code < 0x100:
        any_case.append(rf"\\++x{code:02x}")
    any_case += [rf"&#0?{code};", rf"&#x{code:x};"]
    if char == " ":
        forms.append(r"\+")
    if char == "\\":
        forms = [r"\\\\\\\\", r"\\\\", r"\\"]  # escaped twice, once, not at all
    elif char in _JSON_ESCAPES:
        forms.append(r"\\++" + re.escape(_JSON_ESCAPES[char][1:]))
    if char in _HTML_ENTITIES:
        forms.append(re.escape(_HTML_ENTITIES[char]))
    if code > 0x7F:
        forms.append("\ufffd{1,4}")  # a body that was not valid UTF-8 lost it
    return f"(?:{'|'.join(forms)}|(?i:{'|'.join(any_case)}))"

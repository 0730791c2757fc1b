"""Property tests: no piece of a secret survives any rendering, and decipher fails only typed."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from voiceapi_async import (
    Call,
    ClientConfig,
    RecordError,
    Recording,
    VoiceAPIError,
    make_converter,
)
from voiceapi_async._protocol import PageData, decipher
from voiceapi_async._redact import REDACTED
from voiceapi_async._transport import Transport

PIECE = 8
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CONVERTER = make_converter("UTC")
STATUSES = st.one_of(
    st.sampled_from([200, 201, 204, 301, 302, 400, 401, 403, 404, 418, 422, 429, 500, 503]),
    st.integers(100, 599),
)
HEADERS = st.sampled_from(
    [
        {},
        {"Content-Type": "application/json"},
        {"Content-Type": "text/html; charset=UTF-8"},
        {"Content-Type": "application/json", "Retry-After": "3"},
    ]
)

URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
TOKENS = st.one_of(
    st.text(URL_SAFE, min_size=PIECE, max_size=48),
    st.text(
        st.one_of(
            st.sampled_from(URL_SAFE),
            st.sampled_from("/+= &%?#\"'\\<>é€😀\t"),
            st.characters(codec="utf-8"),  # every character but surrogates
        ),
        min_size=PIECE,
        max_size=40,
    ),
)
HEX = st.text("0123456789abcdef", min_size=16, max_size=64)
B64 = st.text(URL_SAFE[:62] + "+/", min_size=16, max_size=64).map(lambda s: s + "==")
KEY_ID = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=20)


def _sigv4(akid: str, session: str, signature: str) -> str:
    return (
        "https://bucket.s3.eu-west-1.amazonaws.com/calls/r.mp3?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={quote(akid + '/20190611/eu-west-1/s3/aws4_request', safe='')}"
        "&X-Amz-Date=20190611T063000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        f"&X-Amz-Security-Token={quote(session, safe='')}&X-Amz-Signature={signature}"
    )


def _s3_v2(akid: str, session: str, signature: str) -> str:
    return (
        f"https://bucket.s3.amazonaws.com/r.mp3?AWSAccessKeyId={akid}&Expires=1560236400"
        f"&Signature={quote(signature, safe='')}&x-amz-security-token={quote(session, safe='')}"
    )


def _gcs_v4(account: str, _: str, signature: str) -> str:
    credential = f"{account}@project.iam.gserviceaccount.com/20190611/auto/storage/goog4_request"
    return (
        "https://storage.googleapis.com/bucket/r.mp3?X-Goog-Algorithm=GOOG4-RSA-SHA256"
        f"&X-Goog-Credential={quote(credential, safe='')}&X-Goog-Date=20190611T063000Z"
        f"&X-Goog-Expires=3600&X-Goog-SignedHeaders=host&X-Goog-Signature={signature}"
    )


def _gcs_v2(account: str, _: str, signature: str) -> str:
    return (
        f"https://storage.googleapis.com/bucket/r.mp3?GoogleAccessId={account}@project.example"
        f"&Expires=1560236400&Signature={quote(signature, safe='')}"
    )


def _azure(_: str, __: str, signature: str) -> str:
    return (
        "https://account.blob.core.windows.net/calls/r.mp3?sv=2021-08-06"
        f"&se=2019-06-11T07%3A30%3A00Z&sr=b&sp=r&sig={quote(signature, safe='')}"
    )


def _cloudfront(key_pair: str, policy: str, signature: str) -> str:
    safe = signature.replace("+", "-").replace("=", "_").replace("/", "~")
    return (
        f"https://d111111abcdef8.cloudfront.net/r.mp3?Policy={quote(policy, safe='')}"
        f"&Signature={safe}&Key-Pair-Id={key_pair}"
    )


FAMILIES: dict[str, Callable[[str, str, str], str]] = {
    "s3-sigv4": _sigv4,
    "s3-v2": _s3_v2,
    "gcs-v4": _gcs_v4,
    "gcs-v2": _gcs_v2,
    "azure-sas": _azure,
    "cloudfront": _cloudfront,
}


@st.composite
def signed_urls(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A presigned URL of some family, with its secret parts (ids, session, signature)."""
    family = draw(st.sampled_from(sorted(FAMILIES)))
    key_id, session = draw(KEY_ID), draw(B64)
    signature = draw(HEX if family in ("s3-sigv4", "gcs-v4") else B64)
    url = FAMILIES[family](key_id, session, signature)
    case = draw(st.sampled_from(["as is", "lower", "upper"]))
    if case != "as is":  # names in another case: the path and values keep theirs
        head, _, query = url.partition("?")
        pairs = [pair.partition("=") for pair in query.split("&")]
        change = str.lower if case == "lower" else str.upper
        url = head + "?" + "&".join(change(name) + sep + value for name, sep, value in pairs)
    parts = [key_id, signature.rstrip("="), session.rstrip("=")]
    secrets = [secret for part in parts for secret in _encoded(part)]
    return url, [secret for secret in secrets if secret in url]  # not every family uses each


def _encoded(secret: str) -> list[str]:
    """The secret as it may appear: plain, and in the encodings a URL gives it."""
    return [secret, quote(secret, safe=""), quote(quote(secret, safe=""), safe="")]


def _php_json(text: str) -> str:
    return json.dumps(text)[1:-1].replace("/", "\\/")


FORMS: dict[str, Callable[[str], str]] = {
    "plain": lambda text: text,
    "quoted": lambda text: quote(text, safe=""),
    "quote-plus": quote_plus,
    "quoted-twice": lambda text: quote(quote(text, safe=""), safe=""),
    "orjson": lambda text: orjson.dumps(text).decode()[1:-1],
    "php-json": _php_json,
}
FILLER = st.sampled_from(["x", " ", "a", "-", "é"])
OFFSETS = st.one_of(
    st.integers(0, 600),
    st.sampled_from([180, 190, 195, 199, 200, 480, 490, 495, 499, 500]),
)


@st.composite
def bodies(draw: st.DrawFn, carrier: str) -> tuple[bytes, bytes]:
    """A body holding ``carrier`` in some form at some offset, and the same body without it."""
    form = FORMS[draw(st.sampled_from(sorted(FORMS)))]
    offset = draw(OFFSETS)
    filler = draw(FILLER) * offset
    tail = draw(st.sampled_from(["", " trailing text", "&page=2", "y" * 300]))
    frame = draw(st.sampled_from(["raw", "json-error", "json-message", "html"]))

    def build(inner: str) -> bytes:
        text = filler + inner + tail
        if frame == "json-error":
            return orjson.dumps({"status": "ERROR", "code": 500, "message": text})
        if frame == "json-message":
            return orjson.dumps({"message": text, "exception": "ErrorException"})
        if frame == "html":
            return f"<html><body><pre>{text}</pre></body></html>".encode()
        return text.encode("utf-8", "surrogatepass")

    return build(form(carrier)), build("")


def _pieces(secrets: Iterable[str]) -> set[str]:
    return {
        secret[i : i + PIECE] for secret in secrets for i in range(max(0, len(secret) - PIECE + 1))
    }


def _renderings(exc: BaseException) -> str:
    attributes = [repr(value) for value in vars(exc).values()]
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc)), *attributes])


def _decipher_error(
    status: int, headers: dict[str, str], body: bytes, url: str, token: str
) -> VoiceAPIError | None:
    try:
        decipher(status, headers, body, url=url, secrets=(token,))
    except VoiceAPIError as exc:
        return exc
    return None


def _assert_no_piece(rendered: str, secrets: Iterable[str], background: str) -> None:
    """No 8-character piece of a secret is in ``rendered``, unless it is in ``background``."""
    leaked = {piece for piece in _pieces(secrets) if piece in rendered and piece not in background}
    assert not leaked, f"leaked {sorted(leaked)!r} in {rendered!r}"


TRANSPORT = Transport(
    ClientConfig(base_url="https://h.example/api/v2/", token="t0ken-for-logs", timezone="UTC")
)


def _logged(caplog: pytest.LogCaptureFixture, exc: VoiceAPIError) -> str:
    """What the log says of ``exc``: the transport's retry line, and the error's traceback."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        TRANSPORT._backoff(exc)
        logging.getLogger("voiceapi_async").error("request failed: %s", exc, exc_info=exc)
    return caplog.text


@SETTINGS
@given(token=TOKENS, status=STATUSES, headers=HEADERS, data=st.data())
def test_no_piece_of_the_token_survives_an_error(
    token: str,
    status: int,
    headers: dict[str, str],
    data: st.DataObject,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The token, in any form and anywhere in the body or the URL, leaves no 8-character piece."""
    body, without = data.draw(bodies(token))
    url = f"https://h.example/api/v2/voice/calls?page=1&access_token={quote(token, safe='')}"
    error = _decipher_error(status, headers, body, url, token)
    assume(error is not None)
    assert error is not None
    bare_url = url.replace(quote(token, safe=""), "")
    baseline = _decipher_error(status, headers, without, bare_url, token)
    assume(baseline is not None)
    assert baseline is not None
    background = REDACTED + _renderings(baseline) + _logged(caplog, baseline)
    rendered = _renderings(error) + _logged(caplog, error)
    _assert_no_piece(rendered, [token, quote(token, safe="")], background)
    assert error.__context__ is None or error.__suppress_context__


@SETTINGS
@given(signed=signed_urls(), token=TOKENS, status=STATUSES, headers=HEADERS, data=st.data())
def test_no_piece_of_a_presigned_url_secret_survives_an_error(
    signed: tuple[str, list[str]],
    token: str,
    status: int,
    headers: dict[str, str],
    data: st.DataObject,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Signatures, credentials and session tokens of every family leave no 8-character piece."""
    url, secrets = signed
    body, without = data.draw(bodies(url))
    error = _decipher_error(status, headers, body, "https://h.example/", token)
    assume(error is not None)
    assert error is not None
    baseline = _decipher_error(status, headers, without, "https://h.example/", token)
    assume(baseline is not None)
    assert baseline is not None
    background = REDACTED + url.split("?")[0] + _renderings(baseline) + _logged(caplog, baseline)
    rendered = _renderings(error) + _logged(caplog, error)
    _assert_no_piece(rendered, secrets, background)


def _nest(value: Any, path: list[str]) -> Any:
    for key in reversed(path):
        value = {key: value} if key else [value]
    return value


RECORDING = {
    "id": "r1",
    "call_from": "+911",
    "call_to": "+912",
    "audio": None,
    "duration": "00:00:10",
    "agent": None,
    "created_at": "2019-06-11 05:57:24",
}


@SETTINGS
@given(
    signed=signed_urls(),
    path=st.lists(st.sampled_from(["", "links", "meta", "href"]), max_size=4),
    place=st.sampled_from(["extra", "audio", "agent"]),
)
def test_no_piece_of_a_presigned_url_secret_survives_a_record_repr(
    signed: tuple[str, list[str]], path: list[str], place: str
) -> None:
    """A presigned URL in a known field or nested anywhere in raw JSON is masked in the repr."""
    url, secrets = signed
    row: dict[str, Any] = dict(RECORDING)
    if place == "extra":
        row["download"] = _nest(url, path)
    elif place == "agent":
        row["agent"] = _nest(url, path)
    else:
        row["audio"] = url
    blank = {key: "" if value == url else value for key, value in row.items()}
    (record, baseline) = CONVERTER.structure_rows([row, blank], Recording)
    _assert_no_piece(repr(record), secrets, REDACTED + url + repr(baseline))
    call_row = {**CONVERTER.unstructure(_a_call()), "recording_url": _nest(url, path)}
    blank_call = {**call_row, "recording_url": _nest("", path)}
    (call, call_baseline) = CONVERTER.structure_rows([call_row, blank_call], Call)
    _assert_no_piece(repr(call), secrets, REDACTED + url + repr(call_baseline))


def _a_call() -> Call:
    row = {
        "id": "c1",
        "call_from": "+911",
        "call_to": "+912",
        "service": None,
        "bridge": None,
        "status": "ANSWER",
        "duration": "00:00:10",
        "billing": "00:00:10",
        "pulsing": "1",
        "charges": "0.0100",
        "start_at": None,
        "end_at": None,
        "hangup_by": None,
        "dtmf": None,
        "location": None,
        "region": None,
        "provider": None,
        "notes": None,
        "name": None,
        "audio": None,
    }
    (call,) = CONVERTER.structure_rows([row], Call)
    return call


@SETTINGS
@given(
    signed=signed_urls(),
    token=TOKENS,
    field=st.sampled_from(["created_at", "duration", "id", "call_from"]),
    which=st.sampled_from(["url", "token", "both"]),
)
def test_a_record_error_carries_no_raw_value_in_its_chain(
    signed: tuple[str, list[str]], token: str, field: str, which: str
) -> None:
    """A bad value holding a signed URL or the token is masked, and nothing is chained."""
    url, secrets = signed
    raw = {"url": url, "token": token} if which == "both" else (url if which == "url" else token)
    error = _record_error(raw, field, token)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert error.path.endswith(field)
    blank = {"url": "", "token": ""} if which == "both" else ""
    background = REDACTED + url.split("?")[0] + _renderings(_record_error(blank, field, token))
    _assert_no_piece(_renderings(error), [*secrets, token], background)


def _record_error(raw: Any, field: str, token: str) -> RecordError:
    """The error for a recording whose ``field`` holds ``raw``, in a form that field rejects."""
    value: Any = [raw]
    if isinstance(raw, str) and field == "created_at":
        value = f"not a date {raw}"
    elif isinstance(raw, str) and field == "duration":
        value = f"x:{raw}"
    row = {**RECORDING, field: value}
    with pytest.raises(RecordError) as caught:
        CONVERTER.structure_rows([row], Recording, secrets=(token,))
    return caught.value


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
NUMBERS = st.one_of(
    st.integers(-2, 10**12), st.text("0123456789", max_size=14), st.none(), JSON_VALUES
)
PAGING_KEYS = ("current_page", "last_page", "per_page", "total", "from", "to")
PAGINATOR = st.fixed_dictionaries(
    {"data": st.lists(JSON_VALUES, max_size=3)},
    optional=dict.fromkeys(PAGING_KEYS, NUMBERS) | {"next_page_url": st.none() | st.text()},
)
DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "status": st.one_of(
            st.sampled_from(["OK", "ERROR", 200, "200", "403", 401, 422, 429, 500, "x"]),
            JSON_VALUES,
        ),
        "code": st.one_of(st.sampled_from([200, 401, 403, 404, 422, 429, 500]), JSON_VALUES),
        "message": JSON_VALUES,
        "exception": JSON_VALUES,
        "errors": JSON_VALUES,
        "data": st.one_of(PAGINATOR, st.lists(JSON_VALUES, max_size=3), JSON_VALUES),
        "meta": st.one_of(PAGINATOR, JSON_VALUES),
        "links": JSON_VALUES,
    },
)
ANY_BODY = st.one_of(
    st.binary(max_size=300),
    DOCUMENTS.map(lambda document: json.dumps(document).encode()),  # ints beyond 64 bits too
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass")),
)
ANY_HEADERS = st.one_of(
    HEADERS,
    st.dictionaries(
        st.sampled_from(["Content-Type", "Retry-After", "X-RateLimit-Limit", "X-Other"]),
        st.text(max_size=40),
        max_size=4,
    ),
)


@settings(max_examples=200, deadline=None)
@given(status=st.integers(0, 999), headers=ANY_HEADERS, body=ANY_BODY)
def test_decipher_raises_nothing_but_typed_errors(
    status: int, headers: dict[str, str], body: bytes
) -> None:
    """Any status, headers and body give page data or a VoiceAPIError, never anything else."""
    try:
        result = decipher(status, headers, body, url="https://h.example/", now=0.0)
    except VoiceAPIError as exc:
        str(exc)
        repr(exc)
    else:
        assert isinstance(result, PageData)

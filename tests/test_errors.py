import pytest

from voiceapi_async import (
    APIStatusError,
    AuthenticationError,
    RateLimitError,
    RecordError,
    RequestTimeoutError,
    ResponseFormatError,
    TransportError,
    ValidationError,
)
from voiceapi_async._redact import BODY_EXCERPT_CHARS, REDACTED, excerpt, redact, redact_headers

TOKEN = "tok_live_9f8e7d6c5b4a"
PRESIGNED = (
    "https://bucket.s3.amazonaws.com/r.mp3?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20190611%2Fap-southeast-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20190611T063000Z&X-Amz-Expires=3600&X-Amz-Signature=deadbeefcafe"
    "&X-Amz-Security-Token=sessiontoken"
)


@pytest.mark.parametrize(
    "text",
    [
        f"https://h/api/v2/voice/calls?page=1&access_token={TOKEN}",
        f"https://h/api/v2/voice/calls?api_token={TOKEN}&page=2",
        f"https://h/?token={TOKEN}#frag",
        f"Authorization: Bearer {TOKEN}",
        f'{{"url": "https://h/?access_token%3D{TOKEN}"}}',
    ],
)
def test_redact_removes_tokens_wherever_they_travel(text: str) -> None:
    """Query tokens, encoded or not, and Bearer values are masked."""
    assert TOKEN not in redact(text)
    assert REDACTED in redact(text)


def test_redact_masks_presigned_secrets_but_keeps_the_rest() -> None:
    """Signature, credential and session token go; the path and public params stay."""
    safe = redact(PRESIGNED)
    for secret in ("deadbeefcafe", "AKIAEXAMPLE", "sessiontoken"):
        assert secret not in safe
    assert "X-Amz-Expires=3600" in safe
    assert safe.startswith("https://bucket.s3.amazonaws.com/r.mp3?")


def test_redact_masks_explicit_secrets_and_headers() -> None:
    """A known secret is masked anywhere, and credential headers entirely."""
    assert redact(f"raw {TOKEN} here", TOKEN) == f"raw {REDACTED} here"
    assert redact_headers({"Authorization": TOKEN, "X-Trace": f"Bearer {TOKEN}"}) == {
        "Authorization": REDACTED,
        "X-Trace": f"Bearer {REDACTED}",
    }


def test_excerpt_truncates_long_bodies() -> None:
    """Bodies in messages are cut to a short, redacted excerpt."""
    body = b"x" * 5000
    text = excerpt(body)
    assert len(text) < BODY_EXCERPT_CHARS + 40
    assert text.endswith("[5000 bytes in all]")


def test_status_errors_never_carry_the_token() -> None:
    """URL, body and message are redacted in APIStatusError and its subclasses."""
    url = f"https://h/api/v2/voice/calls?access_token={TOKEN}"
    body = f'{{"message": "bad token {TOKEN}", "echo": "access_token={TOKEN}"}}'.encode()
    for error in (
        APIStatusError(f"Bearer {TOKEN} rejected", status=418, url=url, body=body),
        AuthenticationError("nope", status=401, code=401, url=url, body=body, secrets=[TOKEN]),
        RateLimitError("slow", status=429, url=url, body=body, retry_after=3, secrets=[TOKEN]),
        ValidationError("bad", status=422, url=url, body=body, errors={"f": []}, secrets=[TOKEN]),
    ):
        texts = (str(error), repr(error), error.url, error.message)
        assert all(TOKEN not in text for text in texts)
    assert (
        "bad token [REDACTED]"
        in ValidationError("bad", status=422, body=body, secrets=[TOKEN]).body
    )
    for other in (
        TransportError(f"reset while reading {url}", url=url),
        RequestTimeoutError("timed out", url=url),
        ResponseFormatError("bad", url=url, body=body, secrets=[TOKEN]),
        RecordError(f"bad audio {PRESIGNED}", record_id="r1", path="$.data[0].audio"),
    ):
        assert TOKEN not in str(other)
        assert "deadbeefcafe" not in str(other)


def test_transport_errors_are_retryable_and_name_the_url() -> None:
    """TransportError (and timeouts) are retryable and say where they happened."""
    error = RequestTimeoutError("timed out after 30s", url="https://h/x")
    assert error.retryable
    assert str(error) == "timed out after 30s (https://h/x)"
    assert str(TransportError("reset")) == "reset"


def test_record_error_without_an_id() -> None:
    """A record without an id still gets a readable message."""
    error = RecordError("bad", record_id=None, path="$.data[2]")
    assert str(error) == "record without an id at $.data[2]: bad"

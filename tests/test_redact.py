"""The one redaction: token forms, presigned-URL families, headers, JSON and excerpts."""

import json
import re
import tracemalloc
from urllib.parse import quote, quote_plus

import orjson
import pytest

from voiceapi_async._redact import (
    BODY_EXCERPT_CHARS,
    REDACTED,
    excerpt,
    redact,
    redact_headers,
    redact_json,
)

TOKEN = "tok_live_9f8e7d6c5b4a"
HARD_TOKEN = "tok/en+a b\"c\\dé😀&<x>'z9"
"""A token with every kind of character that some form escapes."""


def php_json(text: str) -> str:
    """Return ``text`` as PHP's json_encode writes it: ASCII only, slashes escaped."""
    return json.dumps(text).replace("/", "\\/")


@pytest.mark.parametrize(
    "form",
    [
        HARD_TOKEN,
        quote(HARD_TOKEN, safe=""),
        quote_plus(HARD_TOKEN),
        quote(HARD_TOKEN),
        quote(HARD_TOKEN, safe="").lower(),
        quote(quote(HARD_TOKEN, safe=""), safe=""),
        orjson.dumps(HARD_TOKEN).decode(),
        json.dumps(HARD_TOKEN),
        php_json(HARD_TOKEN),
        re.sub(r"\\u[0-9a-f]{4}", lambda m: "\\u" + m[0][2:].upper(), php_json(HARD_TOKEN)),
        repr(HARD_TOKEN),
        ascii(HARD_TOKEN),
        "tok/en+a b&quot;c\\dé&#128512;&amp;&lt;x&gt;&apos;z9",
        "tok/en+a b&#x22;c\\d&#233;&#x1f600;&#038;&lt;x&gt;&#39;z9",
    ],
)
def test_a_secret_is_masked_in_every_written_form(form: str) -> None:
    """Plain, percent-encoded (once or twice), JSON, PHP, repr and HTML forms all go."""
    text = redact(f"before {form} after", HARD_TOKEN)
    assert text.replace(REDACTED, "") in {"before  after", 'before "" after', "before '' after"}


@pytest.mark.parametrize(
    "char", [" ", "\x7f", "\x80", "\xff", "\u0100", "\uffff", "\U00010000", "\U0010ffff"]
)
def test_characters_at_every_encoding_boundary_are_masked_in_every_form(char: str) -> None:
    """Space, DEL, Latin-1, the BMP's end and astral characters match in each of their forms."""
    secret = f"abcd{char}efgh"
    forms = [
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret),
        php_json(secret),
        repr(secret),
        ascii(secret),
        f"abcd&#{ord(char)};efgh",
        f"abcd&#x{ord(char):X};efgh",
    ]
    for form in forms:
        assert "abcd" not in redact(f"<{form}>", secret), form
    broken = f"<abcd{char}efgh>".encode("latin-1", "replace") if ord(char) < 0x100 else b""
    assert "abcd" not in excerpt(broken, secrets=[secret])


def test_a_secret_with_a_lone_surrogate_is_masked_without_error() -> None:
    """A token read from a badly encoded environment (surrogate escapes) still works."""
    secret = "tok\udcffen-value"
    assert redact(f"x {secret} y", secret) == f"x {REDACTED} y"


def test_a_secret_escaped_twice_is_masked() -> None:
    """JSON inside JSON (a debug page quoting a request body) doubles every backslash."""
    twice = json.dumps(json.dumps(HARD_TOKEN))
    assert redact(twice, HARD_TOKEN) == f'"\\"{REDACTED}\\""'


def test_a_secret_in_a_body_that_is_not_utf8_is_still_masked() -> None:
    """A non-ASCII character lost to a bad encoding does not let the rest through."""
    body = ("x" * 50 + "pre-é-post-secret-value").encode("latin-1")
    assert "pre-" not in excerpt(body, secrets=["pre-é-post-secret-value"])
    assert excerpt(b"\xff\xfe", secrets=[]) == "\ufffd\ufffd"


def test_only_the_secret_is_masked() -> None:
    """Text around a secret stays, and an empty secret masks nothing."""
    assert redact(f"raw {TOKEN} here", TOKEN) == f"raw {REDACTED} here"
    assert redact("nothing secret here", "") == "nothing secret here"
    assert redact("tok_live_9f8e7d6c5b4", TOKEN) == "tok_live_9f8e7d6c5b4"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"https://h/api/v2/voice/calls?page=1&access_token={TOKEN}", "page=1&access_token="),
        (f"https://h/?ACCESS_TOKEN={TOKEN}&page=2", "&page=2"),
        (f"https://h/?Api_Token={TOKEN}#frag", "#frag"),
        (f"https://h/?token%3D{TOKEN} next", " next"),
        (f"https://h/?token%253d{TOKEN}'", "'"),
        (f'"https://h/?token\\u003d{TOKEN}"', '"'),
        (f"<a href=https://h/?api_key={TOKEN}>", ">"),
        (f"https://h/?apikey={TOKEN}\tnext", "\tnext"),
        (f"password={TOKEN}\nnext", "\nnext"),
    ],
)
def test_secret_query_values_are_masked_in_any_case_up_to_their_end(text: str, kept: str) -> None:
    """Token parameters go whatever their case and separator; what follows them stays."""
    safe = redact(text)
    assert TOKEN not in safe
    assert REDACTED in safe
    assert kept in safe


def test_a_name_that_only_ends_like_a_secret_parameter_is_kept() -> None:
    """csrf_token= or xsig= are not secret parameters: their values stay."""
    assert redact("csrf_token=abc&xsig=def&my-token=ghi") == "csrf_token=abc&xsig=def&my-token=ghi"


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {TOKEN}",
        f"authorization: bearer {TOKEN}",
        f"sent BEARER {TOKEN}, refused",
        f"https://h/?auth=Bearer%20{TOKEN}",
        f"auth=Bearer+{TOKEN}",
    ],
)
def test_bearer_credentials_are_masked_in_any_case(text: str) -> None:
    """A Bearer credential goes, whatever the case of the scheme and its separator."""
    safe = redact(text)
    assert TOKEN not in safe
    assert REDACTED in safe


@pytest.mark.parametrize(
    "line",
    [
        "Cookie: laravel_session=c00k1e-value",
        "set-cookie: laravel_session=c00k1e-value; path=/",
        "X-API-KEY: c00k1e-value",
        "Proxy-Authorization: Basic c00k1e-value",
        "authorization:c00k1e-value",
    ],
)
def test_credential_header_lines_in_a_body_are_masked(line: str) -> None:
    """A debug page that dumps request headers keeps no credential."""
    safe = redact(f"<pre>{line}</pre>")
    assert "c00k1e" not in safe
    assert safe.endswith("</pre>")


def test_credential_headers_are_masked_whole_whatever_their_case() -> None:
    """Authorization, Cookie, X-Api-Key and friends are masked; other headers are redacted."""
    headers = {
        "Authorization": TOKEN,
        "proxy-authorization": TOKEN,
        "Cookie": "session=abc",
        "Set-Cookie": "session=abc",
        "X-Api-Key": "k3y",
        "X-Trace": f"Bearer {TOKEN}",
        "X-Echo": f"echo {TOKEN}",
        "Accept": "application/json",
    }
    assert redact_headers(headers, TOKEN) == {
        "Authorization": REDACTED,
        "proxy-authorization": REDACTED,
        "Cookie": REDACTED,
        "Set-Cookie": REDACTED,
        "X-Api-Key": REDACTED,
        "X-Trace": f"Bearer {REDACTED}",
        "X-Echo": f"echo {REDACTED}",
        "Accept": "application/json",
    }


SIGV4 = (
    "https://bucket.s3.ap-southeast-1.amazonaws.com/r.mp3?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLEKEYID%2F20190611%2Fap-southeast-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20190611T063000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLESESSION&X-Amz-Signature=deadbeefcafe0123"
)
S3_V2 = (
    "https://bucket.s3.amazonaws.com/r.mp3?AWSAccessKeyId=AKIAEXAMPLEKEYID"
    "&Expires=1560236400&Signature=dGhpc2lzYXNpZ25hdHVyZQ%3D%3D"
    "&x-amz-security-token=FwoGZXIvYXdzEXAMPLESESSION"
)
GCS_V4 = (
    "https://storage.googleapis.com/bucket/r.mp3?X-Goog-Algorithm=GOOG4-RSA-SHA256"
    "&X-Goog-Credential=signer%40project.iam.gserviceaccount.com%2F20190611%2Fauto%2Fstorage"
    "%2Fgoog4_request&X-Goog-Date=20190611T063000Z&X-Goog-Expires=3600"
    "&X-Goog-SignedHeaders=host&X-Goog-Signature=0badc0ffee1234567890"
)
GCS_V2 = (
    "https://storage.googleapis.com/bucket/r.mp3?GoogleAccessId=signer@project.iam.example"
    "&Expires=1560236400&Signature=Z2NzdjJzaWduYXR1cmU%3D"
)
AZURE = (
    "https://account.blob.core.windows.net/calls/r.mp3?sv=2021-08-06&se=2019-06-11T07%3A30%3A00Z"
    "&sr=b&sp=r&sig=YXp1cmVzYXNzaWduYXR1cmU%3D"
)
CLOUDFRONT = (
    "https://d111111abcdef8.cloudfront.net/r.mp3?Policy=eyJTdGF0ZW1lbnQiOlt7IlJlc291cmNlIjoi"
    "&Signature=Y2xvdWRmcm9udHNpZ25hdHVyZQ__&Key-Pair-Id=APKAEXAMPLEPAIRID"
)
FAMILIES = {
    "s3-sigv4": (
        SIGV4,
        ["AKIAEXAMPLEKEYID", "FwoGZXIvYXdzEXAMPLESESSION", "deadbeefcafe0123"],
        ["X-Amz-Expires=3600", "X-Amz-Date=20190611T063000Z"],
    ),
    "s3-v2": (
        S3_V2,
        ["AKIAEXAMPLEKEYID", "dGhpc2lzYXNpZ25hdHVyZQ", "FwoGZXIvYXdzEXAMPLESESSION"],
        ["Expires=1560236400"],
    ),
    "gcs-v4": (
        GCS_V4,
        ["signer%40project", "0badc0ffee1234567890"],
        ["X-Goog-Expires=3600"],
    ),
    "gcs-v2": (
        GCS_V2,
        ["signer@project", "Z2NzdjJzaWduYXR1cmU"],
        ["Expires=1560236400"],
    ),
    "azure-sas": (AZURE, ["YXp1cmVzYXNzaWduYXR1cmU"], ["se=2019-06-11T07%3A30%3A00Z", "sp=r"]),
    "cloudfront": (
        CLOUDFRONT,
        ["eyJTdGF0ZW1lbnQ", "Y2xvdWRmcm9udHNpZ25hdHVyZQ", "APKAEXAMPLEPAIRID"],
        [".cloudfront.net/r.mp3?"],
    ),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize(
    "form",
    [
        str,
        str.lower,
        str.upper,
        lambda url: quote(url, safe=""),
        lambda url: quote(quote(url, safe=""), safe=""),
        php_json,
        lambda url: url.replace("&", "\\u0026"),
        lambda url: url.replace("&", "&amp;"),
    ],
    ids=["plain", "lower", "upper", "quoted", "quoted-twice", "php-json", "json-hex-amp", "html"],
)
def test_presigned_url_secrets_are_masked_in_every_family_and_form(
    family: str, form: object
) -> None:
    """Signatures, credentials and session tokens go; the rest of the URL stays readable."""
    url, secrets, public = FAMILIES[family]
    assert callable(form)
    safe = redact(f"<p>see {form(url)}</p>")
    for secret in secrets:
        assert secret.lower() not in safe.lower()
    assert safe.endswith("</p>")
    if form is str:
        for part in public:
            assert part in safe


@pytest.mark.parametrize("end", ["&next=1", "#frag", " next", "\tnext", '"', "'", "<", ">"])
def test_a_signature_ends_where_the_url_syntax_ends_it(end: str) -> None:
    """The masked value runs to &, #, whitespace, a quote or an angle bracket, no further."""
    assert redact(f"sig=abc{end}") == f"sig={REDACTED}{end}"


def test_secret_keys_in_json_and_python_dictionaries_are_masked() -> None:
    """`"token": "..."` in a debug body or a dict's repr loses its value, escapes and all."""
    body = '{"api_token": "abc\\"def", "Signature": "s1g", "page": 2}'
    assert redact(body) == (f'{{"api_token": "{REDACTED}", "Signature": "{REDACTED}", "page": 2}}')
    assert redact("{'token': 'abc'}") == f"{{'token': '{REDACTED}'}}"
    assert redact('cut {"token": "abcdef') == f'cut {{"token": "{REDACTED}'


def test_redact_json_masks_nested_secrets_and_secret_keys() -> None:
    """Every text of decoded JSON is redacted and secret keys lose their values whole."""
    value = {
        "links": [{"href": SIGV4}, ("plain", 3), f"list {TOKEN}"],
        "meta": {"echo": f"dict {TOKEN}"},
        "Token": {"nested": "x"},
        "x-api-key": "k3y",
        "signature": None,
        f"key {TOKEN}": 1.5,
    }
    safe = redact_json(value, TOKEN)
    assert "deadbeefcafe0123" not in repr(safe)
    assert safe["links"][1:] == [["plain", 3], f"list {REDACTED}"]
    assert safe["meta"] == {"echo": f"dict {REDACTED}"}
    assert safe["Token"] == REDACTED
    assert safe["x-api-key"] == REDACTED
    assert safe["signature"] is None
    assert safe[f"key {REDACTED}"] == 1.5
    assert redact_json(7) == 7


def test_excerpt_redacts_before_it_cuts() -> None:
    """A token straddling the cut leaves none of its characters behind."""
    body = b"x" * 190 + TOKEN.encode()
    assert excerpt(body, 200, secrets=[TOKEN]) == "x" * 190 + REDACTED
    longer = b"x" * 195 + TOKEN.encode() + b"y" * 100
    text = excerpt(longer, 200, secrets=[TOKEN])
    assert text == "x" * 195 + REDACTED[:5] + f"... [{len(longer)} bytes in all]"
    signed = excerpt(b"x" * 190 + b"&sig=" + b"s" * 40, 200)
    assert signed == "x" * 190 + "&sig=" + REDACTED[:5] + "... [235 bytes in all]"


def test_excerpt_keeps_short_bodies_and_cuts_long_ones() -> None:
    """A short body is kept whole; a long one is cut to the limit and says how long it was."""
    assert excerpt(b"short") == "short"
    assert excerpt("x" * BODY_EXCERPT_CHARS) == "x" * BODY_EXCERPT_CHARS
    text = excerpt(b"x" * 5000)
    assert text == "x" * BODY_EXCERPT_CHARS + "... [5000 bytes in all]"
    assert excerpt("é" * 300, 100) == "é" * 100 + "... [300 characters in all]"


def test_excerpt_reads_further_when_redaction_shrinks_the_start() -> None:
    """A secret cut at the end of the first prefix read is not kept when redaction shortened it."""
    limit = 200
    span = 4 * (limit + 20 * len(TOKEN))  # the first prefix read
    head = " " + "x" * 20
    start = "token=" + "v" * (span - len(head) - 6 - 10) + head  # the prefix cuts TOKEN at 10
    body = (start + TOKEN + "y" * 3000).encode()
    assert len(start) < span < len(start) + len(TOKEN)
    text = excerpt(body, limit, secrets=[TOKEN])
    assert "tok_live" not in text
    assert text.startswith(f"token={REDACTED} xxxx")
    assert text.endswith(f"... [{len(body)} bytes in all]")


def test_excerpt_of_a_large_body_reads_only_a_prefix() -> None:
    """Redacting the start of a large body decodes a prefix, not the whole body."""
    body = b"x" * 1000 + b"\xff" * 5_000_000
    tracemalloc.start()
    try:
        text = excerpt(body, 100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert text == "x" * 100 + f"... [{len(body)} bytes in all]"
    assert peak < 1_000_000


def test_a_secret_that_is_part_of_a_parameter_name_does_not_unmask_its_value() -> None:
    """Token "ignature" inside "Signature=...": the signature is masked all the same."""
    url = "https://b.test/a.mp3?X-Amz-Date=1&Signature=0000000000000000__&Expires=2"
    masked = redact(url, "ignature")
    assert "0000000000000000" not in masked
    assert "ignature" not in masked

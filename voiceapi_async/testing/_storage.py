"""The simulator's audio storage: S3-style presigned URLs and deterministic bytes."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Mapping
from urllib.parse import quote

_AMZ_DATE = "%Y%m%dT%H%M%SZ"


class AudioStorage:
    """Signs recording URLs like S3 and checks them when they are fetched.

    Args:
        seed: makes the signing key and the audio bytes reproducible.
        expires: seconds a signed URL stays valid (``X-Amz-Expires``).
    """

    def __init__(self, seed: int, *, expires: int = 3600) -> None:
        self.expires = expires
        self._key = hashlib.sha256(f"voiceapi-simulator:{seed}".encode()).digest()
        self._access_key = f"AKIASIMULATOR{seed:06d}"[-20:]

    def sign(self, origin: str, path: str, now: dt.datetime) -> str:
        """Return a presigned URL for ``path`` minted at ``now`` (UTC)."""
        return self.signer(origin, now)(path)

    def signer(self, origin: str, now: dt.datetime) -> Callable[[str], str]:
        """Return a function signing paths at ``now``: the shared query part is built once."""
        amz_date = now.strftime(_AMZ_DATE)
        credential = f"{self._access_key}/{amz_date[:8]}/local/s3/aws4_request"
        query = "&".join(
            [
                "X-Amz-Content-Sha256=UNSIGNED-PAYLOAD",
                "X-Amz-Algorithm=AWS4-HMAC-SHA256",
                f"X-Amz-Credential={quote(credential, safe='')}",
                f"X-Amz-Date={amz_date}",
                "X-Amz-SignedHeaders=host",
                f"X-Amz-Expires={self.expires}",
                "X-Amz-Signature=",
            ]
        )
        expires = self.expires

        def sign(path: str) -> str:
            return f"{origin}{path}?{query}{self._signature(path, amz_date, expires)}"

        return sign

    def check(self, path: str, query: Mapping[str, str], now: dt.datetime) -> str | None:
        """Return ``None`` when the URL is valid now, else the S3 error code."""
        amz_date = query.get("X-Amz-Date", "")
        signature = query.get("X-Amz-Signature", "")
        try:
            expires = int(query.get("X-Amz-Expires", ""))
            minted = dt.datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=dt.UTC)
        except ValueError:
            return "AuthorizationQueryParametersError"
        if not hmac.compare_digest(signature, self._signature(path, amz_date, expires)):
            return "SignatureDoesNotMatch"
        if now > minted + dt.timedelta(seconds=expires):
            return "AccessDenied"
        return None

    def _signature(self, path: str, amz_date: str, expires: int) -> str:
        message = f"GET\n{path}\n{amz_date}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def audio_bytes(path: str) -> bytes:
    """Return the deterministic content of the recording at ``path`` (2 to 34 KiB)."""
    seed = hashlib.sha256(path.encode()).digest()
    size = 2048 + int.from_bytes(seed[:2], "big") % (32 * 1024)
    block = b"ID3\x04\x00" + seed
    return (block * (size // len(block) + 1))[:size]


def s3_error(code: str) -> bytes:
    """Return an S3-style XML error body."""
    messages = {
        "AccessDenied": "Request has expired",
        "SignatureDoesNotMatch": "The request signature we calculated does not match.",
        "AuthorizationQueryParametersError": "Query-string authentication is malformed.",
        "NoSuchKey": "The specified key does not exist.",
    }
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{messages.get(code, code)}</Message></Error>"
    ).encode()

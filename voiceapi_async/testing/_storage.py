"""The simulator's audio storage: S3-style presigned URLs and deterministic bytes."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterator, Mapping
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


DEFAULT_AUDIO_SIZE = (2 * 1024, 34 * 1024)
"""The default range of audio file sizes, in bytes, both ends included."""
_HEADER = b"ID3\x04\x00"
_BLOCK_BYTES = 4096


class AudioContent:
    """The deterministic bytes of one recording's audio, produced chunk by chunk.

    The file is an ID3-like header and then a 4 KiB pseudo-random block, repeated;
    its size is drawn from ``sizes`` by ``(seed, path)``. Any range of it is made
    on demand, so a multi-megabyte file is never held whole.
    """

    def __init__(
        self, path: str, *, seed: int = 0, sizes: tuple[int, int] = DEFAULT_AUDIO_SIZE
    ) -> None:
        digest = hashlib.sha256(f"{seed}:{path}".encode()).digest()
        low, high = sizes
        self.size = low + int.from_bytes(digest[:8], "big") % (high - low + 1)
        """The file's length in bytes."""
        self._block = b"".join(
            hashlib.sha256(digest + index.to_bytes(4, "big")).digest()
            for index in range(_BLOCK_BYTES // 32)
        )

    def read(self, start: int, stop: int) -> bytes:
        """Return the bytes from ``start`` to ``stop`` (clipped to the file)."""
        stop = min(stop, self.size)
        if start >= stop:
            return b""
        head = _HEADER[start:stop]
        offset = max(start, len(_HEADER)) - len(_HEADER)
        length = stop - len(_HEADER) - offset
        if length <= 0:
            return head
        begin = offset % _BLOCK_BYTES
        repeats = (begin + length) // _BLOCK_BYTES + 1
        return head + (self._block * repeats)[begin : begin + length]

    def chunks(self, size: int, start: int = 0) -> Iterator[bytes]:
        """Yield the file from ``start`` in pieces of ``size`` bytes."""
        for offset in range(start, self.size, size):
            yield self.read(offset, offset + size)


def audio_bytes(path: str, *, seed: int = 0, sizes: tuple[int, int] = DEFAULT_AUDIO_SIZE) -> bytes:
    """Return the whole deterministic content of the recording at ``path``."""
    content = AudioContent(path, seed=seed, sizes=sizes)
    return content.read(0, content.size)


def s3_error(code: str) -> bytes:
    """Return an S3-style XML error body."""
    messages = {
        "AccessDenied": "Request has expired",
        "SignatureDoesNotMatch": "The request signature we calculated does not match.",
        "AuthorizationQueryParametersError": "Query-string authentication is malformed.",
        "NoSuchKey": "The specified key does not exist.",
        "InternalError": "We encountered an internal error. Please try again.",
        "SlowDown": "Please reduce your request rate.",
    }
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{messages.get(code, code)}</Message></Error>"
    ).encode()

"""Every exit keeps secrets out: the manifest, the CLI's stderr and FastAPI's error bodies.

A loopback server echoes the token and a presigned URL in its failures, the token
placed where the body excerpt is cut (the reproduction of issue 13).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pendulum
import pytest
import pytest_asyncio
from aiohttp import web

from voiceapi_async import ResponseFormatError, RetryPolicy, VoiceClient
from voiceapi_async.backfill import Backfill, Manifest, WindowState, plan
from voiceapi_async.export import get_format

TOKEN = "exit-t0ken-5b1d9c7e"
SIGNATURE = "c0ffee5ign4ture9d8e7f"
SIGNED = (
    "https://bucket.s3.amazonaws.com/r.mp3?X-Amz-Credential=AKIAEXITTESTKEY%2F20240301"
    f"&X-Amz-Signature={SIGNATURE}"
)
SECRETS = (TOKEN, SIGNATURE, "AKIAEXITTESTKEY")
TZ = "UTC"
NOW = pendulum.datetime(2024, 3, 10, tz="UTC")


def leaks(text: str) -> list[str]:
    """The 8-character pieces of any secret found in ``text``."""
    return [
        secret[i : i + 8]
        for secret in SECRETS
        for i in range(len(secret) - 7)
        if secret[i : i + 8] in text
    ]


def debug_page() -> bytes:
    """A 200 that is not JSON and echoes the token across the 200-character excerpt cut."""
    return b"x" * 190 + f"{TOKEN} {SIGNED}".encode()


def bad_record_page() -> bytes:
    """A page whose one recording has a presigned URL where its timestamp should be."""
    row = {
        "id": "r1",
        "call_from": "+911",
        "call_to": "+912",
        "audio": SIGNED,
        "duration": "00:00:10",
        "agent": None,
        "created_at": f"see {SIGNED} token={TOKEN}",
    }
    return orjson.dumps({"status": "OK", "data": [row]})


@pytest_asyncio.fixture
async def server() -> AsyncIterator[str]:
    """A loopback API: calls answer a debug page, recordings carry a bad record."""

    async def calls(request: web.Request) -> web.Response:
        return web.Response(body=debug_page(), content_type="application/json")

    async def recordings(request: web.Request) -> web.Response:
        return web.Response(body=bad_record_page(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v2/voice/calls", calls)
    app.router.add_get("/api/v2/voice/recordings", recordings)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/api/v2/"
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_the_manifest_and_the_summary_keep_no_secret(server: str, tmp_path: Path) -> None:
    """A failed window's last_error names the failure without the token or the signature."""
    async with VoiceClient(
        base_url=server, token=TOKEN, timezone=TZ, rate_limit=0, retry=RetryPolicy(attempts=1)
    ) as client:
        with Manifest(tmp_path / "_manifest.sqlite") as manifest:
            windows = [
                *plan("calls", "2024-03-01", "2024-03-01", TZ, now=NOW),
                *plan("recordings", "2024-03-01", "2024-03-01", TZ, now=NOW),
            ]
            summary = await Backfill(client, manifest, get_format("jsonl"), tmp_path).run(windows)
            entries = list(manifest.entries())
    assert {entry.state for entry in entries} == {WindowState.FAILED}
    errors = [entry.last_error or "" for entry in entries]
    assert any("body starts: 'xxxxxxxx" in error for error in errors)
    assert any("created_at" in error for error in errors)
    assert not leaks("\n".join(errors) + repr(summary.failed))


async def voiceapi(*args: str) -> tuple[int, str]:
    """Run the real CLI in a subprocess (the server keeps running in this loop)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEAPI_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voiceapi_async",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


@pytest.mark.asyncio
@pytest.mark.parametrize("report", ["calls", "recordings"])
async def test_the_cli_says_what_failed_without_a_secret(
    server: str, report: str, tmp_path: Path
) -> None:
    """Streaming and backfill commands report the failure on stderr, secrets masked."""
    connection = ("--base-url", server, "--token", TOKEN, "--timezone", TZ)
    options = (*connection, "--max-attempts", "1", "--rate-limit", "0")
    code, stream_err = await voiceapi(
        report, "--from", "2024-03-01", "--to", "2024-03-01", *options
    )
    assert code != 0
    assert "error" in stream_err
    days = ("--from", "2024-03-01", "--to", "2024-03-01")
    code, backfill_err = await voiceapi("backfill", report, *days, "--out", str(tmp_path), *options)
    assert code != 0
    assert "failed" in backfill_err
    assert not leaks(stream_err + backfill_err)


@pytest.mark.asyncio
async def test_fastapi_error_bodies_carry_no_secret(server: str) -> None:
    """The HTTP answer for an upstream failure names the failure, never the echoed token."""
    pytest.importorskip("fastapi")
    from voiceapi_async.contrib.fastapi import error_response

    async with VoiceClient(
        base_url=server, token=TOKEN, timezone=TZ, rate_limit=0, retry=RetryPolicy(attempts=1)
    ) as client:
        with pytest.raises(ResponseFormatError) as caught:
            await client.calls("2024-03-01", "2024-03-01").collect()
    response = error_response(caught.value)
    assert response.status_code == 502
    assert not leaks(bytes(response.body).decode())
    assert not leaks(str(caught.value) + caught.value.body)
    assert "x" * 8 in str(caught.value)
    async with aiohttp.ClientSession() as session, session.get(server + "voice/calls") as raw:
        assert TOKEN in await raw.text()  # the server did echo it: the test can fail

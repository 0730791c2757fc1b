import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from voiceapi_async.testing import Faults, SimulatorConfig, VoiceSimulator
from voiceapi_async.testing._plugin import serve_in_thread

TOKEN = "fastapi-token-8"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class App:
    """The example app served by a real uvicorn process."""

    def __init__(self, sim: VoiceSimulator, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {k: v for k, v in os.environ.items() if not k.startswith("VOICEAPI_")}
        settings.update(
            VOICEAPI_BASE_URL=sim.base_url,
            VOICEAPI_TOKEN=TOKEN,
            VOICEAPI_TIMEZONE="Asia/Kolkata",
            VOICEAPI_RATE_LIMIT="0",
        )
        settings.update(env)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "fastapi_app:app",
                "--app-dir",
                str(EXAMPLES),
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=settings,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {self.process.communicate()[1]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("uvicorn did not start")

    def stop(self) -> str:
        """Stop the server; return what it wrote to stderr."""
        self.process.terminate()
        _, stderr = self.process.communicate(timeout=20)
        return stderr


@pytest.fixture
def sim() -> Iterator[VoiceSimulator]:
    with serve_in_thread(SimulatorConfig(token=TOKEN, calls_per_day=80, rate_limit=0)) as simulator:
        yield simulator


@pytest.fixture
def app(sim: VoiceSimulator) -> Iterator[App]:
    served = App(sim, VOICEAPI_MAX_IN_FLIGHT="4", VOICEAPI_PER_PAGE="20")
    yield served
    stderr = served.stop()
    assert "Traceback" not in stderr
    assert TOKEN not in stderr


async def get(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        headers = {key.lower(): value for key, value in response.headers.items()}
        return response.status, headers, await response.read()


RANGE = (dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 3, 23, 59, 59))


@pytest.mark.asyncio
async def test_streams_equal_the_ground_truth(sim: VoiceSimulator, app: App) -> None:
    """NDJSON calls and CSV recordings stream exactly the simulator's records."""
    status, headers, body = await get(f"{app.url}/calls?from=2024-03-01&to=2024-03-03")
    assert status == 200
    assert headers["content-type"].startswith("application/x-ndjson")
    ids = [json.loads(line)["id"] for line in body.splitlines()]
    assert len(ids) == len(set(ids))
    assert set(ids) == sim.ids_between("calls", *RANGE)
    status, _, body = await get(f"{app.url}/recordings?from=2024-03-01&to=2024-03-03&format=csv")
    lines = body.decode().splitlines()
    assert lines[0].startswith("id,call_from,call_to,audio")
    assert {line.split(",", 1)[0] for line in lines[1:]} == sim.ids_between("recordings", *RANGE)


@pytest.mark.asyncio
async def test_an_empty_range_is_the_reports_csv_header_or_an_empty_ndjson_body() -> None:
    """With no records, CSV is exactly that report's header line and NDJSON is 0 bytes."""
    empty = SimulatorConfig(token=TOKEN, calls_per_day=0, rate_limit=0)
    with serve_in_thread(empty) as sim:
        assert sim.ids_between("calls", *RANGE) == set()
        assert sim.ids_between("recordings", *RANGE) == set()
        served = App(sim)
        try:
            query = "from=2024-03-01&to=2024-03-03"
            responses = {
                (report, fmt): await get(f"{served.url}/{report}?{query}&format={fmt}")
                for report in ("calls", "recordings")
                for fmt in ("csv", "ndjson")
            }
        finally:
            stderr = served.stop()
    assert "Traceback" not in stderr
    assert {key: status for key, (status, _, _) in responses.items()} == dict.fromkeys(
        responses, 200
    )
    assert responses["recordings", "csv"][2] == (
        b"id,call_from,call_to,audio,duration_seconds,agent,created_at,extra\n"
    )
    assert responses["calls", "csv"][2] == (
        b"id,call_from,call_to,service,bridge,status,duration_seconds,billing_seconds,pulsing,"
        b"charges,start_at,end_at,hangup_by,dtmf,location,region,provider,notes,name,audio,"
        b"extra\n"
    )
    assert responses["calls", "csv"][1]["content-type"].startswith("text/csv")
    assert responses["calls", "ndjson"][2] == b""
    assert responses["recordings", "ndjson"][2] == b""
    assert responses["recordings", "ndjson"][1]["content-type"].startswith("application/x-ndjson")
    assert len(sim.observed.report_requests("recordings")) >= 2


@pytest.mark.asyncio
async def test_day_summary_is_computed_while_streaming(sim: VoiceSimulator, app: App) -> None:
    """The summary counts every call of the day by status and totals charges and minutes."""
    status, _, body = await get(f"{app.url}/calls/summary?day=2024-03-02")
    summary = json.loads(body)
    day = (dt.datetime(2024, 3, 2), dt.datetime(2024, 3, 2, 23, 59, 59))
    truth = sim.dataset.between("calls", *day)
    assert status == 200
    assert summary["calls"] == len(truth)
    assert sum(summary["by_status"].values()) == len(truth)
    from decimal import Decimal

    assert Decimal(summary["total_charges"]) == sum(Decimal(r["charges"]) for r in truth)


@pytest.mark.asyncio
async def test_concurrent_requests_share_one_client_and_its_limits(
    sim: VoiceSimulator, app: App
) -> None:
    """Twelve requests at once go through one client: its in-flight limit holds overall."""
    urls = [f"{app.url}/calls?from=2024-03-0{d}&to=2024-03-0{d + 1}" for d in range(1, 7)] * 2
    results = await asyncio.gather(*(get(url) for url in urls))
    assert all(status == 200 for status, _, _ in results)
    _, _, health = await get(f"{app.url}/health")
    stats = json.loads(health)
    assert sim.observed.max_in_flight <= 4
    assert stats["requests"] == len(sim.observed.report_requests())


@pytest.mark.asyncio
async def test_a_disconnecting_client_stops_the_upstream_fetching() -> None:
    """After the HTTP client goes away mid-stream, the simulator sees no more requests."""
    slow = SimulatorConfig(
        token=TOKEN, calls_per_day=300, rate_limit=0, faults=Faults(latency_ms=40)
    )
    with serve_in_thread(slow) as sim:
        served = App(sim, VOICEAPI_PER_PAGE="10", VOICEAPI_MAX_IN_FLIGHT="2")
        try:
            async with aiohttp.ClientSession() as session:
                response = await session.get(f"{served.url}/calls?from=2024-03-01&to=2024-03-30")
                await response.content.readline()
                response.close()
            await asyncio.sleep(0.5)
            seen = len(sim.observed.report_requests())
            await asyncio.sleep(0.6)
            assert len(sim.observed.report_requests()) == seen
            assert seen < 60  # the range has about 900 pages
        finally:
            served.stop()


@pytest.mark.asyncio
async def test_bad_ranges_are_422_with_the_reason(app: App) -> None:
    """An end before the start and a malformed date are client errors."""
    status, _, body = await get(f"{app.url}/calls?from=2024-03-05&to=2024-03-01")
    assert status == 422
    assert "before start" in json.loads(body)["detail"]
    status, _, _ = await get(f"{app.url}/calls?from=03/05/2024&to=2024-03-01")
    assert status == 422


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("config", "env", "expected", "header"),
    [
        ({}, {"VOICEAPI_TOKEN": "wrong-secret"}, 502, None),
        ({"rate_limit": 1}, {"VOICEAPI_MAX_ATTEMPTS": "1"}, 503, "retry-after"),
        (
            {"faults": Faults(latency_ms=2000, latency_spread=0.01)},
            {"VOICEAPI_MAX_ATTEMPTS": "1", "VOICEAPI_ATTEMPT_TIMEOUT": "0.3"},
            504,
            None,
        ),
    ],
)
async def test_upstream_errors_map_to_their_status(
    config: dict[str, object], env: dict[str, str], expected: int, header: str | None
) -> None:
    """Bad upstream token 502 (no secret shown), rate limit 503 + Retry-After, timeout 504."""
    settings = SimulatorConfig(token=TOKEN, calls_per_day=20, **config)  # type: ignore[arg-type]
    with serve_in_thread(settings) as sim:
        served = App(sim, **env)
        try:
            if expected == 503:
                await get(f"{served.url}/calls?from=2024-03-01&to=2024-03-01")
            status, headers, body = await get(f"{served.url}/calls?from=2024-03-02&to=2024-03-02")
        finally:
            stderr = served.stop()
    assert status == expected, body
    assert "wrong-secret" not in body.decode()
    assert "wrong-secret" not in stderr
    if header:
        assert int(headers[header]) >= 1

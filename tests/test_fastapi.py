import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fastapi import FastAPI, HTTPException
from starlette.requests import Request

from tests.conftest import settled
from voiceapi_async import (
    ClientConfig,
    Page,
    PageNumbers,
    RecordStream,
    Report,
    ServerError,
    Shape,
    plan_windows,
)
from voiceapi_async.contrib.fastapi import (
    ErrorBody,
    InvalidRangeError,
    csv_response,
    get_voice_client,
    install_error_handlers,
    ndjson_response,
    open_stream,
    row_schema,
    stream_route,
    voice_client_lifespan,
)
from voiceapi_async.export import COLUMNS
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
FIRST_THREE_DAYS = RANGE
MARCH = (dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 31, 23, 59, 59))


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
        b"id,call_from,call_to,audio,duration_seconds,agent,created_at,extra,audio_file,audio_sha256\n"
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
            # An upper bound: requests that still came after the disconnect count too.
            seen = await settled(sim.observed)
            assert seen < 60  # the range has about 900 pages
        finally:
            served.stop()


def error_of(body: bytes) -> dict[str, Any]:
    """Return the ``error`` of an error body, checking the body has the one shape."""
    parsed = json.loads(body)
    assert set(parsed) == {"error"}
    error: dict[str, Any] = ErrorBody.model_validate(parsed).model_dump()["error"]
    assert set(parsed["error"]) == {"code", "status", "message", "details"}
    return error


@pytest.mark.asyncio
async def test_bad_ranges_are_422_with_the_reason_in_the_one_error_body(app: App) -> None:
    """A reversed range, a malformed date and a missing parameter: 422s of the same shape."""
    status, _, body = await get(f"{app.url}/calls?from=2024-03-05&to=2024-03-01")
    assert status == 422
    error = error_of(body)
    assert (error["code"], error["status"], error["details"]) == ("invalid_range", 422, [])
    assert "before start" in error["message"]
    status, _, body = await get(f"{app.url}/calls?from=03/05/2024&to=2024-03-01")
    assert status == 422
    error = error_of(body)
    assert (error["code"], error["status"]) == ("invalid_request", 422)
    (detail,) = error["details"]
    assert detail["loc"] == ["query", "from"]
    assert detail["type"].startswith("date")
    assert error["message"].startswith("query from: ")
    status, _, body = await get(f"{app.url}/calls/summary")
    error = error_of(body)
    assert (status, error["code"]) == (422, "invalid_request")
    assert [detail["loc"] for detail in error["details"]] == [["query", "day"]]
    status, _, body = await get(f"{app.url}/nowhere")
    assert (status, error_of(body)["code"], error_of(body)["message"]) == (
        404,
        "not_found",
        "Not Found",
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("config", "env", "expected", "code", "header"),
    [
        ({}, {"VOICEAPI_TOKEN": "wrong-secret"}, 502, "upstream_authentication_error", None),
        (
            {"rate_limit": 1},
            {"VOICEAPI_MAX_ATTEMPTS": "1"},
            503,
            "upstream_rate_limit_error",
            "retry-after",
        ),
        (
            {"faults": Faults(latency_ms=2000, latency_spread=0.01)},
            {"VOICEAPI_MAX_ATTEMPTS": "1", "VOICEAPI_ATTEMPT_TIMEOUT": "0.3"},
            504,
            "upstream_request_timeout_error",
            None,
        ),
    ],
)
async def test_upstream_errors_map_to_their_status(
    config: dict[str, object], env: dict[str, str], expected: int, code: str, header: str | None
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
    error = error_of(body)
    assert (error["code"], error["status"], error["details"]) == (code, expected, [])
    assert "wrong-secret" not in body.decode()
    assert "wrong-secret" not in stderr
    if header:
        assert int(headers[header]) >= 1


@pytest.mark.asyncio
async def test_ranges_the_planner_refuses_are_422_at_once_and_the_app_stays_live(
    sim: VoiceSimulator, app: App
) -> None:
    """Millennia, year 9999 and year 1 are 422s naming the limit; /health answers meanwhile."""
    urls = {
        "/calls?from=0001-01-01&to=9998-12-31": "start='0001-01-01' is outside the dates",
        "/calls?from=0002-01-01&to=9998-12-31&format=csv": (
            "covers 3,651,329 days, more than the limit of 3,660 days "
            "(ClientConfig.max_days, VOICEAPI_MAX_DAYS)"
        ),
        "/recordings?from=2024-03-01&to=9999-12-31": "the supported range is 0001-01-02 to",
        "/calls/summary?day=9999-12-31": "start='9999-12-31' is outside the dates",
    }
    paths = [*urls, "/health"] * 5
    answers = await asyncio.gather(*(get(app.url + path) for path in paths))
    for path, (status, _, body) in zip(paths, answers, strict=True):
        if path == "/health":
            assert status == 200
            assert json.loads(body)["status"] == "ok"
        else:
            assert status == 422, body
            assert urls[path] in error_of(body)["message"]
    assert len(sim.observed.report_requests()) == 0


@pytest.mark.asyncio
async def test_the_app_takes_its_range_limit_from_voiceapi_max_days(sim: VoiceSimulator) -> None:
    """With VOICEAPI_MAX_DAYS=31, 31 days stream and 32 are a 422 naming the limit."""
    served = App(sim, VOICEAPI_MAX_DAYS="31")
    try:
        status, _, body = await get(f"{served.url}/calls?from=2024-03-01&to=2024-04-01")
        assert status == 422
        assert "covers 32 days, more than the limit of 31 days" in error_of(body)["message"]
        assert len(sim.observed.report_requests()) == 0
        status, _, body = await get(f"{served.url}/calls?from=2024-03-01&to=2024-03-31")
        assert status == 200
        assert len(body.splitlines()) == len(sim.ids_between("calls", *MARCH))
    finally:
        assert "Traceback" not in served.stop()


@contextlib.asynccontextmanager
async def failing_upstream(sim: VoiceSimulator, day: str) -> AsyncIterator[str]:
    """Yield the API root of a proxy to ``sim`` that answers 500 for the whole day ``day``."""
    async with aiohttp.ClientSession() as session:

        async def forward(request: web.Request) -> web.Response:
            if any(day in value for value in request.query.values()):
                return web.json_response({"message": "Server Error"}, status=500)
            async with session.get(
                sim.base_url + request.match_info["tail"],
                params=request.query,
                headers={"Authorization": request.headers.get("Authorization", "")},
            ) as upstream:
                body = await upstream.read()
                return web.Response(
                    body=body, status=upstream.status, content_type="application/json"
                )

        proxy = web.Application()
        proxy.router.add_get("/api/v2/{tail:.*}", forward)
        runner = web.AppRunner(proxy)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield f"http://127.0.0.1:{port}/api/v2/"
        finally:
            await runner.cleanup()


async def raw_get(url: str, path: str) -> tuple[bytes, bytes, bool]:
    """GET over a bare socket; return the head, the de-chunked body and whether it ended."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    raw = await reader.read()  # until the server closes the connection
    writer.close()
    await writer.wait_closed()
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    body = b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return head, body, True
        body += rest[:size]
        rest = rest[size + 2 :]
    return head, body, False


@pytest.mark.asyncio
@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
async def test_a_failure_after_the_response_started_ends_with_an_error_line_and_an_abort(
    sim: VoiceSimulator, fmt: str
) -> None:
    """Day 4 fails upstream: days 1-3, one error line, then no final chunk (aiohttp raises)."""
    path = f"/calls?from=2024-03-01&to=2024-03-06&format={fmt}"
    async with failing_upstream(sim, "Mar 04, 2024") as upstream:
        served = App(
            sim,
            VOICEAPI_BASE_URL=upstream,
            VOICEAPI_MAX_ATTEMPTS="1",
            VOICEAPI_MAX_WINDOWS="1",
            VOICEAPI_PER_PAGE="10",  # small pages: a day a request, so days 1-3 come first
        )
        try:
            head, body, complete = await raw_get(served.url, path)
            async with (
                aiohttp.ClientSession() as session,
                session.get(served.url + path) as response,
            ):
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
        finally:
            stderr = served.stop()
    assert head.startswith(b"HTTP/1.1 200")
    assert not complete
    lines = body.decode().splitlines()
    if fmt == "ndjson":
        assert json.loads(lines[-1]) == {
            "error": {
                "code": "upstream_server_error",
                "status": 502,
                "message": "upstream failed",
                "details": [],
            }
        }
        ids = [json.loads(line)["id"] for line in lines[:-1]]
    else:
        assert lines[0].startswith("id,call_from,call_to")
        assert lines[-1] == "#error,upstream_server_error,502,upstream failed"
        ids = [line.split(",", 1)[0] for line in lines[1:-1]]
    assert sorted(ids) == sorted(sim.ids_between("calls", *FIRST_THREE_DAYS))
    assert "Traceback" not in stderr
    assert TOKEN not in stderr


def failing_stream(error: Exception) -> RecordStream[Any]:
    """A record stream whose first page arrives and whose second fetch fails."""
    (window,) = plan_windows("calls", "2024-03-01", "2024-03-01", "UTC")
    numbers = PageNumbers(current_page=1, last_page=2, per_page=10, total=20)

    async def produce(emit: Any) -> None:
        await emit(None)
        raise error

    def make_page(_item: Any) -> Page[Any]:
        return Page(records=[], window=window, shape=Shape.PAGINATOR, numbers=numbers)

    return RecordStream(produce, report=Report.CALLS, make_page=make_page, description="t")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("error", "kind", "status", "message"),
    [
        (ServerError("boom", status=500), "upstream_server_error", 502, "upstream failed"),
        (RuntimeError("a bug"), "internal_error", 500, "internal error"),
    ],
)
@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
async def test_the_error_line_is_the_last_body_message_and_the_response_never_ends(
    error: Exception,
    kind: str,
    status: int,
    message: str,
    fmt: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At the ASGI level: the error line is sent and logged, then no final body message."""
    respond = ndjson_response if fmt == "ndjson" else csv_response
    response = await respond(failing_stream(error))
    sent: list[MutableMapping[str, Any]] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "GET", "path": "/"}
    await response(scope, receive, send)
    assert sent[0]["type"] == "http.response.start"
    assert all(m["more_body"] for m in sent[1:])
    last = sent[-1]["body"].decode()
    if fmt == "ndjson":
        assert json.loads(last) == {
            "error": {"code": kind, "status": status, "message": message, "details": []}
        }
    else:
        assert last == f"#error,{kind},{status},{message}\n"
    (logged,) = [r for r in caplog.records if r.name == "voiceapi_async.contrib.fastapi"]
    assert "failed after the response started" in logged.getMessage()
    assert logged.levelname == ("WARNING" if kind == "upstream_server_error" else "ERROR")


@pytest.mark.asyncio
async def test_the_lifespan_takes_a_tighter_max_days_for_the_web() -> None:
    """voice_client_lifespan(max_days=7): an 8-day range is a 422 naming the limit of 7."""
    config = ClientConfig(base_url="http://127.0.0.1:9/api/v2/", token="t", timezone="UTC")
    app = FastAPI(lifespan=voice_client_lifespan(config, max_days=7))
    async with app.router.lifespan_context(app):
        client = get_voice_client(Request({"type": "http", "app": app}))
        assert client.config.max_days == 7
        with pytest.raises(InvalidRangeError) as caught:
            open_stream(lambda: client.calls("2024-03-01", "2024-03-08"))
        assert caught.value.status_code == 422
        assert "covers 8 days, more than the limit of 7 days" in caught.value.detail
        open_stream(lambda: client.calls("2024-03-01", "2024-03-07"))


def load_example_app() -> FastAPI:
    """Import examples/fastapi_app.py (its lifespan reads the environment only at startup)."""
    spec = importlib.util.spec_from_file_location(
        "fastapi_app_example", EXAMPLES / "fastapi_app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: FastAPI = module.app
    return app


def test_the_openapi_document_says_what_the_streamed_routes_answer() -> None:
    """NDJSON and CSV (no JSON) for 200, the row schemas from export.COLUMNS, the errors."""
    document = load_example_app().openapi()
    schemas = document["components"]["schemas"]
    for path, report, row in (
        ("/calls", Report.CALLS, "CallRow"),
        ("/recordings", Report.RECORDINGS, "RecordingRow"),
    ):
        responses = document["paths"][path]["get"]["responses"]
        content = responses["200"]["content"]
        assert set(content) == {"application/x-ndjson", "text/csv"}
        assert content["application/x-ndjson"]["itemSchema"] == {
            "$ref": f"#/components/schemas/{row}"
        }
        assert content["text/csv"]["schema"] == {"type": "string"}
        assert ", ".join(COLUMNS[report]) in responses["200"]["description"]
        assert list(schemas[row]["properties"]) == list(COLUMNS[report])
        assert schemas[row] == row_schema(report)
        assert set(responses) == {"200", "422", "502", "503", "504"}
        for status in ("422", "502", "503", "504"):
            assert responses[status]["content"] == {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
            }
        assert "Retry-After" in responses["503"]["headers"]
    summary = document["paths"]["/calls/summary"]["get"]["responses"]
    assert set(summary) == {"200", "422", "502", "503", "504"}
    assert schemas["ErrorBody"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorInfo"}
    assert set(schemas["ErrorInfo"]["properties"]) == {"code", "status", "message", "details"}
    assert "HTTPValidationError" not in schemas
    calls = schemas["CallRow"]["properties"]
    assert calls["charges"]["type"] == "string"
    assert calls["duration_seconds"] == {"type": "integer"}
    assert calls["end_at"]["format"] == "date-time"
    assert schemas["RecordingRow"]["properties"]["audio_sha256"] == {"type": ["string", "null"]}


def test_the_openapi_components_are_added_once_and_kept() -> None:
    """Building the document twice gives the same document; the app's own schemas stay."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/calls", **stream_route("calls"))
    async def calls() -> None:  # pragma: no cover - documented, never called
        raise NotImplementedError

    first = app.openapi()
    assert app.openapi() is first
    assert {"CallRow", "RecordingRow", "ErrorBody", "ErrorInfo", "ErrorDetail"} <= set(
        first["components"]["schemas"]
    )


async def asgi_get(app: FastAPI, path: str) -> tuple[int, dict[str, Any]]:
    """GET ``path`` from ``app`` in process; return the status and the JSON body."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    with contextlib.suppress(RuntimeError):  # Starlette re-raises an unhandled error, logged
        await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, error_of(body)


@pytest.mark.asyncio
async def test_every_error_has_the_one_body_shape() -> None:
    """An HTTPException of the app, a bug in a handler and a client error: one shape."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418, detail="short and stout", headers={"X-Tea": "1"})

    @app.get("/odd")
    async def odd() -> None:
        raise HTTPException(status_code=599, detail={"not": "text"})

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug with a secret s3cr3t")

    @app.get("/upstream")
    async def upstream() -> None:
        raise ServerError("boom", status=500)

    @app.get("/range")
    async def bad_range() -> None:
        raise InvalidRangeError("end is before start")

    assert await asgi_get(app, "/teapot") == (
        418,
        {"code": "i_m_a_teapot", "status": 418, "message": "short and stout", "details": []},
    )
    assert await asgi_get(app, "/odd") == (
        599,
        {"code": "http_599", "status": 599, "message": "HTTP 599", "details": []},
    )
    status, error = await asgi_get(app, "/bug")
    assert (status, error["code"], error["message"]) == (500, "internal_error", "internal error")
    status, error = await asgi_get(app, "/upstream")
    assert (status, error["code"], error["message"]) == (
        502,
        "upstream_server_error",
        "upstream failed",
    )
    status, error = await asgi_get(app, "/range")
    assert (status, error["code"], error["message"]) == (
        422,
        "invalid_range",
        "end is before start",
    )


def test_the_app_refuses_to_start_without_the_accounts_time_zone(sim: VoiceSimulator) -> None:
    """No VOICEAPI_TIMEZONE: startup fails with the variable, the dashboard and no default."""
    with pytest.raises(RuntimeError) as failed:
        App(sim, VOICEAPI_TIMEZONE="")
    message = " ".join(str(failed.value).split())
    assert "VOICEAPI_TIMEZONE is not set" in message
    assert "the account's settings in the provider's dashboard" in message
    assert TOKEN not in message

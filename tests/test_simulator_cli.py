"""Ways to run the simulator: the pytest plugin's fixture and the ``serve`` command."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from voiceapi_async.testing import SimulatorConfig, VoiceSimulator
from voiceapi_async.testing._cli import build_parser, config_from_args, main, serve_main
from voiceapi_async.testing._plugin import serve_in_thread

pytest_plugins = ["pytester"]

DAY = "2024-03-05 - 2024-03-05"
DAY_BOUNDS = (dt.datetime(2024, 3, 5), dt.datetime(2024, 3, 5, 23, 59, 59))
TOKEN = "tok-cli-1"


def get_json(url: str, token: str = "demo-token", **params: str) -> tuple[int, Any]:
    query = urllib.parse.urlencode({"datetime[end_at]": DAY, **params})
    request = urllib.request.Request(
        f"{url}?{query}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def simulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "voice-simulator"]


# -- the fixture -----------------------------------------------------------------------


def test_fixture_serves_sync_test(voice_simulator: VoiceSimulator) -> None:
    """A sync test reaches the default simulator (shape B, token demo-token) over HTTP."""
    status, body = get_json(voice_simulator.base_url + "voice/calls", per_page="5")
    assert status == 200
    assert body["status"] == "OK"
    assert body["data"]["per_page"] == 5
    assert len(body["data"]["data"]) == 5
    assert voice_simulator.observed.report_requests("calls")[0].auth == "bearer"


@pytest.mark.parametrize(
    "loop_scope",
    [
        pytest.param("function", marks=pytest.mark.asyncio),
        pytest.param("module", marks=pytest.mark.asyncio(loop_scope="module")),
    ],
)
async def test_fixture_serves_async_test(voice_simulator: VoiceSimulator, loop_scope: str) -> None:
    """An async test, on a function- or module-scoped loop, reaches the simulator with aiohttp."""
    headers = {"Authorization": "Bearer demo-token", "Accept": "application/json"}
    params = {"datetime[end_at]": DAY, "per_page": "100"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(voice_simulator.base_url + "voice/calls", params=params) as response,
    ):
        body = await response.json()
    assert response.status == 200
    ids = {record["id"] for record in body["data"]["data"]}
    truth = voice_simulator.ids_between("calls", *DAY_BOUNDS)
    assert body["data"]["total"] == len(truth)
    assert len(ids) == min(100, len(truth))
    assert ids <= truth


@pytest.mark.parametrize(
    "voice_simulator_config", [SimulatorConfig(shape="c", token=TOKEN, per_page_max=10)]
)
def test_fixture_configured_by_parametrizing_config(voice_simulator: VoiceSimulator) -> None:
    """Parametrizing ``voice_simulator_config`` serves shape C with the given token and cap."""
    assert voice_simulator.config.token == TOKEN
    status, body = get_json(voice_simulator.base_url + "voice/calls", token=TOKEN, per_page="50")
    assert status == 200
    assert body["meta"]["per_page"] == 10
    assert len(body["data"]) == 10
    status, body = get_json(voice_simulator.base_url + "voice/calls")
    assert status == 401


class TestConfigFixtureOverride:
    """A class (like a module or conftest) overrides the config fixture for its tests."""

    @pytest.fixture
    def voice_simulator_config(self) -> SimulatorConfig:
        """Shape A with its own token for every test in the class."""
        return SimulatorConfig(shape="a", token=TOKEN, calls_per_day=20)

    def test_override_applies(self, voice_simulator: VoiceSimulator) -> None:
        """An overriding ``voice_simulator_config`` fixture serves shape A (a bare list)."""
        status, body = get_json(voice_simulator.base_url + "voice/calls", token=TOKEN)
        assert status == 200
        assert isinstance(body["data"], list)


def test_fixture_rejects_a_config_of_the_wrong_type(pytester: pytest.Pytester) -> None:
    """A ``voice_simulator_config`` that is not a SimulatorConfig errors the test clearly."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def voice_simulator_config():
            return {"shape": "c"}

        def test_it(voice_simulator):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*voice_simulator_config must be a SimulatorConfig, not dict*"])


def test_serve_in_thread_stops_its_thread() -> None:
    """The context manager serves from a thread and joins it on exit, nothing left behind."""
    before = simulator_threads()
    with serve_in_thread(token=TOKEN, rate_limit=0) as simulator:
        assert len(simulator_threads()) == len(before) + 1
        status, _ = get_json(simulator.base_url + "voice/recordings", token=TOKEN)
        assert status == 200
    assert simulator_threads() == before
    with pytest.raises(urllib.error.URLError):
        get_json(simulator.base_url + "voice/calls", token=TOKEN)


def test_serve_in_thread_raises_startup_errors_in_the_caller() -> None:
    """A port already in use fails in the caller's thread, and no thread lingers."""
    with serve_in_thread() as first:
        port = int(first.base_url.split(":")[2].split("/")[0])
        with pytest.raises(OSError, match="address already in use"), serve_in_thread(port=port):
            pass  # pragma: no cover - never entered
    assert simulator_threads() == []


# -- the command -----------------------------------------------------------------------


@pytest.fixture
def command() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def start_command(started: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "voiceapi_async.testing", "serve", "--port", "0", *args]
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    started.append(process)
    return process


def first_line(process: subprocess.Popen[str], timeout: float = 15.0) -> str:
    """Return the process's first stdout line, failing (not hanging) if none comes in time."""
    stdout = process.stdout
    assert stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()))
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        process.kill()  # ends the read
        reader.join()
        pytest.fail(f"the command printed nothing within {timeout} s")
    return lines[0].strip()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_command_serves_until_signalled(
    command: list[subprocess.Popen[str]], stop: signal.Signals
) -> None:
    """The command prints its URL, serves requests, and exits 0 on a signal, no traceback."""
    process = start_command(command, "--shape", "C", "--token", TOKEN, "--seed", "7")
    base_url = first_line(process)
    assert base_url.startswith("http://127.0.0.1:")
    assert base_url.endswith("/api/v2/")
    assert not base_url.startswith("http://127.0.0.1:0/")
    status, body = get_json(base_url + "voice/calls", token=TOKEN, per_page="3")
    assert status == 200
    assert body["meta"]["per_page"] == 3
    process.send_signal(stop)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert out == ""
    assert "Traceback" not in err
    assert "shape C" in err


def test_command_applies_its_options() -> None:
    """Every option lands in the SimulatorConfig it builds, faults preset included."""
    args = build_parser().parse_args(
        [
            "serve",
            "--shape=a",
            "--token=t",
            "--seed=3",
            "--timezone=Europe/Berlin",
            "--calls-per-day=9",
            "--rate-limit=0",
            "--per-page-max=25",
            "--faults=demo",
            "--latency-ms=5",
            "--reset=0.5",
        ]
    )
    config = config_from_args(args)
    assert (config.shape.value, config.token, config.seed, config.timezone) == (
        "A",
        "t",
        3,
        "Europe/Berlin",
    )
    assert (config.calls_per_day, config.rate_limit, config.per_page_max) == (9, 0, 25)
    assert (config.faults.latency_ms, config.faults.reset, config.faults.server_error) == (
        5.0,
        0.5,
        0.02,
    )
    assert (args.host, args.port) == ("127.0.0.1", 8080)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--shape", "d"], "argument --shape: invalid choice: 'd'"),
        (["serve", "--rate-limit", "-1"], "argument --rate-limit: must be 0 or more, not -1"),
        (["serve", "--port", "http"], "argument --port: not a whole number: 'http'"),
        (["serve", "--port", "65536"], "argument --port: must be 0 to 65535, not 65536"),
        (["serve", "--server-error", "1.5"], "argument --server-error: must be a probability"),
        (["serve", "--latency-ms", "nan"], "argument --latency-ms: must be 0 or more, not nan"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_command_rejects_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad argument exits 2 with argparse's usage and a message naming it."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m voiceapi_async.testing")
    assert message in err


def test_serve_main_names_itself_as_told(capsys: pytest.CaptureFixture[str]) -> None:
    """``serve_main`` takes the serve options alone and reports errors under its caller's name."""
    with pytest.raises(SystemExit) as exited:
        serve_main(["--stall", "x"], prog="voiceapi serve-fake")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: voiceapi serve-fake [-h]")
    assert "voiceapi serve-fake: error: argument --stall: not a number: 'x'" in err
    assert serve_main(["--timezone", "Nowhere"], prog="voiceapi serve-fake") == 2
    assert capsys.readouterr().err == ("voiceapi serve-fake: error: unknown time zone: 'Nowhere'\n")


def test_command_rejects_an_unknown_time_zone(capsys: pytest.CaptureFixture[str]) -> None:
    """A setting the simulator rejects exits 2 with one line on stderr."""
    assert main(["serve", "--timezone", "Mars/Olympus_Mons"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "python -m voiceapi_async.testing serve: error: unknown time zone: 'Mars/Olympus_Mons'\n"
    )


def test_command_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    """Serving on a port already taken exits 1 with one line on stderr."""
    with serve_in_thread() as taken:
        port = taken.base_url.split(":")[2].split("/")[0]
        assert main(["serve", "--port", port]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in captured.err


def test_command_in_a_subprocess_rejects_bad_arguments(
    command: list[subprocess.Popen[str]],
) -> None:
    """The real command exits 2 with a message and no traceback on a bad argument."""
    process = start_command(command, "--calls-per-day", "lots")
    out, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert out == ""
    assert "argument --calls-per-day: not a whole number: 'lots'" in err
    assert "Traceback" not in err

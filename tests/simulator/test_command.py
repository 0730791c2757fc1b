"""The ``serve`` command: ``python -m voiceapi_async.testing serve`` and ``serve_main``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.simulator.conftest import TOKEN, get_json
from voiceapi_async.testing import DEFAULT_CALLS_PER_DAY, SimulatorConfig, serve_command, serve_main
from voiceapi_async.testing._cli import main
from voiceapi_async.testing._command import config_from_options
from voiceapi_async.testing._plugin import serve_in_thread


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
    context = serve_command().make_context(
        "serve",
        [
            "--shape=A",
            "--token=t",
            "--seed=3",
            "--timezone=Europe/Berlin",
            "--calls-per-day=9",
            "--rate-limit=0",
            "--rate-mode=sliding",
            "--per-page-max=25",
            "--faults=demo",
            "--latency-ms=5",
            "--reset=0.5",
            "--audio-size=1000-90000",
            "--audio-expiry=30",
            "--storage-latency-ms=50",
            "--storage-bandwidth=1000000",
            "--storage-error=0.1",
            "--storage-stall=0.2",
        ],
    )
    config = config_from_options(context.params)
    assert (config.shape.value, config.token, config.seed, config.timezone) == (
        "A",
        "t",
        3,
        "Europe/Berlin",
    )
    assert (config.calls_per_day, config.rate_limit, config.per_page_max) == (9, 0, 25)
    assert config.rate_mode == "sliding"
    assert (config.faults.latency_ms, config.faults.reset, config.faults.server_error) == (
        5.0,
        0.5,
        0.02,
    )
    assert (config.audio_size, config.audio_expiry) == ((1000, 90000), 30)
    storage = config.faults
    assert (storage.storage_latency_ms, storage.storage_bandwidth) == (50.0, 1_000_000.0)
    assert (storage.storage_error, storage.storage_reset, storage.storage_stall) == (0.1, 0.0, 0.2)
    assert (context.params["host"], context.params["port"]) == ("127.0.0.1", 8080)


def test_command_defaults_are_the_simulators() -> None:
    """Without options, the command serves exactly SimulatorConfig() (one default volume)."""
    context = serve_command().make_context("serve", [])
    assert config_from_options(context.params) == SimulatorConfig()
    assert SimulatorConfig().calls_per_day == DEFAULT_CALLS_PER_DAY
    assert context.params["faults"] == "none"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--shape", "d"], "Invalid value for '--shape': 'd' is not one of 'a', 'b', 'c'"),
        (["serve", "--rate-limit", "-1"], "Invalid value for '--rate-limit': -1 is not in the"),
        (["serve", "--port", "http"], "Invalid value for '--port': 'http' is not a valid integer"),
        (["serve", "--port", "65536"], "Invalid value for '--port': 65536 is not in the range"),
        (["serve", "--server-error", "1.5"], "Invalid value for '--server-error': 1.5 is not in"),
        (["serve", "--latency-ms", "nan"], "'--latency-ms': must be 0 or more, not nan"),
        (["serve", "--latency-ms", "soon"], "'--latency-ms': 'soon' is not a valid float"),
        (["serve", "--audio-size", "9-3"], "'--audio-size': must be MIN-MAX"),
        (["serve", "--audio-size", "big"], "'--audio-size': 'big' is not a size"),
        (["serve", "--timezone", "Mars/Olympus_Mons"], "'Mars/Olympus_Mons' is not a time zone"),
        ([], "Commands:\n  serve "),
    ],
)
def test_command_rejects_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad argument exits 2 with click's usage and a message naming the option."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("Usage: python -m voiceapi_async.testing")
    assert message in captured.err
    assert captured.out == ""


def test_serve_main_names_itself_as_told(capsys: pytest.CaptureFixture[str]) -> None:
    """``serve_main`` takes the serve options alone and reports errors under its caller's name."""
    assert serve_main(["--stall", "x"], prog="voiceapi serve-fake") == 2
    err = capsys.readouterr().err
    assert err.startswith("Usage: voiceapi serve-fake [OPTIONS]")
    assert "Invalid value for '--stall': 'x' is not a valid float" in err
    assert serve_main(["--timezone", "Nowhere"], prog="voiceapi serve-fake") == 2
    assert "'Nowhere' is not a time zone" in capsys.readouterr().err
    assert serve_main(["--help"], prog="voiceapi serve-fake") == 0
    helped = capsys.readouterr().out
    assert "--calls-per-day N" in helped
    assert f"[default: {DEFAULT_CALLS_PER_DAY}; x>=0]" in helped


def test_command_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    """Serving on a port already taken exits 1 with one line on stderr."""
    with serve_in_thread() as taken:
        port = taken.base_url.split(":")[2].split("/")[0]
        assert main(["serve", "--port", port]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"Error: cannot listen on 127.0.0.1:{port}")


def test_command_in_a_subprocess_rejects_bad_arguments(
    command: list[subprocess.Popen[str]],
) -> None:
    """The real command exits 2 with a message and no traceback on a bad argument."""
    process = start_command(command, "--calls-per-day", "lots")
    out, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert out == ""
    assert "Invalid value for '--calls-per-day': 'lots' is not a valid integer" in err
    assert "Traceback" not in err

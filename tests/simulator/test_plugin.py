"""The pytest plugin: the ``voice_simulator`` fixture and ``serve_in_thread``."""

from __future__ import annotations

import datetime as dt
import threading
import urllib.error

import aiohttp
import pytest

from tests.simulator.conftest import MAR5_ISO, TOKEN, day_bounds, get_json
from voiceapi_async.testing import SimulatorConfig, VoiceSimulator
from voiceapi_async.testing._plugin import serve_in_thread

pytest_plugins = ["pytester"]


def simulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "voice-simulator"]


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
    params = {"datetime[end_at]": MAR5_ISO, "per_page": "100"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(voice_simulator.base_url + "voice/calls", params=params) as response,
    ):
        body = await response.json()
    assert response.status == 200
    ids = {record["id"] for record in body["data"]["data"]}
    truth = voice_simulator.ids_between("calls", *day_bounds(dt.date(2024, 3, 5)))
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

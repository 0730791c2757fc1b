"""The pytest plugin: a ``voice_simulator`` fixture serving the Voice API simulator.

Installing ``voiceapi-async`` registers this plugin (entry point ``pytest11``, name
``voiceapi_async``; disable it with ``-p no:voiceapi_async``). A test asks for the
fixture and talks HTTP to ``voice_simulator.base_url``::

    def test_report(voice_simulator):
        client = VoiceClient(base_url=voice_simulator.base_url, token="demo-token", ...)

The simulator runs in a background thread with its own event loop, so the fixture
is a plain synchronous one: it works in sync tests and in async tests under any
event-loop scope, without pytest-asyncio. Each test gets a fresh simulator, stopped
(thread joined, connections closed) when the test ends. Its ``observed``,
``dataset`` and ``ids_between`` can be read from the test once the requests the test
made have completed.

Configuring it: the fixture builds the simulator from the ``voice_simulator_config``
fixture (a :class:`~voiceapi_async.testing.SimulatorConfig`; the default is
``SimulatorConfig()``, token ``demo-token``). Override that fixture in a test module,
class or ``conftest.py``::

    @pytest.fixture
    def voice_simulator_config():
        return SimulatorConfig(shape="c", token="tok", rate_limit=0)

or set it for a single test (or a matrix of them) with direct parametrization, which
pytest lets take the place of a fixture of the same name::

    @pytest.mark.parametrize("voice_simulator_config", [SimulatorConfig(shape="c")])
    def test_shape_c(voice_simulator): ...

Outside pytest fixtures, :func:`serve_in_thread` gives the same thread-backed server
as a context manager.

This module is imported by every pytest session in an environment where the package
is installed, so it imports only pytest and a few light standard modules, and its
parent packages load their names lazily: the simulator, aiohttp and asyncio are
imported when a test first asks for the fixture. ``-p no:voiceapi_async`` skips
even that.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import asyncio

    from voiceapi_async.testing._config import SimulatorConfig
    from voiceapi_async.testing._server import VoiceSimulator

__all__ = ["serve_in_thread", "voice_simulator", "voice_simulator_config"]

_STOP_TIMEOUT = 10.0
"""Seconds to wait for the server thread to finish after it is told to stop."""


@contextlib.contextmanager
def serve_in_thread(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **settings: Any,
) -> Iterator[VoiceSimulator]:
    """Serve a simulator from a background thread for the duration of the block.

    The thread runs its own event loop, so the caller may be synchronous or run any
    event loop of its own. ``settings`` are :class:`SimulatorConfig` fields, as for
    :func:`~voiceapi_async.testing.run_simulator`; the yielded simulator's
    ``base_url`` is ready for a client. On exit the server shuts down (open
    connections closed) and the thread is joined.

    Raises:
        OSError: the address cannot be bound.
        ValueError: an invalid setting.
        RuntimeError: the server thread did not stop in time.
    """
    import asyncio

    from voiceapi_async.testing._server import run_simulator

    started = threading.Event()
    loop: asyncio.AbstractEventLoop | None = None
    stop: asyncio.Event | None = None
    simulator: VoiceSimulator | None = None
    failure: BaseException | None = None

    async def main() -> None:
        nonlocal loop, stop, simulator
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        async with run_simulator(config, host=host, port=port, **settings) as served:
            simulator = served
            started.set()
            await stop.wait()

    def run() -> None:
        nonlocal failure
        try:
            asyncio.run(main())
        except BaseException as error:  # handed to the caller's thread
            failure = error
        finally:
            started.set()

    thread = threading.Thread(target=run, name="voice-simulator", daemon=True)
    thread.start()
    started.wait()
    try:
        if simulator is None:  # the thread failed before serving
            thread.join()
            raise failure or RuntimeError("the simulator thread ended before serving")
        yield simulator
    finally:
        if loop is not None and stop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop.set)
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the simulator thread did not stop within {_STOP_TIMEOUT} s")
    if failure is not None:
        raise failure


@pytest.fixture
def voice_simulator_config() -> SimulatorConfig:
    """How ``voice_simulator`` behaves; override or parametrize it to change that."""
    from voiceapi_async.testing._config import SimulatorConfig

    return SimulatorConfig()


@pytest.fixture
def voice_simulator(voice_simulator_config: SimulatorConfig) -> Iterator[VoiceSimulator]:
    """A fresh Voice API simulator on a free loopback port (``.base_url``)."""
    from voiceapi_async.testing._config import SimulatorConfig

    if not isinstance(voice_simulator_config, SimulatorConfig):
        raise TypeError(
            "voice_simulator_config must be a SimulatorConfig, "
            f"not {type(voice_simulator_config).__name__}"
        )
    with serve_in_thread(voice_simulator_config) as simulator:
        yield simulator

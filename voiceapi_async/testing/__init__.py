"""A local, faithful Voice API for tests, benchmarks and demos.

``async with run_simulator(shape="c") as sim:`` serves it on a free loopback port
(``sim.base_url``); ``sim.dataset`` and ``sim.ids_between`` answer ground-truth
questions; ``sim.observed`` tells what clients did. Also a pytest plugin (the
``voice_simulator`` fixture) and ``python -m voiceapi_async.testing serve`` (a click
command: ``serve_command()`` returns it, ``serve_main`` runs it under another
program's name; both need the ``cli`` extra).
"""

from voiceapi_async.testing._cli import serve_command, serve_main
from voiceapi_async.testing._config import (
    DEFAULT_CALLS_PER_DAY,
    DEFAULT_TIMEZONE,
    DEFAULT_TOKEN,
    SimulatorConfig,
)
from voiceapi_async.testing._dataset import Dataset, DayData
from voiceapi_async.testing._faults import FAULT_KINDS, Fate, Faults
from voiceapi_async.testing._observations import Observations, ObservedRequest
from voiceapi_async.testing._server import VoiceSimulator, run_simulator

__all__ = [
    "DEFAULT_CALLS_PER_DAY",
    "DEFAULT_TIMEZONE",
    "DEFAULT_TOKEN",
    "FAULT_KINDS",
    "Dataset",
    "DayData",
    "Fate",
    "Faults",
    "Observations",
    "ObservedRequest",
    "SimulatorConfig",
    "VoiceSimulator",
    "run_simulator",
    "serve_command",
    "serve_main",
]

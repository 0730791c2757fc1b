"""A local, faithful Voice API for tests, benchmarks and demos.

``async with run_simulator(shape="c") as sim:`` serves it on a free loopback port
(``sim.base_url``); ``sim.dataset`` and ``sim.ids_between`` answer ground-truth
questions; ``sim.observed`` tells what clients did. Also a pytest plugin (the
``voice_simulator`` fixture) and ``python -m voiceapi_async.testing serve`` (a click
command: ``serve_command()`` returns it, ``serve_main`` runs it under another
program's name; both need the ``cli`` extra).

The names load on first use (PEP 562), so the pytest plugin, a submodule, costs
nothing it does not use.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, without importing typing (most of a cold import's cost)
if TYPE_CHECKING:
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

_SOURCES = {
    "DEFAULT_CALLS_PER_DAY": "_config",
    "DEFAULT_TIMEZONE": "_config",
    "DEFAULT_TOKEN": "_config",
    "FAULT_KINDS": "_faults",
    "Dataset": "_dataset",
    "DayData": "_dataset",
    "Fate": "_faults",
    "Faults": "_faults",
    "Observations": "_observations",
    "ObservedRequest": "_observations",
    "SimulatorConfig": "_config",
    "VoiceSimulator": "_server",
    "run_simulator": "_server",
    "serve_command": "_cli",
    "serve_main": "_cli",
}
"""The module of each public name, relative to this package."""

if not TYPE_CHECKING:  # pragma: no branch - type checkers see the imports above instead
    from voiceapi_async._lazy import lazy_names

    __getattr__, __dir__ = lazy_names(__name__, _SOURCES, globals(), __all__)
    del lazy_names

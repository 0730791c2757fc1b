"""The testing package's public surface."""

from __future__ import annotations

import voiceapi_async.testing

EXPECTED = [
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


def test_all_is_pinned_and_sorted() -> None:
    """The testing surface changes only on purpose: __all__ is pinned here, in ruff's order."""
    assert voiceapi_async.testing.__all__ == EXPECTED


def test_every_public_name_exists_and_is_documented() -> None:
    """Each exported name resolves, and each class and function carries a docstring."""
    for name in voiceapi_async.testing.__all__:
        obj = getattr(voiceapi_async.testing, name)
        if name == "FAULT_KINDS" or name.startswith("DEFAULT_"):
            continue  # constants: documented where they are defined
        assert obj.__doc__, name

"""The simulator's configuration: validated settings, shape letters, overrides."""

from __future__ import annotations

from typing import Any

import pytest

from voiceapi_async import Shape
from voiceapi_async.testing import Faults, SimulatorConfig, VoiceSimulator, run_simulator


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"shape": "d"}, "shape"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"rate_window": -1.0}, "rate_window"),
        ({"per_page_max": 0}, "per_page_max"),
        ({"per_page_default": 0}, "per_page_default"),
        ({"calls_per_day": -5}, "calls_per_day"),
        ({"live_every": -1}, "live_every"),
        ({"audio_expiry": -1}, "audio_expiry"),
    ],
)
def test_bad_settings_raise_value_error_naming_them(settings: dict[str, Any], name: str) -> None:
    """An invalid simulator setting raises ValueError that names it."""
    with pytest.raises(ValueError, match=name):
        SimulatorConfig(**settings)


def test_probability_above_one_is_refused() -> None:
    """A fault probability above 1 raises ValueError naming the fault."""
    with pytest.raises(ValueError, match="truncated"):
        SimulatorConfig(faults=Faults(truncated=1.01))


@pytest.mark.parametrize(("shape", "expected"), [("a", Shape.BARE_LIST), ("B", Shape.PAGINATOR)])
def test_shape_accepts_letters_in_any_case(shape: str, expected: Shape) -> None:
    """The shape setting takes "a", "b", "c" in either case, or a Shape."""
    assert SimulatorConfig(shape=shape).shape is expected


@pytest.mark.asyncio
async def test_run_simulator_refuses_bad_settings_before_serving() -> None:
    """run_simulator raises the ValueError and serves nothing."""
    with pytest.raises(ValueError, match="rate_limit"):
        async with run_simulator(rate_limit=-3):
            pass


def test_settings_override_a_given_config() -> None:
    """Keyword settings given with a config replace its fields."""
    simulator = VoiceSimulator(SimulatorConfig(seed=3, shape="a"), shape="c")
    assert simulator.config.seed == 3
    assert simulator.config.shape is Shape.RESOURCE

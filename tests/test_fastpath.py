from typing import Any

import attrs
import pytest
from hypothesis import given

from tests.conftest import fixture_json
from tests.test_convert import calls, recordings
from voiceapi_async import Call, Recording, make_converter
from voiceapi_async._fastpath import compile_builder

CONVERTER = make_converter("America/New_York")


def strict(row: dict[str, Any], cls: type[Any]) -> Any:
    """Structure with the cattrs-generated reference hook, then attach extras."""
    record = CONVERTER.strict_hooks[cls](row, cls)
    known = {field.name for field in attrs.fields(cls)}
    return attrs.evolve(record, extra={k: v for k, v in row.items() if k not in known})


@given(row=calls)
def test_fast_path_equals_the_cattrs_reference_for_calls(row: dict[str, Any]) -> None:
    """The generated fast path gives exactly what the cattrs-generated hook gives."""
    fast = CONVERTER.structure(row, Call)
    reference = strict(row, Call)
    assert fast == reference
    assert dict(fast.extra) == dict(reference.extra)
    assert [type(getattr(fast, f.name)) for f in attrs.fields(Call)][:-1] == [
        type(getattr(reference, f.name)) for f in attrs.fields(Call)
    ][:-1]


@given(row=recordings)
def test_fast_path_equals_the_cattrs_reference_for_recordings(row: dict[str, Any]) -> None:
    """Recordings too, including the raw agent JSON."""
    fast = CONVERTER.structure(row, Recording)
    reference = strict(row, Recording)
    assert fast == reference
    assert fast.agent == reference.agent
    assert dict(fast.extra) == dict(reference.extra)


def test_rows_of_equal_length_with_different_unknown_keys() -> None:
    """The layout cache never hands one row's unknown keys to another."""
    base = fixture_json("calls_shape_a.json")["data"][0]
    first = dict(base, campaign="a")
    second = dict(base, region_code="b")
    records = CONVERTER.structure_rows([first, second, first], Call)
    assert [dict(r.extra) for r in records] == [
        {"audio_length": None, "storage": None, "serial": 1, "campaign": "a"},
        {"audio_length": None, "storage": None, "serial": 1, "region_code": "b"},
        {"audio_length": None, "storage": None, "serial": 1, "campaign": "a"},
    ]


def test_zero_durations_and_a_numeric_id_take_the_right_paths() -> None:
    """A zero duration (falsy) and an int id (strict path) both come out right."""
    base = fixture_json("calls_shape_a.json")["data"][0]
    (call,) = CONVERTER.structure_rows([dict(base, duration="00:00:00", id=42)], Call)
    assert call.duration.total_seconds() == 0
    assert call.id == "42"
    assert call.extra["serial"] == 1


def test_builder_falls_back_to_init_when_the_class_validates() -> None:
    """A class with a validator or a post-init hook is built by its own __init__."""

    @attrs.frozen
    class Checked:
        value: int = attrs.field(validator=attrs.validators.gt(0))

    @attrs.frozen
    class Plain:
        value: int
        other: str

    assert compile_builder(Checked) is Checked
    with pytest.raises(ValueError, match="must be > 0"):
        compile_builder(Checked)(0)
    built = compile_builder(Plain)(1, "x")
    assert built == Plain(1, "x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.value = 2

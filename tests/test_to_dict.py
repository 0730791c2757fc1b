"""voiceapi_async.to_dict: a record as a JSON-ready dict, the JSON Lines export row."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

import voiceapi_async
from tests.conftest import fixture_json
from voiceapi_async import Call, Recording, Report, export, make_converter, to_dict

CONVERTER = make_converter("Asia/Kolkata")
IST = dt.timedelta(hours=5, minutes=30)


def records(name: str, cls: type[Any]) -> list[Any]:
    data = fixture_json(name)["data"]
    return CONVERTER.structure_rows(data["data"] if isinstance(data, dict) else data, cls)


CALLS: list[Call] = records("calls_shape_a.json", Call)
RECORDINGS: list[Recording] = records("recordings_shape_c.json", Recording)


def test_to_dict_is_the_json_lines_export_row() -> None:
    """The package-level function is the export's, and gives the same dict as json_row."""
    assert voiceapi_async.to_dict is export.to_dict
    pairs: list[tuple[Call | Recording, Report]] = [
        *((call, Report.CALLS) for call in CALLS),
        *((recording, Report.RECORDINGS) for recording in RECORDINGS),
    ]
    for record, report in pairs:
        assert to_dict(record) == export.json_row(record)
        assert list(to_dict(record)) == list(export.COLUMNS[report])


def test_a_call_dict_survives_json_with_its_values() -> None:
    """Timestamps keep their offset, durations are seconds, charges exact decimal text."""
    call = CALLS[0]
    loaded = json.loads(json.dumps(to_dict(call)))
    assert loaded["id"] == call.id
    assert loaded["status"] == "RECEIVED"
    assert loaded["end_at"] == "2019-06-11T05:57:36+05:30"
    end_at = dt.datetime.fromisoformat(loaded["end_at"])
    assert end_at == call.end_at
    assert end_at.utcoffset() == IST
    assert loaded["duration_seconds"] == int(call.duration.total_seconds()) == 12
    assert loaded["charges"] == "0.0150"
    assert Decimal(loaded["charges"]) == call.charges


def test_a_recording_dict_has_no_signature_and_keeps_raw_json() -> None:
    """The audio link loses its signature; agent and extra stay as the server sent them."""
    signed, plain = RECORDINGS
    first = to_dict(signed)
    assert signed.audio is not None
    assert "X-Amz-Signature" in signed.audio
    assert first["audio"] == signed.audio.partition("?")[0]
    assert first["created_at"] == "2019-06-11T06:04:21+05:30"
    assert first["duration_seconds"] == 93
    assert first["extra"]["created"] == "Jun 11, 2019 06:04 AM"
    second = json.loads(json.dumps(to_dict(plain)))
    assert second["agent"] == {"id": 7, "name": "Desk 2"}
    assert second["audio"] is None
    assert second["audio_file"] is None


def test_to_dict_refuses_what_is_not_a_record() -> None:
    """Anything but a Call or a Recording is a TypeError naming its type."""
    with pytest.raises(TypeError, match="not dict"):
        to_dict({"id": "x"})  # type: ignore[arg-type]

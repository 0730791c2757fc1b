import datetime as dt
import string
from decimal import Decimal
from typing import Any

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import fixture_json
from voiceapi_async import Call, CallStatus, HangupBy, RecordError, Recording, make_converter
from voiceapi_async._convert import format_duration, parse_duration

CONVERTER = make_converter("Asia/Kolkata")


def rows_of(name: str) -> list[dict[str, Any]]:
    body = fixture_json(name)
    data = body["data"]
    rows: list[dict[str, Any]] = data["data"] if isinstance(data, dict) else data
    return rows


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("calls_shape_a.json", Call),
        ("calls_shape_b_page1.json", Call),
        ("calls_shape_b_page2.json", Call),
        ("calls_shape_b_empty.json", Call),
        ("recordings_shape_c.json", Recording),
    ],
)
def test_fixture_records_round_trip_to_the_exact_wire_form(name: str, cls: type[Any]) -> None:
    """unstructure(structure(raw)) equals raw for every record of every fixture."""
    rows = rows_of(name)
    records = CONVERTER.structure_rows(rows, cls)
    assert [CONVERTER.unstructure(record) for record in records] == rows


def test_call_fields_are_typed() -> None:
    """Durations, charges, pulses, timestamps and enums come out as real types."""
    first, second = CONVERTER.structure_rows(rows_of("calls_shape_a.json"), Call)
    tz = pendulum.timezone("Asia/Kolkata")
    assert first.duration == pendulum.duration(seconds=12)
    assert isinstance(first.duration, pendulum.Duration)
    assert first.charges == Decimal("0.0150")
    assert str(first.charges) == "0.0150"
    assert first.pulsing == 30
    assert first.status is CallStatus.RECEIVED
    assert first.hangup_by is HangupBy.CALLER
    assert first.start_at == pendulum.datetime(2019, 6, 11, 5, 57, 24, tz=tz)
    assert isinstance(first.start_at, pendulum.DateTime)
    assert first.start_at.utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert first.extra == {"audio_length": None, "storage": None, "serial": 1}
    assert second.call_from == "91798953xxxx"
    assert second.duration == pendulum.duration(hours=1, minutes=2, seconds=3)
    assert second.end_at is not None
    assert second.end_at.date() == dt.date(2019, 6, 12)


def test_recording_keeps_agent_raw_and_legacy_keys_in_extra() -> None:
    """The agent object stays raw JSON and legacy keys such as `created` land in extra."""
    first, second = CONVERTER.structure_rows(rows_of("recordings_shape_c.json"), Recording)
    assert first.agent is None
    assert second.agent == {"id": 7, "name": "Desk 2"}
    assert first.extra["created"] == "Jun 11, 2019 06:04 AM"
    assert first.extra["user_id"] == "13016"
    assert second.audio is None
    assert second.extra == {}
    assert first.created_at.tzinfo is CONVERTER.timezone


def test_unknown_enum_values_are_kept_as_plain_strings() -> None:
    """A status or hangup_by the server adds later is kept as str, never None or an error."""
    raw = dict(rows_of("calls_shape_a.json")[0], status="TRANSFERRED", hangup_by="system")
    (call,) = CONVERTER.structure_rows([raw], Call)
    assert call.status == "TRANSFERRED"
    assert type(call.status) is str
    assert call.hangup_by == "system"
    assert CONVERTER.unstructure(call) == raw


def test_ids_stay_strings_even_when_not_uuids() -> None:
    """A non-UUID id is fine, and a numeric id is kept as its string."""
    raw = dict(rows_of("calls_shape_a.json")[0], id="legacy-17")
    assert CONVERTER.structure_rows([raw], Call)[0].id == "legacy-17"
    numeric = dict(raw, id=17)
    assert CONVERTER.structure_rows([numeric], Call)[0].id == "17"


def test_nullable_fields_accept_null() -> None:
    """start_at, end_at, hangup_by and the text fields the spec marks nullable take null."""
    nulls = dict.fromkeys(
        ["start_at", "end_at", "hangup_by", "dtmf", "notes", "name", "audio", "service"]
    )
    raw = dict(rows_of("calls_shape_a.json")[0], **nulls)
    (call,) = CONVERTER.structure_rows([raw], Call)
    assert call.start_at is None
    assert call.end_at is None
    assert call.hangup_by is None
    assert CONVERTER.unstructure(call) == raw


def test_plain_seconds_durations_and_numeric_pulses_are_accepted() -> None:
    """Durations may come as plain seconds; a pulse may be a JSON number."""
    raw = dict(rows_of("calls_shape_a.json")[0], duration="23", billing=30, pulsing=60)
    (call,) = CONVERTER.structure_rows([raw], Call)
    assert call.duration == pendulum.duration(seconds=23)
    assert call.billing == pendulum.duration(seconds=30)
    assert call.pulsing == 60


def test_aware_timestamps_are_converted_to_the_account_zone() -> None:
    """A timestamp with an offset is moved into the account's zone, not reinterpreted."""
    raw = dict(rows_of("calls_shape_a.json")[0], start_at="2019-06-11T00:27:24+00:00")
    (call,) = CONVERTER.structure_rows([raw], Call)
    assert call.start_at is not None
    assert (call.start_at.hour, call.start_at.minute) == (5, 57)
    assert CONVERTER.unstructure(call)["start_at"] == "2019-06-11 05:57:24"


def test_timestamps_are_read_in_the_configured_zone() -> None:
    """The same naive text means different instants for different account zones."""
    raw = rows_of("calls_shape_a.json")[0]
    utc = make_converter("UTC").structure_rows([raw], Call)[0]
    ist = CONVERTER.structure_rows([raw], Call)[0]
    assert utc.start_at is not None
    assert ist.start_at is not None
    assert utc.start_at - ist.start_at == dt.timedelta(hours=5, minutes=30)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("charges", "abc", "not a decimal"),
        ("charges", "NaN", "finite"),
        ("charges", 0.5, "finite"),
        ("duration", "12 minutes", "HH:MM:SS"),
        ("duration", "00:61:00", "HH:MM:SS"),
        ("duration", "-5", "negative"),
        ("duration", None, "duration string"),
        ("pulsing", "thirty", "whole number"),
        ("start_at", "11/06/2019", "not a timestamp"),
        ("start_at", 1560232644, "timestamp string"),
        ("status", None, "expected a string"),
        ("call_from", None, "expected a string"),
        ("notes", ["a"], "string or null"),
    ],
)
def test_bad_values_name_the_record_and_the_field_path(field: str, value: Any, needle: str) -> None:
    """A record that cannot be structured raises RecordError with its id and $.path."""
    rows = rows_of("calls_shape_a.json")
    rows[1] = dict(rows[1], **{field: value})
    with pytest.raises(RecordError) as caught:
        CONVERTER.structure_rows(rows, Call, path="$.data.data")
    error = caught.value
    assert error.record_id == "4a7d9e22-9b7e-11e9-8c11-6c2b59c79f5a"
    assert error.path == f"$.data.data[1].{field}"
    assert needle in str(error)
    assert error.path in str(error)


def test_a_missing_field_is_named() -> None:
    """A record without a required key names that key."""
    rows = rows_of("recordings_shape_c.json")
    del rows[0]["created_at"]
    with pytest.raises(RecordError, match=r"missing required field 'created_at'") as caught:
        CONVERTER.structure_rows(rows, Recording)
    assert caught.value.path == "$.data[0].created_at"


def test_a_row_that_is_not_an_object_is_reported() -> None:
    """A list or string where a record should be is a RecordError without an id."""
    with pytest.raises(RecordError, match="expected a record object") as caught:
        CONVERTER.structure_rows(["oops"], Call)
    assert caught.value.record_id is None
    assert caught.value.path == "$.data[0]"


def test_record_error_messages_hide_presigned_signatures() -> None:
    """A bad record whose audio URL is presigned never shows the signature."""
    raw = rows_of("recordings_shape_c.json")[0]
    secret = raw["audio"].split("X-Amz-Signature=")[1]
    bad = dict(raw, duration=raw["audio"])
    with pytest.raises(RecordError) as caught:
        CONVERTER.structure_rows([bad], Recording)
    assert secret not in str(caught.value)
    assert "AKIAEXAMPLEEXAMPLE" not in str(caught.value)


def test_unknown_time_zone_is_a_clear_error() -> None:
    """make_converter names a time zone it does not know."""
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        make_converter("Mars/Olympus")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00:12", 12), ("01:02:03", 3723), ("26:00:01", 93601), ("100:00:00", 360000), ("23", 23)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    """HH:MM:SS with hours beyond 23, and plain seconds, parse to pendulum durations."""
    assert parse_duration(text).total_seconds() == seconds


@given(st.integers(min_value=0, max_value=10_000 * 3600))
def test_duration_text_round_trips(seconds: int) -> None:
    """format_duration and parse_duration are inverse on whole seconds."""
    text = format_duration(dt.timedelta(seconds=seconds))
    assert parse_duration(text).total_seconds() == seconds
    assert format_duration(parse_duration(text)) == text


def test_duration_cache_stays_bounded() -> None:
    """The duration cache is cleared rather than growing without end."""
    from voiceapi_async import _convert

    for seconds in range(_convert._DURATION_CACHE_MAX + 10):
        parse_duration(seconds)
    assert len(_convert._DURATION_CACHE) <= _convert._DURATION_CACHE_MAX


text = st.text(string.ascii_letters + string.digits + " -_.", min_size=1, max_size=20)
maybe_text = st.none() | text
naive = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2037, 12, 31))


def wire_time(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def wire_duration(seconds: int) -> str:
    return format_duration(dt.timedelta(seconds=seconds))


calls = st.fixed_dictionaries(
    {
        "id": text,
        "call_from": st.from_regex(r"\A91[0-9]{6}[0-9x]{4}\Z"),
        "call_to": st.from_regex(r"\A91[0-9]{10}\Z"),
        "service": maybe_text,
        "bridge": maybe_text,
        "status": st.sampled_from([*CallStatus, "TRANSFERRED"]).map(str),
        "duration": st.integers(0, 200_000).map(wire_duration),
        "billing": st.integers(0, 200_000).map(wire_duration),
        "pulsing": st.integers(1, 120).map(str),
        "charges": st.decimals(min_value=0, max_value=10_000, places=4).map(str),
        "start_at": st.none() | naive.map(wire_time),
        "end_at": st.none() | naive.map(wire_time),
        "hangup_by": st.none() | st.sampled_from(["caller", "agent", "system"]),
        "dtmf": maybe_text,
        "location": maybe_text,
        "region": maybe_text,
        "provider": maybe_text,
        "notes": maybe_text,
        "name": maybe_text,
        "audio": st.none() | st.just("https://recordings.example.test/a.mp3"),
    },
    optional={"serial": st.integers(0, 10**6), "storage": maybe_text, "audio_length": st.none()},
)
recordings = st.fixed_dictionaries(
    {
        "id": text,
        "call_from": st.from_regex(r"\A91[0-9]{10}\Z"),
        "call_to": st.from_regex(r"\A91[0-9]{10}\Z"),
        "audio": st.none() | st.just("https://bucket.example.test/r.mp3?X-Amz-Signature=ab"),
        "duration": st.integers(0, 200_000).map(wire_duration),
        "agent": st.none() | st.fixed_dictionaries({"id": st.integers(0, 99), "name": text}),
        "created_at": naive.map(wire_time),
    },
    optional={"user_id": text, "created": text, "call_id": st.none()},
)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/New_York"])
@given(rows=st.lists(calls, max_size=5))
def test_generated_calls_round_trip(zone: str, rows: list[dict[str, Any]]) -> None:
    """Any wire-valid call survives structure then unstructure unchanged, in any zone."""
    converter = make_converter(zone)
    records = converter.structure_rows(rows, Call)
    assert [converter.unstructure(record) for record in records] == rows


@given(rows=st.lists(recordings, max_size=5))
def test_generated_recordings_round_trip(rows: list[dict[str, Any]]) -> None:
    """Any wire-valid recording survives structure then unstructure unchanged."""
    records = CONVERTER.structure_rows(rows, Recording)
    assert [CONVERTER.unstructure(record) for record in records] == rows

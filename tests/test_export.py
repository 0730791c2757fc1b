"""The export layer, tested without mocks or a server: records in, exact bytes out."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, cast

import attrs
import pendulum
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import fixture_json
from voiceapi_async import Call, Record, Recording, Report, make_converter
from voiceapi_async.export import (
    CALL_COLUMNS,
    COLUMNS,
    FORMATS,
    JSON_COLUMNS,
    RECORDING_COLUMNS,
    AudioFile,
    Csv,
    ExportFormat,
    JsonLines,
    Parquet,
    call_row,
    get_format,
    json_row,
    parquet_schema,
    recording_row,
    row,
    sort_records,
    unsigned_url,
)
from voiceapi_async.testing import Dataset

ZONE = "Asia/Kolkata"
IST = dt.timedelta(hours=5, minutes=30)
CONVERTER = make_converter(ZONE)


def fixture_records(name: str, cls: type[Any]) -> list[Any]:
    body = fixture_json(name)
    data = body["data"]
    return CONVERTER.structure_rows(data["data"] if isinstance(data, dict) else data, cls)


CALLS: list[Call] = fixture_records("calls_shape_a.json", Call)
RECORDINGS: list[Recording] = fixture_records("recordings_shape_c.json", Recording)

_DATASET = Dataset(11, timezone=ZONE, calls_per_day=60)
_DAYS = (dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 2, 23, 59, 59))
MANY_CALLS: list[Call] = CONVERTER.structure_rows(_DATASET.between("calls", *_DAYS), Call)
MANY_RECORDINGS: list[Recording] = CONVERTER.structure_rows(
    _DATASET.between("recordings", *_DAYS), Recording
)
MANY: dict[Report, list[Any]] = {Report.CALLS: MANY_CALLS, Report.RECORDINGS: MANY_RECORDINGS}
OTHER: dict[Report, Record] = {Report.CALLS: RECORDINGS[0], Report.RECORDINGS: CALLS[0]}

FORMAT_CASES: dict[str, ExportFormat] = {
    "jsonl": JsonLines(),
    "jsonl.gz": JsonLines(compress=True),
    "csv": Csv(),
    "parquet": Parquet(ZONE),
}


def written(fmt: ExportFormat, report: Report, batches: Iterable[Iterable[Record]]) -> bytes:
    """Write ``batches`` with one writer; return the finished file's bytes."""
    file = io.BytesIO()
    with fmt.open(file, report) as writer:
        for batch in batches:
            writer.write(batch)
    return file.getvalue()


def chunks(records: Sequence[Record], size: int) -> list[list[Record]]:
    """Split records into batches of ``size``, with empty batches mixed in."""
    batches: list[list[Record]] = [[]]
    for start in range(0, len(records), size):
        batches.extend([list(records[start : start + size]), []])
    return batches


def ist(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> pendulum.DateTime:
    """Return a wall-clock time in the account's zone, as the converter makes them."""
    return pendulum.datetime(year, month, day, hour, minute, second, tz=ZONE)


def csv_lines(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


# -- rows -------------------------------------------------------------------------------


def test_the_column_lists_are_the_public_contract() -> None:
    """COLUMNS maps each report to its exact, ordered column tuple."""
    assert CALL_COLUMNS == (
        "id",
        "call_from",
        "call_to",
        "service",
        "bridge",
        "status",
        "duration_seconds",
        "billing_seconds",
        "pulsing",
        "charges",
        "start_at",
        "end_at",
        "hangup_by",
        "dtmf",
        "location",
        "region",
        "provider",
        "notes",
        "name",
        "audio",
        "extra",
    )
    assert RECORDING_COLUMNS == (
        "id",
        "call_from",
        "call_to",
        "audio",
        "duration_seconds",
        "agent",
        "created_at",
        "extra",
        "audio_file",
        "audio_sha256",
    )
    assert dict(COLUMNS) == {Report.CALLS: CALL_COLUMNS, Report.RECORDINGS: RECORDING_COLUMNS}
    assert sorted(JSON_COLUMNS) == ["agent", "extra"]


@pytest.mark.parametrize("report", list(Report))
def test_every_row_has_its_reports_columns_in_order(report: Report) -> None:
    """The keys of row() and json_row() are exactly COLUMNS[report], in order."""
    mapping = call_row if report is Report.CALLS else recording_row
    for record in MANY[report]:
        assert list(row(record)) == list(COLUMNS[report])
        assert list(json_row(record)) == list(COLUMNS[report])
        assert row(record) == mapping(record)


def test_call_rows_are_typed() -> None:
    """A call row has aware account-zone datetimes, whole seconds, Decimal charges, enum text."""
    first, second = (row(call) for call in CALLS)
    assert first == {
        "id": "3f1c2a10-9b7e-11e9-a2f3-6c2b59c79f5a",
        "call_from": "917989532456",
        "call_to": "918068287601",
        "service": "IN",
        "bridge": "918068287601",
        "status": "RECEIVED",
        "duration_seconds": 12,
        "billing_seconds": 12,
        "pulsing": 30,
        "charges": Decimal("0.0150"),
        "start_at": ist(2019, 6, 11, 5, 57, 24),
        "end_at": ist(2019, 6, 11, 5, 57, 36),
        "hangup_by": "caller",
        "dtmf": None,
        "location": "IN",
        "region": "AP",
        "provider": "RJ",
        "notes": "callback requested",
        "name": "Asha K",
        "audio": None,
        "extra": {"audio_length": None, "storage": None, "serial": 1},
    }
    assert (second["duration_seconds"], second["billing_seconds"]) == (3723, 3750)
    assert str(second["charges"]) == "1.8600"
    assert second["end_at"] == ist(2019, 6, 12, 0, 12, 3)
    assert (second["status"], second["hangup_by"], second["dtmf"]) == ("ANSWER", "agent", "1")
    for value in (first, second):
        assert value["start_at"].utcoffset() == IST
        assert value["end_at"].utcoffset() == IST
        assert type(value["status"]) is str
        assert type(value["hangup_by"]) is str
        assert type(value["duration_seconds"]) is int
        assert type(value["charges"]) is Decimal
        assert type(value["extra"]) is dict


def test_unknown_enum_values_and_missing_ones_export_as_text_or_none() -> None:
    """An unknown status stays its text; no hangup_by and no timestamps are None."""
    call = attrs.evolve(CALLS[0], status="TRANSFERRED", hangup_by=None, start_at=None, end_at=None)
    exported = row(call)
    assert exported["status"] == "TRANSFERRED"
    assert exported["hangup_by"] is None
    assert exported["start_at"] is None
    assert exported["end_at"] is None
    assert json_row(call)["end_at"] is None


def test_recording_rows_are_typed() -> None:
    """A recording row has whole seconds, the raw agent, an aware created_at, extra as dict."""
    first, second = (row(recording) for recording in RECORDINGS)
    assert first["duration_seconds"] == 93
    assert first["agent"] is None
    assert first["created_at"] == ist(2019, 6, 11, 6, 4, 21)
    assert first["created_at"].utcoffset() == IST
    assert first["extra"]["created"] == "Jun 11, 2019 06:04 AM"
    assert first["extra"]["user_id"] == "13016"
    assert type(first["extra"]) is dict
    assert second == {
        "id": "d2b3c4d5-8c0e-11e9-8b2f-6c2b59c79f5a",
        "call_from": "917989532456",
        "call_to": "918068287601",
        "audio": None,
        "duration_seconds": 47,
        "agent": {"id": 7, "name": "Desk 2"},
        "created_at": ist(2019, 6, 11, 5, 59, 7),
        "extra": {},
        "audio_file": None,
        "audio_sha256": None,
    }


def test_a_rows_extra_is_a_copy() -> None:
    """Changing a row's extra dict leaves the record's extra untouched."""
    exported = row(CALLS[0])
    exported["extra"]["serial"] = 99
    assert CALLS[0].extra["serial"] == 1
    assert row(CALLS[0])["extra"]["serial"] == 1


def test_json_row_is_json_with_iso_timestamps_and_exact_charges() -> None:
    """json_row() survives the stdlib json encoder: ISO 8601 with offset, charges as text."""
    call_json = json_row(CALLS[1])
    assert json.loads(json.dumps(call_json)) == call_json
    assert call_json["start_at"] == "2019-06-11T23:10:00+05:30"
    assert call_json["end_at"] == "2019-06-12T00:12:03+05:30"
    assert call_json["charges"] == "1.8600"
    assert call_json["duration_seconds"] == 3723
    assert call_json["pulsing"] == 30
    assert call_json["notes"] is None
    assert json_row(CALLS[0])["charges"] == "0.0150"
    recording_json = json_row(RECORDINGS[1])
    assert json.loads(json.dumps(recording_json)) == recording_json
    assert recording_json == {
        "id": "d2b3c4d5-8c0e-11e9-8b2f-6c2b59c79f5a",
        "call_from": "917989532456",
        "call_to": "918068287601",
        "audio": None,
        "duration_seconds": 47,
        "agent": {"id": 7, "name": "Desk 2"},
        "created_at": "2019-06-11T05:59:07+05:30",
        "extra": {},
        "audio_file": None,
        "audio_sha256": None,
    }
    for record in MANY_CALLS + MANY_RECORDINGS:
        json.dumps(json_row(record))


@pytest.mark.parametrize("mapping", [row, json_row])
def test_row_of_a_non_record_is_a_type_error_naming_the_type(mapping: Any) -> None:
    """row() and json_row() of a dict say they expected a Call or a Recording, not a dict."""
    with pytest.raises(TypeError, match=r"^expected a Call or a Recording, not dict$"):
        mapping(cast(Any, {"id": "x"}))


def test_sort_records_orders_calls_by_end_at_then_id() -> None:
    """Calls sort by end_at (a missing end_at first), then by id; the input is not changed."""
    base = CALLS[0]
    late_b = attrs.evolve(base, id="b", end_at=ist(2024, 3, 1, 12))
    late_a = attrs.evolve(base, id="a", end_at=ist(2024, 3, 1, 12))
    early_z = attrs.evolve(base, id="z", end_at=ist(2024, 3, 1, 9))
    open_y = attrs.evolve(base, id="y", end_at=None)
    # The same instant in another zone ties with late_a/late_b and sorts by id.
    late_c = attrs.evolve(base, id="c", end_at=pendulum.datetime(2024, 3, 1, 6, 30, tz="UTC"))
    given = [late_c, late_b, late_a, early_z, open_y]
    assert [r.id for r in sort_records(given)] == ["y", "z", "a", "b", "c"]
    assert [r.id for r in given] == ["c", "b", "a", "z", "y"]


def test_sort_records_orders_recordings_by_created_at_then_id() -> None:
    """Recordings sort by created_at, then by id."""
    base = RECORDINGS[0]
    given = [
        attrs.evolve(base, id="q", created_at=ist(2024, 3, 2, 8)),
        attrs.evolve(base, id="p", created_at=ist(2024, 3, 2, 8)),
        attrs.evolve(base, id="a", created_at=ist(2024, 3, 2, 9)),
        attrs.evolve(base, id="z", created_at=ist(2024, 3, 1, 23)),
    ]
    assert [r.id for r in sort_records(given)] == ["z", "p", "q", "a"]
    assert [r.id for r in sort_records(iter(given))] == ["z", "p", "q", "a"]


# -- JSON Lines -------------------------------------------------------------------------

FIRST_CALL_LINE = (
    b'{"id":"3f1c2a10-9b7e-11e9-a2f3-6c2b59c79f5a","call_from":"917989532456",'
    b'"call_to":"918068287601","service":"IN","bridge":"918068287601","status":"RECEIVED",'
    b'"duration_seconds":12,"billing_seconds":12,"pulsing":30,"charges":"0.0150",'
    b'"start_at":"2019-06-11T05:57:24+05:30","end_at":"2019-06-11T05:57:36+05:30",'
    b'"hangup_by":"caller","dtmf":null,"location":"IN","region":"AP","provider":"RJ",'
    b'"notes":"callback requested","name":"Asha K","audio":null,'
    b'"extra":{"audio_length":null,"storage":null,"serial":1}}\n'
)


def test_jsonl_writes_one_json_row_a_line_in_the_order_given() -> None:
    """Each line is the record's json_row, compact, in the order written (not re-sorted)."""
    data = written(JsonLines(), Report.CALLS, [list(reversed(CALLS))])
    lines = data.splitlines(keepends=True)
    assert len(lines) == 2
    assert lines[1] == FIRST_CALL_LINE
    assert [json.loads(line) for line in lines] == [json_row(CALLS[1]), json_row(CALLS[0])]
    records = MANY_RECORDINGS[::-1]
    data = written(JsonLines(), Report.RECORDINGS, [records])
    assert [json.loads(line) for line in data.splitlines()] == [json_row(r) for r in records]
    assert data.endswith(b"}\n")


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("report", list(Report))
def test_jsonl_in_several_batches_is_byte_identical_to_one_batch(
    report: Report, compress: bool
) -> None:
    """Batches of 7 (empty ones mixed in) give the same bytes as one batch, gzip or not."""
    fmt = get_format("jsonl", compress=compress)
    records = MANY[report]
    assert len(records) > 30
    one = written(fmt, report, [records])
    several = written(fmt, report, chunks(records, 7))
    assert several == one
    assert written(fmt, report, [iter(records)]) == one
    plain = one if not compress else gzip.decompress(one)
    assert plain.count(b"\n") == len(records)


@pytest.mark.parametrize("report", list(Report))
def test_gzip_jsonl_decompresses_to_the_plain_output_and_is_reproducible(report: Report) -> None:
    """Gzip output inflates to the plain bytes; its header has no name and mtime 0."""
    records = MANY[report]
    plain = written(JsonLines(), report, [records])
    packed = written(JsonLines(compress=True), report, [records])
    assert packed[:3] == b"\x1f\x8b\x08"
    assert packed[3] == 0  # no FNAME: the file name does not leak into the bytes
    assert packed[4:8] == b"\x00\x00\x00\x00"  # mtime fixed at 0
    assert len(packed) < len(plain)
    assert gzip.decompress(packed) == plain
    assert written(JsonLines(compress=True), report, chunks(records, 13)) == packed


def test_empty_jsonl_output() -> None:
    """No records: plain JSON Lines is empty; gzip is a valid member holding nothing."""
    assert written(JsonLines(), Report.CALLS, []) == b""
    assert written(JsonLines(), Report.RECORDINGS, [[], []]) == b""
    packed = written(JsonLines(compress=True), Report.CALLS, [])
    assert packed[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed) == b""
    assert written(JsonLines(compress=True), Report.CALLS, [[]]) == packed


@pytest.mark.parametrize("name", list(FORMAT_CASES))
def test_closing_a_writer_leaves_the_file_open(name: str) -> None:
    """After close() (and after the with block) the caller's file is still open and usable."""
    file = io.BytesIO()
    writer = FORMAT_CASES[name].open(file, Report.CALLS)
    writer.write(CALLS)
    writer.close()
    assert not file.closed
    file.write(b"tail")
    assert file.getvalue().endswith(b"tail")
    other = io.BytesIO()
    with FORMAT_CASES[name].open(other, Report.RECORDINGS) as in_block:
        in_block.write(RECORDINGS)
    assert not other.closed
    assert other.getvalue() == written(FORMAT_CASES[name], Report.RECORDINGS, [RECORDINGS])


@pytest.mark.parametrize("name", list(FORMAT_CASES))
@pytest.mark.parametrize("batches", [[], [CALLS]], ids=["empty", "two-calls"])
def test_close_is_idempotent(name: str, batches: list[list[Call]]) -> None:
    """A second close() (also after leaving the with block) adds no bytes."""
    file = io.BytesIO()
    writer = FORMAT_CASES[name].open(file, Report.CALLS)
    for batch in batches:
        writer.write(batch)
    writer.close()
    finished = file.getvalue()
    assert finished == written(FORMAT_CASES[name], Report.CALLS, batches)
    writer.close()
    with writer:
        pass
    assert file.getvalue() == finished


@pytest.mark.parametrize("name", list(FORMAT_CASES))
def test_write_after_close_raises_value_error(name: str) -> None:
    """Writing to a closed writer is a ValueError naming the report, and writes nothing."""
    file = io.BytesIO()
    writer = FORMAT_CASES[name].open(file, Report.RECORDINGS)
    writer.write(RECORDINGS[:1])
    writer.close()
    finished = file.getvalue()
    with pytest.raises(ValueError, match=r"^this recordings writer is closed$"):
        writer.write(RECORDINGS[1:])
    with pytest.raises(ValueError, match="closed"):
        writer.write([])
    assert file.getvalue() == finished


# -- CSV --------------------------------------------------------------------------------

CALLS_HEADER = (
    b"id,call_from,call_to,service,bridge,status,duration_seconds,billing_seconds,pulsing,"
    b"charges,start_at,end_at,hangup_by,dtmf,location,region,provider,notes,name,audio,extra\n"
)
RECORDINGS_HEADER = (
    b"id,call_from,call_to,audio,duration_seconds,agent,created_at,extra,audio_file,audio_sha256\n"
)
FIRST_CALL_CSV = (
    b"3f1c2a10-9b7e-11e9-a2f3-6c2b59c79f5a,917989532456,918068287601,IN,918068287601,"
    b"RECEIVED,12,12,30,0.0150,2019-06-11T05:57:24+05:30,2019-06-11T05:57:36+05:30,caller,,"
    b'IN,AP,RJ,callback requested,Asha K,,"{""audio_length"":null,""serial"":1,""storage"":null}"\n'
)


def test_csv_is_the_header_then_one_line_a_record() -> None:
    """Two calls are the calls header and two exact lines (None as an empty cell)."""
    data = written(Csv(), Report.CALLS, [CALLS[:1], CALLS[1:]])
    assert data.startswith(CALLS_HEADER + FIRST_CALL_CSV)
    rows = csv_lines(data)
    assert len(rows) == 3
    assert rows[2][:6] == [
        "4a7d9e22-9b7e-11e9-8c11-6c2b59c79f5a",
        "91798953xxxx",
        "918068287601",
        "IN",
        "918068287601",
        "ANSWER",
    ]
    assert rows[2][6:12] == [
        "3723",
        "3750",
        "30",
        "1.8600",
        "2019-06-11T23:10:00+05:30",
        "2019-06-12T00:12:03+05:30",
    ]


@pytest.mark.parametrize("report", list(Report))
def test_csv_header_appears_exactly_once_across_many_batches(report: Report) -> None:
    """Batches of 5 with empty ones between give one header and the one-batch bytes."""
    records = MANY[report]
    data = written(Csv(), report, chunks(records, 5))
    header = (",".join(COLUMNS[report]) + "\n").encode()
    assert data.startswith(header)
    assert data.count(header) == 1
    rows = csv_lines(data)
    assert len(rows) == len(records) + 1
    assert [line[0] for line in rows[1:]] == [record.id for record in records]
    assert data == written(Csv(), report, [records])


@pytest.mark.parametrize(
    ("report", "header"),
    [(Report.CALLS, CALLS_HEADER), (Report.RECORDINGS, RECORDINGS_HEADER)],
)
@pytest.mark.parametrize("batches", [[], [[]], [[], []]], ids=["none", "one-empty", "two-empty"])
def test_empty_csv_output_is_exactly_the_reports_header(
    report: Report, header: bytes, batches: list[list[Record]]
) -> None:
    """With no records the output is the header line of that report, recordings included."""
    assert written(Csv(), report, batches) == header
    assert header == (",".join(COLUMNS[report]) + "\n").encode()


def test_csv_json_columns_are_json_text_with_sorted_keys() -> None:
    """The extra and agent columns are compact JSON with keys sorted at every level."""
    nested = attrs.evolve(CALLS[0], extra={"b": 1, "a": {"d": [2, {"y": 0, "x": 1}], "c": 3}})
    rows = list(csv.DictReader(io.StringIO(written(Csv(), Report.CALLS, [[nested]]).decode())))
    assert rows[0]["extra"] == '{"a":{"c":3,"d":[2,{"x":1,"y":0}]},"b":1}'
    rows = list(
        csv.DictReader(io.StringIO(written(Csv(), Report.RECORDINGS, [RECORDINGS]).decode()))
    )
    assert rows[0]["agent"] == "null"
    assert rows[1]["agent"] == '{"id":7,"name":"Desk 2"}'
    assert rows[1]["extra"] == "{}"
    assert rows[0]["extra"] == (
        '{"agent_id":"0","call_id":null,"created":"Jun 11, 2019 06:04 AM","name":null,'
        '"notes":null,"options":null,"serial":1,"service":"C","storage":"s3","user_id":"13016"}'
    )


def test_csv_none_is_an_empty_cell() -> None:
    """None in a plain column is an empty cell, not 'None' or 'null'."""
    call = attrs.evolve(
        CALLS[0], service=None, bridge=None, start_at=None, end_at=None, hangup_by=None, name=None
    )
    (exported,) = csv.DictReader(io.StringIO(written(Csv(), Report.CALLS, [[call]]).decode()))
    empty = ("service", "bridge", "start_at", "end_at", "hangup_by", "dtmf", "name", "audio")
    assert {column: exported[column] for column in empty} == dict.fromkeys(empty, "")
    assert exported["notes"] == "callback requested"
    recording = RECORDINGS[1]
    (exported,) = csv.DictReader(
        io.StringIO(written(Csv(), Report.RECORDINGS, [[recording]]).decode())
    )
    assert exported["audio"] == ""


def _parse_csv_cell(column: str, text: str) -> Any:
    if column in JSON_COLUMNS:
        return json.loads(text)
    if text == "":
        return None
    if column in ("duration_seconds", "billing_seconds", "pulsing"):
        return int(text)
    if column == "charges":
        return Decimal(text)
    if column in ("start_at", "end_at", "created_at"):
        return dt.datetime.fromisoformat(text)
    return text


@pytest.mark.parametrize("report", list(Report))
def test_csv_values_round_trip_through_dictreader(report: Report) -> None:
    """Parsing every cell back by its column gives the record's row (quotes, commas, UTF-8)."""
    awkward: Record = (
        attrs.evolve(CALLS[0], notes='said "hi", then\nhung up', name="Zoë, Ünal")
        if report is Report.CALLS
        else attrs.evolve(RECORDINGS[1], agent={"name": "Zoë", "id": 3}, audio="a,b")
    )
    records = [*MANY[report], awkward]
    data = written(Csv(), report, chunks(records, 9))
    reader = csv.DictReader(io.StringIO(data.decode(), newline=""))
    assert tuple(reader.fieldnames or ()) == COLUMNS[report]
    parsed = [{key: _parse_csv_cell(key, text) for key, text in line.items()} for line in reader]
    # CSV has one empty cell for both None and "" (the simulator sends dtmf ""), so an
    # empty text reads back as None.
    expected = [
        {key: None if value == "" else value for key, value in row(record).items()}
        for record in records
    ]
    assert any(record.dtmf == "" for record in records if isinstance(record, Call)) is (
        report is Report.CALLS
    )
    assert parsed == expected
    assert [str(line["charges"]) for line in parsed if "charges" in line] == [
        str(record.charges) for record in records if isinstance(record, Call)
    ]
    offsets = {
        line[key].utcoffset()
        for line in parsed
        for key in ("end_at", "created_at")
        if line.get(key) is not None
    }
    assert offsets == {IST}


# -- Parquet ----------------------------------------------------------------------------


def _expected_parquet_rows(records: Iterable[Record]) -> list[dict[str, Any]]:
    return [
        {
            key: json.dumps(value, sort_keys=True, separators=(",", ":"))
            if key in JSON_COLUMNS
            else value
            for key, value in row(record).items()
        }
        for record in records
    ]


@pytest.mark.parametrize("zone", [ZONE, "America/New_York"])
def test_parquet_schema_is_typed_and_zone_aware(zone: str) -> None:
    """Timestamps are timestamp[s, tz=zone], charges decimal128(14, 4), seconds int64."""
    stamp = pa.timestamp("s", tz=zone)
    calls = parquet_schema(Report.CALLS, zone)
    assert calls.names == list(CALL_COLUMNS)
    assert {name: calls.field(name).type for name in calls.names} == {
        **{name: pa.string() for name in CALL_COLUMNS},
        "duration_seconds": pa.int64(),
        "billing_seconds": pa.int64(),
        "pulsing": pa.int32(),
        "charges": pa.decimal128(14, 4),
        "start_at": stamp,
        "end_at": stamp,
    }
    recordings = parquet_schema(Report.RECORDINGS, zone)
    assert recordings.names == list(RECORDING_COLUMNS)
    assert {name: recordings.field(name).type for name in recordings.names} == {
        **{name: pa.string() for name in RECORDING_COLUMNS},
        "duration_seconds": pa.int64(),
        "created_at": stamp,
    }


@pytest.mark.parametrize("report", list(Report))
def test_parquet_file_schema_keeps_the_types_and_the_zone(report: Report) -> None:
    """The written file reads back with the schema's types and the given zone.

    Parquet has no second unit, so second timestamps are stored (and read) as ms.
    """
    zone = "America/New_York"
    table = pq.read_table(io.BytesIO(written(Parquet(zone), report, [MANY[report]])))
    declared = parquet_schema(report, zone)
    stamp_ms = pa.timestamp("ms", tz=zone)
    assert [(f.name, f.type) for f in table.schema] == [
        (f.name, stamp_ms if pa.types.is_timestamp(f.type) else f.type) for f in declared
    ]


@pytest.mark.parametrize("report", list(Report))
def test_parquet_round_trips_batches_to_the_same_rows(report: Report) -> None:
    """Rows written in batches read back equal: instants, exact decimals, JSON text, nulls."""
    records: list[Any] = list(MANY[report])
    if report is Report.CALLS:
        records.append(attrs.evolve(CALLS[1], start_at=None, end_at=None, notes=None))
    else:
        records.extend(RECORDINGS)
    table = pq.read_table(io.BytesIO(written(Parquet(ZONE), report, chunks(records, 11))))
    assert table.num_rows == len(records)
    read = table.to_pylist()
    assert read == _expected_parquet_rows(records)
    stamps = [line[key] for line in read for key in ("start_at", "created_at") if line.get(key)]
    assert stamps
    assert {stamp.utcoffset() for stamp in stamps} == {IST}
    if report is Report.CALLS:
        assert [str(line["charges"]) for line in read] == [str(r.charges) for r in records]
        assert read[-1]["end_at"] is None
        assert read[-1]["duration_seconds"] == 3723
    else:
        assert read[-2]["agent"] == "null"
        assert read[-1]["agent"] == '{"id":7,"name":"Desk 2"}'


@pytest.mark.parametrize("report", list(Report))
def test_empty_parquet_output_is_a_readable_file_with_the_schema(report: Report) -> None:
    """No records still make a Parquet file: the report's schema and 0 rows."""
    data = written(Parquet(ZONE), report, [[]])
    assert data[:4] == b"PAR1"
    assert data[-4:] == b"PAR1"
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == 0
    assert table.schema.names == list(COLUMNS[report])
    assert pq.read_schema(io.BytesIO(data)).names == list(COLUMNS[report])
    assert written(Parquet(ZONE), report, []) == data


@pytest.mark.parametrize("report", list(Report))
def test_parquet_output_is_deterministic(report: Report) -> None:
    """The same records in the same batches give the same bytes."""
    batches = chunks(MANY[report], 17)
    first = written(Parquet(ZONE), report, batches)
    assert written(Parquet(ZONE), report, batches) == first
    assert written(get_format("parquet", timezone=ZONE), report, batches) == first
    assert written(Parquet("UTC"), report, batches) != first


# -- report checks ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORMAT_CASES))
@pytest.mark.parametrize(
    ("report", "message"),
    [
        (Report.CALLS, r"^a calls export takes Call records, not Recording$"),
        (Report.RECORDINGS, r"^a recordings export takes Recording records, not Call$"),
    ],
)
def test_a_writer_refuses_the_other_reports_records_and_keeps_what_it_wrote(
    name: str, report: Report, message: str
) -> None:
    """A foreign record fails its batch with a TypeError; earlier batches stay whole."""
    fmt = FORMAT_CASES[name]
    good = MANY[report]
    file = io.BytesIO()
    with fmt.open(file, report) as writer:
        writer.write(good[:10])
        with pytest.raises(TypeError, match=message):
            writer.write([*good[10:12], OTHER[report]])
    assert file.getvalue() == written(fmt, report, [good[:10]])


@pytest.mark.parametrize("report", list(Report))
def test_a_writer_refuses_a_non_record(report: Report) -> None:
    """A dict in a batch is a TypeError naming dict."""
    with (
        pytest.raises(TypeError, match=r"takes \w+ records, not dict$"),
        Csv().open(io.BytesIO(), report) as writer,
    ):
        writer.write([cast(Any, {"id": "x"})])


# -- get_format -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["xml", "JSONL", "", "jsonl.gz"])
def test_get_format_rejects_an_unknown_name(name: str) -> None:
    """An unknown name is a ValueError listing the known ones."""
    with pytest.raises(
        ValueError, match=rf"^unknown format '{name}': choose one of jsonl, csv, parquet$"
    ):
        get_format(name, timezone=ZONE)


@pytest.mark.parametrize("name", ["csv", "parquet"])
def test_get_format_rejects_compression_for_csv_and_parquet(name: str) -> None:
    """compress=True is for jsonl only."""
    with pytest.raises(ValueError, match=rf"^gzip compression applies to jsonl only, not {name}$"):
        get_format(name, compress=True, timezone=ZONE)


def test_get_format_parquet_needs_a_timezone() -> None:
    """Parquet without a time zone is a ValueError saying it needs one."""
    with pytest.raises(ValueError, match=r"^parquet needs the account's time zone"):
        get_format("parquet")


@pytest.mark.parametrize(
    ("name", "compress", "expected", "extension"),
    [
        ("jsonl", False, JsonLines(), "jsonl"),
        ("jsonl", True, JsonLines(compress=True), "jsonl.gz"),
        ("csv", False, Csv(), "csv"),
        ("parquet", False, Parquet(ZONE), "parquet"),
    ],
)
def test_get_format_names_and_extensions(
    name: str, compress: bool, expected: ExportFormat, extension: str
) -> None:
    """Each format has its name, settings and file extension."""
    fmt = get_format(name, compress=compress, timezone=ZONE)
    assert fmt == expected
    assert type(fmt) is type(expected)
    assert fmt.name == name
    assert fmt.extension == extension
    assert FORMATS == ("jsonl", "csv", "parquet")


def test_get_format_passes_the_timezone_to_parquet() -> None:
    """The Parquet format keeps the zone it was given, with zstd compression."""
    fmt = get_format("parquet", timezone="Europe/Berlin")
    assert isinstance(fmt, Parquet)
    assert (fmt.timezone, fmt.compression) == ("Europe/Berlin", "zstd")


def test_get_format_rejects_an_unknown_timezone() -> None:
    """A zone name that does not exist is a ValueError naming it, before any file is written."""
    with pytest.raises(ValueError, match="Nowhere/Land"):
        get_format("parquet", timezone="Nowhere/Land")


SIGNED_URLS = [
    "https://b.s3.amazonaws.com/rec/a.mp3?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20240305&X-Amz-Date=20240305T000000Z"
    "&X-Amz-Expires=3600&X-Amz-Signature=abcdef0123456789",
    "https://b.s3.amazonaws.com/rec/a.mp3?AWSAccessKeyId=AKIAEXAMPLE&Expires=1&Signature=c2ln",
    "https://storage.googleapis.com/b/rec/a.mp3?X-Goog-Algorithm=GOOG4-RSA-SHA256"
    "&X-Goog-Credential=svc%40p.iam&X-Goog-Signature=0a1b2c",
    "https://acct.blob.core.windows.net/c/rec/a.mp3?sv=2021-08-06&se=2024-03-05&sp=r&sig=c2ln",
    "https://d111.cloudfront.net/rec/a.mp3?Expires=1&Signature=c2ln&Key-Pair-Id=K2JCJMDEHXQW5F",
]


@pytest.mark.parametrize("url", SIGNED_URLS)
def test_rows_keep_the_audio_objects_address_without_its_signature(url: str) -> None:
    """Every presigned-URL family: the audio column and JSON columns keep no signing query."""
    stable = url.split("?", 1)[0]
    nested = {"links": [{"audio": url}], "plain": "https://example.test/?page=2", "n": 1}
    recording = attrs.evolve(RECORDINGS[0], audio=url, extra=nested, agent={"avatar": url})
    call = attrs.evolve(CALLS[0], audio=url, extra=nested)
    for exported in (recording_row(recording), call_row(call)):
        assert exported["audio"] == stable
        assert exported["extra"] == dict(nested, links=[{"audio": stable}])
    assert recording_row(recording)["agent"] == {"avatar": stable}
    for fmt in FORMAT_CASES.values():
        for report, record in ((Report.RECORDINGS, recording), (Report.CALLS, call)):
            data = written(fmt, report, [[record]])
            if fmt is FORMAT_CASES["jsonl.gz"]:
                data = gzip.decompress(data)
            for secret in (b"c2ln", b"abcdef0123456789", b"AKIAEXAMPLE", b"0a1b2c"):
                assert secret not in data


def test_unsigned_url_keeps_scheme_host_and_path() -> None:
    """The query and the fragment go; nothing else changes; None stays None."""
    assert (
        unsigned_url("https://h.test:8443/a/b%20c.mp3?x=1#f") == "https://h.test:8443/a/b%20c.mp3"
    )
    assert unsigned_url("https://h.test/a.mp3") == "https://h.test/a.mp3"
    assert unsigned_url(None) is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_audio_files_fill_only_their_recordings_rows(fmt: str) -> None:
    """write(audio=) names the file and SHA-256 of the recordings given, None for the others."""
    from voiceapi_async.backfill._verify import decode_rows

    first, second = RECORDINGS
    audio = {first.id: AudioFile("audio/date=2019-06-11/x.mp3", "ab" * 32)}
    buffer = io.BytesIO()
    with get_format(fmt, timezone="Asia/Kolkata").open(buffer, Report.RECORDINGS) as writer:
        writer.write(RECORDINGS, audio=audio)
    rows = {r["id"]: r for r in decode_rows(f"x.{fmt}", buffer.getvalue())}
    assert rows[first.id]["audio_file"] == "audio/date=2019-06-11/x.mp3"
    assert rows[first.id]["audio_sha256"] == "ab" * 32
    assert rows[second.id]["audio_file"] in (None, "")
    assert rows[second.id]["audio_sha256"] in (None, "")
    assert recording_row(first, audio[first.id])["audio_file"] == "audio/date=2019-06-11/x.mp3"

"""The simulator's parts without a server: date parsing, dataset, fault draws, storage."""

from __future__ import annotations

import collections
import datetime as dt
import statistics
import uuid
from urllib.parse import parse_qsl, urlsplit

import pytest

from voiceapi_async import Report
from voiceapi_async.testing import FAULT_KINDS, Dataset, Fate, Faults
from voiceapi_async.testing._dates import parse_range
from voiceapi_async.testing._storage import AudioStorage, audio_bytes, s3_error

NOW = dt.datetime(2024, 3, 5, 12, 34, 56)
MIDNIGHT = dt.time(0, 0, 0)
LAST_SECOND = dt.time(23, 59, 59)
WEEK = (dt.date(2024, 3, 1), dt.date(2024, 3, 7))


def at(day: int, time: dt.time = MIDNIGHT, month: int = 3) -> dt.datetime:
    return dt.datetime.combine(dt.date(2024, month, day), time)


def week_days() -> list[dt.date]:
    return [WEEK[0] + dt.timedelta(days=n) for n in range((WEEK[1] - WEEK[0]).days + 1)]


# -- the date filter -------------------------------------------------------------------


def test_range_splits_on_space_hyphen_space() -> None:
    """The value is split on the first " - " into a from and a to."""
    assert parse_range("2024-03-01 - 2024-03-04", now=NOW) == (at(1), at(4, LAST_SECOND))


def test_a_hyphen_without_spaces_does_not_split() -> None:
    """Only space-hyphen-space separates the parts; a bare value is a single date."""
    assert parse_range("2024-03-01", now=NOW) == (at(1), at(1, LAST_SECOND))


def test_from_without_time_starts_at_midnight() -> None:
    """A from with no time gets 00:00:00."""
    start, _ = parse_range("Mar 02, 2024 - 2024-03-02 10:00:00", now=NOW)
    assert start == at(2)


def test_to_without_time_ends_at_the_last_second() -> None:
    """A to with no time gets 23:59:59, so a one-day range is the whole day."""
    _, end = parse_range("2024-03-02 10:00:00 - Mar 02, 2024", now=NOW)
    assert end == at(2, LAST_SECOND)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "Aug 12, 2019 - Aug 12, 2019",
            (dt.datetime(2019, 8, 12), dt.datetime(2019, 8, 12, 23, 59, 59)),
        ),
        ("Mar 1, 2024 - Mar 3, 2024", (at(1), at(3, LAST_SECOND))),
        ("March 01, 2024 - March 03, 2024", (at(1), at(3, LAST_SECOND))),
        ("2024-03-01 - 2024-03-03", (at(1), at(3, LAST_SECOND))),
        (
            "2024-03-01 10:00:00 - 2024-03-03 17:30:15",
            (at(1, dt.time(10)), at(3, dt.time(17, 30, 15))),
        ),
        ("2024-03-01 10:00 - 2024-03-01 11:00", (at(1, dt.time(10)), at(1, dt.time(11)))),
        ("Mar 01, 2024 - 2024-03-02 06:00:00", (at(1), at(2, dt.time(6)))),
    ],
)
def test_documented_formats_are_parsed(
    value: str, expected: tuple[dt.datetime, dt.datetime]
) -> None:
    """%b %d, %Y, %Y-%m-%d and full datetimes (with or without seconds) are all read."""
    assert parse_range(value, now=NOW) == expected


def test_slashes_are_read_day_first() -> None:
    """08/12/2019 is the 8th of December, not the 12th of August."""
    assert parse_range("08/12/2019 - 08/12/2019", now=NOW) == (
        dt.datetime(2019, 12, 8),
        dt.datetime(2019, 12, 8, 23, 59, 59),
    )


def test_slashed_datetimes_are_read_day_first() -> None:
    """A slashed value with a time is day-first too."""
    start, _ = parse_range("03/04/2024 10:00:00 - 03/04/2024", now=NOW)
    assert start == at(3, dt.time(10), month=4)


@pytest.mark.parametrize("garbage", ["yesterday", "2024-13-45", "12 Foo 2024", "not a date"])
def test_unparseable_parts_silently_become_now(garbage: str) -> None:
    """A part no format fits is replaced by "now", with its time, without any error."""
    assert parse_range(f"{garbage} - Mar 05, 2024", now=NOW) == (NOW, at(5, LAST_SECOND))
    assert parse_range(f"Mar 05, 2024 - {garbage}", now=NOW) == (at(5), NOW)


def test_unparseable_from_alone_runs_to_the_end_of_today() -> None:
    """A lone unparseable value is "now" up to the end of now's day."""
    assert parse_range("soon", now=NOW) == (NOW, at(5, LAST_SECOND))


@pytest.mark.parametrize(
    "value", ["Mar 04, 2024", "2024-03-04", "Mar 04, 2024 - ", "Mar 04, 2024 -  "]
)
def test_missing_to_means_a_single_day(value: str) -> None:
    """A from alone (or with an empty to) covers that one whole day."""
    assert parse_range(value, now=NOW) == (at(4), at(4, LAST_SECOND))


def test_missing_to_after_a_datetime_runs_to_the_end_of_that_day() -> None:
    """A from with a time and no to ends at 23:59:59 of the same day."""
    assert parse_range("2024-03-04 15:00:00", now=NOW) == (at(4, dt.time(15)), at(4, LAST_SECOND))


@pytest.mark.parametrize("value", [None, "", "   "])
def test_absent_filter_means_today(value: str | None) -> None:
    """No filter at all is today, the whole day."""
    assert parse_range(value, now=NOW) == (at(5), at(5, LAST_SECOND))


def test_surrounding_spaces_are_ignored() -> None:
    """Spaces around each part do not change the result."""
    assert parse_range("  2024-03-01  -  2024-03-02 ", now=NOW) == (at(1), at(2, LAST_SECOND))


# -- the dataset -----------------------------------------------------------------------


def test_same_seed_gives_the_same_records() -> None:
    """Two datasets with one seed generate identical days."""
    first, second = Dataset(3, calls_per_day=80), Dataset(3, calls_per_day=80)
    assert first.day(dt.date(2024, 3, 5)) == second.day(dt.date(2024, 3, 5))


def test_different_seeds_give_different_records() -> None:
    """Another seed gives other records."""
    day = dt.date(2024, 3, 5)
    first = Dataset(3, calls_per_day=80).day(day).calls
    second = Dataset(4, calls_per_day=80).day(day).calls
    assert {r["id"] for r in first}.isdisjoint({r["id"] for r in second})


def test_days_are_generated_independently_of_order() -> None:
    """A day is the same whether generated first, last or after a cache eviction."""
    forward = Dataset(9, calls_per_day=40)
    forwards = [forward.day(day) for day in week_days()]
    backward = Dataset(9, calls_per_day=40)
    backwards = [backward.day(day) for day in reversed(week_days())]
    assert forwards == list(reversed(backwards))


def test_calls_per_day_varies_within_twenty_percent() -> None:
    """Each day has the average number of calls, +-20%, and about 30% as many recordings."""
    dataset = Dataset(1, calls_per_day=500)
    counts = [len(dataset.day(day).calls) for day in week_days()]
    assert all(400 <= count <= 600 for count in counts)
    assert len(set(counts)) > 1
    recordings = [len(dataset.day(day).recordings) for day in week_days()]
    assert sum(recordings) == pytest.approx(0.3 * sum(counts), rel=0.02)


def test_zero_calls_per_day_gives_empty_days() -> None:
    """calls_per_day=0 is an empty account."""
    day = Dataset(1, calls_per_day=0).day(dt.date(2024, 3, 5))
    assert day.calls == []
    assert day.recordings == []


def test_records_are_sorted_by_the_filtered_column() -> None:
    """Each day's lists and keys are sorted by end_at (calls) and created_at (recordings)."""
    day = Dataset(2, calls_per_day=120).day(dt.date(2024, 3, 5))
    assert day.call_keys == sorted(day.call_keys)
    assert day.call_keys == [r["end_at"] for r in day.calls]
    assert day.recording_keys == sorted(day.recording_keys)
    assert day.recording_keys == [r["created_at"] for r in day.recordings]
    assert all(key.startswith("2024-03-05 ") for key in day.call_keys + day.recording_keys)


def test_ids_are_unique_version_one_uuids() -> None:
    """Every id is a distinct time-based (version 1) UUID."""
    dataset = Dataset(2, calls_per_day=200)
    ids = [
        r["id"] for day in week_days() for r in dataset.day(day).calls + dataset.day(day).recordings
    ]
    assert len(ids) == len(set(ids))
    assert {uuid.UUID(value).version for value in ids} == {1}


def test_traffic_is_shaped_over_the_day() -> None:
    """Daytime hours carry far more calls than the night."""
    dataset = Dataset(5, calls_per_day=1000)
    hours = collections.Counter(
        int(r["end_at"][11:13]) for r in dataset.day(dt.date(2024, 3, 5)).calls
    )
    assert hours[10] > 5 * hours[3]


def test_calls_cover_the_spec_variety() -> None:
    """Every status, masked numbers, null start_at, midnight crossings, long calls, extra keys."""
    dataset = Dataset(11, calls_per_day=400)
    calls = [r for day in week_days() for r in dataset.day(day).calls]
    assert {r["status"] for r in calls} == {
        "ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL", "RECEIVED",
        "MISSED", "COMPLETED",
    }  # fmt: skip
    assert any(r["call_from"].endswith("xxxx") for r in calls)
    assert any(r["start_at"] is None for r in calls)
    assert any(r["start_at"] is not None and r["start_at"][:10] < r["end_at"][:10] for r in calls)
    assert any(int(r["duration"][:2]) >= 2 for r in calls)
    assert any("serial" in r for r in calls)
    assert any("campaign" in r for r in calls)
    assert any(r["audio"] is not None for r in calls)
    assert any(r["dtmf"] == "" for r in calls)
    assert any(r["dtmf"] is None for r in calls)


def test_recordings_cover_the_spec_variety() -> None:
    """Signed-storage, unsigned and null audio, legacy keys, agents as objects or null."""
    dataset = Dataset(11, calls_per_day=400)
    recordings = [r for day in week_days() for r in dataset.day(day).recordings]
    audio = [r["audio"] for r in recordings]
    assert any(value is None for value in audio)
    assert any(value is not None and value.startswith("/storage/") for value in audio)
    assert any(value is not None and value.startswith("https://") for value in audio)
    assert any("created" in r for r in recordings)
    assert any(isinstance(r["agent"], dict) for r in recordings)
    assert any(r["agent"] is None for r in recordings)


def test_between_is_inclusive_to_the_second() -> None:
    """A record exactly at either bound is matched; one second past it is not."""
    dataset = Dataset(6, calls_per_day=100)
    record = dataset.day(dt.date(2024, 3, 5)).calls[40]
    moment = dt.datetime.fromisoformat(record["end_at"])
    second = dt.timedelta(seconds=1)
    assert record["id"] in dataset.ids_between(Report.CALLS, moment, moment)
    assert record["id"] in dataset.ids_between("calls", moment - second, moment)
    assert record["id"] in dataset.ids_between("calls", moment, moment + second)
    assert record["id"] not in dataset.ids_between("calls", moment + second, moment + 2 * second)
    assert record["id"] not in dataset.ids_between("calls", moment - 2 * second, moment - second)


def test_between_spans_days_and_matches_a_scan() -> None:
    """between() over several days equals a scan of every record by its filtered column."""
    dataset = Dataset(6, calls_per_day=100)
    start, end = at(2, dt.time(13, 20)), at(5, dt.time(8, 0, 30))
    for report, column in ((Report.CALLS, "end_at"), (Report.RECORDINGS, "created_at")):
        scan = {
            r["id"]
            for day in week_days()
            for r in dataset.day(day).records(report)[0]
            if start <= dt.datetime.fromisoformat(r[column]) <= end
        }
        assert dataset.ids_between(report, start, end) == scan
        assert len(dataset.between(report, start, end)) == len(scan)


def test_an_inverted_range_matches_nothing() -> None:
    """A from after the to matches no record."""
    assert Dataset(6).ids_between("calls", at(5), at(4)) == set()


def test_live_records_join_their_day_and_bump_its_version() -> None:
    """add_live puts a record in the ground truth and bumps the day's version."""
    dataset = Dataset(6, calls_per_day=30)
    moment = at(5, dt.time(9, 15))
    before = dataset.ids_between("calls", at(5), at(5, LAST_SECOND))
    assert dataset.version(Report.CALLS, moment.date()) == 0
    record = dataset.add_live(Report.CALLS, moment, 1)
    assert record["end_at"] == "2024-03-05 09:15:00"
    assert dataset.version(Report.CALLS, moment.date()) == 1
    assert dataset.version(Report.RECORDINGS, moment.date()) == 0
    assert dataset.ids_between("calls", at(5), at(5, LAST_SECOND)) == before | {record["id"]}
    assert dataset.day(moment.date()).call_keys == sorted(dataset.day(moment.date()).call_keys)


def test_negative_calls_per_day_is_refused() -> None:
    """A negative calls_per_day raises ValueError naming the setting."""
    with pytest.raises(ValueError, match="calls_per_day"):
        Dataset(calls_per_day=-1)


# -- fault draws -----------------------------------------------------------------------


def test_no_faults_means_a_clean_fate() -> None:
    """The default Faults never injects anything and adds no latency."""
    assert Faults().draw(1, "/api/v2/voice/calls?page=1", 1) == Fate(None, 0.0, 200)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_certain_fault_is_always_drawn(kind: str) -> None:
    """A fault with probability 1.0 is every request's fate."""
    faults = Faults(**{kind: 1.0})
    fates = [faults.draw(7, f"/api/v2/voice/calls?page={n}", 1) for n in range(30)]
    assert {fate.fault for fate in fates} == {kind}


def test_server_errors_draw_500_502_and_503() -> None:
    """The status of a drawn server error is one of 500, 502 and 503, each seen."""
    faults = Faults(server_error=1.0)
    statuses = {faults.draw(7, f"r{n}", 1).status for n in range(60)}
    assert statuses == {500, 502, 503}


def test_draws_are_reproducible() -> None:
    """The same seed, request and attempt always give the same fate."""
    faults = Faults(latency_ms=20, server_error=0.3, reset=0.2, truncated=0.2)
    first = [faults.draw(5, f"r{n}", attempt) for n in range(40) for attempt in (1, 2)]
    again = [faults.draw(5, f"r{n}", attempt) for n in range(40) for attempt in (1, 2)]
    other_seed = [faults.draw(6, f"r{n}", attempt) for n in range(40) for attempt in (1, 2)]
    assert first == again
    assert first != other_seed


def test_a_retried_request_gets_a_fresh_draw() -> None:
    """Later attempts of one request draw again, so a retry can succeed."""
    faults = Faults(server_error=0.5)
    fates = [
        faults.draw(5, "/api/v2/voice/calls?page=1", attempt).fault for attempt in range(1, 40)
    ]
    assert None in fates
    assert "server_error" in fates


def test_fault_frequency_follows_its_probability() -> None:
    """Over many requests a fault shows up about as often as its probability says."""
    faults = Faults(truncated=0.25)
    hits = sum(faults.draw(2, f"r{n}", 1).fault == "truncated" for n in range(4000))
    assert 850 <= hits <= 1150


def test_latency_is_a_positive_spread_distribution() -> None:
    """latency_ms draws log-normal latencies around the median, not a constant."""
    faults = Faults(latency_ms=50)
    latencies = [faults.draw(3, f"r{n}", 1).latency for n in range(400)]
    assert all(latency > 0 for latency in latencies)
    assert len(set(latencies)) == len(latencies)
    assert statistics.median(latencies) == pytest.approx(0.050, rel=0.2)
    assert max(latencies) > 2 * min(latencies)


def test_zero_spread_latency_is_constant() -> None:
    """latency_spread=0 makes every latency exactly latency_ms."""
    faults = Faults(latency_ms=40, latency_spread=0)
    latencies = [faults.draw(3, f"r{n}", 1).latency for n in range(20)]
    assert latencies == pytest.approx([0.04] * 20)


def test_demo_faults_never_stall() -> None:
    """The demo preset has latency and a little of each fault, but no stalls."""
    demo = Faults.demo()
    assert demo.latency_ms > 0
    assert demo.stall == 0
    assert all(getattr(demo, kind) > 0 for kind in FAULT_KINDS if kind != "stall")


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"server_error": 1.5}, "server_error"),
        ({"reset": -0.1}, "reset"),
        ({"stall": 2}, "stall"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"stall_seconds": -5}, "stall_seconds"),
    ],
)
def test_bad_fault_settings_are_refused(settings: dict[str, float], name: str) -> None:
    """A probability outside 0..1 or a negative time raises ValueError naming the setting."""
    with pytest.raises(ValueError, match=name):
        Faults(**settings)


# -- audio storage ---------------------------------------------------------------------

PATH = "/storage/rc/240305/3b0a6c8e-0000-1000-8000-000000000001.mp3"
MINTED = dt.datetime(2024, 3, 5, 6, 30, tzinfo=dt.UTC)


def signed_query(storage: AudioStorage, path: str = PATH) -> dict[str, str]:
    url = storage.sign("http://127.0.0.1:9", path, MINTED)
    parts = urlsplit(url)
    assert parts.path == path
    return dict(parse_qsl(parts.query))


def test_signed_urls_look_like_s3_presigned_urls() -> None:
    """sign() adds every X-Amz-* parameter, expiring after the configured time."""
    query = signed_query(AudioStorage(1, expires=900))
    assert set(query) >= {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-Signature",
    }
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Date"] == "20240305T063000Z"
    assert query["X-Amz-Expires"] == "900"
    assert query["X-Amz-Credential"].endswith("/20240305/local/s3/aws4_request")


def test_a_fresh_signature_is_valid() -> None:
    """A URL checks out from the moment it is minted until it expires, inclusive."""
    storage = AudioStorage(1, expires=3600)
    query = signed_query(storage)
    assert storage.check(PATH, query, MINTED) is None
    assert storage.check(PATH, query, MINTED + dt.timedelta(seconds=3600)) is None


def test_an_expired_signature_is_access_denied() -> None:
    """One second past X-Amz-Expires the URL is AccessDenied."""
    storage = AudioStorage(1, expires=3600)
    query = signed_query(storage)
    assert storage.check(PATH, query, MINTED + dt.timedelta(seconds=3601)) == "AccessDenied"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("X-Amz-Signature", "0" * 64),
        ("X-Amz-Expires", "86400"),
        ("X-Amz-Date", "20240306T063000Z"),
    ],
)
def test_a_tampered_url_does_not_match(key: str, value: str) -> None:
    """Changing the signature, the expiry or the date breaks the signature."""
    storage = AudioStorage(1)
    query = signed_query(storage) | {key: value}
    assert storage.check(PATH, query, MINTED) == "SignatureDoesNotMatch"


def test_a_signature_is_bound_to_its_path_and_seed() -> None:
    """A signature for one path, or from another seed's key, does not match."""
    query = signed_query(AudioStorage(1))
    assert AudioStorage(1).check(PATH.replace("0001", "0002"), query, MINTED) == (
        "SignatureDoesNotMatch"
    )
    assert AudioStorage(2).check(PATH, query, MINTED) == "SignatureDoesNotMatch"


@pytest.mark.parametrize("missing", ["X-Amz-Date", "X-Amz-Expires"])
def test_a_malformed_url_is_refused(missing: str) -> None:
    """Without a date or an expiry the query-string authentication is malformed."""
    query = signed_query(AudioStorage(1))
    del query[missing]
    assert AudioStorage(1).check(PATH, query, MINTED) == "AuthorizationQueryParametersError"


def test_same_seed_signs_identically() -> None:
    """Two storages with one seed mint the same URL for the same path and moment."""
    assert signed_query(AudioStorage(4)) == signed_query(AudioStorage(4))


def test_audio_bytes_are_deterministic_per_path() -> None:
    """Each path has fixed content of 2 to 34 KiB; another path has other content."""
    content = audio_bytes(PATH)
    assert content == audio_bytes(PATH)
    assert 2048 <= len(content) <= 34 * 1024
    assert content != audio_bytes(PATH.replace("0001", "0002"))


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("AccessDenied", "Request has expired"),
        ("SignatureDoesNotMatch", "signature"),
        ("NoSuchKey", "does not exist"),
    ],
)
def test_s3_errors_are_xml(code: str, message: str) -> None:
    """Storage errors are S3-style XML documents with a Code and a Message."""
    body = s3_error(code).decode()
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert f"<Code>{code}</Code>" in body
    assert message in body

"""The deterministic dataset: days from a seed, ranges to the second, live arrivals."""

from __future__ import annotations

import collections
import datetime as dt
import uuid

import pytest

from tests.simulator.conftest import LAST_SECOND, at
from voiceapi_async import Report
from voiceapi_async.testing import Dataset

WEEK = (dt.date(2024, 3, 1), dt.date(2024, 3, 7))


def week_days() -> list[dt.date]:
    return [WEEK[0] + dt.timedelta(days=n) for n in range((WEEK[1] - WEEK[0]).days + 1)]


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

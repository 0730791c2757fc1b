"""Span sizing: pure planning from what the first pages told."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest

from voiceapi_async import plan_windows
from voiceapi_async._sizing import (
    MAX_PARTS,
    MAX_SPAN_RECORDS,
    PROBE_DAYS,
    SPAN_LIMIT,
    Outcome,
    Sizing,
    Span,
    seconds,
)

DAYS = plan_windows("calls", "2024-01-01", "2024-03-31", "UTC")
DAY = 86_400


def test_a_span_covers_its_days_exactly() -> None:
    span = Span.of(DAYS[3:6])
    assert span.window.start == DAYS[3].start
    assert span.window.end == DAYS[5].end
    assert span.days == tuple(DAYS[3:6])
    assert seconds(span.window) == 3 * DAY
    assert span.pieces() == [span.window]
    parted = Span.of(DAYS[:1], parts=4)
    assert [seconds(piece) for piece in parted.pieces()] == [DAY // 4] * 4


def test_the_target_is_eight_pages_within_bounds() -> None:
    assert Sizing(15, split_pages=50).target == 120
    assert Sizing(100, split_pages=50).target == 800
    assert Sizing(1000, split_pages=50).target == MAX_SPAN_RECORDS
    assert Sizing(20_000, split_pages=50).target == 20_000  # never less than a page
    sizing = Sizing(100, split_pages=50)
    assert sizing.fits(800 * SPAN_LIMIT)
    assert not sizing.fits(800 * SPAN_LIMIT + 1)


def test_sparse_days_are_grouped_up_to_the_target() -> None:
    sizing = Sizing(100, split_pages=50)
    sizing.observe(Span.of(DAYS[:10]).window, 100, 100)  # 10 records a day
    days = deque(DAYS)
    span = sizing.next_span(days)
    assert len(span.days) == 80  # 800 records, 8 pages
    assert span.weight == 4
    assert len(days) == len(DAYS) - 80


def test_dense_days_go_alone_and_very_dense_ones_in_parts() -> None:
    sizing = Sizing(100, split_pages=50)
    sizing.observe(DAYS[0], 3000, 100)  # 30 pages a day: alone, whole
    span = sizing.next_span(deque(DAYS))
    assert span.days == (DAYS[0],)
    assert span.parts == 0
    sizing.observe(DAYS[0], 12_000, 100)  # 120 pages a day: 3 parts of 40
    assert sizing.next_span(deque(DAYS)).parts == 3
    sizing.observe(DAYS[0], 10_000_000, 100)
    assert sizing.next_span(deque(DAYS)).parts == MAX_PARTS


def test_nothing_seen_or_empty_days_make_the_longest_spans() -> None:
    sizing = Sizing(100, split_pages=50)
    assert len(sizing.next_span(deque(DAYS)).days) == len(DAYS)
    sizing.observe(DAYS[0], 0, 100)
    assert len(sizing.next_span(deque(DAYS)).days) == len(DAYS)


def test_the_page_size_seen_replaces_the_guess() -> None:
    sizing = Sizing(1000, split_pages=50)
    sizing.observe(DAYS[0], 10, 15)
    assert sizing.page_size == 15
    assert sizing.target == 120


def test_a_span_that_held_too_much_is_planned_again_and_always_smaller() -> None:
    sizing = Sizing(100, split_pages=50)
    span = Span.of(DAYS[:10])
    sizing.observe(span.window, 5000, 100)  # 500 a day: a day a span
    children = sizing.split(span)
    assert [day for child in children for day in child.days] == list(span.days)
    assert all(len(child.days) < len(span.days) for child in children)
    sizing.observe(span.window, 10, 100)  # the estimate says it all fits: go day by day
    assert [len(child.days) for child in sizing.split(span)] == [1] * 10


@pytest.mark.asyncio
async def test_the_plan_probes_first_then_waits_for_what_the_probe_told() -> None:
    sizing = Sizing(100, split_pages=50)
    plan = sizing.plan(iter(DAYS))
    probe = await anext(plan)
    assert probe.probe
    assert probe.days == tuple(DAYS[:PROBE_DAYS])
    waiting = asyncio.ensure_future(anext(plan))
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing is planned before the probe's first page
    sizing.observe(probe.window, PROBE_DAYS * 50, 100)
    sizing.probe_outcome(Outcome.DECLINED)
    again = await waiting
    assert again.days[0] == DAYS[0]  # a declined probe's days are planned again
    assert len(again.days) == 16  # 50 a day, 800 a span
    rest = [day for span in [again] + [span async for span in plan] for day in span.days]
    assert rest == DAYS


@pytest.mark.asyncio
async def test_a_probe_read_whole_is_not_planned_again() -> None:
    sizing = Sizing(100, split_pages=50)
    plan = sizing.plan(iter(DAYS[:40]))
    probe = await anext(plan)
    sizing.observe(probe.window, 31, 100)
    sizing.probe_outcome(Outcome.READ)
    rest = [span async for span in plan]
    assert [day for span in rest for day in span.days] == DAYS[PROBE_DAYS:40]
    assert [span async for span in sizing.plan(iter([]))] == []

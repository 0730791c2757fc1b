"""Benchmark: VoiceClient paging throughput and streaming memory, against the simulator.

Throughput. The simulator runs in its own process
(``python -m voiceapi_async.testing serve``) with 50 ms of added latency per
request (the simulator's latency is log-normal around that median, sigma 0.5),
pages of at most 100 records and no rate limit; every client here runs with its
rate limit off too. Over one 30-day range of calls (4,000 calls a day, about 40
pages a day, about 1,200 pages) these contenders run side by side, interleaved in
rotated order, several rounds; each one's median round is reported. The range is
long next to ramp-up and drain (a few latency periods each), so pages per second
measure a rate rather than a start-up cost, and its days have more pages than
requests in flight, where ordered delivery has to run ahead of a slow page:

- **voiceapi_async** at its default settings (16 requests in flight, 8 days at
  once, 100 records a page), then with 32 and with 64 requests in flight, first
  with the default 8 days at once, then with as many days at once as requests.
- **sequential**: one request at a time, how existing wrappers for this API work:
  a plain ``aiohttp`` loop over the days and, within a day, over its pages, each
  body parsed with ``orjson`` and the same converter into the same ``Call`` records.
- **unbounded gather**: ``asyncio.gather`` over all 30 days at once; each day
  fetches page 1, then gathers all its other pages at once (a connector with no
  connection limit, so aiohttp's default pool of 100 does not quietly bound it).
- **oracle**: a practical bound for any client at 16 in flight: every page of
  every day known up front (page counts from the ground truth, so no page 1 has
  to come first), all fetched through one semaphore of 16, parsed like the baseline.
  What separates it from the ideal is latency variance at the end of the run,
  the HTTP stack and the CPU, not any paging strategy.
- **ideal**: the in-flight limit divided by the latency of a request (Little's
  law: no client keeps more requests busy than its limit), the latency being what
  the sequential baseline measures in the same run, one request at a time (the
  added latency, the simulator's own work and the loopback). Also given against
  the mean added latency alone, which no real server reaches.

Every contender must return exactly the ground-truth ids of the range (checked
against :class:`voiceapi_async.testing.Dataset`), once each. Requests in flight
are measured by an aiohttp ``TraceConfig`` (request start to response headers):
peak and time-weighted mean, and the mean latency seen. CPU is the seconds each
process used per second of the run (the client's from ``time.process_time``, the
simulator's from ``/proc``, Linux only).

Memory. A fresh subprocess per size streams ~1,000 (the floor), ~100,000 and
~1,000,000 calls (1,000 a day over 1, 100 and 1,000 days) with ``async for`` at
the client's defaults, discarding each record, from a simulator process with no
added latency; its peak resident set size is compared (``VmHWM``, the child's own
high-water mark: on Linux ``ru_maxrss`` carries the parent's peak across fork and
exec, so it would report the parent's size).

Targets at the defaults: at least 90% of the ideal pages per second (which is
about 14 times the sequential baseline: the ideal is 16 times one request at a
time), and peak memory for 1,000,000 records
no more than 1.2 times that for 100,000.

Usage::

    python benchmarks/bench_client.py            # full run, writes benchmarks/results/client.md
    python benchmarks/bench_client.py --quick    # smoke test: 3 days, 10k/100k records; prints only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from _report import environment_lines, publish

from voiceapi_async import Call, VoiceClient, make_converter
from voiceapi_async.testing import Dataset, Faults

TIMEZONE = "Asia/Kolkata"
TOKEN = "bench-token"
SEED = 0
LATENCY_MS = 50.0
PER_PAGE = 100
CALLS_PER_DAY = 4_000
MEMORY_CALLS_PER_DAY = 1_000
FIRST_DAY = dt.date(2024, 3, 1)
MEMORY_FIRST_DAY = dt.date(2021, 1, 1)
TARGET_OF_IDEAL = 0.90
TARGET_SPEEDUP = 14.0
TARGET_MEMORY_RATIO = 1.2
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "client.md"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SEQUENTIAL = "sequential, one request at a time (like existing wrappers)"
GATHER = "unbounded `asyncio.gather` over all days"
ORACLE = "oracle: every page known up front"


@dataclass(frozen=True)
class Plan:
    """What one run of the benchmark does."""

    days: int
    rounds: int
    memory_days: tuple[int, ...]
    """Days streamed by each memory subprocess; the last two are compared."""


FULL = Plan(days=30, rounds=3, memory_days=(1, 100, 1_000))
QUICK = Plan(days=3, rounds=1, memory_days=(1, 10, 100))


# --- the simulator in its own process -------------------------------------------------


@dataclass
class SimulatorProcess:
    """A running ``python -m voiceapi_async.testing serve`` and its base URL."""

    process: subprocess.Popen[str]
    base_url: str

    def cpu_seconds(self) -> float | None:
        """Return the CPU seconds the simulator has used (Linux only, else None)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")


def serve_command(latency_ms: float, calls_per_day: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "voiceapi_async.testing",
        "serve",
        "--port",
        "0",
        "--latency-ms",
        f"{latency_ms:g}",
        "--rate-limit",
        "0",
        "--per-page-max",
        str(PER_PAGE),
        "--calls-per-day",
        str(calls_per_day),
        "--seed",
        str(SEED),
        "--timezone",
        TIMEZONE,
        "--token",
        TOKEN,
    ]


@contextlib.contextmanager
def simulator_process(latency_ms: float, calls_per_day: int) -> Iterator[SimulatorProcess]:
    """Start the simulator in a subprocess; stop it with SIGTERM at the end."""
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            serve_command(latency_ms, calls_per_day),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            if not base_url.startswith("http"):
                process.wait(10)
                errors.seek(0)
                sys.exit(f"the simulator did not start:\n{errors.read()}")
            yield SimulatorProcess(process, base_url)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- measuring requests in flight -----------------------------------------------------


class InFlightMeter:
    """Requests in flight, from aiohttp's tracing: peak, time-weighted mean, latency."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self.requests = 0
        self.busy_seconds = 0.0
        """The integral of requests in flight over time."""
        self._last = time.perf_counter()

    def _advance(self) -> None:
        now = time.perf_counter()
        self.busy_seconds += self.current * (now - self._last)
        self._last = now

    def trace_config(self) -> aiohttp.TraceConfig:
        """Return a trace config that feeds this meter (one per session)."""
        trace = aiohttp.TraceConfig()

        async def started(*_: Any) -> None:
            self._advance()
            self.current += 1
            self.peak = max(self.peak, self.current)

        async def ended(*_: Any) -> None:
            self._advance()
            self.current -= 1
            self.requests += 1

        trace.on_request_start.append(started)
        trace.on_request_end.append(ended)
        trace.on_request_exception.append(ended)
        return trace

    def mean_latency(self) -> float:
        """Return the mean seconds from request start to response headers."""
        return self.busy_seconds / self.requests if self.requests else 0.0


# --- the contenders -------------------------------------------------------------------


@dataclass
class Fetched:
    """What one contender got: pages, records and their distinct ids."""

    pages: int = 0
    records: int = 0
    ids: set[str] = field(default_factory=set)

    def take(self, calls: list[Call]) -> None:
        """Count one page of calls."""
        self.pages += 1
        self.records += len(calls)
        self.ids.update(call.id for call in calls)


@dataclass(frozen=True)
class Job:
    """One range of calls on one simulator."""

    base_url: str
    first: dt.date
    last: dt.date
    last_pages: Mapping[dt.date, int]
    """Each day's number of pages, from the ground truth (only the oracle reads it)."""

    def days(self) -> list[dt.date]:
        """Return every day of the range."""
        count = (self.last - self.first).days + 1
        return [self.first + dt.timedelta(days=n) for n in range(count)]


Contender = Callable[[Job, InFlightMeter], Coroutine[Any, Any, Fetched]]

CONVERTER = make_converter(TIMEZONE)
HEADERS = {"Accept": "application/json", "Authorization": f"Bearer {TOKEN}"}


def day_label(day: dt.date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day:02d}, {day.year}"


async def get_page(
    session: aiohttp.ClientSession, job: Job, day: dt.date, page: int
) -> tuple[list[Call], int]:
    """Fetch one page of one day the plain way; return its calls and the last page."""
    params = {
        "datetime[end_at]": f"{day_label(day)} - {day_label(day)}",
        "page": str(page),
        "per_page": str(PER_PAGE),
    }
    async with session.get(job.base_url + "voice/calls", params=params, headers=HEADERS) as reply:
        reply.raise_for_status()
        body = orjson.loads(await reply.read())
    data = body["data"]
    calls = CONVERTER.structure_rows(data["data"], Call, path="$.data.data")
    return calls, int(data["last_page"])


async def sequential(job: Job, meter: InFlightMeter) -> Fetched:
    fetched = Fetched()
    async with aiohttp.ClientSession(trace_configs=[meter.trace_config()]) as session:
        for day in job.days():
            page, last_page = 1, 1
            while page <= last_page:
                calls, last_page = await get_page(session, job, day, page)
                fetched.take(calls)
                page += 1
    return fetched


async def unbounded_gather(job: Job, meter: InFlightMeter) -> Fetched:
    fetched = Fetched()

    async def read_day(session: aiohttp.ClientSession, day: dt.date) -> None:
        calls, last_page = await get_page(session, job, day, 1)
        fetched.take(calls)
        rest = await asyncio.gather(
            *(get_page(session, job, day, page) for page in range(2, last_page + 1))
        )
        for calls, _ in rest:
            fetched.take(calls)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[meter.trace_config()]
    ) as session:
        await asyncio.gather(*(read_day(session, day) for day in job.days()))
    return fetched


def oracle(limit: int) -> Contender:
    """Return the bound for any client at ``limit`` in flight: every page known up front.

    All pages of all days (their count taken from the ground truth, so no page 1
    has to come first) go through one semaphore of ``limit``, fetched and parsed
    like the sequential baseline. Only the latency, the HTTP stack and the CPU
    stand between it and the ideal.
    """

    async def run(job: Job, meter: InFlightMeter) -> Fetched:
        fetched = Fetched()
        slots = asyncio.Semaphore(limit)

        async def fetch(session: aiohttp.ClientSession, day: dt.date, page: int) -> None:
            async with slots:
                calls, _ = await get_page(session, job, day, page)
            fetched.take(calls)

        connector = aiohttp.TCPConnector(limit=limit)
        async with aiohttp.ClientSession(
            connector=connector, trace_configs=[meter.trace_config()]
        ) as session:
            await asyncio.gather(
                *(
                    fetch(session, day, page)
                    for day in job.days()
                    for page in range(1, job.last_pages[day] + 1)
                )
            )
        return fetched

    return run


def voice_client(max_in_flight: int | None = None, max_windows: int | None = None) -> Contender:
    """Return a contender streaming the range with this client (None: its default)."""
    settings: dict[str, Any] = {
        name: value
        for name, value in (("max_in_flight", max_in_flight), ("max_windows", max_windows))
        if value is not None
    }

    async def run(job: Job, meter: InFlightMeter) -> Fetched:
        fetched = Fetched()
        async with VoiceClient(
            base_url=job.base_url,
            token=TOKEN,
            timezone=TIMEZONE,
            rate_limit=0,
            trace_configs=[meter.trace_config()],
            **settings,
        ) as client:
            async for call in client.calls(job.first, job.last):
                fetched.records += 1
                fetched.ids.add(call.id)
            fetched.pages = client.stats.pages
        return fetched

    return run


def default_limits() -> tuple[int, int]:
    """Return the client's default requests in flight and windows at once."""
    config = VoiceClient(base_url="http://localhost/", token="x").config
    return config.max_in_flight, config.max_windows


@dataclass(frozen=True)
class Entry:
    """One row of the throughput table: a label, its in-flight limit and how it runs."""

    label: str
    limit: int | None
    """Requests in flight it allows (None: unbounded)."""
    run: Contender


def entries() -> list[Entry]:
    in_flight, windows = default_limits()
    return [
        Entry(
            f"voiceapi_async, defaults ({in_flight} in flight, {windows} days at once)",
            in_flight,
            voice_client(),
        ),
        *(
            Entry(f"voiceapi_async, {n} in flight ({windows} days at once)", n, voice_client(n))
            for n in (32, 64)
        ),
        *(
            Entry(f"voiceapi_async, {n} in flight, {n} days at once", n, voice_client(n, n))
            for n in (32, 64)
        ),
        Entry(SEQUENTIAL, 1, sequential),
        Entry(GATHER, None, unbounded_gather),
        Entry(f"{ORACLE}, {in_flight} in flight", in_flight, oracle(in_flight)),
    ]


# --- running and checking -------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One timed run of one contender."""

    seconds: float
    pages: int
    records: int
    peak_in_flight: int
    mean_in_flight: float
    mean_latency: float
    client_cpu: float
    """Client CPU seconds per second of the run."""
    simulator_cpu: float | None

    @property
    def pages_per_second(self) -> float:
        """Pages a second over the whole run."""
        return self.pages / self.seconds

    @property
    def records_per_second(self) -> float:
        """Records a second over the whole run."""
        return self.records / self.seconds


def ground_truth(days: list[dt.date]) -> tuple[set[str], dict[dt.date, int]]:
    """Return the ids the simulator serves for ``days`` and each day's page count."""
    dataset = Dataset(SEED, timezone=TIMEZONE, calls_per_day=CALLS_PER_DAY)
    ids: set[str] = set()
    last_pages = {}
    for day in days:
        start = dt.datetime.combine(day, dt.time(0, 0, 0))
        end = dt.datetime.combine(day, dt.time(23, 59, 59))
        found = dataset.ids_between("calls", start, end)
        ids |= found
        last_pages[day] = max(1, math.ceil(len(found) / PER_PAGE))
    return ids, last_pages


def check(label: str, fetched: Fetched, truth: set[str]) -> None:
    """Exit unless the contender returned exactly the ground-truth ids, once each."""
    if fetched.ids != truth or fetched.records != len(truth):
        missing, extra = len(truth - fetched.ids), len(fetched.ids - truth)
        duplicates = fetched.records - len(fetched.ids)
        sys.exit(
            f"{label}: wrong records: {missing} missing, {extra} unexpected, "
            f"{duplicates} duplicated (of {len(truth)})"
        )


def timed_run(entry: Entry, job: Job, simulator: SimulatorProcess, truth: set[str]) -> Run:
    meter = InFlightMeter()
    server_before = simulator.cpu_seconds()
    cpu_before = time.process_time()
    started = time.perf_counter()
    fetched = asyncio.run(entry.run(job, meter))
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    server_after = simulator.cpu_seconds()
    check(entry.label, fetched, truth)
    server_cpu = (
        None
        if server_before is None or server_after is None
        else (server_after - server_before) / seconds
    )
    return Run(
        seconds=seconds,
        pages=fetched.pages,
        records=fetched.records,
        peak_in_flight=meter.peak,
        mean_in_flight=meter.busy_seconds / seconds,
        mean_latency=meter.mean_latency(),
        client_cpu=cpu / seconds,
        simulator_cpu=server_cpu,
    )


@dataclass(frozen=True)
class Throughput:
    """Each contender's median run, and the latency of one request at a time."""

    contenders: list[Entry]
    runs: dict[str, Run]
    latency: float
    """Mean seconds per request the sequential baseline measured, over all its rounds."""

    def ideal(self, limit: int) -> float:
        """Return the ideal pages/s at ``limit`` in flight: limit / request latency."""
        return limit / self.latency


def measure_throughput(plan: Plan) -> Throughput:
    """Run every contender ``plan.rounds`` times, rotated; keep each one's median run."""
    days = [FIRST_DAY + dt.timedelta(days=n) for n in range(plan.days)]
    truth, last_pages = ground_truth(days)
    contenders = entries()
    runs: dict[str, list[Run]] = {entry.label: [] for entry in contenders}
    with simulator_process(LATENCY_MS, CALLS_PER_DAY) as simulator:
        job = Job(simulator.base_url, days[0], days[-1], last_pages)
        log(f"simulator at {simulator.base_url}; warming its caches")
        asyncio.run(voice_client(64, 64)(job, InFlightMeter()))
        for round_number in range(plan.rounds):
            for entry in rotated(contenders, round_number):
                run = timed_run(entry, job, simulator, truth)
                runs[entry.label].append(run)
                log(
                    f"round {round_number + 1}/{plan.rounds}: {entry.label}: "
                    f"{run.pages_per_second:,.0f} pages/s"
                )
    medians = {
        label: sorted(found, key=lambda run: run.pages_per_second)[len(found) // 2]
        for label, found in runs.items()
    }
    sequential_runs = runs[SEQUENTIAL]
    latency = sum(run.mean_latency for run in sequential_runs) / len(sequential_runs)
    return Throughput(contenders, medians, latency)


def rotated(items: list[Entry], shift: int) -> list[Entry]:
    shift %= len(items)
    return items[shift:] + items[:shift]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the ideal ------------------------------------------------------------------------


def mean_added_latency() -> float:
    """Return the mean of the simulator's log-normal added latency, in seconds."""
    spread = Faults(latency_ms=LATENCY_MS).latency_spread
    return LATENCY_MS / 1000 * math.exp(spread**2 / 2)


def added_latency_bound(limit: int) -> float:
    """Return limit / mean added latency: pages/s if requests cost nothing else."""
    return limit / mean_added_latency()


# --- memory ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryRun:
    """One subprocess that streamed a range and reported its peak memory."""

    days: int
    records: int
    seconds: float
    before_kib: int
    """Peak resident set size once the client was open, before streaming."""
    peak_kib: int


def peak_rss_kib() -> int:
    """Return this process's peak resident set size in KiB.

    On Linux this is ``VmHWM`` from ``/proc/self/status``: the high-water mark of
    this program image alone. ``ru_maxrss`` is not used there because the kernel
    carries the parent's peak across fork and exec into it, so a child started
    from a large parent reports at least the parent's size. Elsewhere,
    ``ru_maxrss`` (bytes on macOS, KiB on other systems).
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


async def stream_and_discard(base_url: str, first: dt.date, last: dt.date) -> tuple[int, int]:
    """Stream the range at the client's defaults, discarding each record."""
    count = 0
    async with VoiceClient(
        base_url=base_url, token=TOKEN, timezone=TIMEZONE, rate_limit=0
    ) as client:
        before = peak_rss_kib()
        async for _call in client.calls(first, last):
            count += 1
    return count, before


def memory_child(base_url: str, days: int) -> None:
    """Run in a fresh subprocess: stream, then print one JSON line about it."""
    last = MEMORY_FIRST_DAY + dt.timedelta(days=days - 1)
    started = time.perf_counter()
    records, before = asyncio.run(stream_and_discard(base_url, MEMORY_FIRST_DAY, last))
    print(
        json.dumps(
            {
                "days": days,
                "records": records,
                "seconds": time.perf_counter() - started,
                "before_kib": before,
                "peak_kib": peak_rss_kib(),
            }
        )
    )


def measure_memory(plan: Plan) -> list[MemoryRun]:
    """Stream each size in its own fresh interpreter; return their reports."""
    results = []
    with simulator_process(0.0, MEMORY_CALLS_PER_DAY) as simulator:
        for days in plan.memory_days:
            log(f"memory: streaming {days} days in a fresh subprocess")
            output = subprocess.run(
                [sys.executable, __file__, "--memory-child", simulator.base_url, str(days)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results.append(MemoryRun(**json.loads(output.strip().splitlines()[-1])))
            log(f"memory: {results[-1]}")
    return results


# --- the report -----------------------------------------------------------------------


def ratio_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def throughput_table(result: Throughput) -> str:
    runs = result.runs
    baseline = runs[SEQUENTIAL].pages_per_second
    lines = [
        "| contender | limit | peak / mean in flight | pages/s | records/s "
        "| x ideal | x added-latency bound | x sequential | latency seen | client CPU "
        "| simulator CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in result.contenders:
        run = runs[entry.label]
        rate = run.pages_per_second
        limit = entry.limit
        ideal = None if limit is None else rate / result.ideal(limit)
        bound = None if limit is None else rate / added_latency_bound(limit)
        lines.append(
            f"| {entry.label} | {limit or '∞'} "
            f"| {run.peak_in_flight} / {run.mean_in_flight:.1f} "
            f"| {rate:,.0f} | {run.records_per_second:,.0f} "
            f"| {ratio_text(ideal)} | {ratio_text(bound)} | {rate / baseline:.1f}x "
            f"| {run.mean_latency * 1000:.1f} ms | {percent(run.client_cpu)} "
            f"| {percent(run.simulator_cpu)} |"
        )
    default = result.contenders[0]
    records_per_page = runs[default.label].records / runs[default.label].pages
    limits = {entry.limit for entry in result.contenders if entry.limit and entry.limit > 1}
    for limit in sorted(limits):
        ideal = result.ideal(limit)
        lines.append(
            f"| ideal at {limit} in flight ({limit} / {result.latency * 1000:.1f} ms) "
            f"| {limit} | {limit} / {limit} | {ideal:,.0f} | {ideal * records_per_page:,.0f} "
            f"| 1.00x | {ideal / added_latency_bound(limit):.2f}x "
            f"| {ideal / baseline:.1f}x | | | |"
        )
    return "\n".join(lines)


def gap_analysis(result: Throughput) -> str:
    """Split the default client's shortfall by Little's law: slot use times latency."""
    entry = result.contenders[0]
    run = result.runs[entry.label]
    assert entry.limit is not None
    slot_use = run.mean_in_flight / entry.limit
    of_ideal = run.pages_per_second / result.ideal(entry.limit)
    latency_share = result.latency / run.mean_latency if run.mean_latency else 0.0
    return (
        f"Little's law splits the default client's {of_ideal:.0%} of the ideal into "
        "**slot use** (mean requests in flight / limit = "
        f"{run.mean_in_flight:.1f} / {entry.limit} = {slot_use:.0%}: ramp-up, the drain "
        f"at the end and any moment with fewer than {entry.limit} requests ready) times "
        "**latency inflation** (one request at a time / latency seen = "
        f"{result.latency * 1000:.1f} / {run.mean_latency * 1000:.1f} ms = "
        f"{latency_share:.0%}: queueing in either event loop while it parses other pages); "
        f"{slot_use:.0%} x {latency_share:.0%} = {slot_use * latency_share:.0%} (the "
        "difference is the run's own start and end outside any request)."
    )


def memory_table(results: list[MemoryRun]) -> str:
    lines = [
        "| range | records | seconds | RSS before streaming | peak RSS | peak / previous |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    previous: MemoryRun | None = None
    for result in results:
        ratio = "" if previous is None else f"{result.peak_kib / previous.peak_kib:.2f}x"
        lines.append(
            f"| {result.days} days | {result.records:,} | {result.seconds:.1f} "
            f"| {result.before_kib / 1024:.1f} MiB | {result.peak_kib / 1024:.1f} MiB | {ratio} |"
        )
        previous = result
    return "\n".join(lines)


def verdicts(result: Throughput, memory: list[MemoryRun]) -> list[str]:
    default = result.contenders[0]  # the client at its defaults
    assert default.limit is not None
    limit = default.limit
    runs = result.runs
    rate = runs[default.label].pages_per_second
    of_ideal = rate / result.ideal(limit)
    oracle_rate = runs[result.contenders[-1].label].pages_per_second
    speedup = rate / runs[SEQUENTIAL].pages_per_second
    small, large = memory[-2], memory[-1]
    memory_ratio = large.peak_kib / small.peak_kib

    def met(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    return [
        f"- Throughput at the defaults: {of_ideal:.0%} of the ideal "
        f"({rate:,.0f} of {result.ideal(limit):,.0f} pages/s, {limit} / "
        f"{result.latency * 1000:.1f} ms); target ≥ {TARGET_OF_IDEAL:.0%}: "
        f"{met(of_ideal >= TARGET_OF_IDEAL)}. The oracle reaches "
        f"{oracle_rate / result.ideal(limit):.0%} of the ideal here; the client "
        f"{rate / oracle_rate:.0%} of the oracle. Against the added latency alone "
        f"({limit} / {mean_added_latency() * 1000:.1f} ms, no server time at all): "
        f"{rate / added_latency_bound(limit):.0%}.",
        f"- Speed-up over the sequential baseline: {speedup:.1f}x; target about "
        f"{TARGET_SPEEDUP:g}x: {met(speedup >= TARGET_SPEEDUP)}.",
        f"- Peak memory, {large.records:,} vs {small.records:,} records: "
        f"{memory_ratio:.2f}x; target ≤ {TARGET_MEMORY_RATIO}x: "
        f"{met(memory_ratio <= TARGET_MEMORY_RATIO)}.",
    ]


def report_header(plan: Plan, load: tuple[float, float, float]) -> str:
    last = FIRST_DAY + dt.timedelta(days=plan.days - 1)
    in_flight, windows = default_limits()
    return "\n".join(
        [
            "# Client benchmark: paging throughput and streaming memory",
            "",
            *environment_lines(
                ("aiohttp", "orjson", "cattrs", "pendulum", "stamina", "aiolimiter"),
                load=load,
                sharing="the simulator and the client",
            ),
            f"- Throughput: calls {FIRST_DAY}..{last} ({plan.days} days, {CALLS_PER_DAY:,} "
            f"calls a day, {PER_PAGE} a page), simulator in its own process "
            f"(`python -m voiceapi_async.testing serve`, shape B) with {LATENCY_MS:g} ms "
            f"median added latency (log-normal, mean {mean_added_latency() * 1000:.1f} ms; "
            "over ~1,200 requests the sample mean varies by about ±1.5%), "
            "rate limits off on both sides; contenders interleaved in rotated order, "
            f"median of {plan.rounds} round(s); every run checked to return exactly the "
            "ground-truth ids, once each",
            "- Memory: a fresh subprocess per range streams calls with `async for` at the "
            "client's defaults and discards them; peak RSS is the child's own high-water "
            "mark (`VmHWM`; Linux's `ru_maxrss` would include the parent's peak, carried "
            "across fork and exec); simulator in its own process, no added latency",
            f"- Targets at the defaults: ≥ {TARGET_OF_IDEAL:.0%} of the ideal pages/s "
            f"(about {TARGET_SPEEDUP:g}x the sequential baseline); peak memory for the "
            f"largest range ≤ {TARGET_MEMORY_RATIO}x that for one tenth of it",
            "",
            "Contenders:",
            "",
            "- **voiceapi_async**: `async for call in client.calls(first, last)` with "
            f"`rate_limit=0` and otherwise the defaults ({in_flight} requests in flight, "
            f"{windows} days at once, {PER_PAGE} a page), then with `max_in_flight` 32 and "
            f"64, first with the default {windows} days at once, then with `max_windows` "
            "raised to match.",
            "- **sequential**: a plain aiohttp loop over the days and, in each day, its "
            "pages; each body parsed with orjson and the same converter into `Call` records "
            "(how existing wrappers for this API work).",
            "- **unbounded gather**: `asyncio.gather` over all the days at once; each day "
            "fetches page 1, then gathers all its other pages at once; a connector without "
            "a connection limit (aiohttp's default pool of 100 would quietly bound it). Fast "
            "against a simulator, but against the real API it would meet the 1,000 "
            "requests a minute limit at once.",
            "- **oracle**: every page of every day known up front (page counts from the "
            "ground truth, so no page 1 has to come first), all through one semaphore at "
            "the client's default limit, fetched and parsed like the sequential baseline: "
            "a practical bound for any paging strategy on this machine, against this server.",
            "- **ideal**: the in-flight limit over the latency of one request at a time, "
            "as the sequential baseline measured it in the same run (Little's law: no "
            "client keeps more requests busy than its limit).",
            "",
            "Columns: *limit* is the contender's cap on requests in flight; *peak / mean in "
            "flight* are measured (aiohttp tracing, request start to response headers); "
            "*x ideal* is pages/s over the ideal; *x added-latency bound* over limit / mean "
            "added latency, as if the simulator and the network took no time; *latency seen* "
            "is the mean request time the contender measured; "
            "CPU is seconds used per second of the run (100% = one core).",
        ]
    )


def build_report(
    plan: Plan,
    load: tuple[float, float, float],
    throughput: Throughput,
    memory: list[MemoryRun],
) -> str:
    return "\n\n".join(
        [
            report_header(plan, load),
            "## Throughput\n\n" + throughput_table(throughput),
            "### Where the gap to the ideal goes\n\n" + gap_analysis(throughput),
            "## Memory\n\n" + memory_table(memory),
            "## Verdict\n\n" + "\n".join(verdicts(throughput, memory)),
        ]
    )


# --- main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"where to write the report (default: {RESULTS_PATH}; --quick writes nothing)",
    )
    parser.add_argument(
        "--memory-child", nargs=2, metavar=("BASE_URL", "DAYS"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        base_url, days = args.memory_child
        memory_child(base_url, int(days))
        return 0
    plan = QUICK if args.quick else FULL
    output = args.output if args.output or args.quick else RESULTS_PATH
    load = os.getloadavg()
    throughput = measure_throughput(plan)
    memory = measure_memory(plan)
    report = build_report(plan, load, throughput, memory)
    publish(report, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

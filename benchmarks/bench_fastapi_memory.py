"""FastAPI benchmark: the example app's memory while it streams longer and longer ranges.

Method, columns and target: benchmarks/README.md, section "fastapi_memory".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import _harness as harness
import aiohttp

from voiceapi_async import ClientConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SEED = 0
CALLS_PER_DAY = 5_000
PER_PAGE = 100
WARM_UP_DAY = dt.date(2024, 1, 1)
SAMPLE_SECONDS = 0.05
TARGET_RATIO = 1.2
FULL, QUICK = (2, 10, 40, 120), (1, 2, 4)


@dataclass(frozen=True)
class RangeRun:
    """One range streamed through the app; its RSS every 50 ms meanwhile and VmHWM after (KiB)."""

    first: dt.date
    last: dt.date
    records: int
    bytes: int
    seconds: float
    samples: list[int]
    hwm: int

    @property
    def days(self) -> int:
        """Return the number of days in the range."""
        return (self.last - self.first).days + 1


async def stream(url: str) -> tuple[int, int, float]:
    """GET ``url``, reading the body in 64 KiB chunks; return (lines, bytes, seconds)."""
    started, lines, size = time.perf_counter(), 0, 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {await response.text()}")
        async for chunk in response.content.iter_chunked(64 * 1024):
            lines, size = lines + chunk.count(b"\n"), size + len(chunk)
    return lines, size, time.perf_counter() - started


def stream_range(
    app_url: str, pid: int, first: dt.date, last: dt.date, truth: set[str]
) -> RangeRun:
    """Stream one range through the app while a thread samples its RSS; check the count."""
    samples, done = [], threading.Event()

    def sample() -> None:
        samples.append(harness.memory_kib("VmRSS", pid))
        while not done.wait(SAMPLE_SECONDS):
            samples.append(harness.memory_kib("VmRSS", pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines, size, seconds = asyncio.run(stream(f"{app_url}/calls?from={first}&to={last}"))
    done.set()
    sampler.join()
    samples.append(harness.memory_kib("VmRSS", pid))
    harness.check(f"{first}..{last}", truth, lines)
    return RangeRun(first, last, lines, size, seconds, samples, harness.memory_kib("VmHWM", pid))


async def warm_simulator(base_url: str, days: list[dt.date]) -> None:
    """Ask the simulator for one record of each day, so it generates every day now."""
    async with aiohttp.ClientSession(headers=harness.HEADERS) as session:
        for day in days:
            query = harness.page_query(day, 1, 1)
            async with session.get(base_url + "voice/calls", params=query) as response:
                response.raise_for_status()


def measure(lengths: tuple[int, ...]) -> tuple[dict[str, int], list[RangeRun], ClientConfig]:
    """Start the simulator and the app, warm both, then stream each range in turn."""
    spans, first = [], WARM_UP_DAY + dt.timedelta(days=1)
    for days in lengths:
        spans.append((first, first + dt.timedelta(days=days - 1)))
        first += dt.timedelta(days=days)
    harness.log("counting the ground truth")
    data = harness.dataset(seed=SEED, calls_per_day=CALLS_PER_DAY)
    truth = harness.ids_by_day(data, WARM_UP_DAY, spans[-1][1])
    with harness.simulator(seed=SEED, calls_per_day=CALLS_PER_DAY, per_page_max=PER_PAGE) as sim:
        harness.log(f"simulator at {sim.base_url}; generating {len(truth)} days")
        asyncio.run(warm_simulator(sim.base_url, list(truth)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEAPI_")}
        env |= {"VOICEAPI_BASE_URL": sim.base_url, "VOICEAPI_TOKEN": harness.TOKEN}
        env |= {"VOICEAPI_TIMEZONE": harness.TIMEZONE, "VOICEAPI_PER_PAGE": str(PER_PAGE)}
        env |= {"VOICEAPI_RATE_LIMIT": "0"}
        port = harness.free_port()
        command = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", str(EXAMPLES)]
        command += f"--port {port} --log-level warning --no-access-log".split()
        with harness.server(command, port=port, env=env) as app:
            pid, runs = app.process.pid, []
            time.sleep(0.5)  # let the freshly started app settle
            baselines = {"startup": harness.memory_kib("VmRSS", pid)}
            warm = stream_range(app.base_url, pid, WARM_UP_DAY, WARM_UP_DAY, truth[WARM_UP_DAY])
            baselines |= {"warm": harness.memory_kib("VmRSS", pid), "warm records": warm.records}
            for first, last in spans:
                ids = set().union(
                    *(day_ids for day, day_ids in truth.items() if first <= day <= last)
                )
                harness.log(f"streaming {first}..{last} ({len(ids):,} records)")
                runs.append(stream_range(app.base_url, pid, first, last, ids))
                harness.log(f"  peak {mib(max(runs[-1].samples))}, {runs[-1].seconds:.1f} s")
            baselines["final"] = harness.memory_kib("VmRSS", pid)
            if "Traceback" in app.log_text():
                harness.log(f"the app logged a traceback:\n{app.log_text()}")
    return baselines, runs, ClientConfig.from_env(env)


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def report(baselines: dict[str, int], runs: list[RangeRun], windows: int) -> list[str]:
    largest, peaks = runs[-1], [max(run.samples) for run in runs]
    reference = next((run for run in runs if run.days >= windows), runs[0])
    ratio, whole = max(largest.samples) / max(reference.samples), reference.days >= windows
    rows = [
        f"{run.days}-day ({run.first}..{run.last}) | {min(run.days, windows)} "
        f"| {run.records:,} | {run.bytes / 2**20:.1f} | {run.seconds:.1f} "
        f"| {run.records / run.seconds:,.0f} | {mib(run.samples[0])} | {mib(peak)} "
        f"| {(peak - baselines['warm']) / 1024:+.1f} MiB | {mib(run.samples[-1])} "
        f"| {mib(run.hwm)} | {peak / max(reference.samples):.2f}x"
        for run, peak in zip(runs, peaks, strict=True)
    ]
    header = (
        "range | days read at once | records | MiB streamed | seconds | records/s | RSS before "
        "| peak RSS (sampled) | peak over warm baseline | RSS after | VmHWM after "
        "| peak / reference's"
    )
    return [
        harness.table(header, rows),
        f"- App RSS once listening: {mib(baselines['startup'])}; after the warm-up day "
        f"({baselines['warm records']:,} records, the baseline): {mib(baselines['warm'])}; "
        f"at the end, idle: {mib(baselines['final'])}\n"
        f"- Samples per range: {', '.join(str(len(run.samples)) for run in runs)}",
        harness.verdict(
            f"Peak RSS streaming {largest.records:,} records ({largest.days}-day range) is "
            f"**{ratio:.2f}x** that for {reference.records:,} ({reference.days}-day, the "
            f"reference{'' if whole else ', though it reads fewer days at once'}): "
            f"{mib(peaks[-1])} vs {mib(max(reference.samples))}; target ≤ {TARGET_RATIO}x",
            ratio <= TARGET_RATIO,
        ),
    ]


def main() -> int:
    args = harness.arguments(__doc__)
    lengths = QUICK if args.quick else FULL
    baselines, runs, config = measure(lengths)
    facts = [
        f"- Simulator: seed {SEED}, {CALLS_PER_DAY:,} calls a day, pages of {PER_PAGE}",
        f"- App in effect: {config.per_page} a page, {config.max_in_flight} requests in flight, "
        f"{config.max_windows} days read at once",
        f"- Ranges: {', '.join(map(str, lengths))} days; RSS sampled every "
        f"{SAMPLE_SECONDS * 1000:g} ms",
    ]
    sections, sharing = report(baselines, runs, config.max_windows), "simulator, app and client"
    packages = ("fastapi", "starlette", "uvicorn", "aiohttp", "orjson", "cattrs")
    harness.publish(__doc__, facts, sections, packages=packages, sharing=sharing, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

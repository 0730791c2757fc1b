"""Audio benchmark: download throughput against the ideal, and memory by file size.

Throughput: 24 recordings' audio (1 MiB each) from the simulator's storage in its own
process, at 50 ms median added latency and 1 MiB/s per connection, downloaded by this
client's ``download_audios`` at its defaults, by plain aiohttp one file at a time and
``audio_max_in_flight`` at a time, against the ideal: that many connections, each busy
back to back, every file taking the mean added latency plus its size over the
bandwidth. Memory: peak RSS of a fresh process downloading files of 1, 10 and 50 MiB.

Targets at the defaults: ≥ 90% of the ideal; peak memory with 50 MiB files within
10% of that with 1 MiB files.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _harness as harness
import aiohttp

from voiceapi_async import AudioStatus, ClientConfig, Recording, VoiceClient, audio_filename
from voiceapi_async.testing import Faults, SimulatorConfig, VoiceSimulator

SEED = 0
CALLS_PER_DAY = 200  # about 60 recordings a day, over 90% of them on the simulator's storage
DAY = dt.date(2024, 3, 5)
MIB = 1024 * 1024
LATENCY_MS = 50.0
FILE_BYTES = 1 * MIB
BANDWIDTH = 1 * MIB
"""Bytes a second per connection (the simulator's ``storage_bandwidth``)."""
CHUNK = 256 * 1024
"""The plain contenders' read size: the client's own."""
TARGET_OF_IDEAL = 0.90
TARGET_MEMORY_SPREAD = 0.10
DEFAULTS = ClientConfig(base_url="http://localhost/", token="x", timezone=harness.TIMEZONE)
SLOTS = DEFAULTS.audio_max_in_flight
CLIENT: dict[str, Any] = {"token": harness.TOKEN, "timezone": harness.TIMEZONE, "rate_limit": 0}
DEFAULT_LABEL = f"voiceapi_async `download_audios`, defaults ({SLOTS} in flight)"
SEQUENTIAL = "sequential: plain aiohttp, one file at a time"


@dataclass(frozen=True)
class Plan:
    """The files downloaded for throughput, the rounds, and the memory runs."""

    files: int
    rounds: int
    memory_sizes: tuple[int, ...]
    memory_files: int


FULL = Plan(files=24, rounds=3, memory_sizes=(1 * MIB, 10 * MIB, 50 * MIB), memory_files=SLOTS)
QUICK = Plan(files=16, rounds=1, memory_sizes=(1 * MIB, 8 * MIB), memory_files=SLOTS)

Truth = dict[str, tuple[int, str]]
"""Each file's name, size and SHA-256 as the simulator serves it."""


# --- ground truth ---------------------------------------------------------------------


async def storage_recordings(base_url: str, count: int) -> list[Recording]:
    """Return the first ``count`` recordings of ``DAY`` whose audio is on the simulator."""
    found: list[Recording] = []
    netloc = urlsplit(base_url).netloc
    async with (
        VoiceClient(base_url=base_url, **CLIENT) as client,
        client.recordings(DAY, DAY) as stream,
    ):
        async for recording in stream:
            link = urlsplit(recording.audio or "")
            if link.netloc == netloc and link.path.startswith("/storage/"):
                found.append(recording)
                if len(found) == count:
                    return found
    raise SystemExit(f"{DAY} has only {len(found)} recordings on storage, not {count}")


def truth(recordings: list[Recording], size: int) -> Truth:
    """Return what each recording's file must be, from the simulator's ``audio_content``."""
    sim = VoiceSimulator(SimulatorConfig(seed=SEED, calls_per_day=CALLS_PER_DAY, audio_size=size))
    files: Truth = {}
    for recording in recordings:
        data = sim.audio_content(recording.audio or "")
        files[audio_filename(recording)] = (len(data), hashlib.sha256(data).hexdigest())
    return files


def check_files(label: str, directory: Path, expected: Truth) -> None:
    """Stop the script (exit 1) unless ``directory`` holds exactly the expected files."""
    names = {path.name for path in directory.iterdir()}
    if names != set(expected):
        missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
        raise SystemExit(f"{label}: wrong files: missing {missing}, unexpected {unexpected}")
    for name, (size, digest) in expected.items():
        with open(directory / name, "rb") as handle:
            got = hashlib.file_digest(handle, "sha256").hexdigest()
            if (handle.tell(), got) != (size, digest):
                raise SystemExit(f"{label}: {name}: {handle.tell():,} bytes, SHA-256 {got}")


# --- the contenders -------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """The recordings to download, their truth, and the (fresh) directory they go to."""

    base_url: str
    recordings: list[Recording]
    expected: Truth
    directory: Path


@dataclass(frozen=True)
class Entry:
    """One contender: label, files in flight at once, how it downloads a job."""

    label: str
    limit: int
    run: Callable[[Job], Coroutine[Any, Any, None]]


async def voice_client(job: Job) -> None:
    async with VoiceClient(base_url=job.base_url, **CLIENT) as client:
        async for result in client.download_audios(job.recordings, job.directory):
            name = result.path.name if result.path else result.recording_id
            if result.status is not AudioStatus.DOWNLOADED:
                raise SystemExit(f"{DEFAULT_LABEL}: {name}: {result.status}: {result.error}")
            if result.sha256 != job.expected[name][1]:
                raise SystemExit(f"{DEFAULT_LABEL}: {name}: reported SHA-256 {result.sha256}")


async def plain_one(session: aiohttp.ClientSession, recording: Recording, directory: Path) -> None:
    """Stream one file to disk the plain way: no temporary file, no fsync, no checks."""
    async with session.get(recording.audio or "") as reply:
        reply.raise_for_status()
        with open(directory / audio_filename(recording), "wb") as handle:  # noqa: ASYNC230
            async for chunk in reply.content.iter_chunked(CHUNK):
                handle.write(chunk)


async def sequential(job: Job) -> None:
    async with aiohttp.ClientSession() as session:
        for recording in job.recordings:
            await plain_one(session, recording, job.directory)


async def plain_concurrent(job: Job) -> None:
    slots = asyncio.Semaphore(SLOTS)

    async def one(session: aiohttp.ClientSession, recording: Recording) -> None:
        async with slots:
            await plain_one(session, recording, job.directory)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, recording) for recording in job.recordings))


CONTENDERS = [
    Entry(DEFAULT_LABEL, SLOTS, voice_client),
    Entry(f"plain aiohttp, {SLOTS} at a time (semaphore + gather)", SLOTS, plain_concurrent),
    Entry(SEQUENTIAL, 1, sequential),
]


# --- throughput -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What one run of one contender measured (or, field by field, its rounds' median)."""

    seconds: float
    bytes_per_second: float
    client_cpu: float
    """This process's CPU seconds per second of the run."""
    simulator_cpu: float


def timed_run(entry: Entry, job: Job, sim: harness.Server) -> Run:
    """Run one contender once into a fresh directory; check every file against the truth."""
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as scratch:
        job = dataclasses.replace(job, directory=Path(scratch))
        sim_cpu, cpu, started = sim.cpu_seconds(), harness.cpu_seconds(), time.perf_counter()
        asyncio.run(entry.run(job))
        seconds = time.perf_counter() - started
        cpu, sim_cpu = harness.cpu_seconds() - cpu, sim.cpu_seconds() - sim_cpu
        check_files(entry.label, job.directory, job.expected)
    total = sum(size for size, _ in job.expected.values())
    return Run(seconds, total / seconds, cpu / seconds, sim_cpu / seconds)


def measure_throughput(plan: Plan) -> dict[str, Run]:
    """Run the contenders in interleaved rounds; return each one's medians by label."""
    options = {
        "storage_latency_ms": LATENCY_MS,
        "storage_bandwidth": BANDWIDTH,
        "audio_size": FILE_BYTES,
    }
    with harness.simulator(seed=SEED, calls_per_day=CALLS_PER_DAY, **options) as sim:
        recordings = asyncio.run(storage_recordings(sim.base_url, plan.files))
        job = Job(sim.base_url, recordings, truth(recordings, FILE_BYTES), Path())
        harness.log(f"simulator at {sim.base_url}; {plan.files} files; a warm-up run")
        timed_run(CONTENDERS[0], job, sim)
        runs = harness.interleave(
            CONTENDERS,
            plan.rounds,
            lambda entry: timed_run(entry, job, sim),
            lambda run: f"{run.seconds:.2f} s, {run.bytes_per_second / MIB:.2f} MiB/s",
        )
    names = [f.name for f in dataclasses.fields(Run)]
    return {
        label: Run(
            **{name: statistics.median(getattr(run, name) for run in found) for name in names}
        )
        for label, found in runs.items()
    }


def mean_latency() -> float:
    """Return the mean of the simulator's log-normal added storage latency, in seconds."""
    spread = Faults(storage_latency_ms=LATENCY_MS).latency_spread
    return LATENCY_MS / 1000 * math.exp(spread**2 / 2)


def latency_noise(files: int) -> float:
    """Return the standard error of the mean latency of ``files`` files, over a file's time."""
    spread = Faults(storage_latency_ms=LATENCY_MS).latency_spread
    deviation = mean_latency() * math.sqrt(math.exp(spread**2) - 1)
    return deviation / math.sqrt(files) / seconds_per_file()


def seconds_per_file() -> float:
    """Return one file's time on one connection: mean added latency plus size / bandwidth."""
    return mean_latency() + FILE_BYTES / BANDWIDTH


def ideal_rate(limit: int) -> float:
    """Return the ideal bytes a second with ``limit`` connections busy back to back."""
    return limit * FILE_BYTES / seconds_per_file()


# --- memory ---------------------------------------------------------------------------


def memory_child(base_url: str, count: int, directory: str) -> None:
    """In a fresh process: download ``count`` files at the defaults; print a JSON line."""

    async def download() -> tuple[int, list[str]]:
        recordings = await storage_recordings(base_url, count)
        statuses = []
        async with VoiceClient(base_url=base_url, **CLIENT) as client:
            before = harness.memory_kib("VmHWM")
            async for result in client.download_audios(recordings, directory):
                statuses.append(str(result.status))
        return before, statuses

    started = time.perf_counter()
    before, statuses = asyncio.run(download())
    seconds = time.perf_counter() - started
    result = {"statuses": statuses, "seconds": seconds, "before_kib": before}
    print(json.dumps({**result, "peak_kib": harness.memory_kib("VmHWM")}))


def measure_memory(plan: Plan) -> list[dict[str, Any]]:
    """Download each size in a fresh interpreter; check its files; return what each reported."""
    results = []
    for size in plan.memory_sizes:
        options = {"storage_latency_ms": LATENCY_MS, "audio_size": size}
        with (
            harness.simulator(seed=SEED, calls_per_day=CALLS_PER_DAY, **options) as sim,
            tempfile.TemporaryDirectory(prefix="bench-audio-") as scratch,
        ):
            harness.log(f"memory: {plan.memory_files} files of {size / MIB:g} MiB, fresh process")
            command = [sys.executable, __file__, "--memory-child", sim.base_url]
            command += [str(plan.memory_files), scratch]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            result = json.loads(output.splitlines()[-1])
            if set(result["statuses"]) != {str(AudioStatus.DOWNLOADED)}:
                raise SystemExit(f"memory, {size / MIB:g} MiB: statuses {result['statuses']}")
            recordings = asyncio.run(storage_recordings(sim.base_url, plan.memory_files))
            check_files(f"memory, {size / MIB:g} MiB", Path(scratch), truth(recordings, size))
        results.append({**result, "size": size, "files": len(result["statuses"])})
    return results


# --- the report -----------------------------------------------------------------------


def throughput_table(runs: dict[str, Run], files: int) -> str:
    baseline = runs[SEQUENTIAL].bytes_per_second
    rows = []
    for entry in CONTENDERS:
        run, ideal = runs[entry.label], ideal_rate(entry.limit)
        rate = run.bytes_per_second
        rows.append(
            f"{entry.label} | {entry.limit} | {run.seconds:.2f} | {rate / MIB:.2f} "
            f"| {rate / FILE_BYTES:.2f} | {rate / ideal:.2f}x "
            f"| {rate / (entry.limit * BANDWIDTH):.2f}x | {rate / baseline:.1f}x "
            f"| {run.client_cpu:.0%} | {run.simulator_cpu:.0%}"
        )
    for limit in (SLOTS, 1):
        rate = ideal_rate(limit)
        rows.append(
            f"ideal at {limit} in flight ({limit} x {FILE_BYTES / MIB:g} MiB / "
            f"{seconds_per_file() * 1e3:,.1f} ms) | {limit} | {files * FILE_BYTES / rate:.2f} "
            f"| {rate / MIB:.2f} | {rate / FILE_BYTES:.2f} | 1.00x "
            f"| {rate / (limit * BANDWIDTH):.2f}x | {rate / baseline:.1f}x | |"
        )
    return harness.table(
        "contender | in flight | seconds | MiB/s | files/s | x ideal | x bandwidth bound "
        "| x sequential | client CPU | simulator CPU",
        rows,
    )


def memory_table(results: list[dict[str, Any]]) -> str:
    first = results[0]["peak_kib"]
    rows = [
        f"{now['size'] / MIB:g} MiB | {now['files']} | {now['seconds']:.1f} "
        f"| {now['before_kib'] / 1024:.1f} MiB | {now['peak_kib'] / 1024:.1f} MiB "
        f"| {(now['peak_kib'] - now['before_kib']) / 1024:.1f} MiB | {now['peak_kib'] / first:.3f}x"
        for now in results
    ]
    table = harness.table(
        "file size | files | seconds | RSS before downloading | peak RSS | peak growth "
        "| peak / smallest files'",
        rows,
    )
    if len(results) < 3:
        return table
    growth = [(now["peak_kib"] - now["before_kib"]) / 1024 for now in results]
    change = round(growth[-1] - growth[-2], 1) + 0.0  # + 0.0: no "-0.0"
    return table + (
        f"\n\nPeak growth is the read buffers of the downloads streaming at once, not the "
        f"files: aiohttp lets a connection buffer up to twice the read size (2 x "
        f"{CHUNK // 1024} KiB) before it stops reading, so {SLOTS} downloads hold a few MiB "
        f"whatever their length. From {results[-2]['size'] / MIB:g} MiB to "
        f"{results[-1]['size'] / MIB:g} MiB files it changes by {change:+.1f} "
        f"MiB; the {results[0]['size'] / MIB:g} MiB files, over in milliseconds on loopback, "
        f"end before all {SLOTS} fill their buffers, hence their lower peak."
    )


def verdicts(runs: dict[str, Run], memory: list[dict[str, Any]]) -> str:
    run, ideal = runs[DEFAULT_LABEL], ideal_rate(SLOTS)
    of_ideal, rate = run.bytes_per_second / ideal, run.bytes_per_second
    speedup = rate / runs[SEQUENTIAL].bytes_per_second
    small, large = memory[0], memory[-1]
    ratio = large["peak_kib"] / small["peak_kib"]
    return "\n".join(
        [
            f"- Throughput at the defaults: {of_ideal:.0%} of the ideal ({rate / MIB:.2f} of "
            f"{ideal / MIB:.2f} MiB/s); target ≥ {TARGET_OF_IDEAL:.0%}: "
            f"{harness.met(of_ideal >= TARGET_OF_IDEAL)}. That is "
            f"{rate / (SLOTS * BANDWIDTH):.0%} of the bare bandwidth bound ({SLOTS} x "
            f"{BANDWIDTH / MIB:g} MiB/s, which no download with latency can reach) and "
            f"{speedup:.1f}x the sequential loop.",
            f"- Peak memory, {large['size'] / MIB:g} MiB vs {small['size'] / MIB:g} MiB files: "
            f"{ratio:.3f}x ({large['peak_kib'] / 1024:.1f} vs {small['peak_kib'] / 1024:.1f} "
            f"MiB); target within {TARGET_MEMORY_SPREAD:.0%}: "
            f"{harness.met(abs(ratio - 1) <= TARGET_MEMORY_SPREAD)}.",
        ]
    )


def header(plan: Plan) -> str:
    sizes = ", ".join(f"{size / MIB:g} MiB" for size in plan.memory_sizes)
    return "\n".join(
        [
            "# Audio benchmark: download throughput against the ideal, and memory by file size",
            "",
            *harness.environment(("aiohttp", "stamina"), sharing="the simulator and the client"),
            f"- Throughput: {plan.files} recordings' audio of {FILE_BYTES / MIB:g} MiB each from "
            f"the simulator's storage in its own process, {LATENCY_MS:g} ms median added latency "
            f"before each file (log-normal, mean {mean_latency() * 1e3:.1f} ms; over "
            f"{plan.files} files the sample mean varies by about ±{latency_noise(plan.files):.1%} "
            "of a file's time), then "
            f"{BANDWIDTH / MIB:g} MiB/s per connection; every column the median of "
            f"{plan.rounds} interleaved round(s), each run into a fresh directory; after every "
            "run the directory held exactly the expected files (no partial ones), each with "
            "the size and SHA-256 of the simulator's `audio_content`",
            f"- Memory: a fresh subprocess per file size lists {plan.memory_files} recordings "
            f"and downloads them with `download_audios` at the defaults ({sizes}, "
            f"{LATENCY_MS:g} ms latency, no bandwidth limit: loopback as fast as it goes, the "
            "hardest case for buffering); peak RSS is its `VmHWM`; the files checked as above",
            f"- Targets at the defaults: ≥ {TARGET_OF_IDEAL:.0%} of the ideal; peak memory with "
            f"the largest files within {TARGET_MEMORY_SPREAD:.0%} of that with the smallest",
            "",
            "Contenders:",
            "",
            "- **voiceapi_async**: `async for result in client.download_audios(recordings, "
            f"directory)` at its defaults ({SLOTS} downloads in flight): temporary file, "
            "SHA-256 as it streams, `Content-Length` check, fsync and rename per file.",
            f"- **plain aiohttp, {SLOTS} at a time**: `asyncio.gather` over the files behind a "
            f"semaphore of {SLOTS}, each streamed straight to its file in "
            f"{CHUNK // 1024} KiB reads; no temporary file, no fsync, no checks.",
            "- **sequential**: the same plain download, one file after another, as a "
            "hand-written loop does.",
            f"- **ideal**: `audio_max_in_flight` ({SLOTS}) connections, each busy back to back, "
            "every file taking the mean added latency plus its size over the per-connection "
            f"bandwidth: {SLOTS} x {FILE_BYTES / MIB:g} MiB / ({mean_latency() * 1e3:.1f} ms + "
            f"{FILE_BYTES / BANDWIDTH * 1e3:,.0f} ms) = {ideal_rate(SLOTS) / MIB:.2f} MiB/s. The "
            f"latency is charged once per file because each file is a new request whose first "
            "byte waits for it; without it the bound is the bare in-flight limit x bandwidth "
            f"({SLOTS * BANDWIDTH / MIB:g} MiB/s), shown as *x bandwidth bound*.",
            "",
            "Columns: *x ideal* is the rate over the ideal at the contender's own number in "
            "flight; *x sequential* over the sequential loop's rate; *client CPU* is this "
            "process's CPU per second of the run (100% = one core), *simulator CPU* the "
            "simulator's.",
        ]
    )


def main() -> int:
    parser = harness.arguments(__doc__)
    parser.add_argument(
        "--memory-child", nargs=3, metavar=("BASE_URL", "FILES", "DIRECTORY"), help="internal"
    )
    args = parser.parse_args()
    if args.memory_child:
        base_url, files, directory = args.memory_child
        memory_child(base_url, int(files), directory)
        return 0
    plan = QUICK if args.quick else FULL
    runs = measure_throughput(plan)
    memory = measure_memory(plan)
    sections = [
        header(plan),
        "## Throughput\n\n" + throughput_table(runs, plan.files),
        "## Memory\n\n" + memory_table(memory),
        "## Verdict\n\n" + verdicts(runs, memory),
    ]
    harness.publish("audio", "\n\n".join(sections), quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

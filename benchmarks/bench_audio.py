"""Audio benchmark: download throughput against the ideal, and memory by file size.

Method, contenders, columns and targets: benchmarks/README.md, section "audio".
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import sys
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _harness as harness
import aiohttp

from voiceapi_async import AudioStatus, ClientConfig, Recording, VoiceClient, audio_filename
from voiceapi_async.testing import SimulatorConfig, VoiceSimulator

SEED = 0
CALLS_PER_DAY = 200  # about 60 recordings a day, over 90% of them on the simulator's storage
DAY = dt.date(2024, 3, 5)
MIB = 1024 * 1024
LATENCY_MS = 50.0
FILE_BYTES = 1 * MIB
BANDWIDTH = 1 * MIB  # bytes a second per connection (the simulator's storage_bandwidth)
CHUNK = 256 * 1024  # the plain contenders' read size: the client's own
TARGET_OF_IDEAL, TARGET_MEMORY_SPREAD = 0.90, 0.10
SECONDS_PER_FILE = harness.mean_latency(LATENCY_MS) + FILE_BYTES / BANDWIDTH
"""One file's time on one connection: the mean added latency, then its size at the bandwidth."""
IDEAL_PER_SLOT = FILE_BYTES / SECONDS_PER_FILE  # bytes a second of a connection busy back to back
DEFAULTS = ClientConfig(base_url="http://localhost/", token="x", timezone=harness.TIMEZONE)
SLOTS = DEFAULTS.audio_max_in_flight
DEFAULT_LABEL = f"voiceapi_async `download_audios`, defaults ({SLOTS} in flight)"
SEQUENTIAL = "sequential: plain aiohttp, one file at a time"
FULL, QUICK = (24, (1 * MIB, 10 * MIB, 50 * MIB)), (16, (1 * MIB, 8 * MIB))
"""The files downloaded for throughput, and the file sizes for memory."""
Truth = dict[str, tuple[int, str]]  # each file's name: its size and SHA-256


async def storage_recordings(base_url: str, count: int) -> list[Recording]:
    """Return the first ``count`` recordings of ``DAY`` whose audio is on the simulator."""
    found: list[Recording] = []
    netloc = urlsplit(base_url).netloc
    async with (
        VoiceClient(base_url=base_url, **harness.CLIENT) as client,
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
    files = {audio_filename(one): sim.audio_content(one.audio or "") for one in recordings}
    return {name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in files.items()}


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
    async with VoiceClient(base_url=job.base_url, **harness.CLIENT) as client:
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


def timed_run(entry: Entry, job: Job, sim: harness.Server) -> harness.Usage:
    """Run one contender once into a fresh directory; check every file against the truth."""
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as scratch:
        job = dataclasses.replace(job, directory=Path(scratch))
        _, used = harness.timed(lambda: asyncio.run(entry.run(job)), sim)
        check_files(entry.label, job.directory, job.expected)
    return used


def measure_throughput(files: int, rounds: int) -> dict[str, harness.Usage]:
    """Run the contenders in interleaved rounds; return each one's medians by label."""
    options = {"storage_latency_ms": LATENCY_MS, "storage_bandwidth": BANDWIDTH}
    with harness.simulator(
        seed=SEED, calls_per_day=CALLS_PER_DAY, audio_size=FILE_BYTES, **options
    ) as sim:
        recordings = asyncio.run(storage_recordings(sim.base_url, files))
        job = Job(sim.base_url, recordings, truth(recordings, FILE_BYTES), Path())
        harness.log(f"simulator at {sim.base_url}; {files} files; a warm-up run")
        timed_run(CONTENDERS[0], job, sim)
        runs = harness.interleave(
            CONTENDERS,
            rounds,
            lambda entry: timed_run(entry, job, sim),
            lambda run: f"{run.seconds:.2f} s, {files * FILE_BYTES / run.seconds / MIB:.2f} MiB/s",
        )
    return harness.medians(runs)


async def memory_child(base_url: str, count: str, directory: str) -> dict[str, Any]:
    """In a fresh process: download ``count`` files at the defaults."""
    recordings = await storage_recordings(base_url, int(count))
    async with VoiceClient(base_url=base_url, **harness.CLIENT) as client:
        before = harness.memory_kib("VmHWM")
        results = [result async for result in client.download_audios(recordings, directory)]
    return {"files": len(results), "before_kib": before}


def measure_memory(sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """Download each size in a fresh interpreter; check its files; return what each reported."""
    results = []
    for size in sizes:
        options = {"storage_latency_ms": LATENCY_MS, "audio_size": size}
        with (
            harness.simulator(seed=SEED, calls_per_day=CALLS_PER_DAY, **options) as sim,
            tempfile.TemporaryDirectory(prefix="bench-audio-") as scratch,
        ):
            harness.log(f"memory: {SLOTS} files of {size / MIB:g} MiB, fresh process")
            result = harness.run_child(__file__, sim.base_url, SLOTS, scratch)
            recordings = asyncio.run(storage_recordings(sim.base_url, SLOTS))
            check_files(f"memory, {size / MIB:g} MiB", Path(scratch), truth(recordings, size))
        results.append({**result, "size": size})
    return results


def throughput_table(runs: dict[str, harness.Usage], files: int) -> str:
    total = files * FILE_BYTES
    baseline = total / runs[SEQUENTIAL].seconds
    rows = []
    for entry in CONTENDERS:
        run, ideal = runs[entry.label], entry.limit * IDEAL_PER_SLOT
        rate = total / run.seconds
        rows.append(
            f"{entry.label} | {entry.limit} | {run.seconds:.2f} | {rate / MIB:.2f} "
            f"| {rate / FILE_BYTES:.2f} | {rate / ideal:.2f}x "
            f"| {rate / (entry.limit * BANDWIDTH):.2f}x | {rate / baseline:.1f}x "
            f"| {run.cpu / run.seconds:.0%} | {run.server_cpu / run.seconds:.0%}"
        )
    for limit in (SLOTS, 1):
        rate = limit * IDEAL_PER_SLOT
        rows.append(
            f"ideal at {limit} in flight ({limit} x {FILE_BYTES / MIB:g} MiB / "
            f"{SECONDS_PER_FILE * 1e3:,.1f} ms) | {limit} | {total / rate:.2f} "
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
    return harness.table(
        "file size | files | seconds | RSS before downloading | peak RSS | peak growth "
        "| peak / smallest files'",
        rows,
    )


def verdicts(runs: dict[str, harness.Usage], files: int, memory: list[dict[str, Any]]) -> str:
    rate, ideal = files * FILE_BYTES / runs[DEFAULT_LABEL].seconds, SLOTS * IDEAL_PER_SLOT
    of_ideal, speedup = rate / ideal, runs[SEQUENTIAL].seconds / runs[DEFAULT_LABEL].seconds
    small, large = memory[0], memory[-1]
    ratio = large["peak_kib"] / small["peak_kib"]
    return "\n".join(
        [
            harness.verdict(
                f"Throughput at the defaults: {of_ideal:.0%} of the ideal ({rate / MIB:.2f} of "
                f"{ideal / MIB:.2f} MiB/s; {rate / (SLOTS * BANDWIDTH):.0%} of the bare bandwidth "
                f"bound; {speedup:.1f}x the sequential loop); target ≥ {TARGET_OF_IDEAL:.0%}",
                of_ideal >= TARGET_OF_IDEAL,
            ),
            harness.verdict(
                f"Peak memory, {large['size'] / MIB:g} MiB vs {small['size'] / MIB:g} MiB files: "
                f"{ratio:.3f}x ({large['peak_kib'] / 1024:.1f} vs {small['peak_kib'] / 1024:.1f} "
                f"MiB); target within {TARGET_MEMORY_SPREAD:.0%}",
                abs(ratio - 1) <= TARGET_MEMORY_SPREAD,
            ),
        ]
    )


def main() -> int:
    args = harness.arguments(__doc__, rounds=3)
    if args.child:
        harness.child_result(memory_child(*args.child))
        return 0
    files, sizes = QUICK if args.quick else FULL
    runs = measure_throughput(files, args.rounds)
    memory = measure_memory(sizes)
    facts = [
        f"- Throughput: {files} files of {FILE_BYTES / MIB:g} MiB, {LATENCY_MS:g} ms median "
        f"added latency (mean {harness.mean_latency(LATENCY_MS) * 1e3:.1f} ms), "
        f"{BANDWIDTH / MIB:g} MiB/s per connection; median of {args.rounds} interleaved round(s)",
        f"- Memory: {SLOTS} files of {', '.join(f'{size / MIB:g}' for size in sizes)} MiB, "
        f"{LATENCY_MS:g} ms latency, no bandwidth limit",
    ]
    sections = [
        "## Throughput\n\n" + throughput_table(runs, files),
        "## Memory\n\n" + memory_table(memory),
        "## Verdict\n\n" + verdicts(runs, files, memory),
    ]
    packages, sharing = ("aiohttp", "stamina"), "the simulator and the client"
    harness.publish(__doc__, facts, sections, packages=packages, sharing=sharing, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the FastAPI example app's memory while it streams long ranges.

The issue asks that the app's memory stay flat however long the range it streams:
``GET /calls`` fetches pages lazily and writes each one out before the next is
taken, so a range ten or a hundred times longer should cost time, not memory.

Method. The simulator runs in its own process (``python -m voiceapi_async.testing
serve``: 5,000 calls a day, pages of at most 100, no rate limit, no faults). The
example app (``examples/fastapi_app.py``) runs under uvicorn in another process,
configured from the environment as its docs say (``VOICEAPI_PER_PAGE=100``,
``VOICEAPI_RATE_LIMIT=0``, the other settings at their defaults). Before measuring,
every day used is generated once in the simulator (one small request a day), so
the simulator's data generation does not throttle the app, and the app streams one
warm-up day (imports, the connection pool and the converter are then loaded).

Then this process streams ``GET /calls?from=..&to=..`` for ranges of increasing
length (2, 10, 40 and 120 days: about 10k, 50k, 200k and 600k records; disjoint
days), one
after the other, with an aiohttp client that reads the body in 64 KiB chunks and
only counts lines and bytes. A sampler thread reads the uvicorn process's
``VmRSS`` from ``/proc/<pid>/status`` every 50 ms while each range streams; the
peak of those samples is the range's peak RSS. ``VmHWM`` (the kernel's own
high-water mark, which catches spikes between samples) is read after each range.
Every range's line count is checked against the simulator's ground truth
(:class:`voiceapi_async.testing.Dataset`).

Target: peak RSS for the largest range no more than 1.2 times that for the
reference range, the shortest that already reads ``max_windows`` days at once
(flat: memory does not grow with the range's length). Shorter ranges read fewer
days at once and hold fewer pages, so they show the ramp up to that level.

Linux only (``/proc``).

Usage::

    python benchmarks/bench_fastapi_memory.py          # writes benchmarks/results/fastapi_memory.md
    python benchmarks/bench_fastapi_memory.py --quick  # 1, 2 and 4 days; prints only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn

import aiohttp
from _report import environment_lines, publish

from voiceapi_async import ClientConfig
from voiceapi_async.testing import Dataset

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "fastapi_memory.md"
TOKEN = "bench-memory-token"
TIMEZONE = "Asia/Kolkata"
SEED = 0
CALLS_PER_DAY = 5_000
PER_PAGE = 100
WARM_UP_DAY = dt.date(2024, 1, 1)
SAMPLE_SECONDS = 0.05
CHUNK_BYTES = 64 * 1024
TARGET_RATIO = 1.2
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0
PR_SET_PDEATHSIG = 1
"""``prctl`` option: a signal the kernel sends a child when its parent dies."""
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Plan:
    """The range lengths one run streams, shortest first."""

    days: tuple[int, ...]


FULL = Plan(days=(2, 10, 40, 120))
QUICK = Plan(days=(1, 2, 4))


@dataclass(frozen=True)
class Span:
    """One range of days, both ends inclusive."""

    first: dt.date
    last: dt.date

    @property
    def days(self) -> int:
        """Return the number of days in the range."""
        return (self.last - self.first).days + 1

    def dates(self) -> list[dt.date]:
        """Return every day of the range."""
        return [self.first + dt.timedelta(days=n) for n in range(self.days)]


def plan_spans(plan: Plan) -> list[Span]:
    """Lay the plan's ranges out on disjoint days, right after the warm-up day."""
    spans, first = [], WARM_UP_DAY + dt.timedelta(days=1)
    for days in plan.days:
        last = first + dt.timedelta(days=days - 1)
        spans.append(Span(first, last))
        first = last + dt.timedelta(days=1)
    return spans


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the two server processes ---------------------------------------------------------


def die_with_parent() -> None:
    """Run in each child before exec: have the kernel SIGTERM it if this process dies.

    The children also get a session of their own (``start_new_session``), so a
    Ctrl-C reaches only this process, which then stops them in order; this covers
    the case where this process is killed outright.
    """
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(
    command: list[str],
    *,
    stdout: int | IO[str],
    stderr: int | IO[str],
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start a server subprocess that neither sees Ctrl-C nor outlives this process."""
    return subprocess.Popen(
        command,
        stdout=stdout,
        stderr=stderr,
        env=env,
        text=True,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


def stop_process(process: subprocess.Popen[str]) -> None:
    """SIGTERM the process, then SIGKILL it if it is still there after a while."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def read_log(handle: IO[str]) -> str:
    handle.flush()
    handle.seek(0)
    return handle.read()


def simulator_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "voiceapi_async.testing",
        "serve",
        "--port",
        "0",
        "--token",
        TOKEN,
        "--seed",
        str(SEED),
        "--timezone",
        TIMEZONE,
        "--calls-per-day",
        str(CALLS_PER_DAY),
        "--rate-limit",
        "0",
        "--per-page-max",
        str(PER_PAGE),
    ]


@contextlib.contextmanager
def simulator_process() -> Iterator[str]:
    """Start the simulator in a subprocess; yield its base URL; always stop it."""
    with tempfile.TemporaryFile("w+") as errors:
        process = start(simulator_command(), stdout=subprocess.PIPE, stderr=errors)
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            if not base_url.startswith("http"):
                process.wait(STOP_SECONDS)
                raise RuntimeError(f"the simulator did not start:\n{read_log(errors)}")
            yield base_url
        finally:
            stop_process(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def app_environment(base_url: str, settings: dict[str, str]) -> dict[str, str]:
    """The parent's environment without any ``VOICEAPI_*``, plus the app's settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VOICEAPI_")}
    env.update(
        VOICEAPI_BASE_URL=base_url,
        VOICEAPI_TOKEN=TOKEN,
        VOICEAPI_TIMEZONE=TIMEZONE,
        VOICEAPI_PER_PAGE=str(PER_PAGE),
        VOICEAPI_RATE_LIMIT="0",
    )
    env.update(settings)
    return env


def uvicorn_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "fastapi_app:app",
        "--app-dir",
        str(EXAMPLES),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def wait_listening(process: subprocess.Popen[str], port: int, output: IO[str]) -> None:
    """Return once the app accepts connections; raise if it exits or never does."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{read_log(output)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"uvicorn did not listen within {STARTUP_SECONDS:g}s:\n{read_log(output)}")


@dataclass
class AppProcess:
    """The example app under uvicorn: its process, URL and captured output."""

    process: subprocess.Popen[str]
    url: str
    output: IO[str]

    def log_text(self) -> str:
        """Return what uvicorn wrote so far (stdout and stderr)."""
        return read_log(self.output)


@contextlib.contextmanager
def app_process(base_url: str, settings: dict[str, str]) -> Iterator[AppProcess]:
    """Serve the example app with uvicorn in a subprocess; always stop it."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as output:
        process = start(
            uvicorn_command(port),
            env=app_environment(base_url, settings),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_listening(process, port, output)
            yield AppProcess(process, f"http://127.0.0.1:{port}", output)
        finally:
            stop_process(process)


# --- memory of another process --------------------------------------------------------


def status_kib(pid: int, field: str) -> int:
    """Return one ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class RssSampler:
    """A thread that samples a process's ``VmRSS`` every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.samples.append(status_kib(self.pid, "VmRSS"))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            self.samples.append(status_kib(self.pid, "VmRSS"))

    @property
    def peak_kib(self) -> int:
        """Return the largest sample."""
        return max(self.samples)


# --- streaming ------------------------------------------------------------------------


@dataclass(frozen=True)
class Streamed:
    """What one streamed response delivered, and how long it took."""

    records: int
    bytes: int
    seconds: float


async def stream_and_discard(session: aiohttp.ClientSession, url: str) -> Streamed:
    """GET ``url`` and read its body in chunks, counting lines and bytes only."""
    started = time.perf_counter()
    lines = size = 0
    async with session.get(url) as response:
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {await response.text()}")
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            lines += chunk.count(b"\n")
            size += len(chunk)
    return Streamed(lines, size, time.perf_counter() - started)


def calls_url(app_url: str, span: Span) -> str:
    return f"{app_url}/calls?from={span.first.isoformat()}&to={span.last.isoformat()}"


def stream_span(app_url: str, span: Span) -> Streamed:
    async def run() -> Streamed:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            return await stream_and_discard(session, calls_url(app_url, span))

    return asyncio.run(run())


def day_label(day: dt.date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day:02d}, {day.year}"


async def warm_simulator(base_url: str, dates: list[dt.date]) -> None:
    """Ask the simulator for one record of each day, so it generates the day now."""
    headers = {"Accept": "application/json", "Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for day in dates:
            params = {
                "datetime[end_at]": f"{day_label(day)} - {day_label(day)}",
                "page": "1",
                "per_page": "1",
            }
            async with session.get(base_url + "voice/calls", params=params) as response:
                response.raise_for_status()
                await response.read()


def ground_truth(span: Span) -> int:
    """Return how many calls the simulator holds for the range (wall times, inclusive)."""
    dataset = Dataset(SEED, timezone=TIMEZONE, calls_per_day=CALLS_PER_DAY)
    start = dt.datetime.combine(span.first, dt.time.min)
    end = dt.datetime.combine(span.last, dt.time(23, 59, 59))
    return len(dataset.between("calls", start, end))


# --- the measurement ------------------------------------------------------------------


@dataclass(frozen=True)
class RangeRun:
    """One range streamed through the app, with the app's memory meanwhile."""

    span: Span
    expected: int
    streamed: Streamed
    before_kib: int
    """The app's RSS just before the request."""
    peak_kib: int
    """The largest 50 ms sample of the app's RSS during the request."""
    after_kib: int
    hwm_kib: int
    """The app's ``VmHWM`` (lifetime peak RSS) after the request."""
    samples: int

    @property
    def records_per_second(self) -> float:
        """Return records streamed per second of the request."""
        return self.streamed.records / self.streamed.seconds


@dataclass(frozen=True)
class Measurement:
    """Everything one run measured."""

    startup_kib: int
    """The app's RSS once listening, before any request."""
    warm_kib: int
    """The app's RSS after streaming the warm-up day."""
    warm_records: int
    runs: list[RangeRun]
    final_kib: int
    """The app's RSS at the end, idle again."""
    app_log: str
    config: ClientConfig
    """The client configuration the app built from its environment."""
    settings: dict[str, str]
    """The app settings given on the command line (``--app-env``)."""


def measure_span(app: AppProcess, span: Span, expected: int) -> RangeRun:
    """Stream one range through the app while sampling the app's RSS."""
    pid = app.process.pid
    before = status_kib(pid, "VmRSS")
    with RssSampler(pid) as sampler:
        streamed = stream_span(app.url, span)
    if streamed.records != expected:
        raise RuntimeError(
            f"{span.first}..{span.last}: streamed {streamed.records:,} records, "
            f"the simulator holds {expected:,}"
        )
    return RangeRun(
        span=span,
        expected=expected,
        streamed=streamed,
        before_kib=before,
        peak_kib=sampler.peak_kib,
        after_kib=sampler.samples[-1],
        hwm_kib=status_kib(pid, "VmHWM"),
        samples=len(sampler.samples),
    )


def measure(plan: Plan, settings: dict[str, str]) -> Measurement:
    """Start both servers, warm them, then stream each range of the plan."""
    spans = plan_spans(plan)
    log("counting the ground truth of each range")
    expected = [ground_truth(span) for span in spans]
    with simulator_process() as base_url:
        warm_span = Span(WARM_UP_DAY, WARM_UP_DAY)
        dates = Span(WARM_UP_DAY, spans[-1].last).dates()
        log(f"simulator at {base_url}; generating {len(dates)} days")
        asyncio.run(warm_simulator(base_url, dates))
        with app_process(base_url, settings) as app:
            time.sleep(0.5)  # let the freshly started app settle
            startup = status_kib(app.process.pid, "VmRSS")
            log(f"app pid {app.process.pid} at {app.url}: {startup / 1024:.1f} MiB at startup")
            warm = stream_span(app.url, warm_span)
            warm_kib = status_kib(app.process.pid, "VmRSS")
            log(f"warm-up: {warm.records:,} records; {warm_kib / 1024:.1f} MiB")
            runs = []
            for span, count in zip(spans, expected, strict=True):
                log(f"streaming {span.days} days ({count:,} records)")
                runs.append(measure_span(app, span, count))
                log(f"  peak {runs[-1].peak_kib / 1024:.1f} MiB, {runs[-1].streamed.seconds:.1f} s")
            final = status_kib(app.process.pid, "VmRSS")
            app_log = app.log_text()
    config = ClientConfig.from_env(app_environment(base_url, settings))
    return Measurement(startup, warm_kib, warm.records, runs, final, app_log, config, settings)


# --- the report -----------------------------------------------------------------------


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def reference_run(measurement: Measurement) -> RangeRun:
    """Return the shortest range reading ``max_windows`` days at once (else the shortest)."""
    return full_concurrency_run(measurement) or measurement.runs[0]


def reference_text(measurement: Measurement) -> str:
    """Say which range is the reference and why."""
    windows = measurement.config.max_windows
    if full_concurrency_run(measurement) is None:
        return f"the shortest (no range here reads {windows} days at once)"
    return f"the shortest reading {windows} days at once"


def peak_ratio(measurement: Measurement) -> float:
    """Return peak RSS of the largest range over that of the reference range."""
    return measurement.runs[-1].peak_kib / reference_run(measurement).peak_kib


def results_table(measurement: Measurement) -> str:
    reference = reference_run(measurement).peak_kib
    lines = [
        "| range | days read at once | records | MiB streamed | seconds | records/s "
        "| RSS before | peak RSS (sampled) | peak over warm baseline | RSS after "
        "| VmHWM after | peak / reference's |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in measurement.runs:
        growth = (run.peak_kib - measurement.warm_kib) / 1024
        lines.append(
            f"| {plural(run.span.days, 'day')} ({run.span.first}..{run.span.last}) "
            f"| {min(run.span.days, measurement.config.max_windows)} "
            f"| {run.streamed.records:,} | {run.streamed.bytes / 2**20:.1f} "
            f"| {run.streamed.seconds:.1f} | {run.records_per_second:,.0f} "
            f"| {mib(run.before_kib)} | {mib(run.peak_kib)} | {growth:+.1f} MiB "
            f"| {mib(run.after_kib)} | {mib(run.hwm_kib)} | {run.peak_kib / reference:.2f}x |"
        )
    return "\n".join(lines)


def baseline_lines(measurement: Measurement) -> list[str]:
    return [
        f"- App RSS once listening, before any request: {mib(measurement.startup_kib)}",
        f"- App RSS after the warm-up day ({measurement.warm_records:,} records): "
        f"{mib(measurement.warm_kib)} (the baseline)",
        f"- App RSS at the end, idle: {mib(measurement.final_kib)}",
        f"- Samples per range: {', '.join(str(run.samples) for run in measurement.runs)} "
        f"(every {SAMPLE_SECONDS * 1000:g} ms)",
    ]


def verdict(measurement: Measurement) -> str:
    ratio = peak_ratio(measurement)
    largest, reference = measurement.runs[-1], reference_run(measurement)
    smallest = measurement.runs[0]
    met = "**met**" if ratio <= TARGET_RATIO else "**not met**"
    lines = [
        f"Peak RSS streaming {largest.streamed.records:,} records "
        f"({plural(largest.span.days, 'day')}) is **{ratio:.2f}x** that for "
        f"{reference.streamed.records:,} ({plural(reference.span.days, 'day')}, the "
        f"reference): {mib(largest.peak_kib)} vs {mib(reference.peak_kib)}; "
        f"target ≤ {TARGET_RATIO}x: {met}."
    ]
    if smallest is not reference:
        lines.append(
            f"The shortest range ({plural(smallest.span.days, 'day')}) reads only "
            f"{min(smallest.span.days, measurement.config.max_windows)} days at once and "
            f"peaks at {mib(smallest.peak_kib)} "
            f"({largest.peak_kib / smallest.peak_kib:.2f}x below the largest): the ramp up "
            "to the stream's page bound, which does not depend on the range's length."
        )
    return "\n\n".join(lines)


def full_concurrency_run(measurement: Measurement) -> RangeRun | None:
    """Return the shortest range that reads ``max_windows`` days at once, if any."""
    windows = measurement.config.max_windows
    return next((run for run in measurement.runs if run.span.days >= windows), None)


def app_settings_text(measurement: Measurement) -> str:
    config = measurement.config
    given = [f"VOICEAPI_PER_PAGE={PER_PAGE}", "VOICEAPI_RATE_LIMIT=0"]
    given += [f"{name}={value}" for name, value in measurement.settings.items()]
    return (
        ", ".join(f"`{item}`" for item in given)
        + f"; in effect: {config.per_page} a page, {config.max_in_flight} requests in "
        f"flight, {config.max_windows} days read at once"
    )


def report_header(plan: Plan, load: tuple[float, float, float], measurement: Measurement) -> str:
    ratio = peak_ratio(measurement)
    days = ", ".join(str(days) for days in plan.days)
    met = "met" if ratio <= TARGET_RATIO else "not met"
    return "\n".join(
        [
            "# FastAPI example app: memory while streaming long ranges",
            "",
            *environment_lines(
                ("fastapi", "starlette", "uvicorn", "aiohttp", "orjson", "cattrs"),
                load=load,
                sharing="simulator, app and client",
            ),
            f"- Simulator: its own process (`python -m voiceapi_async.testing serve`), "
            f"{CALLS_PER_DAY:,} calls a day (±20% a day), pages of at most {PER_PAGE}, no "
            "rate limit, no faults; every day used generated once before measuring",
            "- App: `examples/fastapi_app.py` under uvicorn in its own process "
            f"({app_settings_text(measurement)}), warmed by streaming one day first",
            f"- Method: `GET /calls?from=..&to=..` for ranges of {days} days on disjoint "
            "days, one after the other, read by an aiohttp client in 64 KiB chunks that "
            "only counts lines and bytes (each range's count checked against the "
            "simulator's ground truth); the app's `VmRSS` sampled from `/proc/<pid>/status` "
            f"every {SAMPLE_SECONDS * 1000:g} ms during each request; `VmHWM` read after "
            "each request",
            f"- Target: peak RSS for the largest range ≤ {TARGET_RATIO}x that for the "
            f"reference range, {reference_text(measurement)} (flat): **{met}** ({ratio:.2f}x)",
        ]
    )


def build_report(plan: Plan, load: tuple[float, float, float], measurement: Measurement) -> str:
    return "\n\n".join(
        [
            report_header(plan, load, measurement),
            results_table(measurement),
            "\n".join(baseline_lines(measurement)),
            verdict(measurement),
        ]
    )


# --- main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1, 2 and 4 days; prints only")
    parser.add_argument(
        "--app-env",
        action="append",
        default=[],
        metavar="VOICEAPI_NAME=VALUE",
        help="another setting for the app (repeatable), e.g. VOICEAPI_MAX_WINDOWS=1",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"where to write the report (default: {RESULTS_PATH}; --quick writes nothing)",
    )
    return parser.parse_args(argv)


def parse_settings(pairs: list[str]) -> dict[str, str]:
    """Parse ``--app-env`` values; only ``VOICEAPI_*`` names are accepted."""
    settings = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.startswith("VOICEAPI_"):
            sys.exit(f"--app-env wants VOICEAPI_NAME=VALUE, not {pair!r}")
        settings[name] = value
    return settings


def exit_on_sigterm(signum: int, _frame: object) -> NoReturn:
    """Turn SIGTERM into SystemExit, so the servers are stopped on the way out."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path("/proc/self/status").exists():
        sys.exit("this benchmark reads /proc/<pid>/status: Linux only")
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    plan = QUICK if args.quick else FULL
    settings = parse_settings(args.app_env)
    output = args.output if args.output or args.quick else RESULTS_PATH
    load = os.getloadavg()
    try:
        measurement = measure(plan, settings)
    except KeyboardInterrupt:
        log("interrupted; both servers stopped")
        return 130
    if "Traceback" in measurement.app_log:
        log(f"the app logged a traceback:\n{measurement.app_log}")
    report = build_report(plan, load, measurement)
    publish(report, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

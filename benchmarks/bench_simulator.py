"""Benchmark: pages a second the simulator serves, beside a plain aiohttp handler.

Contenders, each a server in its own subprocess (so the load generator in this
process never shares its CPU or GIL):

1. ``plain aiohttp handler, fixed bytes (ceiling)``: one route returning the bytes
   of a real 100-record shape-B calls page (one of the median size), so both sides
   send the same amount.
2. ``simulator, calls``: ``python -m voiceapi_async.testing serve --shape b
   --rate-limit 0`` (faults and latency off), 100 records a page, pages spread over
   30 one-day ranges of 2,000 calls a day, each range written as voiceapi_async's
   client writes it (``Mar 05, 2024 - Mar 05, 2024``).
3. ``simulator, calls, ISO-date filter``: the same pages asked for with
   ``2024-03-05 - 2024-03-05``, which the server's parser reaches only after six
   failed formats (for context).
4. ``simulator, recordings``: the same server's recordings pages, where every
   ``audio`` URL is signed when served (for context; not the target).

The load generator is one aiohttp client session with a bounded number of requests
in flight (``--concurrency``, also the connector limit), cycling through every
(day, page) of the range in a shuffled order, reading each body in full. Every
page is fetched once before timing (warming the per-day caches), then each repeat
runs every contender for ``--seconds`` in a rotated order; the table shows the
median repeat and the server's CPU time per page (from ``/proc``), which shows how
much headroom the server had when the client was the limit.

Usage::

    python benchmarks/bench_simulator.py            # full run, writes the results file
    python benchmarks/bench_simulator.py --quick    # smoke test, prints only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yarl
from _report import environment_lines, publish
from aiohttp import web

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "simulator.md"
TOKEN = "bench-token"
SEED = 20240305
CALLS_PER_DAY = 2000
FIRST_DAY = dt.date(2024, 3, 1)
DAYS = 30
PER_PAGE = 100
TARGET = 2000.0
PLAIN_PATH = "/api/v2/voice/calls"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass
class Contender:
    """A server under test and the pages the client asks it for."""

    name: str
    process: subprocess.Popen[str]
    base_url: str
    urls: list[yarl.URL] = field(default_factory=list)
    page_bytes: int = 0
    rates: list[float] = field(default_factory=list)
    cpu_per_page: list[float] = field(default_factory=list)


# -- servers ---------------------------------------------------------------------------


def serve_plain(body_path: str) -> None:
    """Serve ``body_path``'s bytes on every request until SIGINT (the child process)."""
    body = Path(body_path).read_bytes()

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get(PLAIN_PATH, page)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            print(f"http://{host}:{port}/api/v2/", flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def start_server(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("http://"):
        process.kill()
        _, err = process.communicate()
        raise RuntimeError(f"server did not start: {line!r} {err}")
    return process, line


def stop_server(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise RuntimeError("a server did not stop on SIGINT") from None
    if process.returncode != 0:
        raise RuntimeError(f"a server exited {process.returncode}: {err}")


def cpu_seconds(pid: int) -> float | None:
    """Return a process's user + system CPU seconds, or None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- load ------------------------------------------------------------------------------


def documented_day(day: dt.date) -> str:
    """Return a whole-day filter as voiceapi_async's client writes it (``Mar 05, 2024``)."""
    text = f"{MONTHS[day.month - 1]} {day.day:02d}, {day.year}"
    return f"{text} - {text}"


def iso_day(day: dt.date) -> str:
    """Return a whole-day filter in ISO dates (``2024-03-05``), also accepted."""
    return f"{day.isoformat()} - {day.isoformat()}"


def page_url(
    base_url: str, report: str, day: dt.date, page: int, day_filter: Callable[[dt.date], str]
) -> yarl.URL:
    column = "datetime[end_at]" if report == "calls" else "datetime[r.created_at]"
    query = {column: day_filter(day), "page": str(page), "per_page": str(PER_PAGE)}
    return yarl.URL(base_url + f"voice/{report}").with_query(query)


def new_session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"},
    )


async def discover(
    base_url: str, report: str, day_filter: Callable[[dt.date], str], concurrency: int
) -> tuple[list[yarl.URL], bytes]:
    """Fetch every page of every day once, warming the caches.

    Returns the URLs of all pages, shuffled, and a full page of the median size.
    """
    days = [FIRST_DAY + dt.timedelta(days=n) for n in range(DAYS)]
    urls: list[yarl.URL] = []
    full_pages: list[bytes] = []
    async with new_session(concurrency) as session:
        for day in days:
            async with session.get(page_url(base_url, report, day, 1, day_filter)) as response:
                response.raise_for_status()
                last_page = (await response.json())["data"]["last_page"]
            day_urls = [
                page_url(base_url, report, day, page, day_filter)
                for page in range(1, last_page + 1)
            ]
            urls.extend(day_urls)
            for url in day_urls[:-1]:  # full pages (the last one is shorter)
                async with session.get(url) as response:
                    response.raise_for_status()
                    full_pages.append(await response.read())
    random.Random(SEED).shuffle(urls)
    full_pages.sort(key=len)
    return urls, full_pages[len(full_pages) // 2]


async def load(urls: list[yarl.URL], seconds: float, concurrency: int) -> tuple[int, float]:
    """Keep ``concurrency`` requests in flight for ``seconds``; return (pages, elapsed)."""
    targets = itertools.cycle(urls)
    done = 0
    async with new_session(concurrency) as session:

        async def worker(deadline: float) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.get(next(targets)) as response:
                    body = await response.read()
                    if response.status != 200 or not body:
                        raise RuntimeError(f"unexpected response {response.status}")
                done += 1

        # One untimed round opens the connections.
        await asyncio.gather(*(worker(0.0) for _ in range(concurrency)))
        done = 0
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return done, elapsed


# -- running ---------------------------------------------------------------------------


@contextlib.contextmanager
def simulator_server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start the simulator's own command in a subprocess; stop it with SIGINT."""
    process, base_url = start_server(
        [
            sys.executable,
            "-m",
            "voiceapi_async.testing",
            "serve",
            "--port=0",
            "--shape=b",
            "--rate-limit=0",
            f"--per-page-max={PER_PAGE}",
            f"--token={TOKEN}",
            f"--seed={SEED}",
            f"--calls-per-day={CALLS_PER_DAY}",
        ]
    )
    try:
        yield process, base_url
    finally:
        stop_server(process)


SIMULATOR_ROWS = (
    ("simulator, calls", "calls", documented_day),
    ("simulator, calls, ISO-date filter", "calls", iso_day),
    ("simulator, recordings (audio URLs signed per row)", "recordings", documented_day),
)
"""The simulator's rows: name, report, and how the day filter is written."""


def run(args: argparse.Namespace) -> str:
    """Measure every contender; return the Markdown report."""
    with tempfile.TemporaryDirectory() as scratch, simulator_server() as (simulator, sim_url):
        load_average = os.getloadavg()[0]
        started = time.perf_counter()
        rows: list[Contender] = []
        pages: list[bytes] = []
        for name, report_name, day_filter in SIMULATOR_ROWS:
            row = Contender(name, simulator, sim_url)
            row.urls, page = asyncio.run(
                discover(sim_url, report_name, day_filter, args.concurrency)
            )
            row.page_bytes = len(page)
            rows.append(row)
            pages.append(page)
        warm = time.perf_counter() - started
        body_path = Path(scratch) / "page.json"
        body_path.write_bytes(pages[0])
        plain_process, plain_url = start_server(
            [sys.executable, __file__, "--serve-plain", str(body_path)]
        )
        try:
            plain = Contender("plain aiohttp handler, fixed bytes (ceiling)", plain_process, "")
            plain.urls = [yarl.URL(plain_url.removesuffix("/api/v2/") + PLAIN_PATH)]
            plain.page_bytes = len(pages[0])
            contenders = [plain, *rows]
            for repeat in range(args.repeats):
                shift = repeat % len(contenders)
                for contender in contenders[shift:] + contenders[:shift]:
                    measure(contender, args)
                    print(
                        f"  repeat {repeat + 1}: {contender.name}: "
                        f"{contender.rates[-1]:,.0f} pages/s",
                        file=sys.stderr,
                    )
        finally:
            stop_server(plain_process)
    return report(args, contenders, warm, load_average)


def measure(contender: Contender, args: argparse.Namespace) -> None:
    """Load one contender for ``args.seconds``; record its rate and server CPU per page."""
    before = cpu_seconds(contender.process.pid)
    pages, elapsed = asyncio.run(load(contender.urls, args.seconds, args.concurrency))
    after = cpu_seconds(contender.process.pid)
    contender.rates.append(pages / elapsed)
    if before is not None and after is not None and pages:
        contender.cpu_per_page.append((after - before) / pages)


def report(
    args: argparse.Namespace, contenders: list[Contender], warm: float, load_average: float
) -> str:
    plain, calls = contenders[0], contenders[1]
    ceiling = statistics.median(plain.rates)
    lines = [
        "# Simulator benchmark: pages a second served",
        "",
        *environment_lines(("aiohttp", "orjson", "attrs", "pendulum")),
        f"- Servers: each in its own subprocess; the simulator as `python -m "
        f"voiceapi_async.testing serve --shape b --rate-limit 0` (faults and latency off), "
        f"seed {SEED}, {CALLS_PER_DAY:,} calls a day; pages of {PER_PAGE} records "
        f"(`per_page={PER_PAGE}`) over {DAYS} one-day ranges from {FIRST_DAY}",
        f"- Load: one aiohttp client process, {args.concurrency} requests in flight "
        f"(connector limit {args.concurrency}), cycling through every (day, page) in a "
        f"shuffled order, each body read in full; every page fetched once before timing "
        f"({warm:.1f} s to generate and warm {DAYS} days of both reports)",
        f"- Timing: median of {args.repeats} interleaved repeats of {args.seconds:g} s per "
        f"contender (and the range); server CPU from `/proc` over the same span",
        f"- Target: the simulator's calls pages ≥ {TARGET:,.0f} pages/s",
        f"- Load average before the run: {load_average:.2f} (other work adds noise)",
        "",
        "| # | server | page bytes | pages/s (median) | range | x plain | "
        "server CPU µs/page | pages per server CPU-second |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for number, contender in enumerate(contenders, 1):
        rate = statistics.median(contender.rates)
        low, high = min(contender.rates), max(contender.rates)
        cpu = statistics.median(contender.cpu_per_page) if contender.cpu_per_page else None
        cpu_text = f"{cpu * 1e6:,.0f}" if cpu else "n/a"
        capacity = f"{1 / cpu:,.0f}" if cpu else "n/a"
        lines.append(
            f"| {number} | {contender.name} | {contender.page_bytes:,} | {rate:,.0f} | "
            f"{low:,.0f} to {high:,.0f} | {rate / ceiling:.2f}x | {cpu_text} | {capacity} |"
        )
    rate = statistics.median(calls.rates)
    verdict = "target met" if rate >= TARGET else "TARGET MISSED"
    lines += [
        "",
        f"The simulator serves **{rate:,.0f}** calls pages of {PER_PAGE} records a second "
        f"({rate / ceiling:.2f}x the plain handler): {verdict}.",
        "",
        "With two cores, the client takes one and the server the other, so pages/s is "
        "bounded by whichever side is slower; the server's CPU time per page (and its "
        "inverse, the pages one fully busy core could serve) is the simulator's own cost.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test; prints only")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per repeat")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--serve-plain", metavar="BODY", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_plain:
        serve_plain(args.serve_plain)
        return
    if args.seconds is None:
        args.seconds = 0.5 if args.quick else 4.0
    if args.repeats is None:
        args.repeats = 1 if args.quick else 5
    publish(run(args), None if args.quick else RESULTS_PATH)


if __name__ == "__main__":
    main()

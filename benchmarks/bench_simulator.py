"""Simulator benchmark: pages a second served, beside a plain aiohttp handler.

One load generator (32 requests in flight) cycles through every (day, page) of 30
days of 2,000 calls, in a shuffled order, against each server in its own process: a
plain aiohttp handler returning the bytes of one real calls page (the ceiling), the
simulator's calls pages with the day written as the client writes it and in ISO
dates, and its recordings pages (each audio URL signed as it is served).

Target: the simulator's calls pages ≥ 2,000 pages/s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import _harness as harness
import aiohttp
import orjson
import yarl
from aiohttp import web

SEED = 20240305
CALLS_PER_DAY = 2_000
FIRST_DAY = dt.date(2024, 3, 1)
DAYS = 30
PER_PAGE = 100
CONCURRENCY = 32
TARGET = 2_000.0
ROWS = (  # the simulator's rows: label, report, how the day is written
    ("simulator, calls", "calls", "%b %d, %Y"),
    ("simulator, calls, ISO-date filter", "calls", "%Y-%m-%d"),
    ("simulator, recordings (audio URLs signed per row)", "recordings", "%b %d, %Y"),
)


@dataclass
class Contender:
    """A server under test, the pages asked of it (with each one's size) and its runs."""

    label: str
    server: harness.Server
    pages: list[tuple[yarl.URL, int]] = field(default_factory=list)
    page_bytes: int = 0
    """The size of a full page of the median size."""


def serve_plain(body_path: str) -> None:
    """Serve the file's bytes on every request until SIGTERM (in a child process)."""
    body = Path(body_path).read_bytes()

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        print(f"http://{host}:{port}/", flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


async def discover(row: Contender, report: str, day_format: str) -> bytes:
    """Fetch every page of every day once (warming the server) and check their ids.

    Sets the row's pages, shuffled, and returns a full page of the median size.
    """
    harness.log(f"{row.label}: fetching every page once")
    days = [FIRST_DAY + dt.timedelta(days=n) for n in range(DAYS)]
    truth = harness.ids_by_day(
        harness.dataset(seed=SEED, calls_per_day=CALLS_PER_DAY), days[0], days[-1], report
    )
    full: list[bytes] = []
    async with aiohttp.ClientSession(headers=harness.HEADERS) as session:
        for day in days:
            ids: set[str] = set()
            records, page, last_page = 0, 1, 1
            while page <= last_page:
                url = yarl.URL(row.server.base_url + f"voice/{report}").with_query(
                    harness.page_query(day, page, PER_PAGE, report=report, day_format=day_format)
                )
                async with session.get(url) as response:
                    response.raise_for_status()
                    body = await response.read()
                data = orjson.loads(body)["data"]
                ids.update(record["id"] for record in data["data"])
                records, last_page = records + len(data["data"]), data["last_page"]
                row.pages.append((url, len(body)))
                if page < last_page:
                    full.append(body)
                page += 1
            harness.check(f"{row.label}, {day}", truth[day], records, ids)
    random.Random(SEED).shuffle(row.pages)
    full.sort(key=len)
    row.page_bytes = len(full[len(full) // 2])
    return full[len(full) // 2]


async def load(pages: list[tuple[yarl.URL, int]], seconds: float) -> tuple[int, float]:
    """Keep ``CONCURRENCY`` requests in flight for ``seconds``; return (pages, elapsed)."""
    targets, done = itertools.cycle(pages), 0
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers=harness.HEADERS) as session:

        async def worker(deadline: float) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                url, size = next(targets)
                async with session.get(url) as response:
                    body = await response.read()
                if response.status != 200 or len(body) != size:
                    raise SystemExit(f"{url}: {response.status}, {len(body)} bytes, not {size}")
                done += 1

        await asyncio.gather(*(worker(0.0) for _ in range(CONCURRENCY)))  # opens connections
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds) for _ in range(CONCURRENCY)))
        return done, time.perf_counter() - started


def measure(contender: Contender, seconds: float) -> tuple[float, float]:
    """Load one server for ``seconds``; return pages/s and its CPU seconds per page."""
    cpu = contender.server.cpu_seconds()
    pages, elapsed = asyncio.run(load(contender.pages, seconds))
    return pages / elapsed, (contender.server.cpu_seconds() - cpu) / pages


def report(rows: list[Contender], runs: dict[str, list[tuple[float, float]]], plan: str) -> str:
    ceiling = statistics.median(rate for rate, _ in runs[rows[0].label])
    lines = []
    for number, row in enumerate(rows, start=1):
        rates = [rate for rate, _ in runs[row.label]]
        rate, cpu = statistics.median(rates), statistics.median(cpu for _, cpu in runs[row.label])
        lines.append(
            f"{number} | {row.label} | {row.page_bytes:,} | {rate:,.0f} | {min(rates):,.0f} to "
            f"{max(rates):,.0f} | {rate / ceiling:.2f}x | {cpu * 1e6:,.0f} | {1 / cpu:,.0f}"
        )
    calls = statistics.median(rate for rate, _ in runs[rows[1].label])
    return "\n".join(
        [
            "# Simulator benchmark: pages a second served",
            "",
            *harness.environment(("aiohttp", "orjson", "attrs", "pendulum")),
            "- Servers: each in its own subprocess; the simulator as `python -m "
            "voiceapi_async.testing serve --shape b --rate-limit 0` (faults and latency off), "
            f"seed {SEED}, {CALLS_PER_DAY:,} calls a day; pages of {PER_PAGE} records over {DAYS} "
            f"one-day ranges from {FIRST_DAY}",
            f"- Load: one aiohttp client process, {CONCURRENCY} requests in flight, cycling "
            "through every (day, page) in a shuffled order, each body read in full and checked "
            "for its status and size; every page fetched once before timing, its ids checked "
            "against the ground truth",
            f"- Timing: {plan}; server CPU from `/proc` over the same span",
            f"- Target: the simulator's calls pages ≥ {TARGET:,.0f} pages/s",
            "",
            harness.table(
                "# | server | page bytes | pages/s (median) | range | x plain | server CPU "
                "µs/page | pages per server CPU-second",
                lines,
                left=2,
            ),
            "",
            f"The simulator serves **{calls:,.0f}** calls pages of {PER_PAGE} records a second "
            f"({calls / ceiling:.2f}x the plain handler); target ≥ {TARGET:,.0f}: "
            f"{harness.met(calls >= TARGET)}.",
            "",
            "With two cores, the client takes one and the server the other, so pages/s is "
            "bounded by whichever side is slower; the server's CPU time per page (and its "
            "inverse, the pages one fully busy core could serve) is the simulator's own cost.",
        ]
    )


def main() -> int:
    parser = harness.arguments(__doc__)
    parser.add_argument("--serve-plain", metavar="BODY", help="internal")
    args = parser.parse_args()
    if args.serve_plain:
        serve_plain(args.serve_plain)
        return 0
    rounds, seconds = (1, 0.5) if args.quick else (5, 4.0)
    with (
        tempfile.TemporaryDirectory() as scratch,
        harness.simulator(
            seed=SEED, calls_per_day=CALLS_PER_DAY, shape="b", per_page_max=PER_PAGE
        ) as sim,
    ):
        rows = [Contender(label, sim) for label, *_ in ROWS]
        pages = [
            asyncio.run(discover(row, *how)) for row, (_, *how) in zip(rows, ROWS, strict=True)
        ]
        body = Path(scratch, "page.json")
        body.write_bytes(pages[0])  # a calls page of the median size
        with harness.server([sys.executable, __file__, "--serve-plain", str(body)]) as plain:
            label, size = "plain aiohttp handler, fixed bytes (ceiling)", len(pages[0])
            rows.insert(0, Contender(label, plain, [(yarl.URL(plain.base_url), size)], size))
            runs = harness.interleave(
                rows,
                rounds,
                lambda row: measure(row, seconds),
                lambda run: f"{run[0]:,.0f} pages/s",
            )
    plan = f"median of {rounds} interleaved round(s) of {seconds:g} s per server (and the range)"
    harness.publish("simulator", report(rows, runs, plan), quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

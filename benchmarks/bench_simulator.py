"""Simulator benchmark: pages a second served, beside a plain aiohttp handler.

Method, servers and target: benchmarks/README.md, section "simulator".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
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
FIRST_DAY, LAST_DAY = dt.date(2024, 3, 1), dt.date(2024, 3, 30)
PER_PAGE = 100
CONCURRENCY = 32
TARGET = 2_000.0
DATA = harness.dataset(seed=SEED, calls_per_day=CALLS_PER_DAY)
ROWS = (  # the simulator's rows: label, report, how the day is written
    ("simulator, calls", "calls", "%b %d, %Y"),
    ("simulator, calls, ISO-date filter", "calls", "%Y-%m-%d"),
    ("simulator, recordings (audio URLs signed per row)", "recordings", "%b %d, %Y"),
)


@dataclass
class Contender:
    """A server under test, the pages asked of it (each with its size), a full page's size."""

    label: str
    server: harness.Server
    pages: list[tuple[yarl.URL, int]] = field(default_factory=list)
    page_bytes: int = 0


def serve_plain(body_path: str, port: str) -> None:
    """Serve the file's bytes on every request until SIGTERM (in a child process)."""
    body = Path(body_path).read_bytes()

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/", page)
    web.run_app(app, host="127.0.0.1", port=int(port), access_log=None, print=None)


async def discover(row: Contender, report: str, day_format: str) -> bytes:
    """Fetch every page once (warming the server), check their ids, set the row's pages.

    Returns a full page of the median size.
    """
    harness.log(f"{row.label}: fetching every page once")
    truth, full = harness.ids_by_day(DATA, FIRST_DAY, LAST_DAY, report), list[bytes]()
    async with aiohttp.ClientSession(headers=harness.HEADERS) as session:
        for day, day_ids in truth.items():
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
            harness.check(f"{row.label}, {day}", day_ids, records, ids)
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


def report(rows: list[Contender], runs: dict[str, list[tuple[float, float]]]) -> list[str]:
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
    header = "# | server | page bytes | pages/s (median) | range | x plain | server CPU µs/page"
    return [
        harness.table(header + " | pages per server CPU-second", lines, left=2),
        harness.verdict(
            f"The simulator serves **{calls:,.0f}** calls pages a second ({calls / ceiling:.2f}x "
            f"the plain handler); target ≥ {TARGET:,.0f}",
            calls >= TARGET,
        ),
    ]


def main() -> int:
    args = harness.arguments(__doc__, rounds=5)
    if args.child:
        serve_plain(*args.child)
        return 0
    seconds = 0.5 if args.quick else 4.0
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
        port = harness.free_port()
        command = [sys.executable, __file__, "--child", str(body), str(port)]
        with harness.server(command, port=port) as plain:
            label, size = "plain aiohttp handler, fixed bytes (ceiling)", len(pages[0])
            rows.insert(0, Contender(label, plain, [(yarl.URL(plain.base_url), size)], size))
            runs = harness.interleave(
                rows,
                args.rounds,
                lambda row: measure(row, seconds),
                lambda run: f"{run[0]:,.0f} pages/s",
            )
    facts = [
        f"- Data: seed {SEED}, {CALLS_PER_DAY:,} calls a day, {PER_PAGE} a page, days "
        f"{FIRST_DAY}..{LAST_DAY}; {CONCURRENCY} requests in flight",
        f"- Timing: median of {args.rounds} interleaved round(s) of {seconds:g} s per server",
    ]
    packages = ("aiohttp", "orjson", "attrs", "pendulum")
    harness.publish(__doc__, facts, report(rows, runs), packages=packages, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

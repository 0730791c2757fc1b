"""Shared quota: client processes on one token, paced by the server's headers.

Method, cases and targets: benchmarks/README.md, section shared_quota.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import statistics
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from typing import Any

import _harness as harness
import aiohttp

from voiceapi_async import VoiceClient

SEED = 3
CALLS_PER_DAY = 300
PER_PAGE = 100
"""A day is about 3 pages."""
FIRST_DAY = dt.date(2014, 1, 1)
LAST_DAY = dt.date(2023, 12, 31)
API_WINDOW = 60.0
TARGET_BULK_USE = 0.85
TARGET_ALONE_USE = 0.95
TARGET_429_SHARE = 0.01
TARGET_P95_OF_API_WINDOW = 2.0
"""Seconds of the API's minute window; scaled by ``WINDOW / 60``."""
START_DELAY = 0.5
"""Seconds between every process saying it is ready and the case's start."""


@dataclass(frozen=True)
class Scale:
    """The limit, the window and how long each case runs."""

    limit: int
    window: float
    windows: int
    queries: int
    """One-day queries a window: their pages stay within the reserve (10% of the limit)."""

    @property
    def seconds(self) -> float:
        """Return one case's length."""
        return self.window * self.windows

    @property
    def p95_target(self) -> float:
        """Return the latency target scaled to the window."""
        return TARGET_P95_OF_API_WINDOW * self.window / API_WINDOW


FULL = Scale(limit=200, window=10.0, windows=6, queries=4)
QUICK = Scale(limit=100, window=2.0, windows=3, queries=2)


@dataclass(frozen=True)
class Case:
    """One case: how many processes of each kind share the token."""

    label: str
    bulk: int
    interactive: int = 0
    queries: bool = False


CASES = (
    Case("1 bulk process", bulk=1),
    Case("2 bulk processes", bulk=2),
    Case("4 bulk processes", bulk=4),
    Case("1 interactive process alone", bulk=0, interactive=1),
    Case("2 bulk processes + interactive one-day queries", bulk=2, queries=True),
)


# --- a client process ----------------------------------------------------------------


def worker(kind: str, base_url: str, scale: Scale) -> dict[str, Any]:
    """Run one client process's part of a case; return what it counted.

    It reads the case's start (Unix time) on stdin.
    """
    start = float(sys.stdin.readline())
    return asyncio.run(_work(kind, base_url, start, scale))


async def _work(kind: str, base_url: str, start: float, scale: Scale) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    stop = start + scale.seconds

    async def on_end(
        session: aiohttp.ClientSession,
        context: types.SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        if start <= time.time() <= stop:
            key = str(params.response.status)
            statuses[key] = statuses.get(key, 0) + 1

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    latencies: list[float] = []
    client = VoiceClient(
        base_url=base_url,
        token=harness.TOKEN,
        timezone=harness.TIMEZONE,
        per_page=PER_PAGE,
        rate_window=scale.window,
        bulk=kind == "bulk",
        trace_configs=[trace],
    )
    async with client:
        await asyncio.sleep(max(0.0, start - time.time()))
        try:
            async with asyncio.timeout(max(0.0, stop - time.time())):
                if kind == "queries":
                    await _queries(client, start, scale, latencies)
                else:
                    await client.calls(FIRST_DAY, LAST_DAY).collect()
        except TimeoutError:
            pass
        stats = client.stats
    return {
        "kind": kind,
        "statuses": statuses,
        "latencies": latencies,
        "paced_seconds": stats.paced_seconds,
    }


async def _queries(client: VoiceClient, start: float, scale: Scale, latencies: list[float]) -> None:
    """Ask for one day ``scale.queries`` times a window, on a fixed schedule; time each."""
    every = scale.window / scale.queries
    day = FIRST_DAY
    number = 0
    while True:
        await asyncio.sleep(max(0.0, start + number * every - time.time()))
        began = time.perf_counter()
        calls = await client.calls(day, day).collect()
        latencies.append(time.perf_counter() - began)
        if not calls:
            raise SystemExit(f"a one-day query for {day} returned nothing")
        day += dt.timedelta(days=1)
        number += 1


# --- the cases ------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What one case measured."""

    case: Case
    ok: int
    limited: int
    other: int
    latencies: list[float]
    paced_seconds: float


def run_case(case: Case, scale: Scale) -> Result:
    """Run one case against a fresh simulator: its windows start with the case."""
    options = {"rate_limit": scale.limit, "rate_window": scale.window}
    with harness.simulator(seed=SEED, calls_per_day=CALLS_PER_DAY, **options) as sim:
        kinds = ["bulk"] * case.bulk + ["interactive"] * case.interactive
        kinds += ["queries"] if case.queries else []
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    *(["--quick"] if scale is QUICK else []),
                    "--child",
                    kind,
                    sim.base_url,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for kind in kinds
        ]
        for process in processes:  # imports done, client built: start them together
            assert process.stdout is not None
            if process.stdout.readline() != "ready\n":
                raise SystemExit(f"{case.label}: a client process did not start")
        start = time.time() + START_DELAY
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"{start!r}\n")
            process.stdin.close()
        reports = []
        for process in processes:
            assert process.stdout is not None
            out = process.stdout.read()
            if process.wait(timeout=60):
                raise SystemExit(f"{case.label}: a client process exited {process.returncode}")
            reports.append(json.loads(out))
    statuses: dict[str, int] = {}
    for report in reports:
        for status, count in report["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    ok = statuses.pop("200", 0)
    limited = statuses.pop("429", 0)
    return Result(
        case,
        ok=ok,
        limited=limited,
        other=sum(statuses.values()),
        latencies=[x for report in reports for x in report["latencies"]],
        paced_seconds=sum(report["paced_seconds"] for report in reports),
    )


def p95(values: list[float]) -> float:
    """Return the 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


# --- the report -----------------------------------------------------------------------


def report(results: list[Result], scale: Scale) -> tuple[list[str], list[str]]:
    """Return the report's facts (the run's parameters) and sections (table, verdicts)."""
    ideal = scale.limit * scale.windows
    rows = []
    for result in results:
        sent = result.ok + result.limited + result.other
        share = result.limited / sent if sent else 0.0
        rows.append(
            f"{result.case.label} | {result.ok:,} | {result.ok / ideal:.1%} | "
            f"{result.limited:,} | {share:.2%} | {result.other:,} | {result.paced_seconds:,.0f}"
        )
    table = harness.table(
        "processes on one token | successful requests | of the limit | 429s | "
        "429 share | other errors | seconds paced",
        rows,
    )
    verdicts = []
    for result in results:
        use = result.ok / ideal
        sent = result.ok + result.limited + result.other
        share = result.limited / sent if sent else 0.0
        if result.case.interactive:
            verdicts.append(
                harness.verdict(
                    f"{result.case.label}: {use:.1%} of the limit (target ≥ "
                    f"{TARGET_ALONE_USE:.0%}); 429s {share:.2%}",
                    use >= TARGET_ALONE_USE,
                )
            )
        elif result.case.queries:
            slow = p95(result.latencies)
            verdicts.append(
                harness.verdict(
                    f"{result.case.label}: {len(result.latencies)} one-day queries, latency "
                    f"median {statistics.median(result.latencies) * 1000:,.0f} ms, p95 "
                    f"{slow * 1000:,.0f} ms, max {max(result.latencies) * 1000:,.0f} ms (target "
                    f"p95 ≤ {scale.p95_target * 1000:,.0f} ms, 2 s of a minute scaled to the "
                    f"{scale.window:g} s window); all processes together {use:.1%} of the "
                    f"limit, 429s {share:.2%}",
                    slow <= scale.p95_target,
                )
            )
        else:
            ok = use >= TARGET_BULK_USE and share <= TARGET_429_SHARE
            verdicts.append(
                harness.verdict(
                    f"{result.case.label}: {use:.1%} of the limit (target ≥ "
                    f"{TARGET_BULK_USE:.0%}), 429s {share:.2%} of requests (target ≤ "
                    f"{TARGET_429_SHARE:.0%})",
                    ok,
                )
            )
    facts = [
        f"- Simulator: its own process, fixed window of {scale.window:g} s and "
        f"{scale.limit} requests a window per token (the API's 1,000 a minute, scaled so a "
        f"case covers {scale.windows} windows in {scale.seconds:g} s), "
        f"{CALLS_PER_DAY} calls a day, pages of {PER_PAGE} (a day is about 3 pages)",
        "- Clients: one process each, `VoiceClient` at its defaults (16 in flight, "
        f"`rate_limit=None`: paced by the server's headers) with `rate_window={scale.window:g}`; "
        "bulk ones with `bulk=True` (they leave 10% of the limit), reading days of calls "
        "back to back. Every case starts on a fresh simulator; all its processes start "
        "together and stop after "
        f"{scale.seconds:g} s; only answers inside that span count",
        f"- *of the limit*: successful requests over {scale.windows} windows x {scale.limit}; "
        "*seconds paced*: time requests waited for the quota, summed over requests "
        "(`client.stats.paced_seconds`)",
        f"- Interactive queries: `await client.calls(day, day).collect()` {scale.queries} "
        "times a window on a fixed schedule, a new day each time (their pages fit in the "
        "reserve); latency from the call to the last record",
    ]
    return facts, [table, "\n".join(verdicts)]


def main() -> int:
    """Run every case (or one client process, with ``--worker``)."""
    args = harness.arguments(__doc__)
    scale = QUICK if args.quick else FULL
    if args.child:  # one client process: kind, base URL
        kind, base_url = args.child
        result, sys.stdout = sys.stdout, sys.stderr  # stdout carries only the protocol
        result.write("ready\n")
        result.flush()
        result.write(json.dumps(worker(kind, base_url, scale)) + "\n")
        return 0
    results = []
    for case in CASES:
        harness.log(f"{case.label}: {scale.seconds:g} s")
        result = run_case(case, scale)
        harness.log(f"{case.label}: {result.ok} ok, {result.limited} 429")
        results.append(result)
    facts, sections = report(results, scale)
    harness.publish(
        __doc__,
        facts,
        sections,
        packages=["aiohttp"],
        sharing="the simulator and every client process",
        quick=args.quick,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

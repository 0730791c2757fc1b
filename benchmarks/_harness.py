"""What every benchmark here shares: servers, readers, ground truth, rounds and report.

The method is in ``benchmarks/README.md``. A script parses :func:`arguments`, runs
servers with :func:`simulator` or :func:`server`, its contenders with
:func:`interleave` (checking every run with :func:`check`), takes :func:`medians`,
and ends with :func:`publish`: :func:`table` and one :func:`verdict` per target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from voiceapi_async.testing import Dataset, Faults

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

RESULTS = Path(__file__).resolve().parent / "results"
TOKEN = "bench-token"
TIMEZONE = "Asia/Kolkata"
HEADERS = {"Accept": "application/json", "Authorization": f"Bearer {TOKEN}"}
CLIENT: dict[str, Any] = {"token": TOKEN, "timezone": TIMEZONE, "rate_limit": 0}
"""``VoiceClient`` keyword arguments for a :func:`simulator`: its token and zone, no rate limit."""
LOAD_AT_START = os.getloadavg()
"""The load average when the script started (it imports this module first)."""
READY_SECONDS = 60.0
STOP_SECONDS = 10.0


def log(message: str) -> None:
    """Write a progress line to stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def arguments(doc: str | None, *, rounds: int = 1, quick_rounds: int = 1) -> argparse.Namespace:
    """Parse the flags every script has; ``doc``'s first line describes the script.

    ``--quick``: a small smoke run that only prints; ``--rounds N`` (default ``rounds``,
    ``quick_rounds`` with ``--quick``); ``child``: the arguments after ``--child`` when the
    script runs as its own helper (see :func:`run_child`), else None.
    """
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run; prints only")
    parser.add_argument("--rounds", type=int, help="interleaved rounds to run")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.rounds = args.rounds or (quick_rounds if args.quick else rounds)
    return args


@dataclass(frozen=True)
class Server:
    """A server subprocess, listening at ``base_url``."""

    process: subprocess.Popen[str]
    base_url: str
    log_path: Path

    def cpu_seconds(self) -> float:
        """Return the CPU seconds the server has used so far."""
        return cpu_seconds(self.process.pid)

    def log_text(self) -> str:
        """Return what the server wrote on stderr so far."""
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def server(
    command: list[str], *, port: int | None = None, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Run a server subprocess; yield once it listens; always stop it (SIGTERM, then kill).

    Without ``port``, the command picks a free port and prints its base URL on stdout
    once listening (as the simulator does); with ``port``, it is ready once that port
    accepts connections. Either way, a server that exits or stays silent for
    ``READY_SECONDS`` raises ``RuntimeError`` with its stderr.
    """
    with tempfile.TemporaryDirectory() as scratch:
        out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(
                command,
                stdout=stdout,
                stderr=stderr,
                env=env,
                text=True,
                start_new_session=True,  # Ctrl-C reaches only us; we stop it
                preexec_fn=lambda: ctypes.CDLL(None).prctl(1, signal.SIGTERM),  # dies with us
            )
        try:
            yield Server(process, _wait_ready(process, out, err, port), err)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen[str], out: Path, err: Path, port: int | None) -> str:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited {process.returncode}:\n{err.read_text()}")
        if port is None:
            line = out.read_text()
            if line.endswith("\n"):
                return line.strip()
        else:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return f"http://127.0.0.1:{port}"
        time.sleep(0.02)
    raise RuntimeError(f"{process.args!r} not ready in {READY_SECONDS:g} s:\n{err.read_text()}")


def free_port() -> int:
    """Return a loopback port that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def simulator(
    *, seed: int, calls_per_day: int, **options: object
) -> contextlib.AbstractContextManager[Server]:
    """Run ``python -m voiceapi_async.testing serve`` on a free port.

    With the benchmarks' token and time zone, no rate limit and ``seed`` and
    ``calls_per_day`` as the ground truth's (:func:`dataset`); ``options`` are more
    ``serve`` options, ``latency_ms=50`` for ``--latency-ms=50``.
    """
    settings = {"rate_limit": 0, **options, "seed": seed, "calls_per_day": calls_per_day}
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in settings.items()]
    command = [sys.executable, "-m", "voiceapi_async.testing", "serve", "--port=0"]
    return server([*command, f"--token={TOKEN}", f"--timezone={TIMEZONE}", *flags])


def page_query(
    day: dt.date, page: int, per_page: int, *, report: str = "calls", day_format: str = "%b %d, %Y"
) -> dict[str, str]:
    """Return the query for one page of one whole day, the day written as the client does."""
    column = "datetime[end_at]" if report == "calls" else "datetime[r.created_at]"
    text = day.strftime(day_format)  # %b is English: Python never sets LC_TIME by itself
    return {column: f"{text} - {text}", "page": str(page), "per_page": str(per_page)}


def cpu_seconds(pid: int | None = None) -> float:
    """Return the CPU seconds (user + system) of process ``pid``, or of this process."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(field: str = "VmHWM", pid: int | str = "self") -> int:
    """Return one field of ``/proc/<pid>/status`` in KiB: ``VmHWM`` (peak RSS) or ``VmRSS``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


R = TypeVar("R")


@dataclass(frozen=True)
class Usage:
    """What a call cost: wall-clock seconds, this process's CPU seconds, a server's."""

    seconds: float
    cpu: float
    server_cpu: float


def timed(call: Callable[[], R], server: Server) -> tuple[R, Usage]:
    """Return what ``call()`` returned and what it cost, here and in ``server``."""
    server_cpu, cpu, started = server.cpu_seconds(), cpu_seconds(), time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    return result, Usage(seconds, cpu_seconds() - cpu, server.cpu_seconds() - server_cpu)


def mean_latency(latency_ms: float) -> float:
    """Return the mean seconds of the simulator's log-normal latency of median ``latency_ms``."""
    return latency_ms / 1000 * math.exp(Faults().latency_spread ** 2 / 2)


def run_child(script: str, *args: object) -> dict[str, Any]:
    """Run ``script --child args`` in a fresh interpreter; return the JSON object it printed.

    The script's ``main``, seeing ``arguments(...).child``, calls :func:`child_result`.
    """
    command = [sys.executable, script, "--child", *map(str, args)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(output.splitlines()[-1])
    return result


def child_result(work: Coroutine[Any, Any, dict[str, Any]]) -> None:
    """In a :func:`run_child` process: run ``work`` and print what it returned.

    Adds the seconds it took and this process's peak RSS (``peak_kib``).
    """
    started = time.perf_counter()
    result = {**asyncio.run(work), "seconds": time.perf_counter() - started}
    print(json.dumps({**result, "peak_kib": memory_kib("VmHWM")}))


def dataset(*, seed: int, calls_per_day: int) -> Dataset:
    """Return the records a :func:`simulator` with these settings serves."""
    return Dataset(seed, timezone=TIMEZONE, calls_per_day=calls_per_day)


def ids_by_day(
    data: Dataset, first: dt.date, last: dt.date, report: str = "calls"
) -> dict[dt.date, set[str]]:
    """Return the ids the simulator serves for each whole day from ``first`` to ``last``."""
    end = dt.time(23, 59, 59)
    return {
        day: data.ids_between(
            report, dt.datetime.combine(day, dt.time.min), dt.datetime.combine(day, end)
        )
        for day in (first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    }


def check(label: str, truth: set[str], records: int, ids: set[str] | None = None) -> None:
    """Stop the script (exit 1) unless the run ``label`` got exactly ``truth``, once each.

    ``records`` is how many records it got; ``ids``, the distinct ids it got, or None
    where only their number is checked.
    """
    if records == len(truth) and (ids is None or ids == truth):
        return
    problem = f"{records:,} records for {len(truth):,} in the ground truth"
    if ids is not None:
        problem += (
            f": {len(truth - ids):,} missing, {len(ids - truth):,} unexpected, "
            f"{records - len(ids):,} duplicated"
        )
    raise SystemExit(f"{label}: wrong records: {problem}")


class Contender(Protocol):
    """Anything with a label that the rounds can run."""

    @property
    def label(self) -> str:
        """The contender's name in the report."""
        ...


C = TypeVar("C", bound=Contender)
D = TypeVar("D", bound="DataclassInstance")


def interleave(
    contenders: Sequence[C], rounds: int, run: Callable[[C], R], summary: Callable[[R], str]
) -> dict[str, list[R]]:
    """Run every contender once a round, the order rotated by one each round.

    Returns each contender's runs by label, in the contenders' order.
    """
    runs: dict[str, list[R]] = {contender.label: [] for contender in contenders}
    for number in range(rounds):
        shift = number % len(contenders)
        for contender in [*contenders[shift:], *contenders[:shift]]:
            result = run(contender)
            runs[contender.label].append(result)
            log(f"round {number + 1}/{rounds}: {contender.label}: {summary(result)}")
    return runs


def medians(runs: dict[str, list[D]]) -> dict[str, D]:
    """Return, by label, a run of numbers whose every field is that field's median over the runs."""
    return {
        label: dataclasses.replace(
            found[0],
            **{
                field.name: statistics.median(getattr(run, field.name) for run in found)
                for field in dataclasses.fields(found[0])
            },
        )
        for label, found in runs.items()
    }


def table(header: str, rows: Iterable[str], *, left: int = 1) -> str:
    """Return a Markdown table of ``" | "``-separated cells; ``left`` columns align left."""
    align = "|".join(["---"] * left + ["---:"] * (header.count(" | ") + 1 - left))
    return "\n".join([f"| {header} |", f"|{align}|", *(f"| {row} |" for row in rows)])


def verdict(text: str, ok: bool) -> str:
    """Return a target's line, ``- text: **met**.`` or ``**not met**``; ``text`` states it."""
    return f"- {text}: {'**met**' if ok else '**not met**'}."


def publish(
    doc: str | None,
    facts: Sequence[str],
    sections: Sequence[str],
    *,
    packages: Sequence[str],
    sharing: str = "",
    quick: bool,
) -> None:
    """Print the report; unless ``quick``, also write it to ``benchmarks/results/<name>.md``.

    ``name`` comes from the script's file, ``bench_<name>.py``, and is also its section's
    anchor in README.md. The report: ``doc``'s first line as its title; the date, Python
    with the versions of ``packages``, the machine and its load (``sharing``: what else
    runs on its cores); ``facts`` (``"- ..."`` lines: the run's parameters); a link to the
    README's section; then ``sections`` (tables and verdicts).
    """
    name = Path(sys.argv[0]).stem.removeprefix("bench_")
    versions = ", ".join(f"{package} {metadata.version(package)}" for package in packages)
    load = " / ".join(f"{value:.2f}" for value in LOAD_AT_START)
    head = [
        f"# {(doc or name).splitlines()[0].rstrip('.')}",
        "",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Python: {platform.python_implementation()} {platform.python_version()}; {versions}",
        f"- Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores; load "
        f"average {load} at the start" + (f" ({sharing} share these cores)" if sharing else ""),
        *facts,
        f"- Method, columns and targets: [benchmarks/README.md](../README.md#{name})",
    ]
    report = "\n\n".join(["\n".join(head), *sections])
    print(report)
    if not quick:
        path = RESULTS / f"{name}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report + "\n", encoding="utf-8")
        print(f"\nwrote {path}")

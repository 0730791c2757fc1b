"""Benchmark: one page of call-log JSON bytes to typed records, side by side.

Every contender decodes the same bytes: a shape-B page (records in
``body["data"]["data"]``) of 100 realistic call records generated from a fixed
seed. Rows:

1. ``orjson -> dicts (floor)``: ``orjson.loads(body)["data"]["data"]``, no typing.
2. ``voiceapi_async (cattrs)``: ``orjson.loads`` then ``VoiceConverter.structure_rows``.
3. ``msgspec -> equivalent typed Struct (ceiling)``: a frozen ``gc=False``
   ``msgspec.Struct`` with the same fields and output types as ``Call``: aware
   ``pendulum.DateTime`` timestamps and ``pendulum.Duration`` durations (built by a
   ``dec_hook``), ``Decimal`` charges and ``int`` pulsing. It is generous to msgspec:
   unknown keys are dropped rather than kept in ``extra`` and the open enums stay ``str``.
4. ``msgspec native types (not equivalent)``: naive ``datetime`` and ``str`` durations,
   for context only.

Rows 2 and 3 are checked to produce equal values for every record before any
timing. Each repeat times every contender once, in a rotated order, for at least
``--min-seconds`` of iterations; the best repeat counts. The table is printed and,
for a full run, written to ``benchmarks/results/convert.md``.

Usage::

    python benchmarks/bench_convert.py            # full run, writes the results file
    python benchmarks/bench_convert.py --quick    # smoke test, prints only
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pendulum
from _report import environment_lines, publish

import voiceapi_async
from voiceapi_async import Call

TIMEZONE = "Asia/Kolkata"
RECORDS_PER_PAGE = 100
SEED = 20240305
TARGET_RATIO = 0.5
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "convert.md"

STATUSES = ("ANSWER", "BUSY", "NOANSWER", "CANCEL", "RECEIVED", "MISSED", "COMPLETED")
ANSWERED = frozenset({"ANSWER", "RECEIVED", "COMPLETED"})
REGIONS = ("AP", "KA", "MH", "DL", "TN", "WB", "GJ", "UP")
PROVIDERS = ("RJ", "AT", "VI", "BS")
NAMES = ("Asha K", "Ravi Menon", "Priya S", "Imran Q", "Deepa R", "Vikram T")
NOTES = ("callback requested", "wrong number", "billing query", "left voicemail")
BASE_URL = "https://voice.example.test/api/v2/voice/calls"
OURS_LABEL = "voiceapi_async (cattrs)"
CEILING_LABEL = "msgspec → equivalent typed Struct (ceiling)"
LEGACY_KEYS = ("audio_length", "storage", "serial")
INPUTS = {
    "as served: legacy keys `audio_length`, `storage`, `serial` on every record": True,
    "spec fields only: no unknown keys, so both sides do the same work": False,
}


# --- the page -------------------------------------------------------------------------


def phone_number(rng: random.Random) -> str:
    return f"91{rng.randrange(6_000_000_000, 9_999_999_999)}"


def wire_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def call_seconds(rng: random.Random, status: str) -> int:
    if status not in ANSWERED:
        return 0
    if rng.random() < 0.15:
        return rng.randrange(3600, 3 * 3600)
    return rng.randrange(1, 1800)


def wire_charges(rng: random.Random, billed_seconds: int) -> str:
    ten_thousandths = billed_seconds * rng.randrange(2, 9) + rng.randrange(0, 100)
    return f"{ten_thousandths // 10_000}.{ten_thousandths % 10_000:04d}"


def wire_timestamp(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def make_record(
    rng: random.Random, serial: int, day: dt.datetime, *, legacy: bool
) -> dict[str, Any]:
    status = rng.choice(STATUSES)
    seconds = call_seconds(rng, status)
    pulse = rng.choice((30, 60))
    billed = -(-seconds // pulse) * pulse
    start = day + dt.timedelta(seconds=rng.randrange(86_400))
    has_audio = seconds > 0 and rng.random() < 0.6
    record_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    record = {
        "id": record_id,
        "call_from": phone_number(rng),
        "call_to": phone_number(rng),
        "service": rng.choice(("IN", "OUT")),
        "bridge": phone_number(rng) if rng.random() < 0.8 else None,
        "status": status,
        "duration": wire_duration(seconds),
        "billing": wire_duration(billed),
        "pulsing": str(pulse),
        "charges": wire_charges(rng, billed),
        "start_at": wire_timestamp(start),
        "end_at": None
        if status == "CANCEL"
        else wire_timestamp(start + dt.timedelta(seconds=seconds)),
        "hangup_by": rng.choice(("caller", "agent", None)),
        "dtmf": str(rng.randrange(1, 10)) if rng.random() < 0.3 else None,
        "location": "IN",
        "region": rng.choice(REGIONS),
        "provider": rng.choice(PROVIDERS),
        "notes": rng.choice(NOTES) if rng.random() < 0.25 else None,
        "audio": f"https://recordings.example.test/{record_id}.mp3" if has_audio else None,
        "audio_length": seconds if has_audio else None,
        "storage": "s3" if has_audio else None,
        "name": rng.choice(NAMES) if rng.random() < 0.5 else None,
        "serial": serial,
    }
    if not legacy:
        for key in LEGACY_KEYS:
            del record[key]
    return record


def make_page_body(
    count: int = RECORDS_PER_PAGE, seed: int = SEED, *, legacy: bool = True
) -> bytes:
    rng = random.Random(seed)
    day = dt.datetime(2024, 3, 5)
    records = [make_record(rng, serial, day, legacy=legacy) for serial in range(1, count + 1)]
    total = count * 3
    body = {
        "status": "OK",
        "data": {
            "current_page": 1,
            "data": records,
            "first_page_url": f"{BASE_URL}?page=1",
            "from": 1,
            "last_page": 3,
            "last_page_url": f"{BASE_URL}?page=3",
            "next_page_url": f"{BASE_URL}?page=2",
            "path": BASE_URL,
            "per_page": count,
            "prev_page_url": None,
            "to": count,
            "total": total,
        },
    }
    return orjson.dumps(body)


# --- the msgspec structs --------------------------------------------------------------


class CallStruct(msgspec.Struct, frozen=True, gc=False):
    """The ceiling: ``Call``'s fields with ``Call``'s output types (enums left as ``str``)."""

    id: str
    call_from: str
    call_to: str
    service: str | None
    bridge: str | None
    status: str
    duration: pendulum.Duration
    billing: pendulum.Duration
    pulsing: int
    charges: Decimal
    start_at: pendulum.DateTime | None
    end_at: pendulum.DateTime | None
    hangup_by: str | None
    dtmf: str | None
    location: str | None
    region: str | None
    provider: str | None
    notes: str | None
    name: str | None
    audio: str | None


class CallPageData(msgspec.Struct, frozen=True, gc=False):
    """The ceiling's paginator object: the records and the paging numbers ``Page`` keeps."""

    data: list[CallStruct]
    current_page: int
    last_page: int
    per_page: int
    total: int


class CallPage(msgspec.Struct, frozen=True, gc=False):
    """The ceiling's shape-B body."""

    data: CallPageData


class NativeCall(msgspec.Struct, frozen=True, gc=False):
    """Not equivalent: msgspec's own types (naive ``datetime``, ``str`` durations)."""

    id: str
    call_from: str
    call_to: str
    service: str | None
    bridge: str | None
    status: str
    duration: str
    billing: str
    pulsing: int
    charges: Decimal
    start_at: dt.datetime | None
    end_at: dt.datetime | None
    hangup_by: str | None
    dtmf: str | None
    location: str | None
    region: str | None
    provider: str | None
    notes: str | None
    name: str | None
    audio: str | None


class NativePageData(msgspec.Struct, frozen=True, gc=False):
    """The native row's paginator object."""

    data: list[NativeCall]
    current_page: int
    last_page: int
    per_page: int
    total: int


class NativePage(msgspec.Struct, frozen=True, gc=False):
    """The native row's shape-B body."""

    data: NativePageData


def duration_from_text(text: str) -> pendulum.Duration:
    hours, minutes, seconds = text.split(":")
    return pendulum.Duration(seconds=int(hours) * 3600 + int(minutes) * 60 + int(seconds))


def make_dec_hook(zone: Any) -> Callable[[type, Any], Any]:
    """Build the ceiling's ``dec_hook``: the fastest known pendulum constructions."""
    fromisoformat = dt.datetime.fromisoformat
    make_datetime = pendulum.DateTime
    durations: dict[str, pendulum.Duration] = {}

    def dec_hook(type_: type, value: Any) -> Any:
        if type_ is make_datetime:
            p = fromisoformat(value)
            return make_datetime(p.year, p.month, p.day, p.hour, p.minute, p.second, tzinfo=zone)
        if type_ is pendulum.Duration:
            duration = durations.get(value)
            if duration is None:
                duration = durations[value] = duration_from_text(value)
            return duration
        raise NotImplementedError(f"no decoder for {type_!r}")

    return dec_hook


# --- the contenders -------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One row of the table: a label and a function from page bytes to records."""

    label: str
    decode: Callable[[bytes], list[Any]]


def build_contenders() -> list[Contender]:
    converter = voiceapi_async.make_converter(TIMEZONE)
    ceiling = msgspec.json.Decoder(
        CallPage, dec_hook=make_dec_hook(converter.timezone), strict=False
    )
    native = msgspec.json.Decoder(NativePage, strict=False)
    loads = orjson.loads
    structure_rows = converter.structure_rows

    def orjson_dicts(body: bytes) -> list[Any]:
        rows: list[Any] = loads(body)["data"]["data"]
        return rows

    def voiceapi_cattrs(body: bytes) -> list[Any]:
        return structure_rows(loads(body)["data"]["data"], Call, path="$.data.data")

    def msgspec_ceiling(body: bytes) -> list[Any]:
        return ceiling.decode(body).data.data

    def msgspec_native(body: bytes) -> list[Any]:
        return native.decode(body).data.data

    return [
        Contender("orjson → dicts (floor)", orjson_dicts),
        Contender(OURS_LABEL, voiceapi_cattrs),
        Contender(CEILING_LABEL, msgspec_ceiling),
        Contender(
            "msgspec native types (naive datetime, str durations; not equivalent)", msgspec_native
        ),
    ]


# --- honesty check --------------------------------------------------------------------

ENUM_FIELDS = frozenset({"status", "hangup_by"})


def field_mismatch(name: str, ours: Any, theirs: Any) -> str | None:
    if ours != theirs:
        return f"{name}: {ours!r} != {theirs!r}"
    if name not in ENUM_FIELDS and type(ours) is not type(theirs):
        return f"{name}: type {type(ours).__name__} != {type(theirs).__name__}"
    if isinstance(ours, dt.datetime) and ours.isoformat() != theirs.isoformat():
        return f"{name}: wall time or offset differs: {ours.isoformat()} != {theirs.isoformat()}"
    return None


def record_mismatches(call: Call, struct: CallStruct) -> list[str]:
    found = [
        field_mismatch(name, getattr(call, name), getattr(struct, name))
        for name in CallStruct.__struct_fields__
    ]
    return [f"record {call.id}: {problem}" for problem in found if problem is not None]


def verify_equivalence(contenders: list[Contender], body: bytes) -> None:
    """Exit non-zero unless rows 2 and 3 agree on every field of every record."""
    results = [contender.decode(body) for contender in contenders]
    if any(len(records) != RECORDS_PER_PAGE for records in results):
        sys.exit(f"a contender returned {[len(r) for r in results]} records, not 100")
    calls, structs = results[1], results[2]
    problems = [p for c, s in zip(calls, structs, strict=True) for p in record_mismatches(c, s)]
    if problems:
        sys.exit("rows 2 and 3 disagree:\n" + "\n".join(problems[:20]))
    sample = calls[0]
    print(f"equivalence ok: {len(calls)} records, e.g. {sample.id} start_at={sample.start_at}")


# --- timing ---------------------------------------------------------------------------


def time_loops(decode: Callable[[bytes], list[Any]], body: bytes, loops: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(loops):
        decode(body)
    return time.perf_counter() - start


def calibrate_loops(decode: Callable[[bytes], list[Any]], body: bytes, min_seconds: float) -> int:
    """Return a loop count that takes at least ``min_seconds``."""
    loops = 1
    while True:
        elapsed = time_loops(decode, body, loops)
        if elapsed >= min_seconds:
            return loops
        if elapsed < min_seconds / 20:
            loops *= 10
        else:
            loops = int(loops * min_seconds / elapsed * 1.1) + 1


def rotated(items: list[Contender], shift: int) -> list[Contender]:
    shift %= len(items)
    return items[shift:] + items[:shift]


def best_seconds_per_page(
    contenders: list[Contender], body: bytes, repeats: int, min_seconds: float
) -> dict[str, float]:
    """Time every contender once per repeat, interleaved; keep each one's best."""
    loops = {c.label: calibrate_loops(c.decode, body, min_seconds) for c in contenders}
    best = dict.fromkeys(loops, float("inf"))
    for repeat in range(repeats):
        for contender in rotated(contenders, repeat):
            count = loops[contender.label]
            per_page = time_loops(contender.decode, body, count) / count
            best[contender.label] = min(best[contender.label], per_page)
    return best


# --- the report -----------------------------------------------------------------------


def results_table(best: dict[str, float]) -> str:
    ceiling_rate = RECORDS_PER_PAGE / best[CEILING_LABEL]
    lines = [
        "| # | contender | records/s | µs per record | x ceiling |",
        "|---|---|---:|---:|---:|",
    ]
    for number, (label, seconds) in enumerate(best.items(), start=1):
        rate = RECORDS_PER_PAGE / seconds
        micros = seconds / RECORDS_PER_PAGE * 1e6
        lines.append(
            f"| {number} | {label} | {rate:,.0f} | {micros:.2f} | {rate / ceiling_rate:.2f}x |"
        )
    return "\n".join(lines)


def verdict(best: dict[str, float]) -> str:
    ratio = best[CEILING_LABEL] / best[OURS_LABEL]
    met = "met" if ratio >= TARGET_RATIO else "NOT met"
    return f"voiceapi_async runs at **{ratio:.2f}x** the equivalent ceiling: target {met}."


def report_header(repeats: int, min_seconds: float) -> str:
    return "\n".join(
        [
            "# Convert benchmark: page bytes → typed `Call` records",
            "",
            *environment_lines(("cattrs", "attrs", "pendulum", "orjson", "msgspec")),
            f"- Input: one shape-B page of {RECORDS_PER_PAGE} generated call records "
            f"(seed {SEED}), in two variants below; time zone {TIMEZONE}",
            f"- Timing: best of {repeats} interleaved repeats, each ≥ {min_seconds} s "
            "of iterations per contender, GC enabled",
            f"- Target: voiceapi_async ≥ {TARGET_RATIO}x the equivalent ceiling (row 3)",
            "",
            "Rows:",
            "",
            "1. **floor**: `orjson.loads(body)['data']['data']`, plain dicts, no typing.",
            "2. **voiceapi_async**: `orjson.loads`, then `converter.structure_rows(rows, Call)`: "
            "aware `pendulum.DateTime`, `pendulum.Duration`, `Decimal`, `int`, open enums, "
            "unknown keys kept in `extra`.",
            "3. **ceiling**: `msgspec.json.Decoder(CallPage, dec_hook=..., strict=False)` into a "
            "frozen `gc=False` Struct with the same output types (checked equal to row 2 for "
            "every record before timing). Generous to msgspec: it drops the unknown keys "
            "instead of keeping them (input 1), and leaves status/hangup_by as `str`.",
            "4. **not equivalent**, context only: msgspec's own types (naive `datetime`, "
            "`str` durations).",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"where to write the table (default: {RESULTS_PATH}; --quick writes nothing)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repeats, min_seconds = (2, 0.05) if args.quick else (5, 0.3)
    output = args.output if args.output or args.quick else RESULTS_PATH
    contenders = build_contenders()
    sections = []
    for title, legacy in INPUTS.items():
        body = make_page_body(legacy=legacy)
        verify_equivalence(contenders, body)
        best = best_seconds_per_page(contenders, body, repeats, min_seconds)
        sections.append(
            f"## Input {len(sections) + 1}: {title} ({len(body):,} bytes)\n\n"
            f"{results_table(best)}\n\n{verdict(best)}"
        )
    report = "\n\n".join([report_header(repeats, min_seconds), *sections])
    publish(report, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

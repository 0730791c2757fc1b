"""Convert benchmark: one page of call-log JSON bytes to typed records, side by side.

Method, contenders and target: benchmarks/README.md, section "convert".
"""

from __future__ import annotations

import datetime as dt
import gc
import sys
import time
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

import _harness as harness
import msgspec
import orjson
import pendulum

from voiceapi_async import Call, CallStatus, HangupBy, make_converter

SEED = 20240305
DAY = dt.date(2024, 3, 5)
RECORDS = 100
TARGET_RATIO = 0.5
OURS = "voiceapi_async (cattrs)"
CEILING = "msgspec → equivalent typed Struct (ceiling)"
CALL_FIELDS = [name for name in typing.get_type_hints(Call) if name != "extra"]
INPUTS = {"Input 1: as served": False, "Input 2: spec fields only": True}


def page_body(*, spec_only: bool) -> bytes:
    """Return a shape-B page of the first ``RECORDS`` calls of ``DAY`` in the dataset."""
    rows = harness.dataset(seed=SEED, calls_per_day=2_000).day(DAY).calls[:RECORDS]
    if spec_only:
        rows = [{name: row[name] for name in CALL_FIELDS} for row in rows]
    paging = {"current_page": 1, "last_page": 20, "per_page": RECORDS, "total": 20 * RECORDS}
    return orjson.dumps({"status": "OK", "data": {**paging, "data": rows}})


def struct_like_call(name: str, swap: dict[Any, Any]) -> Any:
    """Return a frozen ``gc=False`` Struct with ``Call``'s fields, types swapped by ``swap``."""
    hints = typing.get_type_hints(Call)
    fields = [(field, swap.get(hints[field], hints[field])) for field in CALL_FIELDS]
    return msgspec.defstruct(name, fields, frozen=True, gc=False)


# The ceiling: Call's output types; generous to msgspec, the open enums stay str.
CallStruct = struct_like_call(
    "CallStruct", {CallStatus | str: str, HangupBy | str | None: str | None}
)
# Not equivalent: msgspec's own types (naive datetime, str durations).
NativeCall = struct_like_call(
    "NativeCall",
    {
        CallStatus | str: str,
        HangupBy | str | None: str | None,
        pendulum.Duration: str,
        pendulum.DateTime | None: dt.datetime | None,
    },
)


def page_type(record: Any) -> Any:
    """Return the shape-B body type whose ``data.data`` is a list of ``record``."""
    numbers = [(name, int) for name in ("current_page", "last_page", "per_page", "total")]
    data = msgspec.defstruct("PageData", [("data", list[record]), *numbers], frozen=True, gc=False)
    return msgspec.defstruct("Body", [("data", data)], frozen=True, gc=False)


def ceiling_hook(zone: Any) -> Callable[[type, Any], Any]:
    """Return the ceiling's ``dec_hook``: the fastest known pendulum constructions."""
    fromisoformat, make_datetime = dt.datetime.fromisoformat, pendulum.DateTime
    durations: dict[str, pendulum.Duration] = {}

    def dec_hook(type_: type, value: Any) -> Any:
        if type_ is make_datetime:
            p = fromisoformat(value)
            return make_datetime(p.year, p.month, p.day, p.hour, p.minute, p.second, tzinfo=zone)
        if type_ is pendulum.Duration:
            duration = durations.get(value)
            if duration is None:
                hours, minutes, seconds = map(int, value.split(":"))
                duration = pendulum.Duration(seconds=hours * 3600 + minutes * 60 + seconds)
                durations[value] = duration
            return duration
        raise NotImplementedError(f"no decoder for {type_!r}")

    return dec_hook


class Contender(NamedTuple):
    """One row of the table: a label and a function from page bytes to records."""

    label: str
    decode: Callable[[bytes], list[Any]]


def contenders() -> list[Contender]:
    converter, loads = make_converter(harness.TIMEZONE), orjson.loads
    hook = ceiling_hook(converter.timezone)
    ceiling = msgspec.json.Decoder(page_type(CallStruct), dec_hook=hook, strict=False)
    native = msgspec.json.Decoder(page_type(NativeCall), strict=False)
    return [
        Contender("orjson → dicts (floor)", lambda body: loads(body)["data"]["data"]),
        Contender(OURS, lambda body: converter.structure_rows(loads(body)["data"]["data"], Call)),
        Contender(CEILING, lambda body: ceiling.decode(body).data.data),
        Contender(
            "msgspec native types (naive datetime, str durations; not equivalent)",
            lambda body: native.decode(body).data.data,
        ),
    ]


def check_equivalence(rows: list[Contender], body: bytes) -> None:
    """Stop (exit 1) unless every row decodes every record, and rows 2 and 3 agree exactly."""
    results = [contender.decode(body) for contender in rows]
    if any(len(records) != RECORDS for records in results):
        raise SystemExit(f"records decoded: {[len(r) for r in results]}, not {RECORDS} each")
    problems = []
    for call, struct in zip(results[1], results[2], strict=True):
        for name in CALL_FIELDS:
            ours, theirs = getattr(call, name), getattr(struct, name)
            same_type = name in ("status", "hangup_by") or type(ours) is type(theirs)
            if ours != theirs or not same_type or str(ours) != str(theirs):
                problems.append(f"record {call.id}: {name}: {ours!r} != {theirs!r}")
    if problems:
        raise SystemExit("rows 2 and 3 disagree:\n" + "\n".join(problems[:20]))


def seconds_per_page(decode: Callable[[bytes], list[Any]], body: bytes, loops: int) -> float:
    gc.collect()  # each measure starts clean; GC stays enabled
    started = time.perf_counter()
    for _ in range(loops):
        decode(body)
    return (time.perf_counter() - started) / loops


def calibrate(decode: Callable[[bytes], list[Any]], body: bytes, min_seconds: float) -> int:
    """Return a loop count that takes at least ``min_seconds``."""
    loops = 1
    while (elapsed := seconds_per_page(decode, body, loops) * loops) < min_seconds:
        grow = 10 if elapsed < min_seconds / 20 else min_seconds / elapsed * 1.1
        loops = int(loops * grow) + 1
    return loops


def measure(title: str, spec_only: bool, rounds: int, min_seconds: float) -> str:
    """Time every contender in interleaved rounds; return the input's section."""
    body, rows = page_body(spec_only=spec_only), contenders()
    check_equivalence(rows, body)
    loops = {row.label: calibrate(row.decode, body, min_seconds) for row in rows}
    runs = harness.interleave(
        rows,
        rounds,
        lambda row: seconds_per_page(row.decode, body, loops[row.label]),
        lambda seconds: f"{seconds / RECORDS * 1e6:.2f} µs a record",
    )
    best = {label: min(found) for label, found in runs.items()}
    lines = [
        f"{number} | {label} | {RECORDS / seconds:,.0f} | {seconds / RECORDS * 1e6:.2f} "
        f"| {best[CEILING] / seconds:.2f}x"
        for number, (label, seconds) in enumerate(best.items(), start=1)
    ]
    ratio = best[CEILING] / best[OURS]
    verdict = harness.verdict(
        f"voiceapi_async runs at **{ratio:.2f}x** the equivalent ceiling; target ≥ {TARGET_RATIO}x",
        ratio >= TARGET_RATIO,
    )
    table = harness.table("# | contender | records/s | µs per record | x ceiling", lines, left=2)
    return f"## {title} ({len(body):,} bytes)\n\n{table}\n\n{verdict}"


def main() -> int:
    args = harness.arguments(__doc__, rounds=5, quick_rounds=2)
    min_seconds = 0.05 if args.quick else 0.3
    sections = [measure(title, only, args.rounds, min_seconds) for title, only in INPUTS.items()]
    facts = [
        f"- Input: one shape-B page of {RECORDS} calls from `voiceapi_async.testing.Dataset` "
        f"(seed {SEED}, {DAY}), time zone {harness.TIMEZONE}",
        f"- Timing: best of {args.rounds} interleaved rounds, each ≥ {min_seconds} s of "
        "iterations per contender, GC enabled",
    ]
    packages = ("cattrs", "attrs", "pendulum", "orjson", "msgspec")
    harness.publish(__doc__, facts, sections, packages=packages, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

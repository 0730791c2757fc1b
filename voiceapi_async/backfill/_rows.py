"""Records as export rows: typed, flat, and the same for every sink."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from voiceapi_async._models import Call, Recording, Report

CALL_COLUMNS = (
    "id",
    "call_from",
    "call_to",
    "service",
    "bridge",
    "status",
    "duration_seconds",
    "billing_seconds",
    "pulsing",
    "charges",
    "start_at",
    "end_at",
    "hangup_by",
    "dtmf",
    "location",
    "region",
    "provider",
    "notes",
    "name",
    "audio",
    "extra",
)
RECORDING_COLUMNS = (
    "id",
    "call_from",
    "call_to",
    "audio",
    "duration_seconds",
    "agent",
    "created_at",
    "extra",
)
COLUMNS: Mapping[Report, tuple[str, ...]] = {
    Report.CALLS: CALL_COLUMNS,
    Report.RECORDINGS: RECORDING_COLUMNS,
}
"""The export columns of each report, in order."""
JSON_COLUMNS = frozenset({"extra", "agent"})
"""Columns holding raw JSON (text in CSV and Parquet)."""


def call_row(call: Call) -> dict[str, Any]:
    """Return a call as an export row: native types, timestamps aware, durations in seconds."""
    return {
        "id": call.id,
        "call_from": call.call_from,
        "call_to": call.call_to,
        "service": call.service,
        "bridge": call.bridge,
        "status": str(call.status),
        "duration_seconds": int(call.duration.total_seconds()),
        "billing_seconds": int(call.billing.total_seconds()),
        "pulsing": call.pulsing,
        "charges": call.charges,
        "start_at": call.start_at,
        "end_at": call.end_at,
        "hangup_by": None if call.hangup_by is None else str(call.hangup_by),
        "dtmf": call.dtmf,
        "location": call.location,
        "region": call.region,
        "provider": call.provider,
        "notes": call.notes,
        "name": call.name,
        "audio": call.audio,
        "extra": dict(call.extra),
    }


def recording_row(recording: Recording) -> dict[str, Any]:
    """Return a recording as an export row."""
    return {
        "id": recording.id,
        "call_from": recording.call_from,
        "call_to": recording.call_to,
        "audio": recording.audio,
        "duration_seconds": int(recording.duration.total_seconds()),
        "agent": recording.agent,
        "created_at": recording.created_at,
        "extra": dict(recording.extra),
    }


def export_rows(records: Sequence[Call | Recording]) -> list[dict[str, Any]]:
    """Return a window's rows sorted by the filtered timestamp, then id (stable output)."""
    rows = [call_row(r) if isinstance(r, Call) else recording_row(r) for r in records]
    rows.sort(key=_order)
    return rows


def _order(row: Mapping[str, Any]) -> tuple[dt.datetime, str]:
    moment = row.get("end_at", row.get("created_at"))
    return (moment or _EPOCH, row["id"])


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def json_text(value: Any) -> str:
    """Encode raw JSON compactly with sorted keys (stable bytes)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    """Return a row with timestamps as ISO 8601 text and decimals as exact strings."""
    return {key: _plain(value) for key, value in row.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return int(value.total_seconds())
    if isinstance(value, Decimal):
        return str(value)
    return value

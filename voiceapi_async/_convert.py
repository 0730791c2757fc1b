"""The one cattrs converter: wire JSON in, typed records out, and back again.

Every wire-format rule lives here, not on the models: ``HH:MM:SS`` durations
(hours may exceed 23) or plain seconds, decimal charges, numeric-string pulses,
naive timestamps read in the account's time zone, open enums, and unknown keys
kept in ``extra``.

Three paths, fastest first: a generated fast path per record class
(``_fastpath.py``) for rows in the common wire types; the cattrs-generated hook
with one strict hook per field, which is the reference and handles the rest (a
numeric id, an aware timestamp); and a slow per-field diagnosis that runs only to
explain a failure as a :class:`RecordError`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, cast

import attrs
import pendulum
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import OrjsonConverter, configure_converter

from voiceapi_async._errors import RecordError
from voiceapi_async._fastpath import FieldRule, Kind, compile_structure
from voiceapi_async._models import Call, CallStatus, HangupBy, Recording
from voiceapi_async._windows import Timezone, TimezoneLike, resolve_timezone

T = TypeVar("T")
StructureHook = Callable[[Any, Any], Any]

_DURATION_CACHE: dict[str | int, pendulum.Duration] = {}
_DURATION_CACHE_MAX = 16_384


def parse_duration(value: str | int) -> pendulum.Duration:
    """Parse ``HH:MM:SS`` (hours may exceed 23) or plain seconds (``"23"`` or ``23``).

    Raises:
        ValueError: the text is neither form, or the duration is negative.
    """
    cached = _DURATION_CACHE.get(value)
    if cached is not None:
        return cached
    seconds = _duration_seconds(value)
    duration = pendulum.Duration(seconds=seconds)
    if len(_DURATION_CACHE) >= _DURATION_CACHE_MAX:
        _DURATION_CACHE.clear()
    _DURATION_CACHE[value] = duration
    return duration


def _duration_seconds(value: str | int) -> int:
    if type(value) is int:
        seconds = value
    elif isinstance(value, str):
        parts = value.split(":")
        try:
            if len(parts) == 1:
                seconds = int(parts[0])
            elif len(parts) == 3 and all(p.strip().isdigit() for p in parts):
                hours, minutes, secs = (int(p) for p in parts)
                if minutes > 59 or secs > 59:
                    raise ValueError
                seconds = hours * 3600 + minutes * 60 + secs
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{value!r} is not a duration: expected HH:MM:SS or whole seconds"
            ) from None
    else:
        raise TypeError(f"expected a duration string, got {type(value).__name__}")
    if seconds < 0:
        raise ValueError(f"{value!r} is a negative duration")
    return seconds


def format_duration(value: dt.timedelta) -> str:
    """Format a duration as the wire's ``HH:MM:SS`` (hours may exceed 23)."""
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _structure_duration(value: Any, _: Any) -> pendulum.Duration:
    duration = _DURATION_CACHE.get(value)
    return parse_duration(value) if duration is None else duration


def _structure_decimal(value: Any, _: Any) -> Decimal:
    if type(value) is str or type(value) is int:
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
        if number.is_finite():
            return number
    raise ValueError(f"{value!r} is not a finite decimal number (expected a string like '0.0150')")


def _structure_int(value: Any, _: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str:
        try:
            return int(value)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a whole number")


def _structure_str(value: Any, _: Any) -> str:
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__} {value!r}")


def _structure_optional_str(value: Any, _: Any) -> str | None:
    if type(value) is str or value is None:
        return value
    if type(value) is int:
        return str(value)
    raise TypeError(f"expected a string or null, got {type(value).__name__} {value!r}")


def _open_enum(enum_cls: type[enum.StrEnum], *, nullable: bool) -> StructureHook:
    members: dict[str, enum.StrEnum] = {member.value: member for member in enum_cls}

    def structure(value: Any, _: Any) -> enum.StrEnum | str | None:
        if type(value) is str:
            return members.get(value, value)
        if value is None and nullable:
            return None
        raise TypeError(f"expected a string, got {type(value).__name__} {value!r}")

    return structure


def _timestamp_hook(zone: Timezone, *, nullable: bool) -> StructureHook:
    """Return a hook reading a naive wire timestamp as wall time in ``zone``."""
    fromisoformat = dt.datetime.fromisoformat
    make = pendulum.DateTime

    def structure(value: Any, _: Any) -> pendulum.DateTime | None:
        if type(value) is str:
            try:
                parsed = fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a timestamp like '2019-06-11 05:57:24'"
                ) from None
            if parsed.tzinfo is not None:
                return pendulum.instance(parsed).in_timezone(zone)
            return make(
                parsed.year,
                parsed.month,
                parsed.day,
                parsed.hour,
                parsed.minute,
                parsed.second,
                parsed.microsecond,
                tzinfo=zone,
            )
        if value is None and nullable:
            return None
        raise TypeError(f"expected a timestamp string, got {type(value).__name__} {value!r}")

    return structure


def row_id(row: Mapping[str, Any]) -> str | None:
    """Return a raw row's record id as the records carry it, or ``None`` if it has none.

    Text ids stay as they are; numeric ids become text (``17`` and ``"17"`` are one id).
    """
    value = row.get("id")
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    return None


class VoiceConverter(OrjsonConverter):
    """The cattrs converter for one account's time zone.

    Use :func:`make_converter` to build one, :meth:`structure_rows` to turn a page's
    rows into records and ``unstructure`` to get the wire form back.
    """

    timezone: Timezone
    """The account's time zone: naive timestamps are read and written in it."""

    def __init__(self, timezone: Timezone) -> None:
        super().__init__(detailed_validation=False, forbid_extra_keys=False)
        self.timezone = timezone
        self.field_hooks: dict[type[Any], dict[str, StructureHook]] = {}
        self.strict_hooks: dict[type[Any], StructureHook] = {}

    def structure_rows(
        self,
        rows: Sequence[Any],
        cls: type[T],
        *,
        path: str = "$.data",
        secrets: Sequence[str] = (),
    ) -> list[T]:
        """Structure a page's rows into ``cls`` records.

        Raises:
            RecordError: naming the first bad record's id and the field path, like
                ``$.data[3].charges``; ``secrets`` are masked in it. It chains nothing.
        """
        hook = self.get_structure_hook(cls)
        try:
            return [hook(row, cls) for row in rows]
        except Exception as exc:  # diagnosed below, outside this block: nothing is chained
            failure = type(exc).__name__
        for index, row in enumerate(rows):
            self.structure_one(row, cls, path=f"{path}[{index}]", secrets=secrets)
        raise RecordError(  # pragma: no cover - the diagnosis finds every failure
            f"the rows cannot be structured ({failure})", record_id=None, path=path
        )

    def structure_one(
        self, row: Any, cls: type[T], *, path: str = "$", secrets: Sequence[str] = ()
    ) -> T:
        """Structure one record, explaining any failure as a :class:`RecordError`.

        The error names the record id, the field path and what was wrong, with
        ``secrets`` and presigned-URL signatures masked; it chains no exception,
        since the original holds the raw value.
        """
        if not isinstance(row, Mapping):
            raise RecordError(
                f"expected a record object, got {type(row).__name__}", record_id=None, path=path
            )
        record_id = row_id(row)
        hooks = self.field_hooks[cls]
        problem: tuple[str, str] | None = None
        for field in attrs.fields(cast(Any, cls)):
            if field.name == "extra":
                continue
            if field.name not in row:
                problem = (f"missing required field {field.name!r}", f"{path}.{field.name}")
                break
            try:
                hooks[field.name](row[field.name], field.type)
            except Exception as exc:
                problem = (f"bad {field.name}: {exc}", f"{path}.{field.name}")
                break
        else:
            try:
                result: T = self.get_structure_hook(cls)(row, cls)
            except Exception as exc:  # pragma: no cover - every field passed on its own
                problem = (f"{type(exc).__name__}: {exc}", path)
            else:
                return result
        # Raised here, outside the except blocks, so that no raw value is chained.
        assert problem is not None
        message, where = problem
        raise RecordError(message, record_id=record_id, path=where, secrets=secrets)

    def format_datetime(self, value: dt.datetime) -> str:
        """Format a timestamp as the wire's naive ``YYYY-MM-DD HH:MM:SS`` in the account zone."""
        if value.tzinfo is not self.timezone:
            value = value.astimezone(self.timezone)
        return value.strftime("%Y-%m-%d %H:%M:%S")

    def _register_record(
        self,
        cls: type[Any],
        rules: Mapping[str, FieldRule],
        hooks: Mapping[str, StructureHook],
        unstructure: Mapping[str, Any],
    ) -> None:
        self.field_hooks[cls] = dict(hooks)
        overrides = {name: override(struct_hook=hook) for name, hook in hooks.items()}
        strict = make_dict_structure_fn(
            cls, self, extra=override(omit=True), **cast(dict[str, Any], overrides)
        )
        self.strict_hooks[cls] = strict
        fast = compile_structure(
            cls, rules, hooks, strict, duration_cache=_DURATION_CACHE, timezone=self.timezone
        )
        base_unstructure = make_dict_unstructure_fn(
            cls,
            self,
            extra=override(omit=True),
            **cast(
                dict[str, Any], {name: override(unstruct_hook=h) for name, h in unstructure.items()}
            ),
        )

        def unstructure_record(record: Any) -> dict[str, Any]:
            wire: dict[str, Any] = base_unstructure(record)
            if record.extra:
                wire.update(record.extra)
            return wire

        self.register_structure_hook(cls, fast)
        self.register_unstructure_hook(cls, unstructure_record)


_TEXT = FieldRule(Kind.TEXT)
_OPTIONAL_TEXT = FieldRule(Kind.OPTIONAL_TEXT)
_DURATION = FieldRule(Kind.DURATION)
_OPTIONAL_TIMESTAMP = FieldRule(Kind.OPTIONAL_TIMESTAMP)
_CALL_RULES: Mapping[str, FieldRule] = {
    "id": _TEXT,
    "call_from": _TEXT,
    "call_to": _TEXT,
    "service": _OPTIONAL_TEXT,
    "bridge": _OPTIONAL_TEXT,
    "status": FieldRule(Kind.ENUM, {m.value: m for m in CallStatus}),
    "duration": _DURATION,
    "billing": _DURATION,
    "pulsing": FieldRule(Kind.INT),
    "charges": FieldRule(Kind.DECIMAL),
    "start_at": _OPTIONAL_TIMESTAMP,
    "end_at": _OPTIONAL_TIMESTAMP,
    "hangup_by": FieldRule(Kind.OPTIONAL_ENUM, {m.value: m for m in HangupBy}),
    "dtmf": _OPTIONAL_TEXT,
    "location": _OPTIONAL_TEXT,
    "region": _OPTIONAL_TEXT,
    "provider": _OPTIONAL_TEXT,
    "notes": _OPTIONAL_TEXT,
    "name": _OPTIONAL_TEXT,
    "audio": _OPTIONAL_TEXT,
}
_RECORDING_RULES: Mapping[str, FieldRule] = {
    "id": _TEXT,
    "call_from": _TEXT,
    "call_to": _TEXT,
    "audio": _OPTIONAL_TEXT,
    "duration": _DURATION,
    "agent": FieldRule(Kind.RAW),
    "created_at": FieldRule(Kind.TIMESTAMP),
}


def _text_hooks(rules: Mapping[str, FieldRule]) -> dict[str, StructureHook]:
    return {
        name: _structure_str if rule.kind is Kind.TEXT else _structure_optional_str
        for name, rule in rules.items()
        if rule.kind in (Kind.TEXT, Kind.OPTIONAL_TEXT)
    }


def make_converter(timezone: TimezoneLike) -> VoiceConverter:
    """Build the converter for an account whose naive timestamps are in ``timezone``."""
    zone = resolve_timezone(timezone)
    converter = VoiceConverter(zone)
    configure_converter(converter)

    timestamp = _timestamp_hook(zone, nullable=False)
    optional_timestamp = _timestamp_hook(zone, nullable=True)

    def passthrough(value: Any, _: Any) -> Any:
        return value

    def format_timestamp(value: dt.datetime | None) -> str | None:
        return None if value is None else converter.format_datetime(value)

    call_status = _open_enum(CallStatus, nullable=False)
    hangup_by = _open_enum(HangupBy, nullable=True)
    converter._register_record(
        Call,
        _CALL_RULES,
        {
            **_text_hooks(_CALL_RULES),
            "status": call_status,
            "duration": _structure_duration,
            "billing": _structure_duration,
            "pulsing": _structure_int,
            "charges": _structure_decimal,
            "start_at": optional_timestamp,
            "end_at": optional_timestamp,
            "hangup_by": hangup_by,
        },
        {
            "status": str,
            "duration": format_duration,
            "billing": format_duration,
            "pulsing": str,
            "charges": str,
            "start_at": format_timestamp,
            "end_at": format_timestamp,
            "hangup_by": lambda value: None if value is None else str(value),
        },
    )
    converter._register_record(
        Recording,
        _RECORDING_RULES,
        {
            **_text_hooks(_RECORDING_RULES),
            "duration": _structure_duration,
            "agent": passthrough,
            "created_at": timestamp,
        },
        {
            "duration": format_duration,
            "agent": lambda value: value,
            "created_at": format_timestamp,
        },
    )
    return converter

"""A generated fast path for structuring one record kind.

cattrs' generated code calls one Python hook per field. For the hot path this
module generates a single function per record class instead: every field is read
once, text fields are type-checked inline, open enums and cached durations are
plain dictionary lookups, the record is built with positional arguments, and
unknown keys are found through a cache of key layouts. Whenever a value is not
the common wire type (a numeric id, say) the function hands the row to the
strict cattrs-generated hook, which stays the reference for every rule.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import linecache
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import pendulum


class Kind(enum.Enum):
    """How a field travels on the wire."""

    TEXT = "text"
    OPTIONAL_TEXT = "optional text"
    ENUM = "enum"
    OPTIONAL_ENUM = "optional enum"
    DURATION = "duration"
    INT = "int"
    """A whole number, as a JSON number or a numeric string."""
    DECIMAL = "decimal"
    """A decimal string such as ``"0.0150"``."""
    TIMESTAMP = "timestamp"
    OPTIONAL_TIMESTAMP = "optional timestamp"
    RAW = "raw"
    """Kept exactly as decoded (raw JSON)."""


@attrs.frozen
class FieldRule:
    """The wire rule of one field: its kind, and the members of an open enum."""

    kind: Kind
    members: Mapping[str, Any] = attrs.field(factory=dict)


_CHECKS = {
    Kind.TEXT: "type({v}) is str",
    Kind.ENUM: "type({v}) is str",
    Kind.OPTIONAL_TEXT: "({v} is None or type({v}) is str)",
    Kind.OPTIONAL_ENUM: "({v} is None or type({v}) is str)",
    Kind.INT: "(type({v}) is str or type({v}) is int)",
    Kind.DECIMAL: "type({v}) is str",
    Kind.TIMESTAMP: "type({v}) is str",
    Kind.OPTIONAL_TIMESTAMP: "({v} is None or type({v}) is str)",
}
LAYOUT_CACHE_MAX = 256


def compile_structure(
    cls: type[Any],
    rules: Mapping[str, FieldRule],
    hooks: Mapping[str, Callable[[Any, Any], Any]],
    strict: Callable[[Any, Any], Any],
    *,
    duration_cache: Mapping[Any, Any],
    timezone: dt.tzinfo,
) -> Callable[[Mapping[str, Any], Any], Any]:
    """Generate the fast structure function for ``cls``.

    Args:
        cls: an attrs class whose last field is ``extra`` (the unknown keys).
        rules: the wire rule of every other field.
        hooks: the strict structure hook of every field.
        strict: the cattrs-generated hook for ``cls``, used when a check fails.
        duration_cache: parsed durations by wire text, consulted before the hook.
        timezone: the zone naive timestamps are read in.
    """
    names = [field.name for field in attrs.fields(cls) if field.name != "extra"]
    known = frozenset(names)
    layouts: dict[int, tuple[str, ...]] = {}

    def extra_of(row: Mapping[str, Any]) -> dict[str, Any]:
        # The generated code first tries the unknown keys remembered for rows of
        # this length. Every known key is present (the row was read in full), so
        # when those keys are all present too, they are exactly its unknown keys.
        keys = tuple(key for key in row if key not in known)
        if len(layouts) < LAYOUT_CACHE_MAX:
            layouts[len(row)] = keys
        return {key: row[key] for key in keys}

    scope: dict[str, Any] = {
        "cls": cls,
        "build": compile_builder(cls),
        "strict": strict,
        "extra_of": extra_of,
        "layouts": layouts,
        "set_attribute": object.__setattr__,
        "cached_duration": duration_cache.get,
        "fromisoformat": dt.datetime.fromisoformat,
        "make_datetime": pendulum.DateTime,
        "zone": timezone,
        "Decimal": decimal.Decimal,
        "NO_EXTRA": _no_extra(cls),
    }
    body, checks, arguments = [], [], []
    for index, name in enumerate(names):
        kind, value = rules[name].kind, f"v{index}"
        scope[f"hook{index}"] = hooks[name]
        body.append(f"    {value} = o[{name!r}]")
        if kind in _CHECKS:
            checks.append(_CHECKS[kind].format(v=value))
        if kind in (Kind.ENUM, Kind.OPTIONAL_ENUM):
            scope[f"members{index}"] = dict(rules[name].members).get
            arguments.append(f"members{index}({value}, {value})")
        elif kind is Kind.DURATION:
            arguments.append(f"(cached_duration({value}) or hook{index}({value}, None))")
        elif kind is Kind.INT:
            arguments.append(f"int({value})")
        elif kind is Kind.DECIMAL:
            arguments.append(f"x{index}")
        elif kind in (Kind.TIMESTAMP, Kind.OPTIONAL_TIMESTAMP):
            arguments.append(f"t{index}")
        else:
            arguments.append(value)
    steps = []
    for index, name in enumerate(names):
        kind = rules[name].kind
        if kind is Kind.DECIMAL:
            steps += [
                f"        x{index} = Decimal(v{index})",
                f"        if not x{index}.is_finite():",
                f"            x{index} = hook{index}(v{index}, None)",
            ]
        elif kind in (Kind.TIMESTAMP, Kind.OPTIONAL_TIMESTAMP):
            steps += _timestamp_steps(index, optional=kind is Kind.OPTIONAL_TIMESTAMP)
    source = "\n".join(
        [
            "def structure(o, _=None):",
            *body,
            f"    if len(o) == {len(names)}:",
            "        extra = NO_EXTRA",
            "    else:",
            "        try:",
            "            extra = {key: o[key] for key in layouts[len(o)]}",
            "        except KeyError:",
            "            extra = extra_of(o)",
            f"    if {' and '.join(checks) or 'True'}:",
            *steps,
            f"        return build({', '.join(arguments)}, extra)",
            "    record = strict(o, cls)",
            "    if extra:",
            "        set_attribute(record, 'extra', extra)",
            "    return record",
        ]
    )
    filename = f"<voiceapi_async fast structure {cls.__qualname__}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), scope)
    structure: Callable[[Mapping[str, Any], Any], Any] = scope["structure"]
    return structure


def compile_builder(cls: type[Any]) -> Callable[..., Any]:
    """Return a positional constructor for a frozen slotted attrs class.

    It fills the slots through their descriptors, which is what the attrs-generated
    ``__init__`` does through ``object.__setattr__``, minus the name lookups. A class
    with validators, converters or a post-init hook gets its own ``__init__`` instead.
    """
    fields = attrs.fields(cls)
    if (
        not attrs.has(cls)
        or "__slots__" not in cls.__dict__
        or hasattr(cls, "__attrs_post_init__")
        or any(field.validator or field.converter for field in fields)
    ):
        return cls
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    lines = [f"def build({', '.join(f'a{i}' for i in range(len(fields)))}):", "    o = new(cls)"]
    for index, field in enumerate(fields):
        scope[f"set{index}"] = cls.__dict__[field.name].__set__
        lines.append(f"    set{index}(o, a{index})")
    lines.append("    return o")
    exec("\n".join(lines), scope)
    build: Callable[..., Any] = scope["build"]
    return build


def _timestamp_steps(index: int, *, optional: bool) -> list[str]:
    """Return the lines reading a naive timestamp ``v{index}`` into ``t{index}``."""
    value, result, parsed = f"v{index}", f"t{index}", f"p{index}"
    read = [
        f"{parsed} = fromisoformat({value})",
        f"if {parsed}.tzinfo is None:",
        f"    {result} = make_datetime({parsed}.year, {parsed}.month, {parsed}.day,"
        f" {parsed}.hour, {parsed}.minute, {parsed}.second, {parsed}.microsecond, zone)",
        "else:",
        f"    {result} = hook{index}({value}, None)",
    ]
    if optional:
        read = [f"if {value} is None:", f"    {result} = None", "else:"] + [
            f"    {line}" for line in read
        ]
    return [f"        {line}" for line in read]


def _no_extra(cls: type[Any]) -> Any:
    default = attrs.fields_dict(cls)["extra"].default
    if default is attrs.NOTHING or isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        raise TypeError(f"{cls.__name__}.extra needs a plain, immutable default")
    return default

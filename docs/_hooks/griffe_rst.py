"""A griffe extension: render the docstrings' reStructuredText markup as Markdown.

The package's docstrings are Google style with a few reStructuredText habits that
read well in the source: roles (``:class:`~voiceapi_async.VoiceClient```), literal
blocks after ``::`` and one simple table. mkdocstrings renders docstrings as Markdown,
so this extension rewrites those habits when the package is loaded for the docs:

- a role becomes a cross-reference to the public name it resolves to (through the
  aliases in ``__all__``), or plain code when the target is private;
- a paragraph's trailing ``::`` becomes ``:`` (the indented block after it is a
  Markdown code block already);
- a simple table (rules of ``=``) becomes a Markdown table.

The docstrings stay as they are; only the rendered pages change.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

PUBLIC_MODULES = (
    "voiceapi_async",
    "voiceapi_async.export",
    "voiceapi_async.backfill",
    "voiceapi_async.testing",
    "voiceapi_async.contrib.fastapi",
)
"""The modules the API reference renders; a role links only to their names."""

_ROLE = re.compile(r":(?:class|func|meth|data|attr|mod|exc|obj):`(?P<target>[^`]+)`")
_ANY_ROLE = re.compile(r":[a-z]+(?::[a-z]+)*:`")
_LITERAL = re.compile(r"(?P<text>\S?)(?P<space>\s*)::$")
_TABLE_RULE = re.compile(r"^=+(?:\s+=+)+\s*$")


class RstToMarkdown(griffe.Extension):
    """Rewrite reStructuredText roles, literal markers and tables in docstrings."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite every docstring of the package once it is loaded."""
        if pkg.path != "voiceapi_async":
            return
        public = _public_names(pkg)
        for obj in _walk(pkg):
            if obj.docstring is None:
                continue
            obj.docstring.value = _markdown(obj.docstring.value, obj, public)
            left = _ANY_ROLE.search(obj.docstring.value)
            if left:  # mkdocs --strict fails on griffe's warnings
                griffe.logger.warning(
                    f"{obj.relative_filepath}:{obj.docstring.lineno}: "
                    f"a reStructuredText role this extension does not know: {left[0]}"
                )


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    """Return ``obj`` and every object defined under it (never aliases)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_walk(member))  # type: ignore[arg-type]
    return found


def _public_names(pkg: griffe.Module) -> dict[str, str]:
    """Map each public object's canonical path to the path the reference shows it at."""
    public: dict[str, str] = {}
    for module_path in PUBLIC_MODULES:
        module = pkg.modules_collection[module_path]
        public[module.path] = module_path
        for name in module.exports or ():
            member = module.members.get(str(name))
            if member is None:
                continue
            target = member.final_target if member.is_alias else member
            public.setdefault(target.path, f"{module_path}.{name}")
    return public


def _public_path(path: str, public: dict[str, str]) -> str | None:
    """Return the shown path of ``path`` or of a member of a public object, if any."""
    head, rest = path, ""
    while head:
        if head in public:
            return public[head] + rest
        head, _, tail = head.rpartition(".")
        rest = f".{tail}{rest}"
    return None


def _resolve(name: str, scope: griffe.Object) -> str | None:
    """Return the canonical path of what ``name`` means where it is written, if documented.

    None when the name does not resolve, or names an object without a docstring
    (mkdocstrings does not render those, so a link would have no target).
    """
    if name.startswith("voiceapi_async."):
        path = name
    else:
        first, dot, rest = name.partition(".")
        try:
            path = scope.resolve(first) + dot + rest
        except griffe.NameResolutionError:
            return None
    try:
        target = scope.modules_collection[path]
    except KeyError:
        return None
    if target.is_alias:
        target = target.final_target
    return target.path if target.docstring is not None else None


def _markdown(text: str, scope: griffe.Object, public: dict[str, str]) -> str:
    """Return ``text`` with its reStructuredText habits written as Markdown."""

    def role(match: re.Match[str]) -> str:
        target = match["target"]
        name = target.lstrip("~")
        shown = name.rpartition(".")[2] if target.startswith("~") else name
        path = _resolve(name, scope)
        link = None if path is None else _public_path(path, public)
        return f"[`{shown}`][{link}]" if link else f"`{shown}`"

    out: list[str] = []
    table: list[str] | None = None
    for line in _ROLE.sub(role, text).split("\n"):
        if _TABLE_RULE.match(line):
            table = [] if table is None else table
            table.append(line)
            if len(table) > 1 and sum(bool(_TABLE_RULE.match(row)) for row in table) == 3:
                out.extend(_table(table))
                table = None
        elif table is not None:
            table.append(line)
        else:
            literal = _LITERAL.search(line)
            if literal:
                ending = ":" if literal["text"] else ""
                line = line[: literal.start()] + literal["text"] + ending
            out.append(line)
    return "\n".join(out + (table or []))


def _table(lines: list[str]) -> list[str]:
    """Return a simple table (three rules: top, under the header, bottom) in Markdown.

    Cells are split on runs of two or more spaces; a table that does not split into
    as many cells as it has columns stays preformatted.
    """
    columns = len(lines[0].split())
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines if not _TABLE_RULE.match(line)]
    if not rows or any(len(row) != columns for row in rows):
        return ["```text", *lines, "```"]
    header, *body = rows
    return [
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * columns,
        *("| " + " | ".join(row) + " |" for row in body),
        "",
    ]

"""Public names that load on first use (PEP 562), for a package's ``__init__``."""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, without importing typing (most of a cold import's cost)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, MutableMapping
    from typing import Any


def lazy_names(
    package: str,
    sources: Mapping[str, str],
    namespace: MutableMapping[str, Any],
    public: Iterable[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a package's ``__getattr__`` and ``__dir__`` for names loaded on first use.

    ``sources`` maps each public name to its module, relative to ``package``. A name,
    once loaded, is kept in ``namespace`` (the package's globals), so it loads once.
    """
    names = frozenset(public)

    def load(name: str) -> Any:
        """Import a public name's module on first use and keep the name in the package."""
        import importlib

        module = sources.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def listing() -> list[str]:
        """List the public names (loaded or not) beside the package's own attributes."""
        return sorted({*namespace, *names})

    return load, listing

"""Importing the package is cheap: public names load on first use (PEP 562)."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import voiceapi_async
import voiceapi_async.testing

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("aiohttp", "pendulum", "cattrs", "pyarrow", "attrs", "orjson", "rich", "click")
"""Third-party packages an import of the package (or its pytest plugin) must not load."""


def modules_after(statement: str) -> set[str]:
    """Return the modules a fresh interpreter holds after running ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.partition(".")[0] in HEAVY)


def test_importing_the_package_loads_no_dependency() -> None:
    """``import voiceapi_async`` loads itself, its version and its loader: no aiohttp, no typing."""
    modules = modules_after("import voiceapi_async")
    assert heavy(modules) == []
    added = modules - modules_after("pass")
    ours = {name for name in added if name.partition(".")[0] not in sys.stdlib_module_names}
    assert sorted(ours) == ["voiceapi_async", "voiceapi_async._lazy", "voiceapi_async._version"]
    assert not added & {"typing", "asyncio", "ssl", "decimal", "zoneinfo", "datetime"}


def test_importing_the_pytest_plugin_loads_no_dependency() -> None:
    """The plugin every pytest session imports loads neither the simulator nor aiohttp."""
    modules = modules_after("import voiceapi_async.testing._plugin")
    assert heavy(modules) == []
    assert "asyncio" not in modules
    assert "voiceapi_async.testing._server" not in modules


def test_a_public_name_loads_its_module_on_first_use() -> None:
    """Touching a name imports what it needs, and nothing for the names not touched."""
    modules = modules_after("import voiceapi_async\nvoiceapi_async.Report")
    assert "voiceapi_async._models" in modules
    assert "voiceapi_async.client" not in modules
    assert "aiohttp" not in modules


@pytest.mark.parametrize("package", [voiceapi_async, voiceapi_async.testing])
def test_every_public_name_is_listed_where_it_loads_from(package: ModuleType) -> None:
    """``__all__``, the lazy table and the ``TYPE_CHECKING`` imports name the same objects."""
    sources = package._SOURCES
    assert sorted(sources) == sorted(package.__all__)
    tree = ast.parse(Path(package.__file__ or "").read_text(encoding="utf-8"))
    checked: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imported in node.body:
                assert isinstance(imported, ast.ImportFrom)
                if imported.module == "typing":
                    continue
                for alias in imported.names:
                    checked[alias.name] = (imported.module or "").rpartition(".")[2]
    assert checked == sources
    for name, module in sources.items():
        loaded = importlib.import_module(f"{package.__name__}.{module}")
        assert getattr(package, name) is getattr(loaded, name)


@pytest.mark.parametrize("package", [voiceapi_async, voiceapi_async.testing])
def test_dir_lists_the_public_names_before_they_load(package: ModuleType) -> None:
    """``dir()`` shows every public name, loaded or not, for completion and ``help()``."""
    assert set(package.__all__) <= set(dir(package))
    assert dir(package) == sorted(dir(package))


def test_an_unknown_name_is_an_attribute_error() -> None:
    """A name that is not public fails as a plain module would, naming the module."""
    with pytest.raises(AttributeError, match="'voiceapi_async' has no attribute 'VoiceClinet'"):
        _ = voiceapi_async.VoiceClinet  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="Fautls"):
        from voiceapi_async.testing import Fautls  # type: ignore[attr-defined]  # noqa: F401


def test_star_import_gives_every_public_name() -> None:
    """``from voiceapi_async import *`` binds each name in ``__all__``."""
    namespace: dict[str, object] = {}
    exec("from voiceapi_async import *", namespace)
    assert set(voiceapi_async.__all__) <= set(namespace)

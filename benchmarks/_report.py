"""What every benchmark report shares: when and where it ran, and publishing it."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path


def environment_lines(
    packages: Sequence[str], *, load: tuple[float, float, float] | None = None, sharing: str = ""
) -> list[str]:
    """Return the report's Date, Python and Machine lines.

    Args:
        packages: distributions whose versions matter to the numbers.
        load: the load average at the start, if the report shows it.
        sharing: what shares the machine's cores during the run, e.g. "the simulator
            and the client".
    """
    python = f"{platform.python_implementation()} {platform.python_version()}"
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in packages)
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores"
    if load is not None:
        machine += f"; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the start"
    if sharing:
        machine += f" ({sharing} share these cores)"
    return [
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Python: {python}; {versions}",
        f"- Machine: {machine}",
    ]


def publish(report: str, output: Path | None) -> None:
    """Print the report and, unless ``output`` is None, write it there."""
    print(report)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report.rstrip("\n") + "\n", encoding="utf-8")
        print(f"\nwrote {output}")

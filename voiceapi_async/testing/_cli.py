"""``python -m voiceapi_async.testing serve``: the simulator as a standalone server.

The command prints the base URL it serves on stdout (one line, flushed, once it is
listening), a summary on stderr, and runs until SIGINT or SIGTERM, then shuts down
cleanly and exits 0. Bad arguments exit 2 with click's usage message; a port that
cannot be bound exits 1 with one line on stderr.

:func:`serve` is the reusable part, free of any command-line library: it takes a
:class:`~voiceapi_async.testing.SimulatorConfig`, an address and a ``ready``
callback, and blocks until a signal stops it. The command itself is a click command
(``voiceapi_async.testing._command``, loaded only when it runs: click comes with the
``cli`` extra); :func:`serve_command` returns it (``voiceapi serve-fake`` is the
same command) and :func:`serve_main` runs it under another program name.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click

    from voiceapi_async.testing._config import SimulatorConfig
    from voiceapi_async.testing._server import VoiceSimulator

PROG = "python -m voiceapi_async.testing"
"""How the command names itself in usage and error messages."""

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _announce(simulator: VoiceSimulator) -> None:
    config = simulator.config
    print(simulator.base_url, flush=True)
    print(
        f"Voice API simulator: shape {config.shape.value}, token {config.token!r}, "
        f"seed {config.seed}, {config.calls_per_day} calls a day in {config.timezone}. "
        "Ctrl+C to stop.",
        file=sys.stderr,
        flush=True,
    )


def serve(
    config: SimulatorConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    ready: Callable[[VoiceSimulator], object] | None = _announce,
) -> None:
    """Serve a simulator until SIGINT or SIGTERM, then shut it down cleanly.

    Blocks the calling thread (run it from the main thread so signals reach it).

    Args:
        config: how the simulator behaves.
        host: the address to listen on.
        port: the port to listen on; 0 picks a free one.
        ready: called with the simulator once it is listening (its ``base_url`` is
            set); the default prints the base URL on stdout and a summary on stderr.

    Raises:
        OSError: the address cannot be bound.
    """
    with contextlib.suppress(KeyboardInterrupt):  # where signal handlers are unavailable
        asyncio.run(_serve(config, host, port, ready))


async def _serve(
    config: SimulatorConfig,
    host: str,
    port: int,
    ready: Callable[[VoiceSimulator], object] | None,
) -> None:
    from voiceapi_async.testing._server import run_simulator

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        stop.set()
        for sig in _STOP_SIGNALS:  # a second signal falls back to the default action
            loop.remove_signal_handler(sig)

    installed = []
    for sig in _STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, non-main thread
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    try:
        async with run_simulator(config, host=host, port=port) as simulator:
            if ready is not None:
                ready(simulator)
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def serve_command() -> click.Command:
    """Return the simulator's ``serve`` command, a click command (needs the ``cli`` extra).

    ``voiceapi serve-fake`` is this command under another name; add it to your own
    click group the same way.
    """
    from voiceapi_async.testing._command import serve_cli

    return serve_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m voiceapi_async.testing``; return the exit status.

    Bad arguments return 2 with click's usage message on stderr.
    """
    try:
        from voiceapi_async.testing._command import simulator_cli
    except ImportError as exc:
        return _needs_click(exc)
    return _standalone(simulator_cli, argv, PROG)


def serve_main(argv: Sequence[str] | None = None, *, prog: str = f"{PROG} serve") -> int:
    """Run the ``serve`` command alone under another name; return the exit status.

    Args:
        argv: the options, without a command name (``["--port", "0"]``).
        prog: the name usage and error messages give the command.
    """
    try:
        from voiceapi_async.testing._command import serve_cli
    except ImportError as exc:
        return _needs_click(exc)
    return _standalone(serve_cli, argv, prog)


def _standalone(command: click.Command, argv: Sequence[str] | None, prog: str) -> int:
    """Run a click command as a program would, returning its exit status."""
    args = None if argv is None else list(argv)
    try:
        command.main(args=args, prog_name=prog, standalone_mode=True)
    except SystemExit as exited:
        code = exited.code
        return code if isinstance(code, int) else 0 if code is None else 1
    return 0  # pragma: no cover - click's standalone mode always exits


def _needs_click(exc: ImportError) -> int:
    print(
        f"the simulator's command needs its extra: pip install 'voiceapi-async[cli]' ({exc})",
        file=sys.stderr,
    )
    return 2

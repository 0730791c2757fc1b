"""``python -m voiceapi_async`` and the ``voiceapi`` console script."""

from __future__ import annotations

import sys


def run() -> None:
    """Start the ``voiceapi`` command (it needs the ``cli`` extra)."""
    try:
        try:
            from voiceapi_async.cli import main
        except ImportError as exc:
            sys.stderr.write(
                f"the voiceapi command needs its extra: pip install 'voiceapi-async[cli]' ({exc})\n"
            )
            raise SystemExit(2) from None
        main()
    except KeyboardInterrupt:
        # Ctrl-C before the command's own handling started (while importing, say).
        sys.stderr.write("interrupted before any work started; run the same command again\n")
        raise SystemExit(130) from None


if __name__ == "__main__":
    run()

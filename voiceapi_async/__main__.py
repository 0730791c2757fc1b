"""``python -m voiceapi_async`` and the ``voiceapi`` console script."""

from __future__ import annotations

import sys


def run() -> None:
    """Start the ``voiceapi`` command (it needs the ``cli`` extra)."""
    try:
        from voiceapi_async.cli import main
    except ImportError as exc:
        sys.stderr.write(
            f"the voiceapi command needs its extra: pip install 'voiceapi-async[cli]' ({exc})\n"
        )
        raise SystemExit(2) from None
    main()


if __name__ == "__main__":
    run()

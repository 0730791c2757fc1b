"""``python -m voiceapi_async.testing serve``: run the simulator from a shell."""

from voiceapi_async.testing._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())

"""One run per output directory: an OS file lock on ``OUT/_lock`` and per-run temporary folders.

The lock is ``fcntl.flock`` on ``OUT/_lock``, held for the whole run. The kernel
releases it when the process ends, however it ends (SIGKILL included), so a lock is
never stale; the file's JSON body only names the holder for the message a second
run prints. The file is never deleted: deleting a lock file lets two runs lock two
different files of the same name.

A shared holder (``OutputLock(out, shared=True)``: the Dagster steps, each writing
its own windows) takes the lock shared, so several write at once while any
exclusive run (the command) is kept out, and the other way round. Each shared run's
temporary folder holds an ``.owner`` file it keeps locked; a folder whose owner
lock can be taken belongs to a run that ended without cleaning up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import socket
import uuid
from pathlib import Path

from voiceapi_async.backfill._errors import LockHolder, OutputError, OutputLockedError, os_error
from voiceapi_async.backfill._files import TMP_DIR

LOCK_FILE = "_lock"
"""The lock file, inside the output directory."""
OWNER_FILE = ".owner"
"""In a shared run's temporary folder: locked by the run while it lives."""


class OutputLock:
    """The lock of an output directory, held by one run at a time (a context manager).

    ``with OutputLock(out) as lock:`` creates ``out`` if needed, takes the lock or
    raises :class:`OutputLockedError` at once, then removes the temporary folders of runs
    that ended without cleaning up (no live run can own them: none holds the lock).
    The run's temporary files go to :attr:`tmp_dir`, ``OUT/_tmp/<run id>/``, removed on
    release. Local file systems only: network file systems may not honour ``flock``.

    Args:
        out_dir: the output directory.
        shared: share the directory with other shared holders that write other
            windows at once (the Dagster assets); shared and exclusive holders keep
            each other out. A shared holder removes only the temporary folders of
            shared runs that are gone (and of exclusive runs, none of which can be live).

    Raises:
        OutputLockedError: another run (this process or another) holds the lock.
        OutputError: the directory or the lock file cannot be created or written.
    """

    def __init__(self, out_dir: Path | str, *, shared: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.shared = shared
        self.run_id = (
            f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.tmp_dir = self.out_dir / TMP_DIR / self.run_id
        self._fd: int | None = None
        self._owner_fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> LockHolder:
        """Take the lock, write who holds it, clear stale temporary folders; return the holder."""
        if self._fd is not None:
            raise RuntimeError(f"the lock of {self.out_dir} is already held by this object")
        path = self.out_dir / LOCK_FILE
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise os_error(exc, "create the output directory's lock", path) from None
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputLockedError(self.out_dir, holder) from None
        except OSError as exc:
            os.close(fd)
            raise os_error(exc, "lock", path) from None
        holder = LockHolder(
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            run_id=self.run_id,
        )
        try:
            body = json.dumps(
                {
                    "pid": holder.pid,
                    "host": holder.host,
                    "started_at": holder.started_at,
                    "run_id": holder.run_id,
                }
            ).encode()
            if self.shared:  # other holders may read it: overwrite, blanking a longer tail
                os.pwrite(fd, body + b"\n" + b" " * 64, 0)
            else:
                os.ftruncate(fd, 0)
                os.pwrite(fd, body + b"\n", 0)
            if self.shared:
                self._own_tmp_dir()
            self._clear_stale()
        except OSError as exc:
            self._close_owner()
            os.close(fd)
            raise os_error(exc, "write", path) from None
        except OutputError:
            os.close(fd)
            raise
        self._fd = fd
        return holder

    def release(self) -> None:
        """Remove this run's temporary folder and release the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self._close_owner()
            if not self.shared:  # other shared holders may still be named in it
                with contextlib.suppress(OSError):  # the lock goes with the descriptor anyway
                    os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()

    def _own_tmp_dir(self) -> None:
        """Create this shared run's temporary folder with its owner file locked.

        The folder is made under a hidden name and renamed once its owner is locked,
        so no other run ever sees it without a live owner.
        """
        draft = self.out_dir / TMP_DIR / f".{self.run_id}"
        try:
            draft.mkdir(parents=True)
            owner = os.open(draft / OWNER_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(owner, fcntl.LOCK_EX)
            self._owner_fd = owner
            draft.rename(self.tmp_dir)
        except OSError as exc:
            self._close_owner()
            raise os_error(exc, "create a temporary folder in", draft.parent) from None

    def _close_owner(self) -> None:
        if self._owner_fd is not None:
            owner, self._owner_fd = self._owner_fd, None
            os.close(owner)

    def _clear_stale(self) -> None:
        tmp_root = self.out_dir / TMP_DIR
        if not tmp_root.is_dir():
            return
        for leftover in tmp_root.iterdir():
            if leftover.name == self.run_id:
                continue
            if self.shared:
                _clear_if_gone(leftover)
            elif leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink(missing_ok=True)


def _clear_if_gone(folder: Path) -> None:
    """Remove another run's temporary folder if that run is gone (its owner lock is free).

    Hidden folders (a shared run being set up) and loose files are left to the next
    exclusive run.
    """
    if folder.name.startswith(".") or folder.is_symlink() or not folder.is_dir():
        return
    try:
        owner = os.open(folder / OWNER_FILE, os.O_RDONLY)
    except FileNotFoundError:  # an exclusive run's folder: none is live while we hold the lock
        shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.rmtree(folder, ignore_errors=True)
    except BlockingIOError:
        pass  # its run is alive
    finally:
        os.close(owner)


def _read_holder(fd: int) -> LockHolder | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0))
        return LockHolder(
            pid=int(data["pid"]),
            host=str(data["host"]),
            started_at=str(data["started_at"]),
            run_id=str(data["run_id"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None

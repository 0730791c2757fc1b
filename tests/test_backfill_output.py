"""The output side of a backfill: one run per directory, crashes, full disks, foreign manifests.

The command runs in real processes against a simulator served from a thread. A full
or read-only disk is a real tmpfs, mounted in a user and mount namespace of a
helper process (``unshare``) and reached through ``/proc/<pid>/root``; those tests
fail, with the reason, where namespaces are not allowed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from tests.test_cli import (
    TOKEN,
    TZ,
    backfill_args,
    exported_ids,
    partition_hashes,
    settings,
    start,
    voiceapi,
)
from voiceapi_async.backfill import (
    Backfill,
    Manifest,
    ManifestError,
    OutputError,
    OutputLock,
    OutputLockedError,
    WindowState,
    plan,
)
from voiceapi_async.testing import Faults, SimulatorConfig, VoiceSimulator
from voiceapi_async.testing._plugin import serve_in_thread

LEAVE_FOR_THE_MANIFEST = 112 * 1024
"""Free bytes for a manifest on a full disk: enough to create it, not to finish the run."""
FIXED_CLOCK = dt.datetime(2024, 4, 1, tzinfo=dt.UTC).timestamp()
RANGE = (dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 3, 23, 59, 59))
EXIT_OUTPUT = 6
EXIT_LOCKED = 7


def args(out: Path, *extra: str) -> list[str]:
    """Return the arguments of a JSON Lines backfill into ``out``, one window at a time."""
    return backfill_args(out, "jsonl", "--concurrency", "1", *extra)


@pytest.fixture
def slow() -> Iterator[VoiceSimulator]:
    """A simulator slow enough (50 ms a page) that a run is still going when it is stopped."""
    config = SimulatorConfig(
        token=TOKEN,
        calls_per_day=30,
        rate_limit=0,
        faults=Faults(latency_ms=50, latency_spread=0.1),
        clock=lambda: FIXED_CLOCK,
    )
    with serve_in_thread(config) as simulator:
        yield simulator


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll until ``condition()`` holds (an observable event); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def lock_body(out: Path) -> dict[str, object]:
    try:
        data = json.loads((out / "_lock").read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def integrity(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("PRAGMA integrity_check")]
    finally:
        db.close()


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the lock, in one process ------------------------------------------------------------


def test_the_lock_admits_one_holder_and_names_it(tmp_path: Path) -> None:
    """A second OutputLock on a held directory raises at once with the holder's pid and host."""
    out = tmp_path / "out"
    with OutputLock(out) as first:
        body = lock_body(out)
        assert body["pid"] == os.getpid()
        assert body["run_id"] == first.run_id
        with pytest.raises(OutputLockedError) as caught:
            OutputLock(out).acquire()
        holder = caught.value.holder
        assert holder is not None
        assert (holder.pid, holder.run_id) == (os.getpid(), first.run_id)
        assert f"pid {os.getpid()} on {holder.host}, started {holder.started_at}" in str(
            caught.value
        )
    with OutputLock(out) as second:
        assert second.held
    assert not second.held
    assert (out / "_lock").exists()


def test_taking_the_lock_removes_only_stale_temporary_files(tmp_path: Path) -> None:
    """Leftover run folders and loose files go when the lock is taken; the own folder on release."""
    out = tmp_path / "out"
    (out / "_tmp" / "dead-run").mkdir(parents=True)
    (out / "_tmp" / "dead-run" / "abc.part-0.jsonl").write_bytes(b"half")
    (out / "_tmp" / "old-layout.part-0.csv").write_bytes(b"half")
    with OutputLock(out) as lock:
        assert list((out / "_tmp").iterdir()) == []
        lock.tmp_dir.mkdir()
        (lock.tmp_dir / "mine").write_bytes(b"x")
        with pytest.raises(OutputLockedError):
            OutputLock(out).acquire()
        assert (lock.tmp_dir / "mine").exists()  # a refused run removes nothing
    assert list((out / "_tmp").iterdir()) == []


def test_shared_holders_write_together_and_keep_an_exclusive_run_out(tmp_path: Path) -> None:
    """Shared locks (the Dagster steps) coexist; exclusive and shared ones exclude each other."""
    out = tmp_path / "out"
    with OutputLock(out, shared=True) as first, OutputLock(out, shared=True) as second:
        assert first.tmp_dir.is_dir()
        assert second.tmp_dir.is_dir()
        with pytest.raises(OutputLockedError) as caught:
            OutputLock(out).acquire()
        assert caught.value.holder is not None
        assert caught.value.holder.run_id == second.run_id
    assert list((out / "_tmp").iterdir()) == []
    with OutputLock(out), pytest.raises(OutputLockedError):
        OutputLock(out, shared=True).acquire()


def test_a_shared_holder_clears_only_the_folders_of_runs_that_are_gone(tmp_path: Path) -> None:
    """A shared run removes ended runs' folders, keeps live ones; an exclusive run removes all."""
    out = tmp_path / "out"
    tmp = out / "_tmp"
    (tmp / "exclusive-run").mkdir(parents=True)  # no owner file: no exclusive run is live
    (tmp / "killed-shared").mkdir()
    (tmp / "killed-shared" / ".owner").touch()  # its owner lock went with the process
    (tmp / "killed-shared" / "abc.part-0.jsonl").write_bytes(b"half")
    (tmp / ".being-set-up").mkdir()
    (tmp / "loose.part-0.csv").write_bytes(b"half")
    kept = [".being-set-up", "loose.part-0.csv"]
    with OutputLock(out, shared=True) as alive:
        (alive.tmp_dir / "mine").write_bytes(b"x")
        assert sorted(p.name for p in tmp.iterdir()) == sorted([*kept, alive.run_id])
        with OutputLock(out, shared=True) as other:
            assert sorted(p.name for p in tmp.iterdir()) == sorted(
                [*kept, alive.run_id, other.run_id]
            )
        assert (alive.tmp_dir / "mine").exists()
    assert sorted(p.name for p in tmp.iterdir()) == kept
    with OutputLock(out):
        assert list(tmp.iterdir()) == []


def test_a_shared_holder_that_cannot_make_its_folder_releases_the_lock(tmp_path: Path) -> None:
    """An unwritable temporary folder is an OutputError, and the lock is not left held."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "_tmp").write_bytes(b"a file where the folder goes")
    with pytest.raises(OutputError, match=r"cannot create a temporary folder in .*_tmp: "):
        OutputLock(out, shared=True).acquire()
    with OutputLock(out) as lock:
        assert lock.held


@pytest.mark.asyncio
async def test_a_backfill_refuses_a_directory_another_run_holds(tmp_path: Path) -> None:
    """Backfill.run takes the lock itself: with it held elsewhere, no request is made."""
    from voiceapi_async import VoiceClient
    from voiceapi_async.export import get_format
    from voiceapi_async.testing import run_simulator

    windows = plan(
        "calls", "2024-03-01", "2024-03-02", TZ, now=dt.datetime(2024, 4, 1, tzinfo=dt.UTC)
    )
    async with (
        run_simulator(token=TOKEN, rate_limit=0) as sim,
        VoiceClient(base_url=sim.base_url, token=TOKEN, timezone=TZ, rate_limit=0) as client,
    ):
        with Manifest(tmp_path / "m.sqlite") as manifest, OutputLock(tmp_path / "out") as held:
            runner = Backfill(client, manifest, get_format("jsonl"), tmp_path / "out")
            with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
                await runner.run(windows)
            assert sim.observed.report_requests() == []
            other = Backfill(client, manifest, get_format("jsonl"), tmp_path / "other", lock=held)
            with pytest.raises(ValueError, match="held OutputLock of"):
                await other.run(windows)
            summary = await Backfill(
                client, manifest, get_format("jsonl"), tmp_path / "out", lock=held
            ).run(windows)
        assert summary.written == 2
    assert not (tmp_path / "out" / "_tmp").exists() or not list(
        (tmp_path / "out" / "_tmp").iterdir()
    )


# -- the manifest: ours, foreign, damaged ------------------------------------------------


def foreign_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO users (name) VALUES ('ada')")
    db.commit()
    db.close()


def legacy_manifest(path: Path) -> None:
    """A manifest as the previous release wrote it: no application id."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE windows (key TEXT PRIMARY KEY, report TEXT NOT NULL, start_at TEXT NOT NULL, "
        "end_at TEXT NOT NULL, state TEXT NOT NULL, records INTEGER NOT NULL DEFAULT 0, "
        "pages INTEGER NOT NULL DEFAULT 0, output TEXT, checksum TEXT, attempts INTEGER NOT NULL "
        "DEFAULT 0, last_error TEXT, updated_at TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO windows VALUES ('calls/2024-03-01', 'calls', 'a', 'b', 'done', 5, 1, 'x', "
        "'ab', 1, NULL, 'now')"
    )
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"these are not the bytes of a database\n" * 10), "not a SQLite"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00"), "not a SQLite"),
        (foreign_database, "another program, tables: users"),
    ],
    ids=["text", "truncated", "foreign"],
)
def test_a_file_that_is_not_a_manifest_is_refused_and_left_untouched(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    """Not SQLite, or another program's database: ManifestError, and the file keeps every byte."""
    path = tmp_path / "_manifest.sqlite"
    make(path)
    before = file_hash(path)
    with pytest.raises(ManifestError, match=message) as caught:
        Manifest(path)
    assert caught.value.path == str(path)
    assert file_hash(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_manifest.sqlite"]


def test_a_foreign_application_id_is_refused(tmp_path: Path) -> None:
    """A database stamped by another application is not opened for writing."""
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 1234")
    db.execute("CREATE TABLE windows (key TEXT)")
    db.commit()
    db.close()
    before = file_hash(path)
    with pytest.raises(ManifestError, match="application id 0x4d2"):
        Manifest(path)
    assert file_hash(path) == before


def test_a_manifest_of_the_previous_release_is_adopted(tmp_path: Path) -> None:
    """A windows table with the old columns and no application id is ours: kept and stamped."""
    path = tmp_path / "_manifest.sqlite"
    legacy_manifest(path)
    with Manifest(path) as manifest:
        entry = manifest.entry("calls/2024-03-01")
    assert entry is not None
    assert (entry.state, entry.records) == (WindowState.DONE, 5)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x56416266


def test_a_damaged_manifest_is_refused(tmp_path: Path) -> None:
    """A manifest whose table page is overwritten fails its check with a ManifestError."""
    path = tmp_path / "_manifest.sqlite"
    windows = plan(
        "calls", "2024-03-01", "2024-03-20", TZ, now=dt.datetime(2024, 4, 1, tzinfo=dt.UTC)
    )
    with Manifest(path) as manifest:
        manifest.register(windows)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) >= 2 * page
    data[page : page + 64] = b"\xff" * 64  # the windows table's root page
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="is damaged"):
        Manifest(path)


# -- the command, in real processes ------------------------------------------------------


def test_a_second_run_exits_7_naming_the_first_which_finishes_unharmed(
    slow: VoiceSimulator, tmp_path: Path
) -> None:
    """Two runs on one --out: the second exits 7 naming the first's pid; the first completes."""
    out = tmp_path / "out"
    env = settings(slow)
    first = start(*args(out), env=env)
    try:
        wait_for(lambda: lock_body(out).get("pid") == first.pid, "the first run's lock")
        os.kill(first.pid, signal.SIGSTOP)  # it holds the lock, and cannot finish meanwhile
        requests = len(slow.observed.requests)
        second = voiceapi(*args(out), env=env)
        assert len(slow.observed.requests) == requests
        os.kill(first.pid, signal.SIGCONT)
        _, stderr = first.communicate(timeout=60)
    finally:
        first.kill()
    assert second.returncode == EXIT_LOCKED, second.stderr
    assert f"another backfill is writing to {out} (pid {first.pid} on " in second.stderr
    assert "wait for it to end" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, stderr
    for report in ("calls", "recordings"):
        assert sorted(exported_ids(out, report, "jsonl")) == sorted(
            slow.ids_between(report, *RANGE)
        )
    assert list((out / "_tmp").iterdir()) == []


def test_after_sigkill_a_new_run_clears_the_stale_folder_and_matches_an_uninterrupted_run(
    slow: VoiceSimulator, tmp_path: Path
) -> None:
    """SIGKILL mid-run leaves a lock file and a temp folder; the next run takes both over."""
    env = settings(slow)
    reference = tmp_path / "reference"
    assert voiceapi(*args(reference, "--format", "parquet"), env=env).returncode == 0
    out = tmp_path / "out"
    first = start(*args(out, "--format", "parquet"), env=env)
    try:
        wait_for(lambda: list(out.rglob("part-0.parquet")), "the first partition")
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=60)
    finally:
        first.kill()
    body = lock_body(out)
    assert body["pid"] == first.pid
    stale = out / "_tmp" / str(body["run_id"])
    assert stale.is_dir()
    (stale / "0123.part-0.parquet").write_bytes(b"PAR1 half a window")
    with Manifest(out / "_manifest.sqlite") as manifest:
        states = [e.state for e in manifest.entries()]
    assert states.count(WindowState.DONE) < 6
    rerun = voiceapi(*args(out, "--format", "parquet"), env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert lock_body(out) == {}  # released
    assert list((out / "_tmp").iterdir()) == []
    assert partition_hashes(out) == partition_hashes(reference)
    assert len(partition_hashes(out)) == 6


# -- output-side failures --------------------------------------------------------------


@attrs.frozen
class Disk:
    """A small tmpfs in the mount namespace of the helper process ``pid``."""

    pid: int
    point: Path
    """Where it is mounted, as the namespace sees it."""

    @property
    def outside(self) -> Path:
        """The same folder as this process reaches it: for Python's file calls only.

        SQLite resolves ``/proc/<pid>/root`` to ``/`` and would miss the mount.
        """
        return Path(f"/proc/{self.pid}/root{self.point}")

    def voiceapi(self, *arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """Run the command inside the namespace, where paths under ``point`` are the tmpfs."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("VOICEAPI_")}
        command = ["nsenter", "-t", str(self.pid), "-U", "-m", sys.executable]
        return subprocess.run(
            [*command, "-m", "voiceapi_async", *arguments],
            capture_output=True,
            text=True,
            env={**clean, **env},
            timeout=120,
            check=False,
        )


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Disk]]:
    """Mount small tmpfs file systems: ``mount(size, read_only=False)`` returns a Disk."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.fail("these tests need unshare and nsenter (util-linux) to mount a tmpfs")
    holders: list[subprocess.Popen[str]] = []

    def mount(size: str, read_only: bool = False) -> Disk:
        point = tmp_path / f"fs{len(holders)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        script = f"mount -t tmpfs -o {options} tmpfs {point} && echo ready && exec cat"
        holder = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        holders.append(holder)
        assert holder.stdout is not None
        if holder.stdout.readline().strip() != "ready":
            pytest.fail(f"cannot mount a tmpfs in a namespace: {holder.communicate()[1]}")
        return Disk(holder.pid, point)

    yield mount
    for holder in holders:
        holder.communicate()


def fill(disk: Disk, leave: int) -> Path:
    """Fill ``disk`` with a ballast file until ``leave`` bytes are free; return the file."""
    ballast = disk.outside / "ballast"
    stats = os.statvfs(disk.outside)
    ballast.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - leave))
    return ballast


def copy_manifest(state: Path, to: Path) -> Path:
    """Copy a manifest with its WAL files (to open it with SQLite outside the namespace)."""
    to.mkdir()
    for suffix in ("", "-wal", "-shm"):
        source = state.with_name(state.name + suffix)
        if source.exists():
            shutil.copyfile(source, to / source.name)
    return to / state.name


def test_an_unwritable_out_exits_6_in_one_line(
    sim_fast: VoiceSimulator, tmp_path: Path, tmpfs: Callable[..., Disk]
) -> None:
    """A read-only file system, a file as --out or as a folder above it: exit 6, one line."""
    read_only = tmpfs("64k", read_only=True).outside
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (read_only / "out", "the file system is read-only"),
        (a_file, "a file is where a folder should be"),
        (a_file / "out", "a file is where a folder should be"),
    ]
    for out, reason in cases:
        result = voiceapi(*args(out), env=settings(sim_fast))
        assert result.returncode == EXIT_OUTPUT, result.stderr
        assert reason in result.stderr
        assert str(out) in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sim_fast.observed.report_requests() == []


@pytest.mark.parametrize("make", [lambda p: p.write_bytes(b"\x00garbage" * 100), foreign_database])
def test_a_foreign_manifest_exits_6_and_stays_as_it_was(
    sim_fast: VoiceSimulator, tmp_path: Path, make: Callable[[Path], object]
) -> None:
    """OUT/_manifest.sqlite not ours: exit 6 saying so, the file unchanged, nothing fetched."""
    out = tmp_path / "out"
    out.mkdir()
    make(out / "_manifest.sqlite")
    before = file_hash(out / "_manifest.sqlite")
    result = voiceapi(*args(out), env=settings(sim_fast))
    assert result.returncode == EXIT_OUTPUT, result.stderr
    assert "is not a backfill manifest" in result.stderr
    assert "Traceback" not in result.stderr
    assert file_hash(out / "_manifest.sqlite") == before
    assert sim_fast.observed.report_requests() == []


@pytest.fixture
def sim_fast() -> Iterator[VoiceSimulator]:
    config = SimulatorConfig(token=TOKEN, calls_per_day=30, rate_limit=0, clock=lambda: FIXED_CLOCK)
    with serve_in_thread(config) as simulator:
        yield simulator


@pytest.mark.parametrize("full", ["partitions", "manifest"])
def test_a_full_disk_exits_6_keeps_the_manifest_whole_and_a_rerun_resumes(
    sim_fast: VoiceSimulator, tmp_path: Path, tmpfs: Callable[..., Disk], full: str
) -> None:
    """ENOSPC (a real full tmpfs) on partitions or manifest: exit 6, manifest ok, rerun resumes."""
    env = settings(sim_fast)
    reference = tmp_path / "reference"
    assert voiceapi(*args(reference), env=env).returncode == 0
    sizes = [p.stat().st_size for p in sorted((reference / "calls").rglob("part-0.*"))]
    disk = tmpfs("2m")
    if full == "partitions":
        out, state = disk.point / "out", tmp_path / "state.sqlite"
        ballast = fill(disk, leave=_pages(sizes[0]) + _pages(sizes[1]) // 2)
    else:
        out, state = tmp_path / "out", disk.point / "state.sqlite"
        ballast = fill(disk, leave=LEAVE_FOR_THE_MANIFEST)
    first = disk.voiceapi(*args(out, "--state", str(state)), env=env)
    assert first.returncode == EXIT_OUTPUT, first.stderr
    assert "the disk is full" in first.stderr
    assert ("manifest" in first.stderr) == (full == "manifest")
    assert "Traceback" not in first.stderr
    seen = disk.outside / state.relative_to(disk.point) if full == "manifest" else state
    copy = copy_manifest(seen, tmp_path / "copy")
    assert integrity(copy) == ["ok"]
    with Manifest(copy) as manifest:
        done = {e.key for e in manifest.entries() if e.state is WindowState.DONE}
    assert 0 < len(done) < 6
    files = disk.outside / "out" if full == "partitions" else out
    kept = {p: p.stat().st_mtime_ns for p in files.rglob("part-0.*")}
    ballast.unlink()
    rerun = disk.voiceapi(*args(out, "--state", str(state)), env=env)
    assert rerun.returncode == 0, rerun.stderr
    skipped = re.findall(r"(\d+) window\(s\) already done: skipped", rerun.stderr)
    assert sum(map(int, skipped)) == len(done)
    assert partition_hashes(files) == partition_hashes(reference)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in kept.items() if _key(p) in done)
    assert list((files / "_tmp").iterdir()) == []


def _pages(size: int) -> int:
    return -(-size // 4096) * 4096


def _key(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.parent.name.removeprefix('date=')}"

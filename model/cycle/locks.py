"""A retraining cycle's OS file locks (``fcntl.flock``): the kernel releases them when the
holding process dies, even by SIGKILL, so a crashed cycle never blocks the next one.

- The **promotion lock**, ``<registry>/.promotion.lock``, exclusive, held around compare and
  promote: a cycle compares against the production the previous cycle left, and two cycles
  never promote at once. It is separate from the registry's ``.lock`` (held only for each short
  write). Waiting for it ends with :class:`~model.errors.CycleLockError` after ``timeout``.
- The **model lock**, ``<registry>/.model.lock``, exclusive, held from a cycle's trigger check
  to its decision: one model never runs two cycles at once (a second drift event waits, then
  sees the first's training and its cooldown), while other models' cycles run in parallel.
- The **cycle lock**, ``<runs>/<run id>/.cycle.lock``, shared, held for a cycle's whole life in
  its scratch folder ``<runs>/<run id>/``: a lock that can be taken exclusively has no live
  holder, so that cycle died (or ended) and its scratch folder can go.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from model.errors import CycleLockError

PROMOTION_LOCK_NAME = ".promotion.lock"
MODEL_LOCK_NAME = ".model.lock"
MODEL_TIMEOUT_S = 6 * 3600.0
"""How long a cycle waits for the same model's live cycle to finish (training included)."""
CYCLE_LOCK_NAME = ".cycle.lock"
PROMOTION_TIMEOUT_S = 1800.0
"""How long a cycle waits for another *live* cycle's comparison and promotion (a dead one's
lock is released by the kernel at once)."""
UNLOCKED_SCRATCH_GRACE_S = 3600.0
"""A scratch folder without a cycle lock (made before cycle locks existed) is removed once it
is this old."""


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise CycleLockError(
            f"{path}: cannot open the lock file ({exc.strerror or exc}); the folder must be a "
            "writable folder on a file system with flock"
        ) from exc


def _try_lock(fd: int, op: int) -> bool:
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


def is_locked(path: Path) -> bool:
    """Whether a live process holds a lock on ``path`` (False when the file does not exist)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return not _try_lock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)  # releases the probe's lock, if it got one


@contextlib.contextmanager
def promotion_lock(
    registry_root: Path, timeout: float | None = PROMOTION_TIMEOUT_S
) -> Iterator[Path]:
    """Hold ``<registry_root>/.promotion.lock`` exclusively; wait at most ``timeout`` s."""
    with _exclusive(Path(registry_root) / PROMOTION_LOCK_NAME, timeout, "comparing or promoting"):
        yield Path(registry_root) / PROMOTION_LOCK_NAME


@contextlib.contextmanager
def model_lock(
    registry_root: Path,
    timeout: float | None = MODEL_TIMEOUT_S,
    on_wait: Callable[[Path], None] | None = None,
) -> Iterator[Path]:
    """Hold ``<registry_root>/.model.lock`` exclusively for one cycle of this model; wait at
    most ``timeout`` s for another live cycle of it (``on_wait`` is told once when waiting)."""
    path = Path(registry_root) / MODEL_LOCK_NAME
    with _exclusive(path, timeout, "running a cycle of this model", on_wait):
        yield path


@contextlib.contextmanager
def _exclusive(
    path: Path,
    timeout: float | None,
    doing: str,
    on_wait: Callable[[Path], None] | None = None,
) -> Iterator[None]:
    fd = _open(path)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        told = False
        while not _try_lock(fd, fcntl.LOCK_EX):
            if deadline is not None and time.monotonic() >= deadline:
                raise CycleLockError(
                    f"{path}: another retraining cycle has been {doing} for "
                    f"more than {timeout:.0f} s (only a live process can hold this lock; "
                    "try again when it has finished)"
                )
            if on_wait is not None and not told:
                on_wait(path)
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        yield
    finally:
        os.close(fd)


class CycleScratch:
    """The scratch folder ``<runs_dir>/<run_id>/`` of a live cycle, with its cycle lock.

    Entering creates the folder and takes the lock (shared: cycles that share a top-level run
    id, such as subflows of one parent, may hold it together); leaving removes the folder
    when no other holder remains.
    """

    def __init__(self, runs_dir: Path, run_id: str) -> None:
        self.folder = Path(runs_dir) / run_id
        self.lock_path = self.folder / CYCLE_LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> CycleScratch:
        for _ in range(50):  # a cleaner may remove a dead run's folder as we create ours
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise CycleLockError(
                    f"{self.lock_path}: cannot create the cycle lock ({exc.strerror or exc})"
                ) from exc
            fcntl.flock(fd, fcntl.LOCK_SH)
            if _same_file(fd, self.lock_path):
                self._fd = fd
                return self
            os.close(fd)  # locked a file a cleaner had just unlinked: start again
        raise CycleLockError(f"{self.lock_path}: could not take the cycle lock")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _try_lock(fd, fcntl.LOCK_EX):  # no other holder: the folder is ours to remove
                with contextlib.suppress(OSError):
                    self.lock_path.unlink()
                shutil.rmtree(self.folder, ignore_errors=True)
        finally:
            os.close(fd)

    def new_folder(self, prefix: str) -> Path:
        """A fresh path inside the scratch folder (not created)."""
        return self.folder / f"{prefix}-{uuid.uuid4().hex[:8]}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def is_cycle_alive(runs_dir: Path, run_id: str) -> bool:
    """Whether a live process holds the cycle lock of ``run_id``."""
    return is_locked(Path(runs_dir) / run_id / CYCLE_LOCK_NAME)


def remove_stale_scratch(
    runs_dir: Path, *, grace_s: float = UNLOCKED_SCRATCH_GRACE_S, now: float | None = None
) -> list[Path]:
    """Remove the scratch folders of cycles no live process holds; return them.

    A folder whose cycle lock is free is removed at once; one without a cycle lock only once
    older than ``grace_s`` (a cycle creates its lock right after its folder). Symbolic links
    and plain files are left alone.
    """
    root = Path(runs_dir)
    if not root.is_dir() or root.is_symlink():
        return []
    removed: list[Path] = []
    clock = time.time() if now is None else now
    for child in sorted(root.iterdir()):
        if child.is_symlink() or not child.is_dir():
            continue
        lock = child / CYCLE_LOCK_NAME
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            try:
                old = clock - child.stat().st_mtime > grace_s
            except FileNotFoundError:
                continue
            if old:
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
            continue
        except OSError:
            continue
        try:
            if _try_lock(fd, fcntl.LOCK_EX) and _same_file(fd, lock):
                lock.unlink()  # first, so a cycle starting now makes a new lock, not ours
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
        finally:
            os.close(fd)
    return removed

"""The registry's write lock: an exclusive ``fcntl.flock`` on ``root/.lock``.

Every write holds it, so concurrent processes never lose a version number or a history
line. It is re-entrant within one :class:`RegistryLock` (one registry object), and runs
``on_acquire`` (layout check and crash recovery) each time it is first taken.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from model.errors import RegistryError


class RegistryLockError(RegistryError):
    """The registry's lock file cannot be opened (folder missing, unwritable, not a folder)."""


class RegistryLock:
    """Exclusive lock on the file ``path``, waiting at most ``timeout`` seconds (None: forever)."""

    def __init__(self, path: Path, timeout: float | None, on_acquire: Callable[[], None]) -> None:
        self.path = path
        self.timeout = timeout
        self._on_acquire = on_acquire
        self._tlock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock (re-entrant within this object)."""
        with self._tlock:
            if self._depth == 0:
                fd = self._open()
                try:
                    self._acquire(fd)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
            try:
                if self._depth == 1:
                    self._on_acquire()
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    os.close(self._fd)
                    self._fd = None

    def _open(self) -> int:
        """Open (creating the registry folder if needed) the lock file; an unwritable or
        impossible location is a RegistryError naming it, not a traceback."""
        lock = self.path
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            return os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RegistryLockError(
                f"{lock}: cannot open the registry lock ({exc.strerror or exc}); every write "
                "needs a writable registry folder"
            ) from exc

    def _acquire(self, fd: int) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            if deadline is not None and time.monotonic() > deadline:
                raise RegistryError(
                    f"{self.path}: registry locked by another process for more "
                    f"than {self.timeout:.0f} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

"""The one regular-file check every reader of a path a user or a crash can leave behind goes
through: model folders, feature specs, manifests, registry files, journals, configuration.

A path is opened with ``O_NONBLOCK`` and checked with ``fstat`` before a byte is read, so a FIFO
(which blocks ``open`` and ``read`` until a writer comes), a device (which never ends), a socket
or a folder is an error naming the path and what it is, never a hang. Libraries that open a path
themselves (pyarrow, torch) get :func:`check_regular` first (``stat`` only; nothing is opened).

:func:`write_files` is the matching writer of results a user asked for (a model folder, a
drift report): all files or none, the path named when the disk is full.

Errors are the caller's :class:`~model.errors.RetrainError` subclass (``error=``), so each layer
keeps its own exit code and wording; a missing file stays ``FileNotFoundError`` for callers that
treat absence as a state of their own.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model.errors import RetrainError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
DEFAULT_LIMIT = 256 * 2**20
"""Bytes read at most by default: a JSON or TOML file this project reads is far smaller."""


def kind_of(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _not_regular(path: Path, mode: int, what: str, error: type[RetrainError]) -> RetrainError:
    return error(f"{path}: is {kind_of(mode)}; only a regular file is read as {what}")


def check_regular(path: str | os.PathLike[str], what: str, error: type[RetrainError]) -> None:
    """``path`` (symlinks followed) is a regular file; else ``error`` naming it and what it is.
    ``FileNotFoundError`` passes."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise _not_regular(p, mode, what, error)


def read_bytes(
    path: str | os.PathLike[str],
    what: str,
    error: type[RetrainError],
    *,
    limit: int = DEFAULT_LIMIT,
) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``); never blocks on a FIFO or
    a device. ``FileNotFoundError`` passes; anything else is ``error`` naming the path."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(p, st.st_mode, what, error)
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise error(f"{p}: over {limit:,} bytes; too large for {what}")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_text(
    path: str | os.PathLike[str],
    what: str,
    error: type[RetrainError],
    *,
    limit: int = DEFAULT_LIMIT,
) -> str:
    """:func:`read_bytes` decoded as UTF-8 (bad bytes are ``error``)."""
    data = read_bytes(path, what, error, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def read_json(
    path: str | os.PathLike[str],
    what: str,
    error: type[RetrainError],
    *,
    limit: int = DEFAULT_LIMIT,
) -> Any:
    """A JSON document from the regular file ``path``; unparsable text (torn, empty, nested
    beyond the parser's depth) is ``error`` naming the path."""
    text = read_text(path, what, error, limit=limit)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise error(f"{path}: cannot read {what}: not valid JSON ({str(exc)[:120]})") from None


def _os_reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0)
    return (exc.strerror or str(exc)) + (f" [{name}]" if name else "")


def write_files(
    folder: str | os.PathLike[str],
    files: Mapping[str, bytes],
    what: str,
    error: type[RetrainError],
) -> Path:
    """Write ``files`` (name -> bytes) into ``folder`` all or nothing: each to a temporary
    file beside it (``os.write`` until done, fsync), then each renamed into place, then the
    folder fsynced. A failure (disk full, quota, permission) removes every temporary file,
    and the folder when this call created it, and is ``error`` naming the path the OS
    refused: nothing half-written is left."""
    out = Path(folder)
    created = not out.exists()
    temps: list[tuple[Path, Path]] = []
    current = out
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            final = out / name
            current = out / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
            fd = os.open(current, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            temps.append((current, final))
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    if n <= 0:
                        raise OSError(errno.ENOSPC, "short write (nothing written)")
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
        for tmp, final in temps:
            current = final
            os.replace(tmp, final)
        current = out
        dir_fd = os.open(out, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        where = current if current != out or exc.filename is None else Path(exc.filename)
        raise error(f"{where}: cannot write {what}: {_os_reason(exc)}; nothing was kept") from exc
    return out

"""File primitives of the registry: atomic JSON writes, fsync, reads, removal, JSON values.

Every write the registry makes goes through here: a temp file or link in the same folder,
fsync, ``os.replace``, fsync of the folder. :func:`checkpoint` is the fault-injection hook: it calls
``_checkpoint`` (None outside tests) with the name of the step just finished.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from model import clock
from model.errors import RegistryError
from model.files import check_regular
from model.files import read_json as shared_read_json

#: Test hook: called with a step name after each file-system step of a switch.
#: Fault-injection tests set it in a child process to die at a chosen step.
_checkpoint: Callable[[str], None] | None = None


def checkpoint(name: str) -> None:
    """Report the file-system step ``name`` as done (to the test hook, if set)."""
    if _checkpoint is not None:
        _checkpoint(name)


def utc_now() -> str:
    """UTC time as ISO 8601 with milliseconds and a ``Z`` (:func:`model.clock.now`: simulated in a
    backtest)."""
    return clock.iso_now("milliseconds")


def file_sha256(path: Path) -> str:
    """SHA-256 of the regular file ``path`` (a FIFO or a device: RegistryError, never a hang)."""
    check_regular(path, "a model file", RegistryError)
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Give an OSError raised inside the path it concerns, when it has none (calls on a
    file descriptor, like ``os.write`` and ``os.fsync``, name no file)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), os.fspath(path)) from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with naming(path):
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        with naming(path):
            os.fsync(fd)
    finally:
        os.close(fd)


def jsonable(value: Any) -> Any:
    """Plain JSON data from ``value``: paths to str, NaN/inf to None, numpy scalars unwrapped."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if hasattr(value, "item"):  # numpy scalar
        return jsonable(value.item())
    return str(value)


def dumps(data: Mapping[str, Any]) -> str:
    """``data`` as one line of compact JSON (for history.jsonl)."""
    return json.dumps(jsonable(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def write_all(fd: int, data: bytes, path: Path) -> None:
    """Write all of ``data`` to ``fd`` and fsync it; a write that stops short (file size
    limit, disk full) raises OSError naming ``path``, never leaves it silently truncated."""
    view = memoryview(data)
    with naming(path):
        while view:
            n = os.write(fd, view)
            if n <= 0:
                raise OSError(errno.ENOSPC, "short write (nothing written)", str(path))
            view = view[n:]
        os.fsync(fd)


def atomic_write_json(path: Path, data: Mapping[str, Any], step: str | None = None) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, replace, fsync.

    With ``step``, :func:`checkpoint` ``<step>_tmp`` after the temp file and ``step``
    after the replace. If anything fails before the replace, the temp file is removed and
    ``path`` is untouched.
    """
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    payload = (json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n").encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_all(fd, payload, path)
        finally:
            os.close(fd)
        if step:
            checkpoint(f"{step}_tmp")
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename == os.fspath(tmp):  # name the file
            raise OSError(exc.errno, exc.strerror or str(exc), os.fspath(path)) from exc
        raise
    fsync_dir(path.parent)
    if step:
        checkpoint(step)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from the regular file ``path`` (``model.files``: a FIFO is an error, never
    a hang); FileNotFoundError passes, other problems are RegistryError."""
    data = shared_read_json(path, what, RegistryError)
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: {what} must be a JSON object")
    return data


def remove_file(path: Path) -> None:
    """Unlink ``path`` (if it exists) and fsync its folder."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
        fsync_dir(path.parent)


def force_rmtree(path: Path) -> None:
    """Remove a folder tree (its read-only files go too: the folders stay writable).

    A symbolic link (or a plain file) is unlinked, never followed: what it points to is
    not the registry's to delete.
    """
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink() or not path.is_dir():
            os.unlink(path)
        else:
            shutil.rmtree(path)


def os_error_text(exc: OSError, fallback: Path) -> str:
    """``<path>: <what the OS said> [ENOSPC]``: one line naming the file the OS refused
    (``<from> -> <to>`` for a copy or a rename)."""
    path = os.fsdecode(exc.filename if exc.filename is not None else fallback)
    if exc.filename2 is not None:  # a copy or a rename: from -> to
        path = f"{path} -> {os.fsdecode(exc.filename2)}"
    name = errno.errorcode.get(exc.errno or 0)
    reason = exc.strerror or str(exc)
    return f"{path}: {reason}" + (f" [{name}]" if name else "")


@contextlib.contextmanager
def os_errors(action: str, outcome: str | Callable[[], str], root: Path) -> Iterator[None]:
    """Turn an OSError (disk full, quota, read-only file system, permission, file size
    limit) into a one-line RegistryError: what failed, the path, and ``outcome`` (what
    the failure left, e.g. "production is unchanged"; a callable is asked afterwards)."""
    try:
        yield
    except OSError as exc:
        text = outcome if isinstance(outcome, str) else outcome()
        raise RegistryError(f"{action} failed: {os_error_text(exc, root)}; {text}") from exc

"""File primitives of the registry: atomic JSON writes, fsync, reads, removal, JSON values.

Every write the registry makes goes through here: a temp file or link in the same folder,
fsync, ``os.replace``, fsync of the folder. :func:`checkpoint` is the fault-injection hook: it calls
``_checkpoint`` (None outside tests) with the name of the step just finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.errors import RegistryError

#: Test hook: called with a step name after each file-system step of a switch.
#: Fault-injection tests set it in a child process to die at a chosen step.
_checkpoint: Callable[[str], None] | None = None


def checkpoint(name: str) -> None:
    """Report the file-system step ``name`` as done (to the test hook, if set)."""
    if _checkpoint is not None:
        _checkpoint(name)


def utc_now() -> str:
    """UTC time as ISO 8601 with milliseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
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


def atomic_write_json(path: Path, data: Mapping[str, Any], step: str | None = None) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, replace, fsync.

    With ``step``, :func:`checkpoint` ``<step>_tmp`` after the temp file and ``step``
    after the replace.
    """
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    payload = (json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n").encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    if step:
        checkpoint(f"{step}_tmp")
    os.replace(tmp, path)
    fsync_dir(path.parent)
    if step:
        checkpoint(step)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; FileNotFoundError passes, other problems are RegistryError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: cannot read {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: {what} must be a JSON object")
    return data


def remove_file(path: Path) -> None:
    """Unlink ``path`` (if it exists) and fsync its folder."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
        fsync_dir(path.parent)


def force_rmtree(path: Path) -> None:
    """Remove a folder tree (its read-only files go too: the folders stay writable)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)

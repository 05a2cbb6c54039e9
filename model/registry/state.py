"""Which version is production, read without writing, and what recovery would repair.

Three records name production: the ``production`` link, ``production.json`` (the pointer)
and, during a switch, ``.pending.json`` (its intent). :func:`read_state` reads them and
applies the rules, touching nothing:

* With a pending switch, the link is the commit point: if it names the switch's version,
  the switch committed and production is that version (recovery *finishes* the switch);
  otherwise the switch never committed (recovery *discards* the intent).
* With no pending switch, ``production.json`` is the record of the last completed switch:
  production is its version when that is a valid version whose checksum matches the
  record, and a link that disagrees is repaired to match it (*relink*). When the pointer
  is missing, unreadable or names no valid version, a link to a valid version is the
  record and the pointer is rewritten from it (*repoint*). When neither is valid nothing
  can be repaired automatically: the problem is reported and a promotion or rollback
  fixes it.

The resulting :class:`ProductionState` carries the problem in words (for ``retrain
status``) and the repairs that :meth:`~model.registry.pointer.ProductionPointer.recover`
makes under the lock.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from model.errors import RegistryError
from model.registry.files import read_json
from model.registry.layout import REGISTRY_FORMAT_VERSION, VERSION_RE, RegistryLayout
from model.registry.versions import VersionStore, check_model_folder

REPAIR_HINT = "`retrain recover` repairs it (so does any registry write)"
MANUAL_HINT = (
    "promote or roll back to a valid version (`retrain promote vNNNN --force --reason ...`, "
    "`retrain rollback --to vNNNN`)"
)


@dataclass(frozen=True)
class ProductionState:
    """The production records as found; ``version`` is production by the rules above."""

    link: str | None  # version the link names; None: no link, or not versions/vNNNN
    link_text: str  # the link as found, for messages: "versions/v0009", "/elsewhere", "absent"
    pointer: dict[str, Any] | None  # production.json, when readable
    pending: dict[str, Any] | None  # the intent's event, when .pending.json is readable
    pending_exists: bool
    version: str | None
    finish: bool = False  # a committed switch to finish (from ``pending``)
    repair: str | None = None  # "relink" (link := pointer) or "repoint" (pointer := link)
    found: str | None = None  # what is wrong

    @property
    def problem(self) -> str | None:
        """What is wrong, and how to repair it."""
        if self.found is None:
            return None
        fixable = self.finish or self.pending_exists or self.repair is not None
        return f"{self.found}: {REPAIR_HINT if fixable else MANUAL_HINT}"

    @property
    def pointer_version(self) -> str | None:
        v = (self.pointer or {}).get("version")
        return v if isinstance(v, str) else None


def read_link(layout: RegistryLayout) -> tuple[str | None, str]:
    """(version the ``production`` link names or None, the link's target or "absent").
    A plain folder or file in its place is a RegistryError: it cannot be swapped."""
    path = layout.production_path()
    try:
        target = os.readlink(path)
    except FileNotFoundError:
        return None, "absent"
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise RegistryError(
                f"{path} is a plain folder or file, not a link: move it away and register it "
                "with `retrain register`"
            ) from exc
        raise
    parts = Path(target).parts
    if len(parts) == 2 and parts[0] == "versions" and VERSION_RE.fullmatch(parts[1]):
        return parts[1], target
    return None, target


def read_pointer(layout: RegistryLayout) -> tuple[dict[str, Any] | None, str | None]:
    """(production.json or None, why it is unusable when it exists but cannot be used)."""
    try:
        data = read_json(layout.pointer_path, "production pointer")
    except FileNotFoundError:
        return None, None
    except RegistryError as exc:
        return None, str(exc)
    fmt = data.get("format_version")
    if isinstance(fmt, int) and fmt > REGISTRY_FORMAT_VERSION:
        raise RegistryError(f"{layout.pointer_path}: format {fmt} is newer than this software")
    return data, None


def read_pending(layout: RegistryLayout) -> tuple[bool, dict[str, Any] | None]:
    """(whether .pending.json exists, its event when readable and well formed)."""
    try:
        data = read_json(layout.pending_path, "pending operation")
    except FileNotFoundError:
        return False, None
    except RegistryError:
        return True, None  # torn intent: written before the link was touched
    ev = data.get("event")
    ok = isinstance(ev, dict) and isinstance(ev.get("version"), str) and "id" in ev
    return True, ev if ok else None


def version_problem(versions: VersionStore, version: str, sha256: object = None) -> str | None:
    """Why ``version`` cannot be production (None when it can): not a real folder inside
    the registry, format or checksum wrong, or not the checksum ``sha256`` recorded."""
    try:
        path = versions.folder(version)
        _, actual = check_model_folder(path)
    except RegistryError as exc:
        return str(exc)
    if isinstance(sha256, str) and sha256 and sha256 != actual:
        return f"its model.pt is {actual[:12]}…, not {sha256[:12]}… as recorded"
    return None


def _link_words(state_link: str | None, text: str, versions: VersionStore) -> str:
    if text == "absent":
        return "the production link is missing"
    if state_link is None:
        return f"the production link points to {text}, not to versions/vNNNN"
    path = versions.layout.version_path(state_link)
    if path.is_symlink():
        return f"the production link names {state_link}, a symbolic link out of the registry"
    return f"the production link names {state_link}" + ("" if path.is_dir() else " (missing)")


def read_state(layout: RegistryLayout, versions: VersionStore) -> ProductionState:
    """The production records and what they mean, read without writing anything."""
    link, link_text = read_link(layout)
    pointer, pointer_error = read_pointer(layout)
    pending_exists, pending = read_pending(layout)
    base = ProductionState(link, link_text, pointer, pending, pending_exists, version=link)
    problems = []
    if pending_exists:
        if pending is not None and pending["version"] == link:
            text = (
                f"a switch to {link} was interrupted after its commit point (the link moved); "
                "production.json and the history are not complete yet"
            )
            return replace(base, finish=True, found=text)
        target = pending["version"] if pending else "?"
        problems.append(
            f"a switch to {target} was interrupted before its commit point (the link did not "
            "move); its intent .pending.json is to be discarded"
        )
    pv = (pointer or {}).get("version")
    pv = pv if isinstance(pv, str) and VERSION_RE.fullmatch(pv) else None
    version, repair = link, None
    if pointer is None and pointer_error is None and link is None and link_text == "absent":
        version = None
    elif pv is not None and pv == link:
        path = layout.version_path(pv)
        if path.is_symlink():
            where = f"a symbolic link out of the registry (to {os.readlink(path)})"
            problems.append(f"production {pv} is {where}")
        elif not path.is_dir():
            problems.append(f"production {pv} is missing from {layout.versions_dir}")
    else:
        link_words = _link_words(link, link_text, versions)
        pointer_bad: str | None
        if pointer is None:
            pointer_bad = pointer_error or "production.json is missing"
        elif pv is None:
            pointer_bad = f"production.json names no version ({pointer.get('version')!r})"
        else:
            bad = version_problem(versions, pv, pointer.get("sha256"))
            pointer_bad = bad and f"production.json names {pv}, which cannot be production: {bad}"
        link_bad = version_problem(versions, link) if link else link_words
        link_full = link_words if link is None else f"{link_words}: {link_bad}"
        if not pointer_bad:
            version, repair = pv, "relink"
            problems.append(
                f"{link_words}, but production.json, the record of the last completed switch, "
                f"names {pv}"
            )
        elif not link_bad:
            repair = "repoint"
            problems.append(
                f"{pointer_bad}, while the production link names {link}, a valid version"
            )
        else:
            version = pv or link
            problems.append(f"no valid production: {pointer_bad}; {link_full}")
    found = "; ".join(problems) or None
    return replace(base, version=version, repair=repair, found=found)

"""Where the registry keeps what: the paths under its root, version names, registry.json.

:class:`RegistryLayout` names every file and folder of the layout described in the
package docstring, checks the format descriptor (``registry.json``), creates the layout
on the first write and clears temp files that a crash left behind.
"""

from __future__ import annotations

import re
from pathlib import Path

from model.errors import RegistryError
from model.registry.files import atomic_write_json, force_rmtree, read_json, utc_now

REGISTRY_FORMAT_VERSION = 1
VERSION_RE = re.compile(r"^v\d{4,}$")


def check_version_name(version: object) -> str:
    """Return ``version`` if it is a version name (``v0001``); raise RegistryError otherwise."""
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
        raise RegistryError(
            f"invalid version name {version!r}: expected 'v' and at least 4 digits, e.g. v0003"
        )
    return version


def version_name(number: int) -> str:
    return f"v{number:04d}"


class RegistryLayout:
    """The paths of a registry rooted at ``root`` (an absolute path)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    @property
    def history_path(self) -> Path:
        return self.root / "history.jsonl"

    @property
    def pointer_path(self) -> Path:
        return self.root / "production.json"

    @property
    def challenger_path(self) -> Path:
        return self.root / "challenger.json"

    @property
    def pending_path(self) -> Path:
        return self.root / ".pending.json"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    def production_path(self) -> Path:
        """The ``production`` link (``production/model.pt`` is what users load)."""
        return self.root / "production"

    def version_path(self, version: str) -> Path:
        """Folder of ``version`` (validated name; the folder may not exist)."""
        return self.versions_dir / check_version_name(version)

    def check_format(self) -> None:
        """Refuse a registry written in a newer format (a missing registry.json is fine)."""
        path = self.root / "registry.json"
        try:
            data = read_json(path, "registry descriptor")
        except FileNotFoundError:
            return
        fmt = data.get("format_version")
        if not isinstance(fmt, int) or isinstance(fmt, bool):
            raise RegistryError(f"{path}: format_version must be an integer, got {fmt!r}")
        if fmt > REGISTRY_FORMAT_VERSION:
            raise RegistryError(
                f"{path}: registry format {fmt} was written by a newer version of this "
                f"software (this one reads format {REGISTRY_FORMAT_VERSION}); upgrade it"
            )

    def ensure(self) -> None:
        """Create ``versions/`` and ``registry.json`` if missing (locked), then check the format."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        if not (self.root / "registry.json").exists():
            atomic_write_json(
                self.root / "registry.json",
                {"format_version": REGISTRY_FORMAT_VERSION, "created_at": utc_now()},
            )
        self.check_format()

    def remove_stale_temps(self) -> None:
        """Remove temp and trash folders of versions, and temp files of the root (locked).
        A symbolic link among them is unlinked, never followed."""
        if self.versions_dir.is_dir():
            for p in self.versions_dir.iterdir():
                if p.name.startswith((".tmp-", ".trash-")):
                    force_rmtree(p)
        for p in self.root.iterdir():
            if ".tmp-" in p.name and p.name.startswith("."):
                force_rmtree(p)

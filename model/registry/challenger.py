"""The challenger: ``challenger.json``, the version that gets a share of the traffic.

:class:`ChallengerFile` reads, writes and removes the file; setting and clearing a
challenger (verified version, not production, recorded in the history) is done by
:class:`~model.registry.model_registry.ModelRegistry` under the lock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from model.errors import RegistryError
from model.registry.files import atomic_write_json, read_json, remove_file
from model.registry.layout import REGISTRY_FORMAT_VERSION, check_version_name


@dataclass(frozen=True)
class ChallengerInfo:
    version: str
    traffic: float
    set_at: str
    reason: str | None = None


class ChallengerFile:
    """The challenger file at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> ChallengerInfo | None:
        """The challenger, or None; an unreadable file is a RegistryError."""
        try:
            data = read_json(self.path, "challenger")
        except FileNotFoundError:
            return None
        try:
            return ChallengerInfo(
                version=check_version_name(data.get("version")),
                traffic=float(data["traffic"]),
                set_at=str(data.get("set_at", "")),
                reason=data.get("reason"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"{self.path}: invalid challenger: {exc}") from exc

    def read_or_none(self) -> ChallengerInfo | None:
        """The challenger, or None when there is none or its file is unreadable."""
        try:
            return self.read()
        except RegistryError:
            return None

    def write(self, info: ChallengerInfo) -> None:
        """Replace the file atomically with ``info`` (locked)."""
        atomic_write_json(self.path, {"format_version": REGISTRY_FORMAT_VERSION, **asdict(info)})

    def remove(self) -> None:
        """Remove the file, if any (locked)."""
        remove_file(self.path)

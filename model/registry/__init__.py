"""The model registry: immutable versions, an atomic production link, an audited history.

This package owns the registry's on-disk layout, model versions, the production pointer
swap and its crash recovery, the write lock, the history, the challenger and gc. It
imports only :mod:`model.errors` and the standard library (never torch or prefect).

Layout under ``root`` (``$RETRAIN_HOME/models``)::

    registry.json            {"format_version": 1, "created_at": ...}
    versions/v0001/          model.pt + model.json, immutable once renamed into place
    production -> versions/v0003   relative symlink: what users load (production/model.pt)
    production.json          {"format_version", "version", "sha256", "promoted_at", ...}
    challenger.json          optional {"format_version", "version", "traffic", ...}
    history.jsonl            append-only, one JSON event per line
    .pending.json            intent of an unfinished production switch (crash recovery)
    .lock                    fcntl.flock target held for every write

Source of truth: the ``production`` link is the commit point of a switch. A switch
writes ``.pending.json`` (the full history event), swaps the link, rewrites the
pointer, appends the event, then removes the intent; each step is temp-file/link,
fsync, ``os.replace``, fsync of the folder. Recovery (run under the lock before every
write, and by readers that see a disagreement) finishes a switch whose link was
swapped and discards one whose link was not.

Modules, bottom up: ``files`` (atomic write, fsync, the fault-injection checkpoint),
``layout`` (paths, version names, registry.json), ``lock``, ``history``, ``versions``,
``challenger``, ``pointer`` (switch and recovery), ``promotion`` (gate and rollback
rules), ``gc``, and ``model_registry`` (:class:`ModelRegistry`, composing them).
"""

from model.registry.challenger import ChallengerInfo
from model.registry.files import file_sha256, utc_now
from model.registry.gc import GcResult
from model.registry.history import EVENTS, PRODUCTION_EVENTS, RECORDABLE_EVENTS
from model.registry.layout import (
    REGISTRY_FORMAT_VERSION,
    VERSION_RE,
    check_version_name,
    version_name,
)
from model.registry.lock import RegistryLockError
from model.registry.model_registry import ModelRegistry
from model.registry.pointer import ProductionInfo
from model.registry.promotion import AlreadyProductionError, production_stack
from model.registry.versions import (
    META_FILE,
    MODEL_FILE,
    SUPPORTED_MODEL_FORMATS,
    VersionInfo,
    check_model_folder,
    metrics_summary,
)

__all__ = [
    "EVENTS",
    "META_FILE",
    "MODEL_FILE",
    "PRODUCTION_EVENTS",
    "RECORDABLE_EVENTS",
    "REGISTRY_FORMAT_VERSION",
    "SUPPORTED_MODEL_FORMATS",
    "VERSION_RE",
    "AlreadyProductionError",
    "ChallengerInfo",
    "GcResult",
    "ModelRegistry",
    "ProductionInfo",
    "RegistryLockError",
    "VersionInfo",
    "check_model_folder",
    "check_version_name",
    "file_sha256",
    "metrics_summary",
    "production_stack",
    "utc_now",
    "version_name",
]

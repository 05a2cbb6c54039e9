"""The model registry: immutable versions, an atomic production link, an audited history.

This package owns the registry's on-disk layout, model versions, the production pointer
swap and its crash recovery, the write lock, the history, the challenger and gc. It
imports only :mod:`model.errors`, :mod:`model.clock` (event times) and the standard library
(never torch or prefect).

Layout under ``root`` (``$RETRAIN_HOME/models``)::

    registry.json            {"format_version": 1, "created_at": ...}
    versions/v0001/          model.pt + model.json, immutable once renamed into place
    production -> versions/v0003   relative symlink: what users load (production/model.pt)
    production.json          {"format_version", "version", "sha256", "promoted_at", ...}
    challenger.json          optional {"format_version", "version", "traffic", ...}
    history.jsonl            append-only, one JSON event per line
    .pending.json            intent of an unfinished production switch (crash recovery)
    .lock                    fcntl.flock target held for every write

Versions are real folders inside ``versions/``: a symbolic link there is never listed,
registered, promoted or loaded (listing warns; gc unlinks it, never following it).

Source of truth: the ``production`` link is the commit point of a switch. A switch
writes ``.pending.json`` (the full history event), swaps the link, rewrites the
pointer, appends the event, then removes the intent; each step is temp-file/link,
fsync, ``os.replace``, fsync of the folder. Reading never writes: it applies the rules of
``state`` (with a pending switch the link decides; without one ``production.json``, the
record of the last completed switch, does) and reports what is inconsistent
(:meth:`ModelRegistry.problems`). Recovery, under the lock before every write (or
``recover()``), makes those repairs and records a ``recovered`` event. An error of the
OS in a write is a one-line RegistryError naming the path and what it left; a switch
whose link moved is never reported as failed (a RegistryWarning says what is left to
record, and recovery records it).

Verifying that a model loads needs torch, which the registry never imports: an entry
layer passes ``ModelRegistry(root, verify=...)`` (the CLI and the Prefect tasks pass
:func:`model.serving.loading.verify_loads`); without it, format and checksum are checked.

Modules, bottom up: ``files`` (atomic write, fsync, OS errors, the fault-injection
checkpoint), ``layout`` (paths, version names, registry.json), ``lock``, ``history``,
``versions``, ``challenger``, ``state`` (the production records, read-only), ``pointer``
(switch and recovery), ``challenger_control``, ``promotion`` (gate and rollback rules),
``gc``, and ``model_registry`` (:class:`ModelRegistry`, composing them).
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

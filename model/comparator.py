"""Compatibility shim: the comparator lives in :mod:`model.gate.comparator`.

Keeps ``from model.comparator import ModelComparator`` and the lab's
``python -m model.comparator --baseline … --new … --test-data …`` working.
"""

from model.gate.cli import main
from model.gate.comparator import *  # noqa: F403
from model.gate.comparator import __all__ as _names

__all__ = [*_names, "main"]

if __name__ == "__main__":
    raise SystemExit(main())

"""Compatibility shim: the statistics live in :mod:`model.gate.stats`.

Keeps ``from model.stats import delong_test, paired_bootstrap`` working.
"""

from model.gate.stats import *  # noqa: F403
from model.gate.stats import __all__  # noqa: F401

"""Compatibility shim: the model artifact lives in :mod:`model.training.artifact`.

Keeps ``from model.artifact import load_model`` working.
"""

from model.training.artifact import *  # noqa: F403
from model.training.artifact import __all__  # noqa: F401

"""Errors a user can fix: each names the file or setting and what is wrong.

Entry scripts (``src/train.py`` and friends) catch :class:`SimganError`, print its
message on one line and exit with status 2, so bad input never ends in a traceback
from deep inside torch or h5py.
"""


class SimganError(Exception):
    """Base class for every user-facing error of the project."""


class ConfigError(SimganError):
    """A setting has a value the code cannot use (names the setting)."""


class DataError(SimganError):
    """A data file or folder is missing, malformed or inconsistent (names the path)."""

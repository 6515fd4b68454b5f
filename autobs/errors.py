"""Errors autobs raises for problems in what the user gave it.

Every ``AutobsError`` is the user's to fix, so its message says what is wrong, where (file, name, key)
and what to do. The CLI prints ``error: <message>`` and exits 2 for these; any other exception is a bug
in autobs and keeps its traceback.
"""

from __future__ import annotations


class AutobsError(Exception):
    """Base class: a problem with the user's input, reported without a traceback by the CLI."""


class TaskError(AutobsError):
    """The task (a model.py file or an ``autobs.Task``) breaks the model.py contract."""


class ConfigError(AutobsError):
    """A setting is out of range or of the wrong type (batch size, schedule name, budget, device...)."""

"""autobs: measured batch size, learning rate, warmup and LR schedule for a PyTorch model.

Public names are imported from here; the modules behind them are private. Importing ``autobs`` is
cheap: torch and the stages load on first use of a name (as Optuna's ``_LazyImport`` does).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it. The training loop lives in `training.py`, not `train.py`: a
# submodule named like the public function `autobs.train` would replace it on the package when imported.
_EXPORTS = {
    "AutobsError": "errors",
    "TaskError": "errors",
    "ConfigError": "errors",
    "Task": "task",
    "load_task": "task",
    "TrainConfig": "training",
    "TrainResult": "training",
    "CurvePoint": "training",
    "StepInfo": "training",
    "train": "training",
    "resolve_device": "training",
    "probe_memory": "memory",
    "MemoryResult": "memory",
    "OutOfMemory": "memory",
    "lr_range_test": "lr_range",
    "LRRangeResult": "lr_range",
    "noise_scale": "noise",
    "NoiseResult": "noise",
    "tune": "pipeline",
    "Recommendation": "pipeline",
    "SCHEDULES": "schedules",
    "lambda_lr": "schedules",
    "lr_factor": "schedules",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily below
    from .errors import AutobsError, ConfigError, TaskError
    from .lr_range import LRRangeResult, lr_range_test
    from .memory import MemoryResult, OutOfMemory, probe_memory
    from .noise import NoiseResult, noise_scale
    from .pipeline import Recommendation, tune
    from .schedules import SCHEDULES, lambda_lr, lr_factor
    from .task import Task, load_task
    from .training import CurvePoint, StepInfo, TrainConfig, TrainResult, resolve_device, train


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'autobs' has no attribute {name!r}")


def __dir__():
    return __all__

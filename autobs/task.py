"""The model.py contract: ``Task``, ``load_task`` and the batching of the task's data.

A task file is plain Python that autobs imports from its explicit path (never through ``sys.path``):

    model()                      required  a fresh torch.nn.Module each call
    train_data()                 required  a map-style Dataset of (inputs, target) items,
                                           or a tuple (inputs, targets) of tensors
    val_data()                   optional  same form; default: a seeded 10% of the training data
    loss(outputs, targets)       optional  scalar loss, a mean over the batch; default cross_entropy
    optimizer(params, lr)        optional  default AdamW(params, lr=lr, weight_decay=0.01)
    collate(items)               optional  (inputs, targets) from a list of Dataset items, e.g. padding
                                           variable-length sequences; default torch's default_collate
    metric                       optional  "loss" (default, lower is better) or "accuracy"
    epochs                       optional  the planned training length (default 10)

Everything wrong with a task is a ``TaskError`` whose message names the file, the name and the fix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, IterableDataset, TensorDataset
from torch.utils.data._utils.collate import default_collate

from .errors import TaskError

METRICS = ("loss", "accuracy")
VAL_FRACTION = 0.1  # DESIGN: a seeded 10% held out when the task has no val_data()
SPLIT_SEED = 0  # fixed so the same file always gives the same split (and the same fingerprint)


def default_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """AdamW with weight decay 0.01: the contract's default (PyTorch's AdamW default decay is also 0.01)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


# ---------------------------------------------------------------------------------------------------
# Data: batches are made by indexing tensors when the data are tensors (no per-item collation, which
# at batch 1024 costs more than a small model's step), by collating items otherwise.


class TensorData:
    """(inputs, targets) tensors sharing their first dimension; a batch is one indexing operation."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor):
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def batch(self, indices: torch.Tensor) -> tuple[Any, Any]:
        indices = indices.to(self.inputs.device)
        return self.inputs[indices], self.targets[indices]

    def subset(self, indices: torch.Tensor) -> TensorData:
        return TensorData(self.inputs[indices], self.targets[indices])

    def to(self, device: torch.device) -> TensorData:
        """A copy on ``device``, so batches are indexed where the model runs (no copy per step)."""
        return TensorData(self.inputs.to(device), self.targets.to(device))

    def digest(self, h) -> None:
        for t in (self.inputs, self.targets):
            h.update(str((tuple(t.shape), t.dtype)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())


class ItemData:
    """A map-style Dataset; a batch collates its items with the task's ``collate`` (default: PyTorch's
    ``default_collate``)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int] | None = None,
                 collate: Callable[[list], Any] | None = None):
        self.dataset = dataset
        self.indices = list(range(len(dataset))) if indices is None else list(indices)
        self.collate = collate if collate is not None else default_collate
        self._input_sizes: torch.Tensor | None = None  # read once: every memory probe asks for them

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, indices: torch.Tensor) -> tuple[Any, Any]:
        inputs, targets = self.collate([self.dataset[self.indices[i]] for i in indices.tolist()])
        return inputs, targets

    def subset(self, indices: torch.Tensor) -> ItemData:
        return ItemData(self.dataset, [self.indices[i] for i in indices.tolist()], self.collate)

    def input_sizes(self) -> torch.Tensor:
        """Elements in each item's inputs (all tensors in it): the length of a variable-length item."""
        if self._input_sizes is None:
            self._input_sizes = torch.tensor([_numel(self.dataset[i][0]) for i in self.indices])
        return self._input_sizes

    def largest(self, k: int) -> ItemData:
        """The ``k`` items with the largest inputs: a batch of them is the most memory any batch of ``k``
        can take when memory grows with input size (padded sequences, variable-size images)."""
        order = torch.argsort(self.input_sizes(), descending=True, stable=True)
        return self.subset(order[:k])

    def to(self, device: torch.device) -> ItemData:
        return self  # items are collated on the CPU and moved batch by batch

    def digest(self, h) -> None:
        # Best effort without reading every item: the size and the first item.
        h.update(str(len(self)).encode())
        first = self.dataset[self.indices[0]]
        for t in first:
            h.update(repr(t).encode() if not torch.is_tensor(t) else t.detach().cpu().numpy().tobytes())


Data = TensorData | ItemData


def _numel(obj: Any) -> int:
    if torch.is_tensor(obj):
        return obj.numel()
    if isinstance(obj, (str, bytes)):
        return len(obj)
    if isinstance(obj, (list, tuple)):
        return sum(_numel(o) for o in obj) if obj and not isinstance(obj[0], (int, float)) else len(obj)
    if isinstance(obj, dict):
        return sum(_numel(v) for v in obj.values())
    return 1


def to_device(obj: Any, device: torch.device) -> Any:
    """Move a tensor, or tensors nested in tuples, lists and dicts, to ``device``."""
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def _as_data(obj: Any, name: str, where: str, collate: Callable[[list], Any] | None = None) -> Data:
    """Turn what ``train_data()``/``val_data()`` returned into batchable data, or explain what is wrong."""
    fix = (
        f"Fix: make {name}() return a tuple (inputs, targets) of tensors with the same first dimension, "
        "or a map-style torch Dataset whose items are (inputs, target) pairs."
    )
    if isinstance(obj, TensorDataset):
        if len(obj.tensors) != 2:
            raise TaskError(
                f"{where}: {name}() returned a TensorDataset of {len(obj.tensors)} tensors; items must be "
                f"(inputs, target) pairs. {fix}"
            )
        obj = obj.tensors
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(torch.is_tensor(t) for t in obj):
        inputs, targets = obj
        if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0]:
            raise TaskError(
                f"{where}: {name}() returned tensors of shapes {tuple(inputs.shape)} and "
                f"{tuple(targets.shape)}; they must share their first (sample) dimension. {fix}"
            )
        data: Data = TensorData(inputs, targets)
    elif isinstance(obj, IterableDataset):
        raise TaskError(f"{where}: {name}() returned an IterableDataset; autobs needs random access. {fix}")
    elif isinstance(obj, Dataset) or (hasattr(obj, "__getitem__") and hasattr(obj, "__len__")):
        if isinstance(obj, (tuple, list)):
            raise TaskError(
                f"{where}: {name}() returned a {type(obj).__name__} of {len(obj)} elements, not a pair of "
                f"tensors. {fix}"
            )
        data = ItemData(obj, collate=collate)
    else:
        raise TaskError(f"{where}: {name}() returned {type(obj).__name__}, which autobs cannot batch. {fix}")
    if len(data) == 0:
        raise TaskError(f"{where}: {name}() returned an empty dataset. Fix: give it at least one item.")
    if isinstance(data, ItemData):
        item = data.dataset[data.indices[0]]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TaskError(
                f"{where}: {name}()[0] is {_describe(item)}, not an (inputs, target) pair. {fix}"
            )
    return data


def _describe(obj: Any) -> str:
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)} elements"
    if torch.is_tensor(obj):
        return f"a tensor of shape {tuple(obj.shape)}"
    return f"a {type(obj).__name__}"


# ---------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Task:
    """A training problem autobs tunes: a model factory, data, loss, optimizer, metric and length.

    Build it in Python or with ``load_task("model.py")``; both validate the same way, at construction,
    by building the model once and running the loss on a batch of two training items.

    Args:
        model: zero-argument callable returning a fresh ``torch.nn.Module`` each call.
        train_data: (inputs, targets) tensors, a ``TensorDataset``, or a map-style Dataset of pairs;
            or a zero-argument callable returning one of those.
        val_data: same forms, or None to hold out a seeded ``val_fraction`` of ``train_data``.
        loss: ``loss(outputs, targets) -> scalar``, a mean over the batch (gradient accumulation relies
            on it); default ``cross_entropy``.
        optimizer: ``optimizer(params, lr) -> torch.optim.Optimizer``; default AdamW, weight decay 0.01.
        collate: ``collate(items) -> (inputs, targets)`` for Dataset items (padding variable-length
            sequences, say); default ``default_collate``. Tensor data are batched by indexing instead.
        metric: ``"loss"`` (lower is better) or ``"accuracy"`` (higher is better).
        epochs: the training length the user plans; recommendations are for this budget.
        name: shown in reports and used for the run directory.

    Example:
        >>> import torch, autobs
        >>> x, y = torch.randn(100, 4), torch.randint(0, 2, (100,))
        >>> task = autobs.Task(model=lambda: torch.nn.Linear(4, 2), train_data=(x, y), metric="accuracy")
        >>> len(task.train), len(task.val)
        (90, 10)
    """

    model: Callable[[], torch.nn.Module]
    train_data: Any
    val_data: Any = None
    loss: Callable[[Any, Any], torch.Tensor] | None = None
    optimizer: Callable[..., torch.optim.Optimizer] | None = None
    collate: Callable[[list], Any] | None = None
    metric: str = "loss"
    epochs: int = 10
    name: str = "task"
    path: Path | None = None  # the task file, when loaded from one (trial workers reload it from there)
    val_fraction: float = VAL_FRACTION
    train: Data = field(init=False, repr=False)
    val: Data = field(init=False, repr=False)
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        where = str(self.path) if self.path is not None else f"Task {self.name!r}"
        self.loss = self.loss if self.loss is not None else F.cross_entropy
        self.optimizer = self.optimizer if self.optimizer is not None else default_optimizer
        _check_settings(self, where)
        self.train = _as_data(_call_data(self.train_data, "train_data", where), "train_data", where,
                              self.collate)
        if self.val_data is None:
            if len(self.train) < 2:
                raise TaskError(
                    f"{where}: train_data() has {len(self.train)} item; holding out a validation split "
                    "needs at least 2. Fix: give more data or define val_data()."
                )
            self.train, self.val = _hold_out(self.train, self.val_fraction)
        else:
            self.val = _as_data(_call_data(self.val_data, "val_data", where), "val_data", where, self.collate)
        module = _check_model_loss_optimizer(self, where)
        self.fingerprint = _fingerprint(self, module)

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: sizes, parameter count, settings and fingerprint."""
        with torch.random.fork_rng(devices=[]):
            n_params = sum(p.numel() for p in self.model().parameters())
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "train_size": len(self.train),
            "val_size": len(self.val),
            "parameters": n_params,
            "metric": self.metric,
            "epochs": self.epochs,
            "fingerprint": self.fingerprint,
        }


def _call_data(obj: Any, name: str, where: str) -> Any:
    if not callable(obj) or isinstance(obj, (Dataset, torch.Tensor)):
        return obj
    try:
        return obj()
    except Exception as exc:  # the user's code failed: say where, keep the cause chained
        raise TaskError(
            f"{where}: {name}() raised {type(exc).__name__}: {exc}{_user_line(exc, where)}. "
            f"Fix: make {name}() run on its own (try calling it in a Python shell)."
        ) from exc


def sample_optimizer(task: Task) -> torch.optim.Optimizer:
    """The task's optimizer over a fresh model's parameters (at LR 0.001): what its kind and defaults are read
    from. The global RNG is left as it was (building a model draws from it)."""
    with torch.random.fork_rng(devices=[]):
        return task.optimizer(task.model().parameters(), 1e-3)


def _hold_out(data: Data, fraction: float) -> tuple[Data, Data]:
    # Seeded permutation so the split is the same on every run and on every machine.
    n = len(data)
    n_val = min(n - 1, max(1, round(fraction * n)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return data.subset(order[n_val:]), data.subset(order[:n_val])


def _check_settings(task: Task, where: str) -> None:
    if not callable(task.model):
        raise TaskError(
            f"{where}: model is {type(task.model).__name__}, not a function. Fix: define "
            "`def model(): return <a fresh torch.nn.Module>` so every stage gets its own copy."
        )
    if task.metric not in METRICS:
        raise TaskError(
            f"{where}: metric = {task.metric!r} is not supported. Fix: set metric to one of {METRICS}."
        )
    if isinstance(task.epochs, bool) or not isinstance(task.epochs, int) or task.epochs < 1:
        raise TaskError(
            f"{where}: epochs = {task.epochs!r} is not a positive integer. Fix: set epochs to the number "
            "of passes over train_data you plan to train for, e.g. `epochs = 10`."
        )
    if not 0 < task.val_fraction < 1:
        raise TaskError(f"{where}: val_fraction = {task.val_fraction!r} must be in (0, 1).")
    if not callable(task.loss):
        raise TaskError(f"{where}: loss is not callable. Fix: define `def loss(outputs, targets): ...`.")
    if task.collate is not None and not callable(task.collate):
        raise TaskError(f"{where}: collate is not callable. Fix: define `def collate(items): ...`.")
    if not callable(task.optimizer):
        raise TaskError(
            f"{where}: optimizer is not callable. Fix: define `def optimizer(params, lr): return "
            "torch.optim.SGD(params, lr=lr)` (or another torch.optim optimizer)."
        )


def _check_model_loss_optimizer(task: Task, where: str) -> torch.nn.Module:
    """Build the model once and run the loss on two training items, on the CPU, without touching the
    caller's random state (model initialisation draws from the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        try:
            module = task.model()
        except Exception as exc:
            raise TaskError(
                f"{where}: model() raised {type(exc).__name__}: {exc}{_user_line(exc, where)}. "
                "Fix: make model() build and return the network without arguments."
            ) from exc
        if not isinstance(module, torch.nn.Module):
            raise TaskError(
                f"{where}: model() returned {_describe(module)}, not a torch.nn.Module. Fix: make model() "
                "return a fresh module, e.g. `return torch.nn.Sequential(...)`."
            )
        try:
            inputs, targets = task.train.batch(torch.arange(min(2, len(task.train))))
        except Exception as exc:
            raise TaskError(
                f"{where}: making a batch of two train_data items failed: {type(exc).__name__}: {exc}"
                f"{_user_line(exc, where)}. Fix: for items of different sizes (variable-length "
                "sequences) define `def collate(items): ...` returning (inputs, targets), padding as needed."
            ) from exc
        try:
            outputs = module(inputs)
        except Exception as exc:
            raise TaskError(
                f"{where}: model()(inputs) failed on a batch of train_data: {type(exc).__name__}: {exc}"
                f"{_user_line(exc, where)}. Fix: make the model accept a batch of the inputs that "
                "train_data() gives (first dimension = batch)."
            ) from exc
        try:
            value = task.loss(outputs, targets)
        except Exception as exc:
            raise TaskError(
                f"{where}: loss(outputs, targets) raised {type(exc).__name__}: {exc}{_user_line(exc, where)}. "
                "Fix: define loss() to match the model's outputs and the targets (the default is "
                "cross_entropy, for class logits and integer labels)."
            ) from exc
        if not torch.is_tensor(value) or value.numel() != 1:
            raise TaskError(
                f"{where}: loss(outputs, targets) returned {_describe(value)}, not a scalar tensor. Fix: "
                "reduce it to a mean over the batch, e.g. `.mean()`."
            )
        if task.metric == "accuracy":
            if not torch.is_tensor(outputs) or outputs.ndim < 1 or outputs.shape[:-1] != targets.shape:
                raise TaskError(
                    f"{where}: metric = 'accuracy' needs outputs of shape (..., classes) and targets of "
                    f"shape (...); got {_describe(outputs)} and {_describe(targets)}. Fix: use "
                    "metric = 'loss' or return class scores from the model."
                )
            if outputs.shape[-1] < 2:
                # Accuracy is the argmax over the last dimension: over a single score it is always class 0, and the
                # metric would read the share of class-0 targets whatever the model learns.
                raise TaskError(
                    f"{where}: metric = 'accuracy' reads the argmax of the outputs' last dimension, but the model "
                    f"returns one score per example ({_describe(outputs)}), so every prediction would be class 0. "
                    "Fix: return a score per class (e.g. two logits for a binary task, with cross-entropy), or use "
                    "metric = 'loss'."
                )
        try:
            opt = task.optimizer(module.parameters(), 1e-3)
        except Exception as exc:
            raise TaskError(
                f"{where}: optimizer(params, lr) raised {type(exc).__name__}: {exc}{_user_line(exc, where)}. "
                "Fix: define `def optimizer(params, lr): return torch.optim.SGD(params, lr=lr)`."
            ) from exc
        if not isinstance(opt, torch.optim.Optimizer):
            raise TaskError(
                f"{where}: optimizer(params, lr) returned {_describe(opt)}, not a torch.optim.Optimizer. "
                "Fix: return the optimizer, e.g. `return torch.optim.SGD(params, lr=lr)`."
            )
    return module


def _user_line(exc: BaseException, where: str) -> str:
    """' (line N)' for the deepest traceback frame inside the task file, so the user knows where."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == where:
            line = frame.lineno
    return f" (line {line})" if line else ""


def _fingerprint(task: Task, module: torch.nn.Module) -> str:
    """Identifies the task for caching stage results: the file's bytes (or, for a Task built in Python,
    the model's structure and the data) plus the settings that change results."""
    h = hashlib.sha256()
    if task.path is not None:
        h.update(task.path.read_bytes())
    else:
        h.update(repr(module).encode())  # the model built for validation: its structure, not its weights
        for fn in (task.loss, task.optimizer, task.collate):
            h.update(getattr(fn, "__qualname__", repr(fn)).encode())
        task.train.digest(h)
        task.val.digest(h)
    settings = {"metric": task.metric, "epochs": task.epochs, "val_fraction": task.val_fraction}
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------


def load_task(path: str | Path, *, val_fraction: float = VAL_FRACTION) -> Task:
    """Import a model.py task file from its path and validate it.

    Raises:
        TaskError: the file is missing, not Python, fails to import, or breaks the contract.

    Example:
        >>> import autobs
        >>> task = autobs.load_task("examples/digits_mlp.py")
        >>> task.metric
        'accuracy'
    """
    path = Path(path).expanduser().resolve()
    where = str(path)
    if not path.exists():
        raise TaskError(f"{where}: task file not found. Fix: pass the path of a model.py file (see README).")
    if path.is_dir() or path.suffix != ".py":
        raise TaskError(
            f"{where}: not a Python file. Fix: pass a .py file that defines model() and train_data()."
        )
    source = path.read_bytes()
    try:
        code = compile(source, where, "exec")
    except SyntaxError as exc:
        raise TaskError(
            f"{where}: syntax error at line {exc.lineno}: {exc.msg}. Fix: correct that line "
            "(`python -m py_compile FILE` shows the same error)."
        ) from None
    module_name = f"autobs_task_{hashlib.sha256(source).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        del sys.modules[module_name]
        raise TaskError(
            f"{where}: importing the file raised {type(exc).__name__}: {exc}{_user_line(exc, where)}. "
            "Fix: make `python <file>` run without error (missing packages go in your environment)."
        ) from exc

    names = vars(module)
    for required, hint in (("model", "def model(): return <a fresh torch.nn.Module>"),
                           ("train_data", "def train_data(): return (inputs, targets)")):
        if required not in names:
            raise TaskError(f"{where}: `{required}` is not defined. Fix: add `{hint}`.")
    for name in ("train_data", "val_data"):
        if name in names and not callable(names[name]):
            raise TaskError(
                f"{where}: `{name}` must be a function returning the data. Fix: write `def {name}(): ...`."
            )
    return Task(
        model=names["model"],
        train_data=names["train_data"],
        val_data=names.get("val_data"),
        loss=names.get("loss"),
        optimizer=names.get("optimizer"),
        collate=names.get("collate"),
        metric=names.get("metric", "loss"),
        epochs=names.get("epochs", 10),
        name=path.stem,
        path=path,
        val_fraction=val_fraction,
    )

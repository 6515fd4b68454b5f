"""Search spaces: a YAML file in ``search_spaces/`` read, checked and turned into trial configs.

A space names four things (each file documents them in its comments):

    batch_size:       {low, high}      powers of two from low to high; high may be the anchor
                                       ``max_batch_size`` (the memory probe's ceiling)
    lr:               {low, high, anchor}
                                       log-uniform; with ``anchor: range_test`` low and high are factors of
                                       the range test's suggestion at the trial's batch size,
                                       ``lr_at(B) = lr(B_ref)·(B/B_ref)^α``; without an anchor, plain LRs
    warmup_fraction:  {low, high}      uniform share of the run's optimizer steps spent warming up
    schedules:        {name: params}   the schedules searched (names from ``autobs.schedules.SCHEDULES``),
                                       each with its own parameters: ``{low, high[, log]}`` to search, or a
                                       plain value to fix

The sampler sees ``log2_batch_size`` (an integer, so batch sizes stay powers of two and trials share
batch sizes: the scaling fit needs several trials per size), ``lr_factor`` (log-uniform, the same range
at every batch size, so what the sampler learns about a good factor carries across sizes),
``warmup_fraction``, ``schedule`` and ``<schedule>.<param>`` for each schedule's own parameters (named per
schedule: Optuna needs one distribution per name).

Anything wrong in a file is a ``SearchSpaceError`` naming the file, the key and its line.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import ConfigError
from .schedules import SCHEDULES

def _spaces_dir() -> Path:
    # The bundled spaces live in the repository's search_spaces/; a wheel installs them inside the package
    # as autobs/search_spaces/ (pyproject's package-dir), where there is no checkout around it.
    here = Path(__file__).resolve().parent
    checkout = here.parent / "search_spaces"
    return checkout if checkout.is_dir() else here / "search_spaces"


SPACES_DIR = _spaces_dir()
BELOW_FLOOR_SIZES = 3  # sizes a bundled space searches when the memory ceiling lies below its batch_size.low
ANCHORS = {"batch_size.high": ("max_batch_size",), "lr.anchor": ("range_test",)}
TOP_KEYS = ("batch_size", "lr", "warmup_fraction", "schedules")


class SearchSpaceError(ConfigError):
    """A search-space file is wrong: unknown key, bad range, wrong type, or an anchor that does not exist."""


@dataclass(frozen=True)
class Range:
    """A numeric range ``[low, high]``, sampled in log space when ``log``."""

    low: float
    high: float
    log: bool = False

    @property
    def middle(self) -> float:
        """The middle of the range in the space it is sampled in: geometric when ``log``."""
        return math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2


@dataclass
class SearchSpace:
    """A checked search space. ``resolve()`` fills its anchors from the stages' results."""

    name: str
    path: Path | None
    batch_low: int
    batch_high: int | str  # a number or the anchor "max_batch_size"
    lr: Range
    lr_anchor: str | None
    warmup_fraction: Range
    schedules: dict[str, dict[str, Range | float]]
    digest: str = ""

    @property
    def bundled(self) -> bool:
        """Whether this is one of autobs's own spaces (``search_spaces/``), not a file the user wrote."""
        return self.path is not None and self.path.resolve().parent == SPACES_DIR.resolve()

    @property
    def needs_max_batch_size(self) -> bool:
        return self.batch_high == "max_batch_size"

    @property
    def needs_range_test(self) -> bool:
        return self.lr_anchor == "range_test"

    def resolve(self, *, max_batch_size: int | None, n_train: int,
                lr_at: Callable[[float], float] | None = None) -> ResolvedSpace:
        """Bind the anchors: the memory ceiling (capped at the training set size) and the range test's
        ``lr_at(B)``.

        Raises:
            SearchSpaceError: an anchor the space uses has no value, or the batch range is empty.
        """
        where = self.path or self.name
        high = self.batch_high
        if high == "max_batch_size":
            if max_batch_size is None:
                raise SearchSpaceError(f"{where}: batch_size.high is max_batch_size, but no memory probe result "
                                       "was given. Run `autobs probe` first, or give a number.")
            high = max_batch_size
        high = min(int(high), n_train)
        k_low, k_high = math.ceil(math.log2(self.batch_low)), math.floor(math.log2(high))
        if k_low > k_high and self.bundled:
            # A bundled space's floor (16) is a default, not the user's choice: below it a model too big for the
            # device's memory at 16 (a real case on a small GPU) still has sizes to search. The BELOW_FLOOR_SIZES
            # largest powers of two that fit, from 2 (batch norm cannot train on 1 example).
            k_low = max(1, k_high - BELOW_FLOOR_SIZES + 1)
        if k_low > k_high:
            raise SearchSpaceError(
                f"{where}: batch_size has no power of two between low={self.batch_low} and {high} (the "
                f"ceiling{' and training set size' if high == n_train else ''}). Fix: lower batch_size.low"
                f"{'' if self.bundled else ' in this space file'}"
                f"{', or give the memory probe more room (--memory-limit)' if high < n_train else ''}."
            )
        if self.needs_range_test and lr_at is None:
            raise SearchSpaceError(f"{where}: lr.anchor is range_test, but no range test result was given. "
                                   "Run `autobs lr-find` first, or drop the anchor and give absolute LRs.")
        return ResolvedSpace(self, k_low, k_high, lr_at if self.needs_range_test else None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path) if self.path else None, "digest": self.digest}


@dataclass
class ResolvedSpace:
    """A space with its anchors bound: ``suggest(trial)`` draws one config through an Optuna trial."""

    space: SearchSpace
    log2_low: int
    log2_high: int
    lr_at: Callable[[float], float] | None
    oom_batch_size: int | None = field(default=None)  # smallest batch size that ran out of memory

    def exclude_from(self, batch_size: int) -> None:
        """A trial at ``batch_size`` ran out of memory: propose only smaller batch sizes from now on (the
        OOM region is infeasible, not merely bad, so the sampler must not return to it)."""
        self.oom_batch_size = min(batch_size, self.oom_batch_size or batch_size)

    @property
    def batch_sizes(self) -> list[int]:
        top = self.log2_high
        if self.oom_batch_size is not None:
            top = min(top, math.ceil(math.log2(self.oom_batch_size)) - 1)
        return [2**k for k in range(self.log2_low, max(top, self.log2_low) + 1)]

    def suggest(self, trial) -> dict[str, Any]:
        """Draw one config through Optuna's define-by-run interface; returns the training settings."""
        space = self.space
        k = trial.suggest_int("log2_batch_size", self.log2_low, int(math.log2(self.batch_sizes[-1])))
        batch_size = 2**k
        factor = trial.suggest_float("lr_factor", space.lr.low, space.lr.high, log=True)
        lr = factor * (self.lr_at(batch_size) if self.lr_at else 1.0)
        warmup = _suggest(trial, "warmup_fraction", space.warmup_fraction)
        schedule = trial.suggest_categorical("schedule", list(space.schedules))
        params = {name: _suggest(trial, f"{schedule}.{name}", spec)
                  for name, spec in space.schedules[schedule].items()}
        return {"batch_size": batch_size, "lr": lr, "warmup_fraction": warmup, "schedule": schedule,
                "schedule_params": params}

    def baseline_params(self, log2_batch_size: int) -> dict[str, Any]:
        """The sampler parameters of a default config at batch size ``2**log2_batch_size``: the LR at the
        geometric middle of the space's LR range (with ``anchor: range_test``, a factor of the range test's
        lr(B)), the least warmup the space allows, cosine decay (Loshchilov & Hutter 2017; the first listed
        schedule if the space has no cosine) with each of its parameters at the middle of its range.

        Why the LR's middle and not the range test's read (factor 1): each space's range says where the best LR
        is expected for its optimizer family, and its comment gives the measurements (a sweep reads below the
        best LR of a whole run, by more with Adam than with SGD, and overshooting the best costs more steps than
        undershooting it). At 15% of a grid's compute the budget affords little more than this round, so
        its LRs become the recommendation's.

        A stratified search runs it first at every batch size. Why: the sampler's first proposals are
        random (TPE draws at random until it has history), and when the budget affords one trial per size,
        a random warmup (up to 30% of the run in adamw.yaml) or schedule decides the recommendation. The
        default gives every size a comparable, sensible point for the scaling fit, and the recommendation
        a default to fall back on; later trials search around it."""
        space = self.space
        factor = space.lr.middle  # the LR range is sampled in log space: its geometric middle
        schedule = "cosine" if "cosine" in space.schedules else next(iter(space.schedules))
        params: dict[str, Any] = {"log2_batch_size": log2_batch_size, "lr_factor": factor, "schedule": schedule}
        if isinstance(space.warmup_fraction, Range) and space.warmup_fraction.low != space.warmup_fraction.high:
            params["warmup_fraction"] = space.warmup_fraction.low
        for name, spec in space.schedules[schedule].items():
            if isinstance(spec, Range) and spec.low != spec.high:
                params[f"{schedule}.{name}"] = spec.middle
        return params


def _suggest(trial, name: str, spec: Range | float) -> float:
    if not isinstance(spec, Range):
        return spec
    if spec.low == spec.high:
        return spec.low
    return trial.suggest_float(name, spec.low, spec.high, log=spec.log)


# ---------------------------------------------------------------------------------------------------
# Reading a file


def space_path(name_or_path: str | Path) -> Path:
    """A path as given, or a bundled space by name (``default``, ``sgd``, ``adamw``)."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return SPACES_DIR / f"{name_or_path}.yaml"


def default_space_name(optimizer: Any) -> str:
    """The bundled space that fits the task's optimizer: ``sgd`` for SGD, ``adamw`` for the Adam family
    (their good LRs and warmups differ: SGD tolerates large LRs without warmup, Adam-family optimizers
    need warmup more), ``default`` otherwise."""
    name = type(optimizer).__name__.lower()
    if name == "sgd":
        return "sgd"
    if name.startswith("adam"):
        return "adamw"
    return "default"


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Read and check a search-space YAML file (a path, or a bundled space's name).

    Raises:
        SearchSpaceError: the file is missing or not YAML, or a key is unknown, a range is bad, a
            value has the wrong type, or an anchor does not exist; the message names file, key and line.
    """
    path = space_path(name_or_path)
    where = str(path)
    if not path.is_file():
        bundled = ", ".join(sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))
        raise SearchSpaceError(f"{where}: search space not found. Fix: pass a YAML file, or one of: {bundled}.")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise SearchSpaceError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', exc)}.") from None
    reader = _Reader(where, lines)
    space = reader.space(data if data is not None else {}, path.stem)
    space.path = path
    space.digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return space


def _key_lines(node, prefix: str = "") -> dict[str, int]:
    """The 1-based line of every mapping key, by dotted path (``lr.low``)."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}.{key.value}" if prefix else str(key.value)
            lines[path] = key.start_mark.line + 1
            lines.update(_key_lines(value, path))
    return lines


class _Reader:
    def __init__(self, where: str, lines: dict[str, int]):
        self.where, self.lines = where, lines

    def error(self, key: str, problem: str, fix: str) -> SearchSpaceError:
        line = self.lines.get(key) or self.lines.get(key.rsplit(".", 1)[0])
        at = f" (line {line})" if line else ""
        return SearchSpaceError(f"{self.where}: {key or 'the file'}{at}: {problem}. Fix: {fix}.")

    def mapping(self, value: Any, key: str, known: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping of {', '.join(known)}, got {type(value).__name__}",
                             f"write {key}: {{{', '.join(f'{k}: ...' for k in known)}}}")
        for k in value:
            if k not in known:
                fix = f"use only {', '.join(known)} here" if known else "remove it: this takes no keys"
                raise self.error(f"{key}.{k}" if key else str(k), "unknown key", fix)
        for k in required:
            if k not in value:
                raise self.error(key, f"{k} is missing", f"add {f'{key}.' if key else ''}{k}")
        return value

    def number(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(key, f"expected a number, got {value!r}", "give a finite number")
        return float(value)

    def range(self, value: Any, key: str, *, positive: bool = False, log: bool = False) -> Range:
        spec = self.mapping(value, key, ("low", "high", "log"), ("low", "high"))
        low, high = self.number(spec["low"], f"{key}.low"), self.number(spec["high"], f"{key}.high")
        log = spec.get("log", log)
        if not isinstance(log, bool):
            raise self.error(f"{key}.log", f"expected true or false, got {log!r}", "write log: true or log: false")
        if low > high:
            raise self.error(key, f"low={low:g} is above high={high:g}", "swap them or fix one")
        if (positive or log) and low <= 0:
            raise self.error(f"{key}.low", f"must be above 0 (log scale), got {low:g}", "give a positive low")
        return Range(low, high, log)

    def space(self, data: Any, name: str) -> SearchSpace:
        data = self.mapping(data, "", TOP_KEYS, TOP_KEYS)
        batch = self.mapping(data["batch_size"], "batch_size", ("low", "high"), ("low", "high"))
        low = batch["low"]
        if isinstance(low, bool) or not isinstance(low, int) or low < 1:
            raise self.error("batch_size.low", f"expected a positive integer, got {low!r}", "e.g. low: 16")
        high = batch["high"]
        if isinstance(high, str):
            if high not in ANCHORS["batch_size.high"]:
                raise self.error("batch_size.high", f"unknown anchor {high!r}",
                                 f"use a number or {' / '.join(ANCHORS['batch_size.high'])}")
        elif isinstance(high, bool) or not isinstance(high, int) or high < low:
            raise self.error("batch_size.high", f"expected an integer ≥ low={low} or max_batch_size, got {high!r}",
                             "e.g. high: max_batch_size")

        lr = self.mapping(data["lr"], "lr", ("low", "high", "anchor"), ("low", "high"))
        anchor = lr.get("anchor")
        if anchor is not None and anchor not in ANCHORS["lr.anchor"]:
            raise self.error("lr.anchor", f"unknown anchor {anchor!r}",
                             f"use {' / '.join(ANCHORS['lr.anchor'])}, or drop it for absolute LRs")
        lr_range = self.range({k: v for k, v in lr.items() if k != "anchor"}, "lr", log=True)

        warmup = self.range(data["warmup_fraction"], "warmup_fraction")
        if warmup.low < 0 or warmup.high >= 1:
            raise self.error("warmup_fraction", f"must lie in [0, 1), got {warmup.low:g}–{warmup.high:g}",
                             "e.g. low: 0.0, high: 0.2")

        schedules_in = self.mapping(data["schedules"], "schedules", tuple(SCHEDULES))
        if not schedules_in:
            raise self.error("schedules", "no schedule given", f"name at least one of {', '.join(SCHEDULES)}")
        schedules: dict[str, dict[str, Range | float]] = {}
        for schedule, params in schedules_in.items():
            accepted = tuple(p.name for p in inspect.signature(SCHEDULES[schedule]).parameters.values()
                             if p.kind is p.KEYWORD_ONLY)
            params = self.mapping(params, f"schedules.{schedule}", accepted)
            schedules[schedule] = {
                k: (self.range(v, f"schedules.{schedule}.{k}") if isinstance(v, dict)
                    else self.number(v, f"schedules.{schedule}.{k}"))
                for k, v in params.items()
            }
        return SearchSpace(name=name, path=None, batch_low=low, batch_high=high, lr=lr_range, lr_anchor=anchor,
                           warmup_fraction=warmup, schedules=schedules)

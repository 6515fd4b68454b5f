"""The one training loop every autobs stage uses.

``train(task, config, ...)`` builds a fresh model from the task, trains it for a budget of samples
(and/or seconds) with the config's batch size, LR, warmup, schedule and gradient accumulation, evaluates
on the validation data every so many samples, and returns the validation curve, the median step time and
whether training diverged. It never raises for a diverging run: a non-finite loss, or a loss that stays
far above where it started, stops the run and is reported.

Budget in samples, not steps: runs at different batch sizes are compared on the data they have seen
(DESIGN, stage 4). The run takes ``round(samples / batch_size)`` optimizer steps over successive seeded
shuffles of the training data, dropping each epoch's last incomplete batch (a batch of one breaks
BatchNorm, and a short batch is a noisier step than the config describes).

Example:
    >>> import autobs
    >>> task = autobs.load_task("examples/digits_mlp.py")
    >>> result = autobs.train(task, autobs.TrainConfig(batch_size=64, lr=0.1, schedule="cosine"))
    >>> result.stop_reason, result.curve[-1].metric > 0.9
    ('completed', True)
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Callable, Mapping

import torch

from .errors import ConfigError
from .schedules import get_schedule, lambda_lr
from .task import Data, Task, to_device

# A run has blown up when its training loss stays above this many times its first value: 4x is the
# divergence rule of Smith's LR range test (Smith 2017, as used by fastai and torch-lr-finder); below
# it, a noisy but recovering run is left alone.
DIVERGENCE_FACTOR = 4.0
# "Stays": the median of the last DIVERGENCE_WINDOW losses (the lower median while fewer have been seen)
# is above it. A median ignores a spike of any height shorter than half its window, where a mean (the
# smoothed loss, as the range test reads it) does not. Adam at a high LR often overshoots for a step or
# two at the start and recovers: on benchmarks/tasks/friedman_mlp.py (AdamW, lr 0.01, batch 128, seed 0)
# the losses ran 1.33, 0.56, 14.0, 0.55, 2.76, 1.04, ..., and the smoothed loss at step 3 (5.7, over 4x
# the first) stopped a run that reaches the grid's target in 121 steps, where the grid's best at that size
# took 206; the grid marked 48 of its 168 runs diverged so. A run that has truly blown up stays high (or
# goes non-finite, which stops it at once), so the median catches it DIVERGENCE_WINDOW / 2 steps later.
DIVERGENCE_WINDOW = 10
# EMA of the training loss, reported with each validation point (``CurvePoint.train_loss``): about a
# 10-step window, bias-corrected (Kingma & Ba 2015, Alg. 1) so the first steps are not pulled towards zero.
LOSS_EMA_BETA = 0.9
# Step-time warm-up: the first steps pay for lazy initialisation, allocator growth and kernel selection.
TIMING_SKIP_STEPS = 3
# About this many validation points over a run by default: enough to read steps-to-target to ~5% of the
# run. Over a 10-epoch run that is 2 validation passes per epoch; a forward pass costs about a third of
# a training step per sample, so with a 10% split they add ~2·0.1/(3·0.9) ≈ 7% compute (measured:
# reports/train_overhead.md).
DEFAULT_EVAL_POINTS = 20
# Early validation points. A fixed interval in samples resolves a crossing of the target worst where it
# comes earliest in samples: small batch sizes, whose steps-to-target is the most samples-efficient.
# Measured on digits (examples/digits_mlp.py, target 0.94): at batch 16 the 20-point grid's first point is
# at step 102, already past the target, so every trial read ~100 steps against ~185 on the oracle's
# 50-point grid, while batch 512 (crossing at ~30 steps, 3 steps a point) read true — which put B_noise
# at 0.3x. So the default grid also evaluates geometrically from 1/EARLY_EVAL_SPAN of the interval, each
# point EVAL_GROWTH times the samples of the last, until that is sparser than the interval: a crossing
# is then bracketed to within 25% of its samples wherever it falls (past the first 1/160 of a run), at
# every batch size alike, for log(8·4)/log(1.25) ≈ 16 more points (points past 4 intervals are the
# interval's own; every point of the plain grid is kept).
# Those points cost at most EARLY_EVAL_SHARE of the run's compute: a point is a forward pass over the
# validation set, about n_val/3 samples of training (the same estimate as above), so a run of H samples
# can afford EARLY_EVAL_SHARE·3·H/n_val of them. Digits (20 epochs, 10% held out) affords 26, all 16;
# char_lm (3 epochs, 451 validation sequences: a point costs ~9 steps at batch 16, measured) affords 4,
# and its grid grows by 32^(1/4) ≈ 2.4 a point: its crossings come late in a run, where the plain grid
# already resolves them.
EVAL_GROWTH = 1.25
EARLY_EVAL_SPAN = 8
EARLY_EVAL_SHARE = 0.05


@dataclass(frozen=True)
class TrainConfig:
    """What is tuned: the optimizer-step batch size, peak LR, warmup, schedule, and accumulation.

    ``batch_size`` is the effective batch of one optimizer step; with ``accumulation_steps = k`` it is
    processed as k micro-batches of ``batch_size / k`` (which must divide exactly).
    """

    batch_size: int
    lr: float
    warmup_steps: int = 0
    schedule: str = "constant"
    schedule_params: Mapping[str, Any] = field(default_factory=dict)
    accumulation_steps: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer; got {self.batch_size!r}.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive finite number; got {self.lr!r}.")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be a non-negative integer; got {self.warmup_steps!r}.")
        k = self.accumulation_steps
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or self.batch_size % k:
            raise ConfigError(
                f"accumulation_steps must be a positive integer that divides batch_size={self.batch_size}; "
                f"got {k!r}."
            )
        get_schedule(self.schedule, **self.schedule_params)  # unknown name or parameter: ConfigError now

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.accumulation_steps

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "schedule_params": dict(self.schedule_params)}


@dataclass(frozen=True)
class CurvePoint:
    """One validation point. ``seconds`` is training time only (evaluation excluded), so it measures
    what a time-to-target is made of."""

    step: int
    samples: int
    seconds: float
    metric: float
    train_loss: float | None  # bias-corrected EMA of the training loss; None before the first step


@dataclass(frozen=True)
class StepInfo:
    """What ``on_step`` sees after each optimizer step: the step number (1-based), the LR the step used,
    the batch's mean training loss (not smoothed; may be non-finite) and the model being trained (for
    measurements between steps, such as the gradient noise scale; leave its parameters as they are)."""

    step: int
    lr: float
    loss: float
    model: torch.nn.Module


@dataclass
class TrainResult:
    """What a run produced.

    ``stop_reason`` is one of ``"completed"``, ``"diverged"``, ``"time_budget"``, ``"callback"``.
    ``step_time_s`` is the median wall time of one optimizer step after ``TIMING_SKIP_STEPS`` warm-up
    steps (device synchronised), NaN when there was no step.
    """

    config: TrainConfig
    curve: list[CurvePoint]
    step_time_s: float
    diverged: bool
    stop_reason: str
    steps: int
    total_steps: int
    device: str

    @property
    def samples(self) -> int:
        return self.steps * self.config.batch_size

    @property
    def final_metric(self) -> float:
        return self.curve[-1].metric if self.curve else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "curve": [asdict(p) for p in self.curve],
            "step_time_s": self.step_time_s,
            "diverged": self.diverged,
            "stop_reason": self.stop_reason,
            "steps": self.steps,
            "samples": self.samples,
            "total_steps": self.total_steps,
            "device": self.device,
        }


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA if available, else MPS, else CPU; an explicit device must exist here."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}. Use auto, cpu, cuda, cuda:N or mps.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but CUDA is not available here. Use --device cpu.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} was asked for but MPS is not available here. Use --device cpu.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device type {dev.type!r} is not supported. Use auto, cpu, cuda, cuda:N or mps.")
    return dev


def train(
    task: Task,
    config: TrainConfig,
    *,
    samples: int | None = None,
    max_seconds: float | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    eval_every_samples: int | None = None,
    callback: Callable[[CurvePoint], bool | None] | None = None,
    on_step: Callable[[StepInfo], bool | None] | None = None,
    bf16: bool = False,
) -> TrainResult:
    """Train a fresh copy of ``task.model()`` with ``config`` and return its validation curve.

    Args:
        task: the task; its model factory gives this run its own model, so nothing of the user's changes.
        config: batch size, LR, warmup, schedule, accumulation.
        samples: the training length in samples; the schedule is laid out over it. Default: the task's
            planned ``epochs`` over its training data.
        max_seconds: stop (``stop_reason="time_budget"``) once training time passes this; the schedule
            keeps the length given by ``samples``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        seed: seeds model initialisation, shuffling and dropout; the same seed repeats the run exactly
            (on the same device and thread count). The caller's global RNG state is left as it was.
        eval_every_samples: validation interval (exactly this grid when given). Default: about
            ``DEFAULT_EVAL_POINTS`` points per run, and before those, points spaced geometrically from
            1/``EARLY_EVAL_SPAN`` of the interval (each ``EVAL_GROWTH`` times the last, sparser where
            validation is dear: ``EARLY_EVAL_SHARE``), so an early crossing of a target is resolved as
            well as a late one. A point is also taken before the first step and after the last.
        callback: called with each new ``CurvePoint``; return True to stop training (``"callback"``).
        on_step: called with a ``StepInfo`` after every optimizer step; return True to stop training
            (``"callback"``). The LR range test and the noise-scale stage run through it.
        bf16: run forward passes under bfloat16 autocast (meant for CUDA).

    Raises:
        ConfigError: a batch size larger than the training set, a bad budget or device.
    """
    dev = resolve_device(device)
    n_train = len(task.train)
    if config.batch_size > n_train:
        raise ConfigError(
            f"batch_size={config.batch_size} is larger than the training set ({n_train} items): no full "
            "batch can be drawn. Use a smaller batch size."
        )
    horizon = task.epochs * n_train if samples is None else samples
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ConfigError(f"samples must be a positive integer; got {samples!r}.")
    if max_seconds is not None and not max_seconds > 0:
        raise ConfigError(f"max_seconds must be positive; got {max_seconds!r}.")
    total_steps = max(1, round(horizon / config.batch_size))
    eval_every = eval_every_samples or max(config.batch_size, horizon // DEFAULT_EVAL_POINTS)
    if eval_every < 1:
        raise ConfigError(f"eval_every_samples must be positive; got {eval_every_samples!r}.")
    early_points = int(EARLY_EVAL_SHARE * 3 * horizon / max(1, len(task.val)))
    growth = max(EVAL_GROWTH, (4 * EARLY_EVAL_SPAN) ** (1 / max(1, early_points)))
    early_from = None if eval_every_samples or early_points < 2 else max(1, eval_every // EARLY_EVAL_SPAN)

    fork_devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        grid = partial(_next_eval, every=eval_every, early_from=early_from, growth=growth)
        return _run(task, config, dev, total_steps, max_seconds, seed, grid, callback, on_step, bf16)


def _next_eval(samples_seen: int, every: int, early_from: int | None, growth: float) -> int:
    """The samples count of the next validation point: the next multiple of ``every``, or, when
    ``early_from`` is set, the next point of the geometric grid (ratio ``growth``) from it if that comes first."""
    uniform = (samples_seen // every + 1) * every
    if early_from is None:
        return uniform
    return min(uniform, max(early_from, math.ceil(samples_seen * growth)))


def _run(task, config, dev, total_steps, max_seconds, seed, next_eval_at, callback, on_step, bf16) -> TrainResult:
    model = task.model().to(dev)
    model.train()
    optimizer = task.optimizer(model.parameters(), config.lr)
    scheduler = lambda_lr(
        optimizer, config.schedule, total_steps, min(config.warmup_steps, total_steps), **config.schedule_params
    )
    train_data, val_data = task.train.to(dev), task.val.to(dev)
    autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    batches = _batch_indices(len(train_data), config.batch_size, seed)
    k = config.accumulation_steps

    def evaluate() -> float:
        return _evaluate(model, task, val_data, config.micro_batch_size, dev, autocast)

    curve = [CurvePoint(0, 0, 0.0, evaluate(), None)]
    stop_reason = "callback" if callback and callback(curve[-1]) else None
    step, seconds, step_times = 0, 0.0, []
    first_loss, ema, next_eval = None, 0.0, next_eval_at(0)
    recent = deque(maxlen=DIVERGENCE_WINDOW)  # the last losses, for the divergence rule
    while stop_reason is None and step < total_steps:
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = _accumulate_gradients(model, task.loss, train_data, next(batches).chunk(k), dev, autocast)
        value = loss.item()  # synchronises the device, so the timing below is real
        lr = optimizer.param_groups[0]["lr"]
        if math.isfinite(value):
            optimizer.step()
            scheduler.step()
        step_times.append(time.perf_counter() - t0)
        seconds += step_times[-1]
        step += 1
        stop_asked = on_step is not None and on_step(StepInfo(step, lr, value, model))

        ema = LOSS_EMA_BETA * ema + (1 - LOSS_EMA_BETA) * value
        smoothed = ema / (1 - LOSS_EMA_BETA**step)
        first_loss = value if first_loss is None else first_loss
        recent.append(value)
        if not math.isfinite(value) or (first_loss > 0 and statistics.median_low(recent) > DIVERGENCE_FACTOR * first_loss):
            stop_reason = "diverged"
            break
        if stop_asked:
            stop_reason = "callback"
        if max_seconds is not None and seconds >= max_seconds:
            stop_reason = stop_reason or "time_budget"
        samples_seen = step * config.batch_size
        if samples_seen >= next_eval or step == total_steps or stop_reason:
            next_eval = next_eval_at(samples_seen)
            metric = evaluate()
            curve.append(CurvePoint(step, samples_seen, seconds, metric, smoothed))
            if not math.isfinite(metric):
                stop_reason = "diverged"
            elif callback and callback(curve[-1]):
                stop_reason = stop_reason or "callback"

    timed = step_times[TIMING_SKIP_STEPS:] if len(step_times) > TIMING_SKIP_STEPS else step_times
    return TrainResult(
        config=config,
        curve=curve,
        step_time_s=statistics.median(timed) if timed else math.nan,
        diverged=stop_reason == "diverged",
        stop_reason=stop_reason or "completed",
        steps=step,
        total_steps=total_steps,
        device=str(dev),
    )


def _batch_indices(n: int, batch_size: int, seed: int):
    """Endless batches of indices: a fresh seeded shuffle each epoch, last incomplete batch dropped."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def _accumulate_gradients(model, loss_fn, data: Data, micro_batches, dev, autocast) -> torch.Tensor:
    """Backward over equal micro-batches with each loss scaled by 1/k, so the summed gradient is the
    mean-loss gradient of the whole batch exactly (for a loss that is a mean over its batch). Returns the
    whole batch's mean loss, detached."""
    total = torch.zeros((), device=dev)
    for indices in micro_batches:
        inputs, targets = to_device(data.batch(indices), dev)
        with autocast():
            loss = loss_fn(model(inputs), targets)
        (loss / len(micro_batches)).backward()
        total += loss.detach().float()
    return total / len(micro_batches)


@torch.no_grad()
def _evaluate(model, task: Task, data: Data, batch_size: int, dev, autocast) -> float:
    """The task's metric over the whole validation set: mean loss (weighted by batch size) or accuracy."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(data), batch_size):
        indices = torch.arange(start, min(start + batch_size, len(data)))
        inputs, targets = to_device(data.batch(indices), dev)
        with autocast():
            outputs = model(inputs)
        if task.metric == "accuracy":
            total += (outputs.argmax(-1) == targets).sum().item()
            count += targets.numel()
        else:
            total += task.loss(outputs.float(), targets).item() * len(indices)
            count += len(indices)
    model.train()
    return total / count

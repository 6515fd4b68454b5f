"""Stage 3: the gradient noise scale B_simple (McCandlish et al. 2018, "An Empirical Model of
Large-Batch Training", App. A).

B_simple = tr(Σ) / |G|², with G the true gradient and Σ the per-example gradient covariance, predicts the
critical batch size: below it a bigger batch cuts the steps needed almost proportionally, above it
hardly at all. Neither quantity is observable, but the expected squared norm of a batch-B gradient is
``|G|² + tr(Σ)/B``, so squared norms at two batch sizes give unbiased estimates of both (App. A, eq. A.2):

    |G|²  ≈ (B_big·|G_big|² − B_small·|G_small|²) / (B_big − B_small)
    tr(Σ) ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big)

At each measurement, ``MICRO_BATCHES`` gradients of ``small_batch`` examples are taken one after the
other (|G_small|² is the mean of their squared norms) and their mean is the gradient of the big batch
(|G_big|²). Both estimates are noisy (|G|² can come out negative), so, as in the paper, each is smoothed
over the measurements with a bias-corrected EMA before the ratio is taken. A measurement taken during a
loss spike is left out of both (``is_spike`` says how it is told and why).

The measurements are taken along a short training run (``autobs.train``, the one loop) at a sensible LR
(the range tests' level, ``lr_range.range_level``), because the noise scale changes as training proceeds (it grows as the loss
falls; McCandlish et al. 2018, sec. 3). The run trains its own model; nothing of the user's changes.

B_simple is a prior for the critical batch size, off by a task-dependent factor (the paper's B_noise
uses the Hessian too); the joint search corrects it.

Example:
    >>> import autobs
    >>> result = autobs.noise_scale(autobs.load_task("examples/digits_mlp.py"), lr=0.5, measurements=4)
    >>> result.b_simple > 0
    True
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .errors import ConfigError
from .task import Task, to_device
from .training import StepInfo, TrainConfig, resolve_device, train

SMALL_BATCH = 16  # small enough that its gradient is mostly noise for any task worth tuning
MICRO_BATCHES = 16  # per measurement: |G_small|² is a mean of 16 squared norms (relative sd ~ sqrt(2/16))
MEASUREMENTS = 20  # measurements along the run
EVERY = 5  # training steps between measurements (the run is MEASUREMENTS × EVERY steps)
EMA_BETA = 0.8  # over the measurements: a ~5-measurement window, bias-corrected (Kingma & Ba 2015)
SEED_OFFSET = 7919  # the measurement batches are drawn apart from the training batches
SPIKE_RATIO = 2.0  # a measurement whose tr(Σ) is over this times the median of the SPIKE_WINDOW before it: a spike
SPIKE_WINDOW = 5


@dataclass
class NoisePoint:
    step: int  # training steps done when measured
    g2: float  # this measurement's unbiased |G|² estimate
    trace: float  # this measurement's unbiased tr(Σ) estimate
    b_simple: float  # the smoothed estimate so far: EMA(tr Σ) / EMA(|G|²)
    spike: bool = False  # taken during a loss spike (``is_spike``), so left out of the EMAs


@dataclass
class NoiseResult:
    b_simple: float  # at the end of the run; NaN when |G|² was not measurably positive
    b_simple_spread: tuple[float, float]  # min and max of the smoothed estimate over the second half
    small_batch: int
    big_batch: int
    lr: float
    points: list[NoisePoint]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "b_simple": self.b_simple,
            "b_simple_spread": list(self.b_simple_spread),
            "small_batch": self.small_batch,
            "big_batch": self.big_batch,
            "lr": self.lr,
            "points": [asdict(p) for p in self.points],
            "notes": self.notes,
        }


def _flat_grad(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.detach().flatten().float() for p in model.parameters() if p.grad is not None])


def _measure(model: torch.nn.Module, task: Task, generator: torch.Generator, small: int, device) -> tuple[float, float]:
    """One measurement at the model's current parameters: the unbiased |G|² and tr(Σ) estimates.
    The model's gradients are cleared afterwards; its parameters are not touched."""
    n = len(task.train)
    order = torch.randperm(n, generator=generator)[: small * MICRO_BATCHES]
    small_sq, total = [], None
    for indices in order.chunk(MICRO_BATCHES):
        model.zero_grad(set_to_none=True)
        inputs, targets = to_device(task.train.batch(indices), device)
        task.loss(model(inputs), targets).backward()
        g = _flat_grad(model)
        small_sq.append(float(g.square().sum()))
        total = g if total is None else total + g
    model.zero_grad(set_to_none=True)
    big = small * MICRO_BATCHES
    g_small2 = sum(small_sq) / len(small_sq)
    g_big2 = float((total / MICRO_BATCHES).square().sum())
    g2 = (big * g_big2 - small * g_small2) / (big - small)  # App. A, eq. A.2
    trace = (g_small2 - g_big2) / (1 / small - 1 / big)
    return g2, trace


def is_spike(trace: float, earlier: list[float]) -> bool:
    """Whether a measurement with this tr(Σ) estimate was taken during a loss spike: its tr(Σ) is over
    ``SPIKE_RATIO`` times the median of the ``SPIKE_WINDOW`` measurements before it (none of the first
    ``SPIKE_WINDOW`` is).

    Why. For a step or two the model is thrown out of the region it trains in, and every example's gradient grows at
    once: tr(Σ) jumps 2-7 fold and |G|² 4-1300 fold between measurements 5 steps apart. That is a transient,
    not the noise of the region training goes on in, and with |G|² in the denominator a single such
    measurement pulled the smoothed B_simple from 34 to 8 at the end of one char_lm run. B_simple shapes the
    search's LRs and is the fit's prior, so that one read carried into both. Why tr(Σ): it comes from 16
    micro-batches and moves slowly (over 345 measurements in 24 runs of the two examples, 95% were under 1.7x
    the median of the 5 before), while |G|², a small difference of two large numbers, scatters from 0.02x to
    6.4x (5th to 95th percentile) between ordinary measurements. 14 of the 345 (4%) were over 2x, and 13 of
    those also had |G|² at 4-1300x. Leaving them out took the spread of B_simple over runs (log-sd) from 0.33
    to 0.17 on digits and from 0.50 to 0.29 on char_lm, and the lowest read from 21 to 42 and from 9 to 19."""
    return len(earlier) >= SPIKE_WINDOW and trace > SPIKE_RATIO * statistics.median(earlier[-SPIKE_WINDOW:])


def measurement_batch_sizes(task: Task, small_batch: int = SMALL_BATCH) -> tuple[int, int]:
    """``(B_small, B_big)``: ``small_batch`` (less if the training set is short) and ``MICRO_BATCHES`` × it.

    Raises:
        ConfigError: the training set is too small for two distinct batch sizes.
    """
    n = len(task.train)
    small = min(small_batch, max(1, n // MICRO_BATCHES))
    big = small * MICRO_BATCHES
    if big > n or small == big:
        raise ConfigError(f"{task.name}: the training set ({n} items) is too small to measure the noise scale.")
    return small, big


def noise_scale(
    task: Task,
    *,
    lr: float,
    small_batch: int = SMALL_BATCH,
    measurements: int = MEASUREMENTS,
    every: int = EVERY,
    device="auto",
    seed: int = 0,
    progress: bool = False,
) -> NoiseResult:
    """Estimate the gradient noise scale B_simple along a short training run at ``lr``.

    Args:
        task: the task; the run trains its own fresh model.
        lr: the training LR of the run (in ``autobs recommend``, the LR range tests' level).
        small_batch: B_small; the big batch is ``MICRO_BATCHES`` × B_small (capped by the training set).
        measurements: how many measurements, ``every`` training steps apart, the first before training
            has moved far from initialisation.
        device, seed: as for ``autobs.train``.
        progress: print the running estimate on stderr.
    """
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a positive finite number; got {lr!r}.")
    for name, value in (("small_batch", small_batch), ("measurements", measurements), ("every", every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
    small, big = measurement_batch_sizes(task, small_batch)
    dev = resolve_device(device)
    generator = torch.Generator().manual_seed(seed + SEED_OFFSET)
    points: list[NoisePoint] = []
    ema_g2 = ema_trace = 0.0

    def measure(info: StepInfo) -> None:
        nonlocal ema_g2, ema_trace
        if (info.step - 1) % every:
            return
        g2, trace = _measure(info.model, task, generator, small, dev)
        spike = is_spike(trace, [p.trace for p in points[-SPIKE_WINDOW:]])
        if not spike:
            ema_g2 = EMA_BETA * ema_g2 + (1 - EMA_BETA) * g2
            ema_trace = EMA_BETA * ema_trace + (1 - EMA_BETA) * trace
        # The same bias correction divides both EMAs, so it cancels in the ratio.
        value = ema_trace / ema_g2 if ema_g2 > 0 else math.nan
        points.append(NoisePoint(info.step, g2, trace, value, spike))
        if progress:
            print(f"noise scale after {info.step} steps: B_simple {value:.4g}", file=sys.stderr, flush=True)

    run = train(task, TrainConfig(batch_size=big, lr=lr), samples=measurements * every * big, device=dev,
                seed=seed, eval_every_samples=10**15, on_step=measure)
    notes = []
    if run.diverged:
        notes.append(f"the run diverged at LR {lr:g} after {run.steps} steps; measurements up to then are used")
    if not points:
        raise ConfigError(f"{task.name}: no noise-scale measurement was taken (the run stopped at once). "
                          "Fix: use a smaller LR.")
    spikes = [p.step for p in points if p.spike]
    if spikes:
        notes.append(f"{len(spikes)} measurement{'s' if len(spikes) > 1 else ''} (after step{'s' if len(spikes) > 1 else ''} "
                     f"{', '.join(map(str, spikes))}) left out as taken during a loss spike: tr(Σ) over "
                     f"{SPIKE_RATIO:g}x the median of the {SPIKE_WINDOW} before")
    b_simple = points[-1].b_simple
    tail = [p.b_simple for p in points[len(points) // 2 :] if math.isfinite(p.b_simple)]
    spread = (min(tail), max(tail)) if tail else (math.nan, math.nan)
    if not math.isfinite(b_simple):
        notes.append("|G|² was not measurably positive: the gradient is all noise at these batch sizes "
                     "(B_simple is far above the big batch size)")
    return NoiseResult(b_simple, spread, small, big, lr, points, notes)

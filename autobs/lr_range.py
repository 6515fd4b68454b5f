"""Stage 2: the LR range test at several batch sizes, and how the best LR moves with batch size.

One range test (Smith 2017, sec. 3.3; the exponential form of fastai and torch-lr-finder) trains a fresh
copy of the task's model for ``SWEEP_STEPS`` steps while the LR grows by a constant factor per step from
``LR_MIN`` to ``LR_MAX``, records the training loss of every step, smooths it with a bias-corrected EMA,
and stops once the smoothed loss has blown up (above ``DIVERGENCE_FACTOR`` × its best, or non-finite).
It runs through the one training loop (``autobs.train``) on the task's own model, with the caller's RNG
state forked, so nothing of the user's changes.

From the smoothed curve three classic rules give an LR: the steepest descent (torch-lr-finder, Lightning),
fastai's valley, and the minimum / 10 (fastai's original rule). All three are reported; the suggestion
is the steepest descent and its interval the steep region around it (``_suggest`` says why, with the
measurements that chose it).

Run at two or more batch sizes, the suggestions give the exponent α of ``lr*(B) ∝ B^α`` (≈ 1 for SGD,
≈ 0.5 for Adam below the critical batch size: McCandlish et al. 2018, sec. 2.3; Malladi et al. 2022),
fitted by weighted least squares in log-log space with each suggestion's interval as its uncertainty.

Example:
    >>> import autobs
    >>> result = autobs.lr_range_test(autobs.load_task("examples/digits_mlp.py"), batch_sizes=[32, 128])
    >>> sorted(result.suggestions)
    [32, 128]
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from .errors import AutobsError, ConfigError
from .task import Task
from .training import StepInfo, TrainConfig, train

SWEEP_STEPS = 100  # fastai's and torch-lr-finder's default number of sweep steps
LR_MIN, LR_MAX = 1e-7, 10.0  # fastai's lr_find defaults: wide enough for SGD and Adam alike
EMA_BETA = 0.98  # loss smoothing of fastai and torch-lr-finder (a ~50-step window), bias-corrected
DIVERGENCE_FACTOR = 4.0  # Smith's stop: the smoothed loss at 4x its best (fastai, torch-lr-finder)
SKIP_START = 10  # the first steps' smoothed values still lean on few losses (Lightning skips 10 too)
SLOPE_HALF_WIDTH = 3
DESCENT_START = 0.1  # the final descent begins where the loss has dropped 10% of the way to its minimum
MIN_POINTS = 20  # a sweep that blew up sooner started too high: lower lr_min
# A sweep shows a descent when its lowest stretch of LOW_WINDOW raw losses lies at least DESCENT_Z standard
# errors below its first FLAT_STEPS losses after SKIP_START (LRs of 6e-7 to 3e-5 at the defaults, where
# training barely moves). Without one, the steepest "descent" of the smoothed loss is a batch-noise wander
# and its LR means nothing (seen: an LSTM on a task it had not begun to learn read 1e-7 at batch 64, and a
# regression at batch 16 read 1e-6 with its loss at 1.0 throughout, against 0.17-0.20 at batch 64-256). On
# pure noise the lowest of a sweep's ~70 overlapping window means sits 1.5-2.5 standard errors low
# (measured: 0.9-2.1 on those flat sweeps); a real descent reads far above it (the digits example's
# weakest, batch 16 over 15 seeds: 29; char_lm's: 27; the regression's shallow ones at 64-256: 4.3-16).
FLAT_STEPS = 20
LOW_WINDOW = 10
DESCENT_Z = 4.0
# ... and by at least this share of its level. At a large batch the batch noise is tiny, so a drop too small to
# mean the model learns anything can read many standard errors: a CNN whose loss sat at 2.30 (ln 10, chance
# over 10 classes) through all three sweeps read z = 4.4 at batch 480 from a 0.1% drop, and its suggestion,
# 0.045 for AdamW, diverged every first-round trial. The weakest real descents measured fall by 3.1-3.5% (the
# benchmark transformer, whose 100 steps leave its loss near its entropy floor) and 6.4% (digits, batch 16);
# that CNN's, 0.1-0.4%.
DESCENT_FRACTION = 0.01
# Default batch sizes: DEFAULT_POINTS powers of two from SMALLEST_BATCH to the largest batch size that
# both fits in memory and still gives the planned run MIN_RUN_STEPS optimizer steps (a batch size with
# fewer steps than that cannot be trained well in the user's budget, so its LR is of no use).
DEFAULT_POINTS = 3
SMALLEST_BATCH = 16
MIN_RUN_STEPS = 50


def shows_descent(z: float, fraction: float) -> bool:
    """Whether a sweep's loss fell beyond batch noise (``descent_z`` ≥ ``DESCENT_Z``) and by a share of its level
    that shows learning (``descent_fraction`` ≥ ``DESCENT_FRACTION``)."""
    return z >= DESCENT_Z and fraction >= DESCENT_FRACTION


@dataclass
class RangeCurve:
    """One sweep: the LR and training loss of every step, the smoothed loss, and the LRs read from it."""

    batch_size: int
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    interval: tuple[float, float]
    rules: dict[str, float]  # each classic rule's LR, for comparison
    stop_reason: str  # "diverged" (the normal end) or "completed" (never blew up below LR_MAX)
    notes: list[str] = field(default_factory=list)
    descent_z: float = math.inf  # how far the loss fell, in standard errors of batch noise (``descent_z``)
    descent_fraction: float = math.inf  # how far it fell, as a share of its level (``descent_fraction``)

    @property
    def readable(self) -> bool:
        """Whether the loss fell beyond batch noise, and by a share of its level that shows learning: only then
        is the suggestion an LR worth using."""
        return shows_descent(self.descent_z, self.descent_fraction)

    def summary(self) -> str:
        """The sweep's reading in a few words, for the terminal."""
        lo, hi = self.interval
        return (f"lr {self.suggestion:.3g} (interval {lo:.3g}–{hi:.3g})" if self.readable
                else "no descent beyond batch noise, no suggestion" if self.descent_z < DESCENT_Z
                else f"the loss fell by {self.descent_fraction:.1%} only, no suggestion")

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size, "lrs": self.lrs, "losses": self.losses, "smoothed": self.smoothed,
            "suggestion": self.suggestion, "interval": list(self.interval), "rules": self.rules,
            "stop_reason": self.stop_reason, "notes": self.notes, "descent_z": self.descent_z,
            "descent_fraction": self.descent_fraction, "readable": self.readable,
        }


@dataclass
class LRRangeResult:
    curves: list[RangeCurve]
    lr_scaling_exponent: float  # α in lr*(B) ∝ B^α; NaN with fewer than two batch sizes
    lr_scaling_exponent_stderr: float
    steps: int  # optimizer steps over all sweeps
    fallback_lr: float | None = None  # the LR used at every size when no sweep is readable (``with_fallback``)

    @property
    def suggestions(self) -> dict[int, float]:
        """Each readable sweep's suggestion, by batch size (a sweep with no descent suggests nothing); when none
        is readable, ``fallback_lr`` at every size tested."""
        readable = {c.batch_size: c.suggestion for c in self.curves if c.readable}
        if not readable and self.fallback_lr is not None:
            return {c.batch_size: self.fallback_lr for c in self.curves}
        return readable

    @classmethod
    def with_fallback(cls, error: NoDescentError, task: Task) -> LRRangeResult:
        """The result of sweeps none of which showed a descent, with the task's optimizer's default LR
        (``optimizer_default_lr``) standing in for their suggestions.

        Why not stop, as ``lr_range_test`` does. The sweeps' 100 steps can end before a model leaves the plateau
        it starts on (a CNN whose loss sat at chance through every sweep learned at AdamW's default 0.001
        after ~150 steps), and the search's trials run far longer. The optimizer's default LR is the one its
        authors recommend (Kingma & Ba 2015 for Adam's 0.001), what a user without a range test starts from;
        the search ladders each size's LR from there, and a task that learns nothing at all is still stopped,
        after the search's first round (``scaling.choose_target``)."""
        return cls(error.curves, math.nan, math.nan, error.steps, fallback_lr=optimizer_default_lr(task))

    def lr_at(self, batch_size: float) -> float:
        return lr_at(self.suggestions, self.lr_scaling_exponent, batch_size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "suggestions": {str(b): lr for b, lr in self.suggestions.items()},
            "intervals": {str(c.batch_size): list(c.interval) for c in self.curves},
            "lr_scaling_exponent": self.lr_scaling_exponent,
            "lr_scaling_exponent_stderr": self.lr_scaling_exponent_stderr,
            "steps": self.steps,
            "rule": SUGGESTION_RULE,
            "fallback_lr": self.fallback_lr,
            "curves": [c.to_dict() for c in self.curves],
        }


class NoDescentError(AutobsError):
    """No sweep of the LR range test showed a descent: the message says so; ``curves`` and ``steps`` keep the
    sweeps (``LRRangeResult.with_fallback`` makes a result of them)."""

    def __init__(self, curves: list[RangeCurve], steps: int, message: str):
        super().__init__(message)
        self.curves, self.steps = curves, steps


def optimizer_default_lr(task: Task) -> float:
    """The default ``lr`` of the task's optimizer class (torch's Adam, AdamW and SGD: 0.001; RMSprop and
    Adagrad: 0.01), or 0.001 when its class has none."""
    import inspect

    from .task import sample_optimizer

    default = inspect.signature(type(sample_optimizer(task)).__init__).parameters.get("lr")
    value = getattr(default, "default", None)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 1e-3


def lr_at(suggestions: dict[int, float], alpha: float, batch_size: float) -> float:
    """The suggested LR at any batch size: the nearest measured suggestion scaled by (B/B_ref)^α
    (α = 0 when it could not be fitted)."""
    ref = min(suggestions, key=lambda b: abs(math.log(b / batch_size)))
    alpha = alpha if alpha is not None and math.isfinite(alpha) else 0.0
    return suggestions[ref] * (batch_size / ref) ** alpha


def range_level(suggestions: dict[int, float]) -> float:
    """The range tests' LR level: the geometric mean of their suggestions. From initialisation the sweeps read
    one LR at every batch size (``noise_shaped_lr_at`` says why), so each size's suggestion is a noisy read of
    one level, and their mean in log is a steadier read than any one of them (on digits the suggestion at batch
    128 ran from 0.51 to 1.87 over 6 seeds; the level from 0.54 to 1.0)."""
    return math.exp(sum(math.log(lr) for lr in suggestions.values()) / len(suggestions))


def noise_shaped_lr_at(suggestions: dict[int, float], b_noise: float, power: float, batch_size: float) -> float:
    """The LR at any batch size from the range tests' level and the noise scale's shape:
    ``lr(B) = c · (1 + B_noise/B)^-power``, ``c`` the geometric mean of ``suggestion / (1 + B_noise/B)^-power``
    over the tested sizes (the curve through the suggestions, in log, on average).

    The shape is McCandlish et al. 2018, eq. 2.6 (SGD, power 1: ε_opt(B) = ε_max / (1 + B_noise/B)); for Adam
    the square-root form (power 0.5), after Malladi et al. 2022's square-root scaling rule. Why not the range
    tests' own exponent: a sweep is 100 steps from initialisation, where the gradient dwarfs its noise
    (B_noise is small early and grows as the loss falls; McCandlish et al. sec. 3), so the sweeps read the
    same LR at every batch size (α = −0.05 ± 0.10 on digits_mlp, where the grid-search oracle's best LRs
    give 0.38). The noise stage measures B_simple later in a run, where the noise does set the best LR.
    Measured against the oracle's best LR at the range tests' sizes (digits 16/128/512, char_lm 16/64/121):
    ratios 0.53–1.12 with this shape, 0.42–3.07 with the range tests' exponent.
    """
    def shape(b: float) -> float:
        return (1 + b_noise / b) ** -power

    level = range_level({b: lr / shape(b) for b, lr in suggestions.items()})
    return level * shape(batch_size)


def lr_exponent(lr_at_b, batch_sizes) -> float:
    """The exponent α of the power law through ``lr_at_b`` at the smallest and largest of ``batch_sizes``."""
    lo, hi = min(batch_sizes), max(batch_sizes)
    return math.log(lr_at_b(hi) / lr_at_b(lo)) / math.log(hi / lo) if hi > lo else 0.0


def noise_power(optimizer) -> float | None:
    """The power of ``noise_shaped_lr_at`` for the task's optimizer: 1 for SGD, 0.5 for the Adam family,
    None for others (no rule is known for them; the range tests' exponent is used)."""
    name = type(optimizer).__name__.lower()
    return 1.0 if name == "sgd" else 0.5 if name.startswith("adam") else None


def largest_useful_batch(task: Task) -> int:
    """The largest batch size that still gives the planned run (``task.epochs``) ``MIN_RUN_STEPS`` optimizer
    steps: above it no LR trains well in the user's budget, so no stage measures or recommends it."""
    return max(1, task.epochs * len(task.train) // MIN_RUN_STEPS)


def default_batch_sizes(task: Task, max_batch_size: int | None = None) -> list[int]:
    """``DEFAULT_POINTS`` powers of two spread evenly (in log) over the batch sizes worth training."""
    n = len(task.train)
    top = max(1, min(n, max_batch_size or n, largest_useful_batch(task)))
    low = min(SMALLEST_BATCH, top)
    lo, hi = math.log2(low), math.log2(top)
    sizes = sorted({2 ** round(lo + (hi - lo) * i / (DEFAULT_POINTS - 1)) for i in range(DEFAULT_POINTS)})
    return [min(s, top) for s in sizes]


def _smooth(losses: Sequence[float]) -> list[float]:
    """Bias-corrected EMA (Kingma & Ba 2015, Alg. 1): unbiased from the first step on."""
    out, ema = [], 0.0
    for i, value in enumerate(losses, start=1):
        ema = EMA_BETA * ema + (1 - EMA_BETA) * value
        out.append(ema / (1 - EMA_BETA**i))
    return out


def _flat_and_low(losses: Sequence[float]) -> tuple[list[float], float, int] | None:
    """The sweep's first ``FLAT_STEPS`` finite losses after ``SKIP_START``, the lowest mean of ``LOW_WINDOW``
    consecutive losses after them, and that window; None when the sweep is too short to tell (it is judged by
    ``MIN_POINTS`` instead). Shorter sweeps split what follows ``SKIP_START`` in half."""
    body = [v for v in losses[SKIP_START:] if math.isfinite(v)]
    flat_n = min(FLAT_STEPS, len(body) // 2)
    window = min(LOW_WINDOW, len(body) - flat_n)
    if flat_n < 2 or window < 1:
        return None
    flat, rest = body[:flat_n], body[flat_n:]
    return flat, min(sum(rest[i:i + window]) / window for i in range(len(rest) - window + 1)), window


def descent_z(losses: Sequence[float]) -> float:
    """How far the sweep's loss fell: the mean of its first ``FLAT_STEPS`` losses after ``SKIP_START`` minus
    the lowest mean of ``LOW_WINDOW`` consecutive losses after them, in standard errors of that difference
    (the first losses' scatter, which is batch noise: the LR there is too small to move the model). Raw
    losses, not the smoothed ones: the EMA lags a late descent (on digits the smoothed loss had fallen 2-5%
    where the raw had fallen by half)."""
    if (parts := _flat_and_low(losses)) is None:
        return math.inf
    flat, low, window = parts
    mean = sum(flat) / len(flat)
    sd = math.sqrt(sum((v - mean) ** 2 for v in flat) / (len(flat) - 1))
    drop = mean - low
    if sd == 0:
        return math.inf if drop > 0 else 0.0
    return drop / (sd * math.sqrt(1 / len(flat) + 1 / window))


def descent_fraction(losses: Sequence[float]) -> float:
    """The same drop as ``descent_z``'s, as a share of the first losses' mean (its magnitude)."""
    if (parts := _flat_and_low(losses)) is None:
        return math.inf
    flat, low, _ = parts
    mean = sum(flat) / len(flat)
    return (mean - low) / abs(mean) if mean else math.inf


def _blew_up(smoothed: float, best: float, first: float) -> bool:
    """Smith's stop, ``smoothed > 4 × best``, i.e. a rise above the best of more than (4 − 1) × best.
    For a best loss of zero or below (a loss with a negative offset, a log-likelihood), "× best" has no
    meaning, so the rise is compared with 3 × how far the loss had fallen from its first value (the
    same scale whatever the offset), or with 3 × the first loss's size if it has not fallen."""
    if not math.isfinite(smoothed):
        return True
    scale = best if best > 0 else (first - best if first > best else abs(first) or 1.0)
    return smoothed - best > (DIVERGENCE_FACTOR - 1) * scale


def _slopes(lrs: list[float], smoothed: list[float], i_min: int) -> dict[int, float]:
    """d(smoothed loss)/d(log lr) by central differences ``SLOPE_HALF_WIDTH`` steps either side (a
    baseline of ~0.5 decade at the default sweep, so that batch noise between neighbouring steps does not
    pass for a descent) over the final descent into the minimum.

    The descent starts after the last step (from ``SKIP_START`` on) at which the smoothed loss was still
    within ``DESCENT_START`` of its highest level before the minimum: on the flat part before it, the
    smoothed loss only wanders with batch noise, and a wander between two close points can look steeper
    than the real descent (seen on least squares at batch 32: the steepest "descent" landed at 1e-6).
    """
    logs = [math.log(lr) for lr in lrs]
    first = max(1, min(SKIP_START, i_min - 1))
    top = max(smoothed[first : i_min + 1])
    level = top - DESCENT_START * (top - smoothed[i_min])
    start = max((i for i in range(first, i_min + 1) if smoothed[i] >= level), default=first)
    w = SLOPE_HALF_WIDTH
    return {i: (smoothed[min(i + w, i_min)] - smoothed[max(i - w, 0)]) / (logs[min(i + w, i_min)] - logs[max(i - w, 0)])
            for i in range(max(1, start), i_min)}


def _rules(lrs: list[float], smoothed: list[float], i_min: int, slopes: dict[int, float]) -> dict[str, float]:
    """The three classic readings of a range-test curve (on the finite part before the blow-up), given
    the index of its minimum and its ``_slopes``."""
    # Steepest descent (torch-lr-finder, Lightning): where the loss falls fastest per decade of LR.
    steepest = lrs[min(slopes, key=slopes.__getitem__)] if slopes else lrs[i_min]
    # Valley (fastai >= 2.5): the longest run over which the loss keeps falling, read 2/3 of the way
    # along it (fastai's `valley`, here on the smoothed loss, O(n²) longest decreasing subsequence).
    n = len(smoothed)
    lengths, prev = [1] * n, list(range(n))
    for i in range(1, n):
        for j in range(i):
            if smoothed[j] > smoothed[i] and lengths[j] + 1 > lengths[i]:
                lengths[i], prev[i] = lengths[j] + 1, j
    end = max(range(n), key=lengths.__getitem__)
    begin = end
    while prev[begin] != begin:
        begin = prev[begin]
    valley = lrs[begin + (end - begin) * 2 // 3]
    # Minimum / 10 (fastai before 2.5): a decade below where the loss turns up.
    return {"steepest": steepest, "valley": valley, "min/10": lrs[i_min] / 10}


SUGGESTION_RULE = "steepest"  # see _suggest
STEEP_FRACTION = 0.5  # the interval: where the loss falls at least this fraction of its fastest rate


def _suggest(lrs: list[float], slopes: dict[int, float], rules: dict[str, float]) -> tuple[float, tuple[float, float]]:
    """The suggestion and its interval.

    Suggestion: the steepest descent of the smoothed loss against log LR. Measured against the
    grid-search oracle's best LR for a full training run on both examples at 3-4 batch sizes each
    (reports/lr_finder.md has the benchmark at one batch size), it was the only one of the three classic
    rules within a small factor everywhere (0.4x to 2.3x): the valley rule landed 5 to 200x low on the
    SGD example (its longest falling run starts in the flat region at tiny LRs), and minimum/10 was 3 to
    11x low on SGD and 3 to 30x high on AdamW (a 100-step sweep tolerates LRs that a long run does not).
    On least squares it reads 0.28-0.50 / λ_max (8 problems, batch 32 and 128). The steepest point
    is where the LR starts making fast progress, a feature SGD and Adam share.

    Interval: the contiguous LRs around the steepest point where the loss still falls at least
    ``STEEP_FRACTION`` of its fastest rate per decade: the LRs at which this batch size trains nearly as
    fast. Its width is the uncertainty the exponent fit uses.
    """
    suggestion = rules[SUGGESTION_RULE]
    if not slopes:
        return suggestion, (suggestion, suggestion)
    i_best = min(slopes, key=slopes.__getitem__)
    steep = STEEP_FRACTION * slopes[i_best]
    lo = hi = i_best
    while lo - 1 in slopes and slopes[lo - 1] <= steep:
        lo -= 1
    while hi + 1 in slopes and slopes[hi + 1] <= steep:
        hi += 1
    return suggestion, (lrs[lo], lrs[hi])


# Long work with progress on says how far it has got at least this often, when nothing else has been said: a sweep
# or a search trial of a model whose steps take seconds runs for minutes (heavy_cnn, benchmarks/unseen_tasks, on 2
# cores: 243 s at batch 1920; trials of 90-180 s). The search (search._Recorder) uses it too.
PROGRESS_EVERY_S = 30.0


def _sweep(task: Task, batch_size: int, *, steps: int, lr_min: float, lr_max: float, device, seed: int,
           bf16: bool, progress: bool = False) -> RangeCurve:
    config = TrainConfig(batch_size=batch_size, lr=lr_min, schedule="exponential",
                         schedule_params={"final_factor": lr_max / lr_min})
    lrs: list[float] = []
    losses: list[float] = []
    best = first = None
    ema, stopped = 0.0, False
    said_at = time.time()

    def record(info: StepInfo) -> bool:
        nonlocal best, first, ema, stopped, said_at
        lrs.append(info.lr)
        losses.append(info.loss)
        if progress and time.time() - said_at >= PROGRESS_EVERY_S:
            print(f"lr range test at batch {batch_size}: step {len(losses)} of {steps}, lr {info.lr:.3g}, loss "
                  f"{info.loss:.4g}", file=sys.stderr, flush=True)
            said_at = time.time()
        ema = EMA_BETA * ema + (1 - EMA_BETA) * info.loss  # as in _smooth, one step at a time
        smoothed = ema / (1 - EMA_BETA ** len(losses))
        first = smoothed if first is None else first
        late = len(losses) > SKIP_START or not math.isfinite(smoothed)
        if late and best is not None and _blew_up(smoothed, best, first):
            stopped = True
            return True
        if math.isfinite(smoothed):
            best = smoothed if best is None else min(best, smoothed)
        return False

    # Fewer batches in the training set than sweep steps is fine: the loop reshuffles each epoch.
    # Validation is not needed: one point before and after is all the loop takes at this interval.
    result = train(task, config, samples=steps * batch_size, device=device, seed=seed,
                   eval_every_samples=10**15, on_step=record, bf16=bf16)
    # Keep the finite prefix: a NaN or inf step ends the readable curve.
    n = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses))
    if n < MIN_POINTS:
        raise AutobsError(
            f"{task.name}: the LR range test at batch size {batch_size} blew up after {n} steps, at LR "
            f"{lrs[n - 1] if n else lr_min:.3g}. The sweep starts too high for this model. Fix: pass a "
            f"smaller lr_min (now {lr_min:g})."
        )
    lrs, raw = lrs[:n], losses[:n]
    smoothed = _smooth(raw)
    # The minimum is looked for after the first SKIP_START steps, as the blow-up stop is: a smoothed value that
    # leans on a few batches can sit below everything after it (seen: a regression whose first batch had
    # 0.8x the average loss, at batch 16), and a minimum at the start leaves no descent to read.
    i_min = min(range(min(SKIP_START, len(smoothed) - 1), len(smoothed)), key=smoothed.__getitem__)
    slopes = _slopes(lrs, smoothed, i_min)
    rules = _rules(lrs, smoothed, i_min, slopes)
    suggestion, interval = _suggest(lrs, slopes, rules)
    blew_up = stopped or result.diverged
    z, fraction = descent_z(raw), descent_fraction(raw)
    # Where the loss never fell, it has no minimum to lie above LR_MAX: only the no-descent note is said.
    notes = ([] if blew_up or not shows_descent(z, fraction)
             else [f"the loss did not blow up below LR {lr_max:g}: the minimum may lie above it"])
    if z < DESCENT_Z:
        notes.append(f"the loss did not fall beyond its batch noise (its lowest stretch is {z:.1f} standard errors "
                     f"below its start, under {DESCENT_Z:g}): no LR is read from this batch size")
    elif fraction < DESCENT_FRACTION:
        notes.append(f"the loss fell by {fraction:.2%} of its level only (under {DESCENT_FRACTION:.0%}; beyond its "
                     f"batch noise, {z:.1f} standard errors, but too little to show learning): no LR is read from "
                     "this batch size")
    return RangeCurve(batch_size, lrs, raw, smoothed, suggestion, interval, rules,
                      "diverged" if blew_up else "completed", notes, z, fraction)


def _fit_exponent(curves: list[RangeCurve]) -> tuple[float, float]:
    """α and its standard error from weighted least squares of log lr on log B. Each suggestion's
    uncertainty is its interval read as ±2σ in log space: σ = log(hi/lo)/4 (at least 0.05, ~5%)."""
    if len({c.batch_size for c in curves}) < 2:
        return math.nan, math.nan
    xs = [math.log(c.batch_size) for c in curves]
    ys = [math.log(c.suggestion) for c in curves]
    ws = [1 / max(0.05, math.log(c.interval[1] / c.interval[0]) / 4) ** 2 for c in curves]
    sw = sum(ws)
    mx = sum(w * x for w, x in zip(ws, xs)) / sw
    my = sum(w * y for w, y in zip(ws, ys)) / sw
    sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs))
    alpha = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys)) / sxx
    return alpha, math.sqrt(1 / sxx)


def lr_range_test(
    task: Task,
    batch_sizes: Sequence[int] | None = None,
    *,
    max_batch_size: int | None = None,
    steps: int = SWEEP_STEPS,
    lr_min: float = LR_MIN,
    lr_max: float = LR_MAX,
    device="auto",
    seed: int = 0,
    bf16: bool = False,
    progress: bool = False,
) -> LRRangeResult:
    """Run the LR range test at each batch size and fit how the suggested LR scales with batch size.

    Args:
        task: the task; every sweep trains its own fresh model.
        batch_sizes: the batch sizes to test; default ``default_batch_sizes(task, max_batch_size)``.
        max_batch_size: the memory ceiling (stage 1), bounding the default batch sizes.
        steps: sweep steps per batch size.
        lr_min, lr_max: the sweep's range.
        device, seed, bf16: as for ``autobs.train``.
        progress: print each sweep's result on stderr.

    Raises:
        ConfigError: a bad batch size or LR range.
        AutobsError: a sweep blew up within its first ``MIN_POINTS`` steps.
    """
    if not (0 < lr_min < lr_max and math.isfinite(lr_max)):
        raise ConfigError(f"need 0 < lr_min < lr_max; got lr_min={lr_min!r}, lr_max={lr_max!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < MIN_POINTS:
        raise ConfigError(f"steps must be an integer of at least {MIN_POINTS}; got {steps!r}.")
    sizes = sorted(set(batch_sizes)) if batch_sizes else default_batch_sizes(task, max_batch_size)
    curves = []
    for b in sizes:
        curve = _sweep(task, b, steps=steps, lr_min=lr_min, lr_max=lr_max, device=device, seed=seed, bf16=bf16,
                       progress=progress)
        curves.append(curve)
        if progress:
            print(f"lr range test at batch {b}: {curve.summary()} ({len(curve.lrs)} steps)", file=sys.stderr, flush=True)
    readable = [c for c in curves if c.readable]
    if not readable:
        raise NoDescentError(curves, sum(len(c.lrs) for c in curves),
            f"{task.name}: in the LR range test the training loss did not fall (beyond its batch noise, by "
            f"{DESCENT_FRACTION:.0%} of its level) at any batch size ({', '.join(map(str, sizes))}) for LRs from "
            f"{lr_min:g} up to where each sweep blew up or ended ({', '.join(f'{c.lrs[-1]:.3g}' for c in curves)}): the model learned "
            f"nothing in {steps} steps at any LR, so the test reads no LR (`autobs recommend` starts its search from "
            "the optimizer's default LR instead). Check that the task can be learned (the loss, the targets and the "
            "inputs match; `autobs train` at a usual LR shows whether the loss falls), or that it needs more steps "
            "than the test's to leave the loss it starts at."
        )
    alpha, stderr = _fit_exponent(readable)
    return LRRangeResult(curves, alpha, stderr, steps=sum(len(c.lrs) for c in curves))


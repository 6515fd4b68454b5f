"""Steps-to-target and the critical-batch-size model of McCandlish et al. 2018.

The model (McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training", 2018,
eq. 2.11): to reach a given loss, the optimizer steps S and training samples E = B·S needed at batch
size B trade off as

    (S / S_min − 1)(E / E_min − 1) = 1,   equivalently   S(B) = S_min (1 + B_noise / B),
                                                         E(B) = E_min (1 + B / B_noise),

with E_min = S_min · B_noise. Below the critical batch size B_noise, doubling B nearly halves the
steps; above it, it buys little. This module reads steps-to-target from validation curves and fits
that curve, fits how the best LR moves with B, models the step time t(B) from the memory probe's
throughput, and picks the batch size that minimises ``time_to_target(B) = S(B)·t(B)``. Public entry:
``fit_scaling`` (stage 5); ``fit_steps_to_target`` and ``steps_to_target`` are its parts, also used by the
benchmarks.

Example:
    >>> fit = fit_steps_to_target([16, 64, 256, 1024], [675, 206, 89, 60])  # S_min=50, B_noise=200
    >>> round(fit.b_noise, -1), round(fit.s_min)
    (200.0, 50)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import ConfigError


def steps_to_target(curve: Iterable, target: float, higher_is_better: bool, monotone: bool = False) -> float:
    """The first step whose validation metric reaches ``target``; ``inf`` if none does.

    ``curve`` holds points with ``step`` (or ``steps``) and ``metric`` (``CurvePoint`` objects, their dicts
    or a search trial's points). The true crossing lies between the previous point and the first that
    reaches the target; by default that point's step is returned (what a user watching the evaluations
    sees, and how the oracle's grid is read).

    ``monotone`` reads the crossing off the curve's monotone fit (isotonic regression, the pool-adjacent-
    violators fit; Barlow et al. 1972) up to its best point, instead of off the raw points. A validation
    metric is noisy (a 180-example accuracy moves by ±1.6% between evaluations) and a curve can hover
    near the target for a long stretch; the first raw point past it then marks the first lucky
    evaluation, so it comes earlier the more often one evaluates. Measured on digits (the search's best
    configs, 6 seeds each, evaluated every step or on grids of 20 and 50 points a run): the raw crossing
    put B_noise at 32, 78 and 120 by evaluation density alone, the monotone fit's at 125, 117 and 127.
    The crossing is interpolated between the fit's points: the evaluation interval grows with the run's
    step count (a fixed number of evaluations per run), so the next evaluation would charge small batch
    sizes, with their long runs, up to a whole interval more.
    """
    points = []
    for point in curve:
        if isinstance(point, dict):  # a CurvePoint's dict ("step") or a search trial's point ("steps")
            step, metric = point.get("step", point.get("steps")), point["metric"]
        else:
            step, metric = point.step, point.metric
        if metric is not None and math.isfinite(metric):
            points.append((float(step), float(metric)))
    if monotone and points:
        from scipy.optimize import isotonic_regression

        sign = 1.0 if higher_is_better else -1.0
        values = np.array([sign * m for _, m in points])
        peak = int(np.argmax(values))  # past its best point a curve may turn (overfitting): not part of the rise
        fitted = sign * isotonic_regression(values[: peak + 1]).x
        points = [(s, float(m)) for (s, _), m in zip(points[: peak + 1], fitted)]
    previous = None
    for step, metric in points:
        if reached(metric, target, higher_is_better):
            if monotone and previous is not None and metric != previous[1]:
                (s0, m0) = previous
                return float(s0 + (step - s0) * (target - m0) / (metric - m0))
            return float(step)
        previous = (step, metric)
    return math.inf


# A run has reached the target once its metric has been at or past it for this many evaluations in a
# row: one evaluation past it can be a lucky draw of a noisy metric (a 180-example accuracy moves by ±1.6%
# between evaluations), three in a row rarely are; the crossing itself is read afterwards off the curve's
# monotone fit (``steps_to_target``), so the stop only decides when the rest of the run would tell nothing.
CONFIRM_EVALS = 3


def reached(metric: float, target: float, higher_is_better: bool) -> bool:
    """Whether ``metric`` is at or past ``target`` (a NaN never is)."""
    return metric >= target if higher_is_better else metric <= target


class CrossingWatch:
    """A ``train`` callback that stops the run once its metric has been at or past ``target`` for
    ``CONFIRM_EVALS`` evaluations in a row (the untrained model's evaluation at step 0 does not count)."""

    def __init__(self, target: float, higher_is_better: bool):
        self.target, self.higher_is_better, self.streak = target, higher_is_better, 0

    def __call__(self, point) -> bool:
        past = reached(point.metric, self.target, self.higher_is_better)
        self.streak = self.streak + 1 if past and point.step > 0 else 0
        return self.streak >= CONFIRM_EVALS


@dataclass(frozen=True)
class ScalingFit:
    """``S(B) = s_min·(1 + b_noise/B)`` fitted to (batch size, steps) data, with log-space residuals."""

    s_min: float
    b_noise: float
    batch_sizes: tuple[float, ...]
    steps: tuple[float, ...]
    residuals: tuple[float, ...]  # log(S_measured) − log(S_fitted) at each batch size
    b_noise_prior: float | None = None  # B_simple, when the fit used it as a prior
    upper_bounds: tuple[bool, ...] = ()  # reads that bound their size's best steps from above only

    def steps_at(self, batch_size: float) -> float:
        return self.s_min * (1.0 + self.b_noise / batch_size)

    def samples_at(self, batch_size: float) -> float:
        """E(B) = E_min (1 + B/B_noise), E_min = S_min·B_noise (McCandlish et al. 2018, eq. 2.11)."""
        return self.steps_at(batch_size) * batch_size

    @property
    def e_min(self) -> float:
        return self.s_min * self.b_noise

    def to_dict(self) -> dict:
        return {
            "s_min": self.s_min,
            "b_noise": self.b_noise,
            "e_min": self.e_min,
            "batch_sizes": list(self.batch_sizes),
            "steps": list(self.steps),
            "residuals": list(self.residuals),
            "b_noise_prior": self.b_noise_prior,
            "upper_bounds": list(self.upper_bounds),
        }


# Log-space noise of one batch size's best steps-to-target. The oracle's grid (2 seeds, median) scatters
# about its fit with an RMS log residual of 0.08–0.09 (reports/oracle_*.md); a search runs each config
# once, so its points scatter more: 0.15. It weighs the B_simple prior against the data, and is the
# bootstrap's noise when too few points are left to estimate the scatter.
STEPS_LOG_SD = 0.15
# Where the fit's loss turns from squared to linear (pseudo-Huber; Huber 1964, Charbonnier et al. 1997):
# Huber's 1.345 standard deviations, the constant that keeps 95% of least squares' efficiency when the
# noise is normal. Steps-to-target reads have a heavy upper tail that a normal model does not: a config
# near its stability edge, or a curve that hovers at the target, can take several times its usual steps
# on one seed. Measured on digits at 15% of the grid (6 seeds, run directories kept by
# ``benchmarks/recommend.py --keep-runs``): one rerun read 583 steps where the same config's search read 127
# and the oracle's best at that size 185, and least squares put B_noise at 2.6x the oracle's; with this
# loss 1.3x, and another seed's 2.1x fell to 1.6x (the other four moved by less than 0.2x).
ROBUST_SCALE = 1.345 * STEPS_LOG_SD
# B_simple predicts the critical batch size only to within about an order of magnitude (McCandlish et al.
# 2018, §3 and Fig. 4: B_crit/B_simple differs by task and drifts during training), so the prior on
# log B_noise has a factor-10 two-sigma width: it decides only where the data cannot. Its penalty is
# pseudo-Huber with Huber's 1.345 (as the data's, ``ROBUST_SCALE``): squared near B_simple, linear beyond,
# because B_simple can also be far off (a loss spike in its run, noise.py; a read below 1 on a regression),
# and a squared penalty then outweighs consistent data: on a regression whose B_simple read 0.29, reruns took
# 398, 176 and 95 steps at batch 16, 32 and 64 (S ∝ 1/B, so B_noise well above 64), and the squared prior held
# B_noise at 0.34.
PRIOR_LOG_SD = math.log(10) / 2
PRIOR_ROBUST_SCALE = 1.345 * PRIOR_LOG_SD
BOOTSTRAP_REPS = 200
INTERVAL = (0.05, 0.95)  # a 90% bootstrap interval


def fit_steps_to_target(batch_sizes: Sequence[float], steps: Sequence[float],
                        b_noise_prior: float | None = None, upper_bounds: Sequence[bool] | None = None) -> ScalingFit:
    """Fit ``log S = log S_min + log(1 + B_noise/B)`` to the finite points.

    In log space so that a run of 50 steps weighs as much as one of 5000 (the noise in steps-to-target
    is roughly proportional to the steps). The loss on each log residual r is pseudo-Huber,
    ``2c²(√(1 + (r/c)²) − 1)`` with c = ``ROBUST_SCALE``: squared for reads near the curve, linear for
    the rare read that is several times off (``ROBUST_SCALE`` says why), so one such read cannot drag
    B_noise by itself. The fit is a 1-D bounded search over log B_noise, between 1/1000 of the smallest and
    1000× the largest batch size measured (outside that range the data cannot tell values apart), with
    the best log S_min for each B_noise found by iteratively reweighted least squares. With
    ``b_noise_prior`` (the noise stage's B_simple) the search minimises the posterior's negative log: the
    residuals' loss over ``STEPS_LOG_SD``² plus the log distance from the prior under the same pseudo-Huber loss
    (``PRIOR_ROBUST_SCALE``) over ``PRIOR_LOG_SD``² — a maximum-a-posteriori fit that the data override whenever they span the bend of
    S(B), and that stays near the prior when they do not (two points fit any B_noise exactly).

    ``upper_bounds`` marks reads that bound a size's best steps from above only (``fit_scaling``: a size the
    search ran one untuned trial at): such a read counts only where the curve lies above it, its residual's loss
    one-sided (still convex, so the fit stays a 1-D search). Why: the best config at a size needs at most what one
    default config there took, and may need far less; read as a point, it pulls S_min up and B_noise down (measured:
    char_lm at 15% of its grid, batch 64 run once, 165 steps against the grid's best 115 there, put B_noise at 0.35x
    the oracle's at the same target; with the read as a bound, 0.57x; on the 21 other kept runs replayed, one more
    moved, 0.64x to 1.92x, and no pick changed). With fewer than two other sizes, every read counts as a point:
    bounds alone leave S_min free to fall.

    Raises:
        ConfigError: fewer than two distinct batch sizes with a finite, positive step count.
    """
    marks = upper_bounds if upper_bounds is not None else [False] * len(steps)
    usable = [(float(b), float(s), bool(u)) for b, s, u in zip(batch_sizes, steps, marks)
              if math.isfinite(s) and s > 0 and b > 0]
    pairs = [(b, s) for b, s, _ in usable]
    if len({b for b, _ in pairs}) < 2:
        raise ConfigError(
            f"fitting S(B) needs steps-to-target at two or more batch sizes; got {len(pairs)} usable point(s)."
        )
    prior = b_noise_prior if b_noise_prior is not None and math.isfinite(b_noise_prior) and b_noise_prior > 0 else None
    flags = [u for _, _, u in usable]
    if len({b for b, _, u in usable if not u}) < 2:
        flags = [False] * len(usable)
    b = np.array([p[0] for p in pairs])
    log_s = np.log([p[1] for p in pairs])
    bound = np.array(flags)
    log_b_noise, log_s_min = _map_fit(b, log_s, None if prior is None else math.log(prior), bound)
    s_min, b_noise = math.exp(log_s_min), math.exp(log_b_noise)
    residuals = log_s - np.log(s_min * (1 + b_noise / b))
    return ScalingFit(s_min, b_noise, tuple(b.tolist()), tuple(np.exp(log_s).tolist()), tuple(residuals.tolist()),
                      prior, tuple(flags))


def _counted(r: np.ndarray, bound: np.ndarray | None) -> np.ndarray:
    """Log residuals as the fit counts them: an upper bound's (``bound``) only when negative (the curve above
    the read); one above the curve is no error."""
    return r if bound is None else np.where(bound & (r > 0), 0.0, r)


def _robust_loss(r: np.ndarray, bound: np.ndarray | None = None) -> np.ndarray:
    """Pseudo-Huber loss of log residuals as counted (``_counted``), summed over the last axis, in units of
    ``STEPS_LOG_SD``²."""
    c = ROBUST_SCALE
    r = _counted(r, bound)
    return np.sum(2 * c**2 * (np.sqrt(1 + (r / c) ** 2) - 1), axis=-1) / STEPS_LOG_SD**2


def _best_log_s_min(y: np.ndarray, bound: np.ndarray | None = None) -> np.ndarray:
    """The log S_min minimising ``_robust_loss(y − log S_min, bound)`` for each row of ``y`` (log S − log(1 +
    B_noise/B)): iteratively reweighted least squares (the loss is convex, so it converges; weights
    1/√(1 + (r/c)²), 0 for a bound the curve lies below), from the mean of the points that are not bounds until no
    row moves by more than 1e-9 (at most 100 rounds)."""
    free = np.ones(y.shape[-1], dtype=bool) if bound is None else ~bound
    m = y[..., free].mean(axis=-1, keepdims=True)
    for _ in range(100):
        r = y - m
        w = 1 / np.sqrt(1 + (r / ROBUST_SCALE) ** 2)
        if bound is not None:
            w = np.where(bound & (r > 0), 0.0, w)
        m, previous = np.sum(w * y, axis=-1, keepdims=True) / np.sum(w, axis=-1, keepdims=True), m
        if np.max(np.abs(m - previous)) < 1e-9:
            break
    return m


def _map_fit(b: np.ndarray, log_s: np.ndarray, log_prior: float | None,
             bound: np.ndarray | None = None) -> tuple[float, float]:
    """(log B_noise, log S_min) minimising the objective of ``fit_steps_to_target``."""
    from scipy.optimize import minimize_scalar

    def objective(log_b_noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shapes = np.log1p(np.exp(log_b_noise)[:, None] / b[None, :])
        log_s_min = _best_log_s_min(log_s - shapes, bound)
        loss = _robust_loss(log_s - log_s_min - shapes, bound)
        if log_prior is not None:
            c = PRIOR_ROBUST_SCALE
            loss = loss + 2 * c**2 * (np.sqrt(1 + ((log_b_noise - log_prior) / c) ** 2) - 1) / PRIOR_LOG_SD**2
        return log_s_min[:, 0], loss

    lo, hi = math.log(b.min() / 1000), math.log(b.max() * 1000)
    # A coarse scan first (all grid points at once): the loss can be flat over decades, and a bounded
    # Brent search alone can stop in a local dip.
    grid = np.linspace(lo, hi, 200)
    start = grid[int(np.argmin(objective(grid)[1]))]
    step = grid[1] - grid[0]
    best = minimize_scalar(lambda x: float(objective(np.array([x]))[1][0]),
                           bounds=(max(lo, start - step), min(hi, start + step)), method="bounded")
    return float(best.x), float(objective(np.array([best.x]))[0][0])


# ---------------------------------------------------------------------------------------------------
# Step time and the best LR as functions of the batch size


@dataclass(frozen=True)
class StepTimeModel:
    """Seconds per optimizer step t(B), from throughput measured at a few batch sizes (the memory probe's: every
    power of two from 16 below the ceiling, and the ceiling), non-decreasing in B (``from_throughput`` says why).

    Between measured sizes, log t is interpolated linearly in log B (throughput curves are smooth in
    log-log). Below the smallest, t stays at the smallest's value: per-step overhead dominates there, so
    a smaller batch is not cheaper per step. Above the largest, t grows in proportion to B: the device is
    saturated and a step costs its samples.
    """

    batch_sizes: tuple[float, ...]
    step_time_s: tuple[float, ...]

    @classmethod
    def from_throughput(cls, points: Iterable[tuple[float, float | None]]) -> StepTimeModel:
        """From ``(batch_size, samples_per_s)`` pairs; pairs without a finite positive rate are skipped.

        Raises:
            ConfigError: no usable pair.
        """
        usable = sorted({float(b): float(r) for b, r in points if r and math.isfinite(r) and r > 0 and b > 0}.items())
        if not usable:
            raise ConfigError("no throughput measurement to model the step time from (run the memory probe).")
        from scipy.optimize import isotonic_regression

        # A step of more samples does no less work, so t(B) never falls as B grows; a timing that says it does
        # is noise (the oracles' own tables read 1.99 ms at 16 and 1.76 ms at 32 on friedman_mlp, a few steps on
        # a shared CPU), and a dip would hand its size a time-to-target it has not got. The monotone fit of
        # log t (pool-adjacent violators, as steps_to_target's) averages such neighbours.
        log_t = isotonic_regression([math.log(b / r) for b, r in usable]).x
        return cls(tuple(b for b, _ in usable), tuple(math.exp(x) for x in log_t))

    @classmethod
    def from_probes(cls, probes: Iterable[dict]) -> StepTimeModel:
        """From the memory probe's records (``memory.json``'s ``probes``): the sizes that fit."""
        return cls.from_throughput((p["batch_size"], p["samples_per_s"]) for p in probes if p["fits"])

    def at(self, batch_size: float) -> float:
        b, t = self.batch_sizes, self.step_time_s
        if batch_size <= b[0]:
            return t[0]
        if batch_size >= b[-1]:
            return t[-1] * batch_size / b[-1]
        return float(np.exp(np.interp(math.log(batch_size), np.log(b), np.log(t))))

    def to_dict(self) -> dict:
        return {"batch_sizes": list(self.batch_sizes), "step_time_s": list(self.step_time_s)}


# The best LR found by a search at one batch size is known only to about a factor 2: time-to-target is
# flat near its optimum in LR (the oracle grids, 2 LRs per decade, show neighbours within ~30%).
LR_LOG_SD = math.log(2)
# The range test's exponent is a weak prior (its measurements scatter by ±0.1–0.7, reports/lr_finder.md);
# theory puts α between 0 (above the critical batch) and 1 (SGD well below it; Adam 0.5, Malladi et al. 2022).
ALPHA_PRIOR_SD = 0.5


@dataclass(frozen=True)
class LRFit:
    """``lr(B) = lr_ref · (B / batch_ref)^alpha``, fitted to the best LR at each batch size."""

    lr_ref: float
    batch_ref: float
    alpha: float
    alpha_stderr: float
    alpha_prior: float
    batch_sizes: tuple[float, ...]
    lrs: tuple[float, ...]

    def lr_at(self, batch_size: float) -> float:
        return self.lr_ref * (batch_size / self.batch_ref) ** self.alpha

    def to_dict(self) -> dict:
        return {"lr_ref": self.lr_ref, "batch_ref": self.batch_ref, "alpha": self.alpha,
                "alpha_stderr": self.alpha_stderr, "alpha_prior": self.alpha_prior,
                "batch_sizes": list(self.batch_sizes), "lrs": list(self.lrs)}


def fit_lr(batch_sizes: Sequence[float], lrs: Sequence[float], alpha_prior: float = 0.5) -> LRFit:
    """Fit ``log lr = c + α log B`` with a normal prior on α (mean ``alpha_prior``, sd ``ALPHA_PRIOR_SD``).

    Ridge regression in closed form: with x the centred log batch sizes and y the log LRs,
    ``α = (Σxy/σ² + α₀/σ_α²) / (Σx²/σ² + 1/σ_α²)`` and c = mean(y) at the mean log B. One batch size
    gives α = α₀ through that point. α is kept within [0, 1], the range theory allows (see ALPHA_PRIOR_SD).

    Raises:
        ConfigError: no finite positive LR.
    """
    pairs = [(float(b), float(lr)) for b, lr in zip(batch_sizes, lrs) if b > 0 and lr > 0 and math.isfinite(lr)]
    if not pairs:
        raise ConfigError("fitting lr(B) needs at least one batch size with a best LR.")
    x = np.log([p[0] for p in pairs])
    y = np.log([p[1] for p in pairs])
    x_mean = float(x.mean())
    xc = x - x_mean
    precision = float(np.sum(xc**2)) / LR_LOG_SD**2 + 1 / ALPHA_PRIOR_SD**2
    alpha = (float(np.sum(xc * (y - y.mean()))) / LR_LOG_SD**2 + alpha_prior / ALPHA_PRIOR_SD**2) / precision
    return LRFit(math.exp(float(y.mean())), math.exp(x_mean), min(1.0, max(0.0, alpha)), precision**-0.5,
                 alpha_prior, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))


# ---------------------------------------------------------------------------------------------------
# Stage 5: the target, the fits and the recommendation


# The target is loosened by this share of the way from the best reachable metric back to the untrained
# model's. The last few percent of the improvement are where validation curves flatten: there a noise of a
# fraction of a percent in the metric moves the crossing step a long way, and the step count measures the
# end of the schedule rather than the rate of progress that S(B) models.
TARGET_SLACK = 0.05
USABLE = ("completed", "stopped")  # trials whose curves are measurements (diverged ones are not)


def _better(a: float, b: float, higher_is_better: bool) -> bool:
    return a > b if higher_is_better else a < b


def best_metric(curve: list[dict], higher_is_better: bool) -> float:
    values = [p["metric"] for p in curve if p.get("steps", 0) > 0 and p["metric"] is not None
              and math.isfinite(p["metric"])]
    if not values:
        return math.nan
    return max(values) if higher_is_better else min(values)


def target_rank(sizes: int) -> int:
    """How many of ``sizes`` batch sizes must reach the target rule's level (``choose_target``): half, at
    least 2, at most all."""
    return min(sizes, max(2, math.ceil(sizes / 2)))


def choose_target(trials: list[dict], higher_is_better: bool) -> tuple[float, str]:
    """The metric value steps-to-target is read at, by a rule that holds for any task and metric.

    Rule: for each batch size, the best metric any trial at that size reached; ``q`` = the k-th best of
    those, k = half the batch sizes (at least 2, at most all), so that good trials at several batch
    sizes reach it — a target only one batch size reaches cannot say how steps trade against batch size.
    The target is then ``q`` moved ``TARGET_SLACK`` of the way back toward the untrained model's metric.

    A target no better than an untrained model's metric measures nothing (every run "reaches" it at step 0):
    when the trials learned nothing, that is said instead.

    Raises:
        ConfigError: no trial has a measured curve, or none improved on an untrained model.
    """
    per_batch: dict[int, float] = {}
    untrained = []
    for t in trials:
        if not t.get("curve"):
            continue
        # Every trial's evaluation before its first step is an untrained model's, a diverged trial's too: each is
        # one draw of what a fresh initialisation scores, and the luckiest of them is the bar to clear. Read from
        # the trials that did not diverge alone, the bar could rest on one draw: a CNN whose first round diverged
        # at 6 of 7 sizes set its target at 10.8% accuracy (10 classes) off the one that did not, whose untrained
        # model read 10.1%, while the others' untrained models read up to 10.8%, and later trials "reached" it at
        # step 0.
        first = t["curve"][0]
        if first.get("steps") == 0 and first["metric"] is not None and math.isfinite(first["metric"]):
            untrained.append(first["metric"])
        if t["status"] not in USABLE:
            continue
        best = best_metric(t["curve"], higher_is_better)
        b = t["config"]["batch_size"]
        if math.isfinite(best) and (b not in per_batch or _better(best, per_batch[b], higher_is_better)):
            per_batch[b] = best
    if not per_batch:
        raise ConfigError("no trial has a measured validation curve, so no target can be chosen (see the "
                          f"trial statuses: every trial diverged or failed).{_divergence_advice(trials)}")
    ranked = sorted(per_batch.values(), reverse=higher_is_better)
    k = target_rank(len(ranked))
    q = ranked[k - 1]
    start = float(np.median(untrained)) if untrained else q
    target = q + TARGET_SLACK * (start - q)
    luckiest = (max(untrained) if higher_is_better else min(untrained)) if untrained else None
    if luckiest is not None and not _better(target, luckiest, higher_is_better):
        raise ConfigError(
            f"the trials learned nothing: the best validation metric reached at {k} of {len(ranked)} batch sizes, "
            f"{q:.4g}, is no better than an untrained model's ({luckiest:.4g} at best), so there is no target to "
            f"measure steps to.{_divergence_advice(trials)} Check that the task can be learned in its planned run (the "
            "loss, targets and inputs match; `autobs train` at a usual LR shows whether the validation metric moves), "
            "or plan more epochs."
        )
    rule = (f"the best metric reached at {k} of {len(ranked)} batch sizes ({q:.4g}), moved {TARGET_SLACK:.0%} "
            f"of the way toward the untrained model's ({start:.4g})")
    return target, rule


def _divergence_advice(trials: list[dict]) -> str:
    """What to change when trials diverged (empty when none did): trials that diverged say the LR, not the task,
    is what failed, and the fix is a lower LR range."""
    lrs = sorted(t["config"]["lr"] for t in trials if t["status"] == "diverged")
    if not lrs:
        return ""
    return (f" {len(lrs)} of {len(trials)} trials diverged (at LR {lrs[0]:.3g}"
            f"{f'–{lrs[-1]:.3g}' if lrs[-1] > lrs[0] * 1.001 else ''}): the LRs searched are likely too high for this "
            "model (the range test can read its LR past the edge of stability when the loss sits flat for its first "
            "steps). Fix: give --space a copy of the space file (search_spaces/) with lower lr factors, e.g. "
            "`lr: {anchor: range_test, low: 0.01, high: 1}`, or absolute LRs without the anchor. Otherwise:")


def _rank_key(t: dict, higher_is_better: bool):
    best = best_metric(t["curve"], higher_is_better)
    return (t["steps_to_target"], -best if higher_is_better else best)


def reads_by_batch(trials: list[dict], target: float, higher_is_better: bool) -> dict[int, list[tuple[float, dict]]]:
    """Each batch size's usable trials (completed or stopped, with a curve) and their steps to ``target``,
    read off the monotone fit (``steps_to_target``), fewest first; by batch size, smallest first."""
    groups: dict[int, list[tuple[float, dict]]] = {}
    for t in trials:
        if t["status"] in USABLE and t.get("curve"):
            read = steps_to_target(t["curve"], target, higher_is_better, monotone=True)
            groups.setdefault(t["config"]["batch_size"], []).append((read, t))
    return {b: sorted(group, key=lambda rt: rt[0]) for b, group in sorted(groups.items())}


def best_per_batch(trials: list[dict], target: float, higher_is_better: bool,
                   replicates: list[dict] | None = None) -> list[dict]:
    """For each batch size, its best trial by steps to ``target`` (ties: the better metric), with
    ``steps_to_target`` added (``inf`` when none of its trials reached it).

    The fewest steps among many single-seed trials is an optimistic estimate (the winner's curse: the
    minimum of noisy reads is the luckiest draw). ``replicates`` (the search's reruns, ``replicate.py``) re-measure
    a size's leading trials (its ``TOP_K`` fewest reads) with fresh seeds; where a leader has them, the size's
    row is the leader that ranks first by ``leader_rank`` (its own read and its replicates together), and
    ``steps_to_target`` is its replicates' median, not the trial's own read (which selection biased; it stays
    in ``search_steps_to_target``). Measured on digits: the
    search's best reads were 0.35–0.85x of the same configs' median over 6 fresh seeds, the lowest at the
    smallest batch sizes, whose curves hover near the target longest — which alone put B_noise at 0.4x.

    Reruns of trials that are no longer leaders (the search reruns each new leader) are left out: the least
    median over every trial ever rerun would be the luckiest of many again (measured: a 300 s digits search
    reran 12 leaders a size, and batch 16's least median read 89 steps against the oracle's 181).
    """
    return _leaders(reads_by_batch(trials, target, higher_is_better),
                    rerun_reads(replicates or [], target, higher_is_better), higher_is_better)


def _leaders(reads: dict[int, list[tuple[float, dict]]], by_trial: dict[Any, list[float]],
             higher_is_better: bool) -> list[dict]:
    """``best_per_batch`` from the trials' reads (``reads_by_batch``) and their reruns' (``rerun_reads``)."""
    groups = {b: [{**t, "steps_to_target": read, "search_steps_to_target": read, "replicates": 0} for read, t in rs]
              for b, rs in reads.items()}
    from .replicate import TOP_K

    rows = []
    for _, group in sorted(groups.items()):
        measured = [{**t, "steps_to_target": float(np.median(by_trial[t.get("number")])),
                     "replicates": len(by_trial[t.get("number")])} for t in group[:TOP_K] if t.get("number") in by_trial]
        if measured:
            rows.append(min(measured, key=lambda t: (leader_rank(t["search_steps_to_target"], by_trial[t.get("number")]),
                                                     _rank_key(t, higher_is_better))))
        else:
            rows.append(min(group, key=lambda t: _rank_key(t, higher_is_better)))
    return rows


def rerun_reads(replicates: list[dict], target: float, higher_is_better: bool) -> dict[Any, list[float]]:
    """The reruns' steps to ``target`` (monotone fit), by the number of the trial each reran. A rerun the budget cut
    before it crossed measured nothing and is left out (``replicate.split_reruns``); one that ran and never reached
    the target reads ``inf``."""
    by_trial: dict[Any, list[float]] = {}
    for r in replicates:
        read = steps_to_target(r["curve"], target, higher_is_better, monotone=True)
        if math.isfinite(read) or not r.get("cut"):
            by_trial.setdefault(r["trial"], []).append(read)
    return by_trial


# The curvature of ln(steps to the target) in ln(LR) near the best LR: steps ≈ S*·exp(K·(ln lr − ln lr*)²).
# Measured on the oracle grids (reports/oracle_*.md, the LRs around each size's best): digits_mlp about 0.4 (batch
# 32: 101 steps at its best, 172 a factor √10 below), friedman_mlp 0.27 (batch 128: 150 steps at 0.01, 638 at 0.001),
# char_lm 0.2 (batch 16: 153 flat over 0.001–0.0032, 198 at 0.0056, 290 at 0.01). The middle of those.
LR_CURVATURE = 0.3


def lr_basin_centre(reads: list[tuple[float, list[float]]]) -> float | None:
    """The LR at the bottom of ``reads`` ((lr, [steps to the target, one per seed]) of configs alike but for their
    LR), by a parabola of fixed curvature ``LR_CURVATURE`` in ln LR fitted to every read (least squares); within the
    LRs read, never past them. None when fewer than two LRs have reads. A config with a read that never reached the
    target (a run past the edge of stability, or too slow) is left out: the answer stays within the LRs whose every
    read reached it.

    Why not the LR of the trial with the fewest steps: near its best LR time-to-target is flat (the oracles' grids,
    LR_CURVATURE), so two LRs a factor 3 apart read within their seed noise of each other (log-sd 0.15–0.4,
    replicate.py), and the least read picks between them by a coin toss; the parabola puts the answer between them,
    moved toward the better by how much better it read. Measured by replaying the recommendation on 47 kept
    searches (digits, friedman_mlp, char_lm, rms_reg; sessions 23-26) and training the two LRs on 8 seeds each where
    they differed (19 cases): the parabola's was faster to the oracle's target in 13, as fast in 3, slower in 3; char_lm's
    miss (batch 16, lr 0.00574: 214 steps, 1.40x the oracle's best time) became lr 0.00329, 153 steps (1.00x)."""
    points = [(math.log(lr), math.log(s)) for lr, steps in reads if steps and all(map(math.isfinite, steps))
              for s in steps]
    if len({x for x, _ in points}) < 2:
        return None
    x, y = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    # y = a + K(x − m)² is linear in x once K·x² is taken off: y − K·x² = (a + K·m²) − 2K·m·x.
    slope, _ = np.polyfit(x, y - LR_CURVATURE * x**2, 1)
    return math.exp(min(max(-slope / (2 * LR_CURVATURE), float(x.min())), float(x.max())))


def _lr_variant(config: dict, of: dict) -> bool:
    """Whether ``config`` (of a trial at ``of``'s batch size) is ``of`` with at most its LR changed (schedule, its
    parameters, warmup)."""
    keys = ("schedule", "schedule_params", "warmup_fraction")
    return all((config.get(k) or None) == (of.get(k) or None) for k in keys)


def leader_rank(own_read: float, rerun_reads: list[float]) -> float:
    """What ranks a batch size's leaders against each other: the median of every read of each, its own in the
    search and its reruns'. Its reruns alone give the size's steps-to-target (``best_per_batch``): its own read
    was chosen for being low among the size's trials, which biases a size's value; but both leaders were chosen
    so, which leaves their comparison nearly fair, and one more read halves a one-rerun leader's chance of
    losing to a lucky draw. Measured on friedman_mlp at 15% of its grid (runs kept at 607d6a9 and 5a9e3a6): at
    the recommended size, a leader at lr 0.0112 read 74 steps in the search and 170 in its one rerun, one at lr
    0.005 116, then 131 and 137; by reruns alone the 0.005 one was recommended (1.37x the oracle's best time),
    by every read the 0.0112 one (the grid's best LR there); likewise 64's 0.0098 (145; 203, 186, 151, 93)
    over 0.0044 (179; 163), 1.43x."""
    return float(np.median(list(rerun_reads) + [own_read]))


def _powers_of_two(lo: float, hi: float) -> list[int]:
    return [2**k for k in range(int(math.ceil(math.log2(lo))), int(math.floor(math.log2(hi))) + 1)]


@dataclass
class ScalingResult:
    """Stage 5's answer and its evidence."""

    metric: str
    higher_is_better: bool
    target: float
    target_rule: str
    per_batch: list[dict]  # batch_size, steps_to_target, lr, schedule, warmup_fraction, trial number
    fit: ScalingFit | None
    lr_fit: LRFit
    step_time: StepTimeModel
    candidates: list[dict]  # batch_size, steps_to_target, step_time_s, time_to_target_s
    batch_size: int
    batch_size_interval: tuple[float, float] | None
    b_noise_interval: tuple[float, float] | None
    lr: float
    warmup_fraction: float
    warmup_steps: int
    total_steps: int
    schedule: str
    schedule_params: dict
    time_to_target_s: float
    max_batch_size: int | None
    notes: list[str]

    @property
    def critical_batch_size(self) -> float | None:
        """B_crit ≈ B_noise (McCandlish et al. 2018, §2.2)."""
        return self.fit.b_noise if self.fit else None

    def to_dict(self) -> dict:
        return {
            "metric": self.metric, "higher_is_better": self.higher_is_better, "target": self.target,
            "target_rule": self.target_rule, "per_batch": self.per_batch,
            "fit": self.fit.to_dict() if self.fit else None, "lr_fit": self.lr_fit.to_dict(),
            "step_time": self.step_time.to_dict(), "candidates": self.candidates,
            "batch_size": self.batch_size, "batch_size_interval": self.batch_size_interval,
            "critical_batch_size": self.critical_batch_size, "b_noise_interval": self.b_noise_interval,
            "lr": self.lr, "lr_scaling_exponent": self.lr_fit.alpha, "warmup_fraction": self.warmup_fraction,
            "warmup_steps": self.warmup_steps, "total_steps": self.total_steps, "schedule": self.schedule,
            "schedule_params": self.schedule_params, "time_to_target_s": self.time_to_target_s,
            "max_batch_size": self.max_batch_size, "notes": self.notes,
        }


def fit_scaling(
    trials: list[dict],
    *,
    metric: str,
    higher_is_better: bool,
    step_time: StepTimeModel,
    planned_samples: int,
    max_batch_size: int | None = None,
    b_simple: float | None = None,
    alpha_prior: float | None = None,
    target: float | None = None,
    target_rule: str | None = None,
    replicates: list[dict] | None = None,
    seed: int = 0,
) -> ScalingResult:
    """Pick the batch size that reaches the target soonest on this hardware, with LR, warmup and schedule.

    Args:
        trials: the search's trial records (``trials.json``).
        step_time: t(B) on the device the user will train on (the memory probe's throughput).
        planned_samples: the user's planned run in samples (epochs × training set): the schedule's length.
        max_batch_size: the memory ceiling; no larger batch is recommended.
        b_simple: the noise stage's B_simple, a prior for B_noise.
        alpha_prior: the LR exponent expected before the search (the range tests and noise scale give it),
            a prior for the fitted one.
        target: the metric value to reach; default ``choose_target``'s rule.
        target_rule: how ``target`` was chosen, for the report (default: "given by the user").
        replicates: re-measurements of the leading trials with fresh seeds (``replicate.split_reruns``);
            where a batch size has them, they give its steps-to-target (``best_per_batch`` says why).

    Raises:
        ConfigError: no trial has a measured curve.
    """
    notes: list[str] = []
    if target is None:
        target, rule = choose_target(trials, higher_is_better)
    else:
        rule = target_rule or "given by the user"
    reads = reads_by_batch(trials, target, higher_is_better)
    reruns = rerun_reads(replicates or [], target, higher_is_better)
    per_batch = _leaders(reads, reruns, higher_is_better)  # best_per_batch, its reads kept for the LR below
    if not per_batch:
        raise ConfigError("no trial has a measured validation curve: nothing to fit (every trial diverged or failed).")
    reaching = [t for t in per_batch if math.isfinite(t["steps_to_target"])
               and (max_batch_size is None or t["config"]["batch_size"] <= max_batch_size)]
    alpha0 = min(1.0, max(0.0, alpha_prior)) if alpha_prior is not None and math.isfinite(alpha_prior) else 0.5
    lr_fit = fit_lr([t["config"]["batch_size"] for t in reaching] or [t["config"]["batch_size"] for t in per_batch],
                    [t["config"]["lr"] for t in reaching] or [t["config"]["lr"] for t in per_batch], alpha0)
    fit = None
    b_noise_interval = batch_interval = None
    # A size the search ran once, at its first round's default config, and never reran: its read bounds the size's
    # best steps from above only (``fit_steps_to_target``'s upper_bounds say why).
    tried = Counter(t["config"]["batch_size"] for t in trials if t["status"] in USABLE)
    single = sorted(t["config"]["batch_size"] for t in reaching if tried[t["config"]["batch_size"]] == 1
                    and not t["replicates"])
    if len(reaching) >= 2:
        fit = fit_steps_to_target([t["config"]["batch_size"] for t in reaching],
                                  [t["steps_to_target"] for t in reaching], b_simple,
                                  upper_bounds=[t["config"]["batch_size"] in single for t in reaching])
        # Only batch sizes between the smallest and largest that reached the target: S(B) is not
        # extrapolated past the data.
        lo = min(t["config"]["batch_size"] for t in reaching)
        hi = max(t["config"]["batch_size"] for t in reaching)
        sizes = sorted(set(_powers_of_two(lo, hi)) | {t["config"]["batch_size"] for t in reaching})
        b_noise_interval, batch_interval, expected_regret = _bootstrap(fit, sizes, step_time, seed)
        candidates = [{"batch_size": b, "steps_to_target": fit.steps_at(b), "step_time_s": step_time.at(b),
                       "time_to_target_s": fit.steps_at(b) * step_time.at(b), "expected_regret": r}
                      for b, r in zip(sizes, expected_regret)]
        # The pick is the size with the least expected regret over the fit's bootstrap (its time to the target
        # over the fastest size's, in each refit), not the least time of the point fit: the Bayes action when the
        # fit is uncertain (the parametric bootstrap as an approximate posterior; Efron 2012). Why: the two
        # differ when the time curve is flat near its minimum and B_noise is unsure, and then the point fit
        # leans the way the noise does; the regret of a size below B_noise grows as B_noise/B with the unsure
        # B_noise, of one above it only as t(B). Measured on digits at 15% of its grid (a 23 s search, 9-14
        # trials; seed 1 at 8689f1d): reads of 68 and 49 steps at batch 16 and 32, 0.37x and 0.46x the oracle's,
        # put B_noise at 16 and the point fit's least time at 16 (1.47x the oracle's best time there); the
        # least expected regret was at 32 (1.05x). The two agreed on the other 19 runs replayed (both tasks).
        pick = min(candidates, key=lambda c: c["expected_regret"])
        # The refits' percentiles may not hold the fit's own B_noise, nor the pick (``_spanning`` says why).
        b_noise_interval = _spanning(b_noise_interval, fit.b_noise)
        batch_interval = _spanning(batch_interval, pick["batch_size"])
        # A size searched with one trial had its LR, warmup and schedule untuned there, so its steps-to-target can
        # sit far above that size's best (measured: char_lm at 15% of its grid, 2 trials, read B_noise 0.3x the
        # oracle's, outside the 90% interval; reports/recommend.md as of 1456711). The fit reads it as a bound, which
        # says only that the curve lies at or below it there: say so.
        bounds = [b for b, u in zip(fit.batch_sizes, fit.upper_bounds) if u]
        if bounds:
            notes.append(
                f"batch size{'s' if len(bounds) > 1 else ''} {', '.join(f'{b:.0f}' for b in bounds)} "
                f"{'were' if len(bounds) > 1 else 'was'} run once, at a default config (of {len(reaching)} sizes that "
                "reached the target): untuned there, such a trial can take well over the best steps at its size, so the "
                "S(B) fit reads it as an upper bound, and B_noise rests on the other sizes; a larger --budget gives the "
                "search more trials per batch size")
        elif single:  # too few other sizes to rest on: the fit reads them as points
            notes.append(
                f"the S(B) fit rests on a single trial at batch size{'s' if len(single) > 1 else ''} "
                f"{', '.join(map(str, single))} (of {len(reaching)} that reached the target): untuned there, such a "
                "trial can take well over the best steps at its size, so B_noise and its interval are less sure "
                "than they look; a larger --budget gives the search more trials per batch size")
        if not lo / 2 <= fit.b_noise <= 2 * hi:
            # S(B) bends around B_noise; the data show the bend only near the sizes measured.
            below = fit.b_noise < lo
            notes.append(
                f"B_noise ({fit.b_noise:.3g}) lies {'below' if below else 'above'} the batch sizes that reached the "
                f"target ({lo}–{hi}): across them the steps to the target "
                f"{'barely fell as the batch grew' if below else 'fell almost as 1/B'}, so the critical batch size "
                f"is an extrapolation{'' if below else ', and batches larger than those measured may still cut the steps'}")
        # A size run once is named by the note above: its read is one default config's, not the luckiest of several.
        unconfirmed = sorted(t["config"]["batch_size"] for t in reaching if not t["replicates"]
                             and t["config"]["batch_size"] not in single)
        if unconfirmed and replicates is not None:
            notes.append(
                f"batch size{'s' if len(unconfirmed) > 1 else ''} {', '.join(map(str, unconfirmed))} "
                f"{'were' if len(unconfirmed) > 1 else 'was'} not re-measured with fresh seeds (the budget ran out): "
                "there the fit uses the search's best read, which is optimistic (the luckiest of its trials)")
        # The same at the other end: the search space has a floor (batch_size.low), and a pick at the smallest size
        # searched, with the time still falling toward it, may have a faster size below. Why it can happen: below
        # B_noise the steps barely grow as B halves (S(B) = S_min(1 + B_noise/B)), so where the step time still
        # falls with B (a model small enough that a step's fixed cost does not dominate) halving B can win.
        floor = min(t["config"]["batch_size"] for t in trials)  # the first round runs every size of the space
        if pick["batch_size"] == floor and len(candidates) > 1 and candidates[1]["time_to_target_s"] > pick["time_to_target_s"]:
            notes.append(
                f"batch size {floor} is the smallest the search tried (the space's batch_size.low), and the time to the "
                f"target still fell toward it ({pick['time_to_target_s']:.3g} s there, "
                f"{candidates[1]['time_to_target_s']:.3g} s at {candidates[1]['batch_size']}): a smaller batch may reach "
                f"the target sooner. To search below it, give --space a copy of the space file with batch_size.low "
                f"{floor // 2}")
        unconstrained = _powers_of_two(hi, 4 * hi) if max_batch_size is not None and hi >= max_batch_size else []
        if unconstrained and min(unconstrained, key=lambda b: fit.steps_at(b) * step_time.at(b)) > hi:
            notes.append(
                f"the fit's time-to-target still falls above the memory ceiling ({max_batch_size}). Gradient "
                f"accumulation of k micro-batches reaches an effective batch k·B, but each step then costs "
                f"k·t(B), so on one device it reaches the target no sooner (E(B) grows with B); it pays only "
                f"when the k micro-batches run on k devices")
    else:
        # Too few batch sizes reached the target for a fit: the one that did (or failing that, the
        # trial with the best metric) is the recommendation, with its measured numbers.
        pool = reaching or per_batch
        best = min(pool, key=lambda t: _rank_key(t, higher_is_better))
        b = best["config"]["batch_size"]
        s = best["steps_to_target"]
        candidates = [{"batch_size": b, "steps_to_target": s, "step_time_s": step_time.at(b),
                       "time_to_target_s": s * step_time.at(b) if math.isfinite(s) else math.inf}]
        pick = candidates[0]
        notes.append(f"S(B) not fitted: {len(reaching)} batch size(s) reached the target {target:.4g}; "
                     "the recommendation is the best measured trial")
    batch_size = int(pick["batch_size"])
    # LR, warmup and schedule come from the best trial at the nearest measured batch size (in log2), its LR
    # moved to this size along the fitted exponent when that is another size: the three were measured together,
    # at this step count. Why not the lr(B) fit's LR: the search tunes the sizes that can still be the fastest
    # (search.next_explored_size) and runs the others at their default config, so a fit through every size's
    # best LR mixes tuned LRs with defaults. Measured on friedman_mlp (e742862, 5 seeds): at the recommended
    # batch 128 the best trial's LR was 0.0041 where the fit, held down by the untuned defaults at 16-64
    # (0.0008-0.0014), gave 0.0021, and the recommendation paired that LR with the best trial's 11% warmup.
    source = min(reaching or per_batch, key=lambda t: (abs(math.log2(t["config"]["batch_size"] / batch_size)),
                                                      _rank_key(t, higher_is_better)))
    # Its LR is the centre of that size's LR basin, read off the source and its LR-only variants (the search's LR
    # ladder runs the default config at several LRs: search.next_lr_factor) with their reruns (lr_basin_centre).
    source_lr = lr_basin_centre(
        [(t["config"]["lr"], [read] + reruns.get(t.get("number"), []))
         for read, t in reads.get(source["config"]["batch_size"], []) if _lr_variant(t["config"], source["config"])]
    ) or source["config"]["lr"]
    lr = source_lr * (batch_size / source["config"]["batch_size"]) ** lr_fit.alpha
    total_steps = max(1, round(planned_samples / batch_size))
    warmup_fraction = float(source["config"]["warmup_fraction"])
    table = [{"batch_size": t["config"]["batch_size"], "steps_to_target": t["steps_to_target"],
              "search_steps_to_target": t["search_steps_to_target"], "replicates": t["replicates"],
              "lr": t["config"]["lr"], "schedule": t["config"]["schedule"],
              "schedule_params": t["config"]["schedule_params"], "warmup_fraction": t["config"]["warmup_fraction"],
              "best_metric": best_metric(t["curve"], higher_is_better), "trial": t.get("number")}
             for t in per_batch]
    return ScalingResult(
        metric=metric, higher_is_better=higher_is_better, target=target, target_rule=rule, per_batch=table,
        fit=fit, lr_fit=lr_fit, step_time=step_time, candidates=candidates, batch_size=batch_size,
        batch_size_interval=batch_interval, b_noise_interval=b_noise_interval, lr=lr,
        warmup_fraction=warmup_fraction, warmup_steps=int(round(warmup_fraction * total_steps)),
        total_steps=total_steps, schedule=source["config"]["schedule"],
        schedule_params=dict(source["config"]["schedule_params"] or {}), time_to_target_s=pick["time_to_target_s"],
        max_batch_size=max_batch_size, notes=notes,
    )


def _bootstrap(fit: ScalingFit, sizes: list[int], step_time: StepTimeModel, seed: int,
               reps: int = BOOTSTRAP_REPS) -> tuple[tuple[float, float], tuple[float, float], list[float]]:
    """90% intervals for B_noise and the fastest batch size, and each of ``sizes``' expected regret, by a
    parametric residual bootstrap (Efron & Tibshirani 1993, §9.5): refit to the fitted curve plus normal log
    noise with the scatter of the residuals (degrees-of-freedom corrected), or ``STEPS_LOG_SD`` when four or
    fewer points leave the scatter unknown, and pick again from each refit. A size's expected regret is the
    mean over the refits of its time to the target over the fastest size's in that refit."""
    b = np.array(fit.batch_sizes)
    bound = np.array(fit.upper_bounds or [False] * len(b))
    residuals = _counted(np.array(fit.residuals), bound)
    n = len(b)
    sd = float(np.sqrt(np.sum(residuals**2) / (n - 2))) if n > 4 else STEPS_LOG_SD
    log_fitted = np.log(fit.s_min * (1 + fit.b_noise / b))
    log_prior = math.log(fit.b_noise_prior) if fit.b_noise_prior else None
    rng = np.random.default_rng(seed)
    b_noise, picks, regrets = [], [], []
    times = np.array([step_time.at(s) for s in sizes])
    for _ in range(reps):
        log_b_noise, log_s_min = _map_fit(b, log_fitted + rng.normal(0, sd, n), log_prior, bound)
        b_noise.append(math.exp(log_b_noise))
        seconds = math.exp(log_s_min) * (1 + math.exp(log_b_noise) / np.array(sizes, dtype=float)) * times
        picks.append(sizes[int(np.argmin(seconds))])
        regrets.append(seconds / seconds.min())
    q = [100 * p for p in INTERVAL]
    return (tuple(np.percentile(b_noise, q).tolist()), tuple(np.percentile(picks, q).tolist()),
            np.mean(regrets, axis=0).tolist())


def _spanning(interval: Sequence[float], estimate: float) -> tuple[float, float]:
    """``interval`` widened, where needed, to hold ``estimate``. A percentile interval of a shrunk estimator can
    miss the estimate itself: where the data barely bend (steps falling nearly as 1/B over the sizes measured),
    refits from the fitted curve plus noise that come out flatter are pulled to the B_simple prior, those that
    come out steeper are not pulled up as far, and the refits sit below the fit (measured: a GRU's three sizes
    fit B_noise 461 under a prior of 27, and its refits' 90% interval was 78–388). A report that gives an
    estimate outside its own interval reads as a bug; widening never lowers the coverage."""
    lo, hi = (float(v) for v in interval)
    return min(lo, estimate), max(hi, estimate)

"""Steps-to-target and the critical-batch-size model of McCandlish et al. 2018.

The model (McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training", 2018,
eq. 2.11): to reach a given loss, the optimizer steps S and training samples E = B·S needed at batch
size B trade off as

    (S / S_min − 1)(E / E_min − 1) = 1,   equivalently   S(B) = S_min (1 + B_noise / B),
                                                         E(B) = E_min (1 + B / B_noise),

with E_min = S_min · B_noise. Below the critical batch size B_noise, doubling B nearly halves the
steps; above it, it buys little. This module reads steps-to-target from validation curves and fits
that curve; the recommendation stage builds on it.

Example:
    >>> fit = fit_steps_to_target([16, 64, 256, 1024], [675, 206, 89, 60])  # S_min=50, B_noise=200
    >>> round(fit.b_noise, -1), round(fit.s_min)
    (200.0, 50)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .errors import ConfigError


def steps_to_target(curve: Iterable, target: float, higher_is_better: bool) -> float:
    """The first step whose validation metric reaches ``target``; ``inf`` if none does.

    ``curve`` holds points with ``step`` and ``metric`` (``CurvePoint`` objects or their dicts). The
    resolution is the curve's evaluation interval: the true crossing lies between the previous point
    and the returned one.
    """
    for point in curve:
        step, metric = (point["step"], point["metric"]) if isinstance(point, dict) else (point.step, point.metric)
        if metric is not None and math.isfinite(metric):
            if (metric >= target) if higher_is_better else (metric <= target):
                return float(step)
    return math.inf


@dataclass(frozen=True)
class ScalingFit:
    """``S(B) = s_min·(1 + b_noise/B)`` fitted to (batch size, steps) data, with log-space residuals."""

    s_min: float
    b_noise: float
    batch_sizes: tuple[float, ...]
    steps: tuple[float, ...]
    residuals: tuple[float, ...]  # log(S_measured) − log(S_fitted) at each batch size

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
        }


def fit_steps_to_target(batch_sizes: Sequence[float], steps: Sequence[float]) -> ScalingFit:
    """Least-squares fit of ``log S = log S_min + log(1 + B_noise/B)`` to the finite points.

    In log space so that a run of 50 steps weighs as much as one of 5000 (the noise in steps-to-target
    is roughly proportional to the steps). For a fixed B_noise the best log S_min is the mean of
    ``log S − log(1 + B_noise/B)``, so the fit is a 1-D bounded search over log B_noise, between 1/1000
    of the smallest and 1000× the largest batch size measured (outside that range the data cannot tell
    values apart).

    Raises:
        ConfigError: fewer than two distinct batch sizes with a finite, positive step count.
    """
    pairs = [(float(b), float(s)) for b, s in zip(batch_sizes, steps) if math.isfinite(s) and s > 0 and b > 0]
    if len({b for b, _ in pairs}) < 2:
        raise ConfigError(
            f"fitting S(B) needs steps-to-target at two or more batch sizes; got {len(pairs)} usable point(s)."
        )
    b = np.array([p[0] for p in pairs])
    log_s = np.log([p[1] for p in pairs])

    def log_s_min_and_loss(log_b_noise: float) -> tuple[float, float]:
        shape = np.log1p(np.exp(log_b_noise) / b)
        log_s_min = float(np.mean(log_s - shape))
        return log_s_min, float(np.sum((log_s - log_s_min - shape) ** 2))

    from scipy.optimize import minimize_scalar

    lo, hi = math.log(b.min() / 1000), math.log(b.max() * 1000)
    # A coarse scan first: the loss can be flat over decades, and a bounded Brent search alone can stop
    # in a local dip.
    grid = np.linspace(lo, hi, 200)
    start = grid[int(np.argmin([log_s_min_and_loss(x)[1] for x in grid]))]
    step = grid[1] - grid[0]
    best = minimize_scalar(lambda x: log_s_min_and_loss(x)[1], bounds=(max(lo, start - step), min(hi, start + step)),
                           method="bounded")
    log_b_noise = float(best.x)
    log_s_min, _ = log_s_min_and_loss(log_b_noise)
    s_min, b_noise = math.exp(log_s_min), math.exp(log_b_noise)
    residuals = log_s - np.log(s_min * (1 + b_noise / b))
    return ScalingFit(s_min, b_noise, tuple(b.tolist()), tuple(np.exp(log_s).tolist()), tuple(residuals.tolist()))

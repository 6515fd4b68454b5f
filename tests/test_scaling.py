from __future__ import annotations

import math

import numpy as np
import pytest

import autobs
from autobs.scaling import fit_steps_to_target, steps_to_target
from autobs.training import CurvePoint


def test_steps_to_target_is_the_first_point_that_reaches_it():
    curve = [CurvePoint(0, 0, 0.0, 0.1, None), CurvePoint(10, 320, 1.0, float("nan"), 2.0),
             CurvePoint(20, 640, 2.0, 0.93, 1.0), CurvePoint(30, 960, 3.0, 0.91, 0.9),
             CurvePoint(40, 1280, 4.0, 0.97, 0.5)]
    assert steps_to_target(curve, 0.9, higher_is_better=True) == 20
    assert steps_to_target(curve, 0.95, higher_is_better=True) == 40
    assert steps_to_target(curve, 0.99, higher_is_better=True) == math.inf
    as_dicts = [vars(p) for p in curve]
    assert steps_to_target(as_dicts, 0.5, higher_is_better=False) == 0  # lower is better: 0.1 <= 0.5


@pytest.mark.parametrize("s_min,b_noise", [(100, 300), (40, 30), (500, 2000)])
def test_fit_recovers_s_min_and_b_noise_within_10_percent_from_noisy_data(s_min, b_noise):
    b = 2.0 ** np.arange(3, 12)  # 8 .. 2048
    rng = np.random.default_rng(0)
    steps = s_min * (1 + b_noise / b) * np.exp(rng.normal(0, 0.05, len(b)))  # 5% multiplicative noise
    fit = fit_steps_to_target(b, steps)
    assert fit.s_min == pytest.approx(s_min, rel=0.10)
    assert fit.b_noise == pytest.approx(b_noise, rel=0.10)
    assert fit.e_min == pytest.approx(fit.s_min * fit.b_noise)
    assert np.sqrt(np.mean(np.square(fit.residuals))) < 0.1


def test_fit_is_exact_on_exact_data_and_ignores_unreached_batch_sizes():
    b = [16, 32, 64, 128, 256, 512]
    steps = [50 * (1 + 200 / x) for x in b] + [math.inf]
    fit = fit_steps_to_target(b + [1024], steps)
    assert (fit.s_min, fit.b_noise) == (pytest.approx(50, rel=1e-3), pytest.approx(200, rel=1e-3))
    assert fit.steps_at(200) == pytest.approx(100, rel=1e-3)
    assert len(fit.batch_sizes) == 6


def test_fit_needs_two_batch_sizes():
    with pytest.raises(autobs.ConfigError, match="two or more batch sizes"):
        fit_steps_to_target([64, 128], [100, math.inf])

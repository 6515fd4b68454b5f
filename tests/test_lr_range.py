from __future__ import annotations

import json
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

import autobs
from autobs.cli import main
from autobs.lr_range import (
    DESCENT_FRACTION,
    DESCENT_Z,
    MIN_POINTS,
    LRRangeResult,
    RangeCurve,
    _fit_exponent,
    descent_fraction,
    descent_z,
    noise_power,
    noise_shaped_lr_at,
)

from .conftest import GOOD_TASK


def least_squares(seed: int = 0, n: int = 2048, shift: float = 0.0, nan_after: int | None = None):
    """Linear regression with SGD: the largest stable LR is 2/λ_max of the loss's Hessian (2XᵀX/n)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g) * torch.linspace(0.5, 1.0, 8).sqrt()
    y = x @ torch.randn(8, generator=g) + 0.1 * torch.randn(n, generator=g)
    calls = [0]

    def loss(outputs, targets):
        calls[0] += 1
        value = F.mse_loss(outputs.squeeze(-1), targets) + shift
        return value * math.nan if nan_after is not None and calls[0] > nan_after else value

    task = autobs.Task(model=lambda: torch.nn.Linear(8, 1, bias=False), train_data=(x, y), loss=loss,
                       optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr))
    lam_max = torch.linalg.eigvalsh(2 * x.T @ x / n).max().item()
    return task, lam_max


def test_suggestion_within_3x_of_one_over_lambda_max_on_least_squares():
    task, lam = least_squares()
    result = autobs.lr_range_test(task, [128], device="cpu")
    curve = result.curves[0]
    assert 1 / (3 * lam) <= curve.suggestion <= 3 / lam
    assert curve.interval[0] <= curve.suggestion <= curve.interval[1]
    assert curve.stop_reason == "diverged" and curve.lrs[-1] < 10 * 2 / lam  # stopped soon after 2/λ


def test_a_long_sweep_says_how_far_it_has_got(monkeypatch, capsys):
    import autobs.lr_range

    task, _ = least_squares()
    monkeypatch.setattr(autobs.lr_range, "PROGRESS_EVERY_S", 0.0)  # as if every step took that long
    curve = autobs.lr_range_test(task, [32], device="cpu", progress=True).curves[0]
    lines = capsys.readouterr().err.splitlines()
    steps = [line for line in lines if line.startswith("lr range test at batch 32: step ")]
    assert len(steps) == len(curve.losses)  # one a step here; at the real interval, one each 30 s
    assert steps[0] == f"lr range test at batch 32: step 1 of 100, lr 1e-07, loss {curve.losses[0]:.4g}"
    assert lines[-1].startswith("lr range test at batch 32: lr ")  # then the sweep's reading, as before


def test_negative_losses_are_handled_like_positive_ones():
    task, lam = least_squares(shift=-100.0)  # every loss is negative
    curve = autobs.lr_range_test(task, [128], device="cpu").curves[0]
    assert curve.losses[0] < 0 and min(curve.smoothed) < curve.smoothed[0] - 1
    assert curve.stop_reason == "diverged" and curve.lrs[-1] < 10 * 2 / lam
    assert 1 / (3 * lam) <= curve.suggestion <= 3 / lam


def test_nan_mid_sweep_ends_the_curve_and_still_suggests():
    # The loss turns NaN on the 81st call: after its descent has begun, before the blow-up (at about step 95).
    task, _ = least_squares(nan_after=80)
    curve = autobs.lr_range_test(task, [64], device="cpu").curves[0]
    assert all(math.isfinite(v) for v in curve.losses)
    assert MIN_POINTS <= len(curve.losses) < 81
    assert math.isfinite(curve.suggestion) and curve.suggestion > 0
    assert curve.stop_reason == "diverged"


def test_sweep_too_high_from_the_start_is_a_clear_error():
    task, _ = least_squares()
    with pytest.raises(autobs.AutobsError, match="lr_min"):
        autobs.lr_range_test(task, [64], lr_min=100.0, lr_max=1e6, device="cpu")


def test_fewer_batches_than_sweep_steps(write_task):
    task = autobs.load_task(write_task(GOOD_TASK))  # 180 training items: 5 batches of 32 per epoch
    curve = autobs.lr_range_test(task, [32], device="cpu").curves[0]
    assert len(curve.lrs) >= MIN_POINTS and curve.suggestion > 0


def test_user_state_and_rng_untouched():
    task, _ = least_squares()
    reference = torch.nn.Linear(8, 1, bias=False)
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    task.model = lambda: __import__("copy").deepcopy(reference)  # every stage gets a copy of the user's module
    rng = torch.get_rng_state()
    autobs.lr_range_test(task, [64], device="cpu")
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in reference.state_dict().items())


def test_a_task_that_learns_nothing_is_a_clear_error_not_a_suggestion():
    # Inputs all zero (a data-loading bug): no LR moves the loss, and a suggestion would be a wander of noise.
    x, y = torch.zeros(512, 8), torch.arange(512) % 2
    task = autobs.Task(model=lambda: torch.nn.Linear(8, 2, bias=False), train_data=(x, y),
                       optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr))
    with pytest.raises(autobs.AutobsError, match="did not fall .beyond its batch noise, by 1% of its level. at any batch size"):
        autobs.lr_range_test(task, [16, 64], device="cpu")


def test_recommend_starts_from_the_optimizers_default_lr_when_no_sweep_reads_one(tmp_path):
    # The range test stage of `autobs recommend` does not stop there: the sweeps may be too short for a model to
    # leave its starting plateau, and the search's trials are longer. It keeps the sweeps and stands the
    # optimizer's default LR in for their suggestions, at every size tested.
    from autobs.lr_range import optimizer_default_lr
    from autobs.pipeline import range_stage

    x, y = torch.zeros(512, 8), torch.arange(512) % 2
    task = autobs.Task(model=lambda: torch.nn.Linear(8, 2, bias=False), train_data=(x, y),
                       optimizer=lambda params, lr: torch.optim.RMSprop(params, lr=lr))
    result = range_stage(task, tmp_path, max_batch_size=None, batch_sizes=[16, 64], device="cpu", progress=False)
    assert result["fallback_lr"] == 0.01 and result["suggestions"] == {"16": 0.01, "64": 0.01}
    assert [c["readable"] for c in result["curves"]] == [False, False]
    # Each says why; neither that its loss "did not blow up" below the sweep's top LR: a loss that never fell has no
    # minimum to lie above it.
    for c in result["curves"]:
        assert [n for n in c["notes"] if "did not fall beyond its batch noise" in n]
        assert not [n for n in c["notes"] if "blow up" in n]
    sgd = autobs.Task(model=lambda: torch.nn.Linear(8, 2), train_data=(x, y),
                      optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9))
    assert optimizer_default_lr(sgd) == 0.001


def test_descent_is_told_from_batch_noise():
    g = torch.Generator().manual_seed(0)
    noise = (0.05 * torch.randn(100, generator=g)).tolist()
    flat = [1.0 + e for e in noise]
    falling = [1.0 + e - (0.3 * (i - 60) / 30 if i > 60 else 0.0) for i, e in enumerate(noise)]  # -0.3 by step 90
    assert descent_z(flat) < DESCENT_Z <= descent_z(falling)
    # The same descent under 10x the batch noise is no longer told apart from it.
    assert descent_z([f + 9 * e for e, f in zip(noise, falling)]) < DESCENT_Z
    # Nor is a drop of 0.1% of the loss a descent, however small the batch noise that makes it "significant".
    assert descent_fraction(falling) > DESCENT_FRACTION
    creeping = [2.3 + e / 100 - (0.002 if i > 60 else 0.0) for i, e in enumerate(noise)]
    assert descent_z(creeping) > DESCENT_Z and descent_fraction(creeping) < DESCENT_FRACTION
    assert not RangeCurve(64, [0.1], [2.3], [2.3], 0.1, (0.05, 0.2), {}, "diverged", [], descent_z(creeping),
                          descent_fraction(creeping)).readable
    # A sweep without one suggests nothing, and the result's suggestions leave it out.
    readable, unreadable = _curve(64, 0.1), _curve(16, 1e-6)
    unreadable.descent_z = 1.0
    result = LRRangeResult([unreadable, readable], math.nan, math.nan, steps=200)
    assert not unreadable.readable and result.suggestions == {64: 0.1}
    assert result.to_dict()["curves"][0]["readable"] is False


def _curve(batch_size, lr, width=2.0):
    return RangeCurve(batch_size, [lr], [1.0], [1.0], lr, (lr / width, lr * width), {}, "diverged")


def test_exponent_recovers_a_known_power_law():
    curves = [_curve(b, 0.01 * b**0.5) for b in (16, 64, 256)]
    alpha, stderr = _fit_exponent(curves)
    assert alpha == pytest.approx(0.5, abs=1e-9)
    assert 0 < stderr < 0.5
    wider = _fit_exponent([_curve(b, 0.01 * b**0.5, width=8.0) for b in (16, 64, 256)])[1]
    assert wider > stderr  # wider intervals, less certain exponent
    assert math.isnan(_fit_exponent(curves[:1])[0])


def test_cli_lr_find_json_and_run_dir(write_task, tmp_path, capsys):
    path = write_task(GOOD_TASK)
    out = tmp_path / "run"
    assert main(["lr-find", str(path), "--batch-size", "8", "--batch-size", "32", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["suggestions"]) == {"8", "32"}
    assert all(v > 0 for v in printed["suggestions"].values())
    assert math.isfinite(printed["lr_scaling_exponent"])
    saved = json.loads((out / "lr_range.json").read_text())
    assert saved["suggestions"] == printed["suggestions"] and saved["task"]["fingerprint"]


def test_noise_shaped_lr_follows_mccandlish_between_the_two_regimes():
    """lr(B) ∝ (1 + B_noise/B)^-power through the range tests' level: ∝ B^power well below B_noise, flat
    well above it, and equal to a lone suggestion at its own batch size."""
    lr = partial(noise_shaped_lr_at, {64: 0.1}, 1000.0, 1.0)
    assert lr(64) == pytest.approx(0.1)
    assert lr(8) / lr(4) == pytest.approx(2.0, rel=0.01)  # B ≪ B_noise: linear scaling
    assert lr(2**20) / lr(2**19) == pytest.approx(1.0, abs=0.001)  # B ≫ B_noise: no gain from larger B
    adam = partial(noise_shaped_lr_at, {64: 0.1}, 1000.0, 0.5)
    assert adam(8) / adam(4) == pytest.approx(2**0.5, rel=0.01)  # square-root scaling for Adam
    # Several flat suggestions (what 100-step sweeps read): the curve passes through them on average.
    flat = partial(noise_shaped_lr_at, {16: 0.5, 128: 0.5, 512: 0.5}, 60.0, 1.0)
    assert flat(16) < 0.5 < flat(512) and flat(128) / flat(16) == pytest.approx((1 + 60 / 16) / (1 + 60 / 128))
    assert math.prod(flat(b) for b in (16, 128, 512)) == pytest.approx(0.5**3)
    assert noise_power(torch.optim.SGD([torch.zeros(1)], lr=0.1)) == 1.0
    assert noise_power(torch.optim.AdamW([torch.zeros(1)], lr=0.1)) == 0.5
    assert noise_power(torch.optim.RMSprop([torch.zeros(1)], lr=0.1)) is None

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import autobs
from autobs.cli import main

from .conftest import GOOD_TASK


def test_b_simple_matches_the_exact_value_on_least_squares():
    n, d = 8192, 8
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, d, generator=g)
    y = x @ torch.randn(d, generator=g) + 0.5 * torch.randn(n, generator=g)
    task = autobs.Task(model=lambda: torch.nn.Linear(d, 1, bias=False), train_data=(x, y),
                       loss=lambda o, t: F.mse_loss(o.squeeze(-1), t),
                       optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr), val_data=(x[:64], y[:64]))
    # An LR too small to move the weights: every measurement is at the initial weights, where the exact
    # value is known from the per-example gradients of the whole training set.
    result = autobs.noise_scale(task, lr=1e-12, measurements=40, every=1, device="cpu", seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the run's seed: the same initial weights
        w = task.model().weight.detach().squeeze(0)
    per_example = 2 * (x @ w - y)[:, None] * x  # gradient of (x·w − y)² for each example
    mean = per_example.mean(0)
    exact = ((per_example - mean) ** 2).sum(1).mean() / mean.square().sum()
    assert result.b_simple == pytest.approx(exact.item(), rel=0.25)
    assert len(result.points) == 40 and result.big_batch == 16 * result.small_batch


def test_a_measurement_during_a_loss_spike_is_left_out_of_b_simple(write_task, monkeypatch):
    import autobs.noise as noise

    # Steady measurements (|G|² 0.1, tr(Σ) 4: B_simple 40), one taken during a loss spike (every gradient grows:
    # |G|² 30-fold, tr(Σ) 3-fold), and tr(Σ) rising 10% a measurement as the loss falls (no spike).
    steady = [(0.1, 4.0)] * 12 + [(3.0, 12.0)] + [(0.1, 4.0)] * 3
    rising = [(0.1, 4.0 * 1.1**i) for i in range(16)]
    task = autobs.load_task(write_task(GOOD_TASK))
    for reads, spikes in ((steady, [12]), (rising, [])):
        it = iter(reads)
        monkeypatch.setattr(noise, "_measure", lambda *args: next(it))
        result = autobs.noise_scale(task, lr=0.01, measurements=len(reads), every=1, device="cpu")
        assert [i for i, p in enumerate(result.points) if p.spike] == spikes
        if spikes:  # left out: the estimate stays at 40, where the spike in the EMAs would pull it to about 12
            assert result.b_simple == pytest.approx(40.0)
            assert "loss spike" in " ".join(result.notes)
        else:  # a steady rise is the noise scale growing, not a spike: every measurement counts
            assert result.b_simple > 40.0 * 1.1**10 and not result.notes
    assert noise.is_spike(8.1, [4.0] * noise.SPIKE_WINDOW) and not noise.is_spike(7.9, [4.0] * noise.SPIKE_WINDOW)


def test_bad_lr_is_a_config_error(write_task):
    task = autobs.load_task(write_task(GOOD_TASK))
    with pytest.raises(autobs.ConfigError, match="lr"):
        autobs.noise_scale(task, lr=0.0)


def test_cli_noise_json_and_run_dir(write_task, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["noise", str(write_task(GOOD_TASK)), "--lr", "0.05", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["b_simple"] is None or printed["b_simple"] > 0
    assert len(printed["points"]) > 0
    assert json.loads((out / "noise.json").read_text())["b_simple"] == printed["b_simple"]

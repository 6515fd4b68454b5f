from __future__ import annotations

import math

import pytest
import torch

import autobs
from autobs.training import _accumulate_gradients

from .conftest import EXAMPLES, GOOD_TASK


@pytest.fixture(scope="module")
def digits():
    return autobs.load_task(next(p for p in EXAMPLES if p.stem == "digits_mlp"))


@pytest.fixture
def small(write_task):
    return autobs.load_task(write_task(GOOD_TASK))


def _grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_accumulated_gradient_equals_the_big_batch_gradient(digits):
    model = digits.model()
    indices = torch.arange(64)
    no_autocast = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
    loss_whole = _accumulate_gradients(model, digits.loss, digits.train, [indices], torch.device("cpu"), no_autocast)
    whole = _grads(model)
    model.zero_grad()
    loss_parts = _accumulate_gradients(model, digits.loss, digits.train, indices.chunk(4), torch.device("cpu"),
                                       no_autocast)
    assert torch.allclose(_grads(model), whole, atol=1e-6, rtol=1e-5)
    assert loss_parts.item() == pytest.approx(loss_whole.item(), rel=1e-6)


def test_accumulation_gives_the_same_training_run(small):
    # SGD, because Adam's update hardly depends on the gradient's scale and would hide a wrong one.
    sgd = autobs.Task(model=small.model, train_data=(small.train.inputs, small.train.targets),
                      optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr))
    runs = [autobs.train(sgd, autobs.TrainConfig(batch_size=32, lr=0.5, accumulation_steps=k), samples=320,
                         eval_every_samples=64) for k in (1, 4)]
    one, four = ([p.metric for p in r.curve] for r in runs)
    assert four == pytest.approx(one, rel=1e-5)


def test_seeded_run_repeats_exactly_and_seed_matters(small):
    config = autobs.TrainConfig(batch_size=16, lr=0.05, schedule="cosine", warmup_steps=3)
    a, b = (autobs.train(small, config, samples=400, seed=7) for _ in range(2))
    c = autobs.train(small, config, samples=400, seed=8)
    assert [p.metric for p in a.curve] == [p.metric for p in b.curve]
    assert [p.train_loss for p in a.curve] == [p.train_loss for p in b.curve]
    assert [p.train_loss for p in a.curve] != [p.train_loss for p in c.curve]


def test_global_rng_is_left_as_it_was(small):
    state = torch.get_rng_state()
    autobs.train(small, autobs.TrainConfig(batch_size=16, lr=0.05), samples=64)
    assert torch.equal(torch.get_rng_state(), state)


def test_huge_lr_is_reported_as_diverged_not_raised(digits):
    result = autobs.train(digits, autobs.TrainConfig(batch_size=64, lr=1e4))
    assert result.diverged and result.stop_reason == "diverged"
    assert result.steps < result.total_steps


def test_nan_loss_stops_the_run_as_diverged(small):
    calls = {"n": 0}

    def nan_after_five(outputs, targets):  # training steps only: validation (no grad) stays finite
        calls["n"] += torch.is_grad_enabled()
        loss = torch.nn.functional.cross_entropy(outputs, targets)
        return loss * float("nan") if calls["n"] > 5 and torch.is_grad_enabled() else loss

    task = autobs.Task(model=small.model, train_data=(small.train.inputs, small.train.targets), loss=nan_after_five)
    result = autobs.train(task, autobs.TrainConfig(batch_size=16, lr=0.05), samples=1600)
    assert result.diverged and result.steps < 10
    assert all(math.isfinite(p.metric) for p in result.curve)


def test_a_one_step_loss_spike_is_trained_through_and_a_loss_that_stays_high_is_diverged(small):
    def spiking(spike_steps):
        calls = {"n": 0}

        def loss(outputs, targets):  # training steps only: validation (no grad) is left alone
            calls["n"] += torch.is_grad_enabled()
            value = torch.nn.functional.cross_entropy(outputs, targets)
            return value * 50 if torch.is_grad_enabled() and calls["n"] in spike_steps else value

        return autobs.Task(model=small.model, train_data=(small.train.inputs, small.train.targets), loss=loss)

    config = autobs.TrainConfig(batch_size=16, lr=0.05)
    # Adam at a high LR overshoots like this for a step at the start (training.DIVERGENCE_WINDOW says where).
    spike = autobs.train(spiking({3}), config, samples=1600)
    assert not spike.diverged and spike.steps == spike.total_steps == 100
    stays = autobs.train(spiking(set(range(5, 10**6))), config, samples=1600)
    assert stays.diverged and stays.stop_reason == "diverged" and 5 < stays.steps <= 5 + 10


def test_budget_in_samples_drops_incomplete_batches_and_evaluates_on_schedule(small):
    sizes = []

    def recording_loss(outputs, targets):
        sizes.append(len(targets))
        return torch.nn.functional.cross_entropy(outputs, targets)

    task = autobs.Task(model=small.model, train_data=(small.train.inputs, small.train.targets), loss=recording_loss,
                       metric="accuracy")  # accuracy: evaluation does not call the loss
    result = autobs.train(task, autobs.TrainConfig(batch_size=100, lr=0.05), samples=500, eval_every_samples=200)
    # 162 training items: one batch of 100 per epoch, the remaining 62 dropped; 5 steps of 100 samples.
    assert result.steps == 5 and result.samples == 500
    assert set(sizes[1:]) == {100}  # sizes[0] is the validation check at load time
    assert [p.samples for p in result.curve] == [0, 200, 400, 500]
    assert [p.step for p in result.curve] == [0, 2, 4, 5]
    seconds = [p.seconds for p in result.curve]
    assert seconds == sorted(seconds) and result.step_time_s > 0


def test_default_evaluation_resolves_an_early_crossing_as_well_as_a_late_one(small):
    from autobs.training import DEFAULT_EVAL_POINTS, EVAL_GROWTH

    samples = 16 * 1000
    result = autobs.train(small, autobs.TrainConfig(batch_size=16, lr=0.05), samples=samples)
    points = [p.samples for p in result.curve]
    every = samples // DEFAULT_EVAL_POINTS
    assert set(range(every, samples + 1, every)) <= set(points)  # the plain grid is all there ...
    early = [s for s in points if 0 < s <= 4 * every]
    assert early[0] <= every // 4  # ... with points well before its first
    # Each point at most EVAL_GROWTH times the samples of the last (plus the batch it lands in): a target
    # first reached at any of them is bracketed to within 25% of its samples, where the plain grid's first
    # point (1/20 of the run) brackets any crossing before it only by [0, 1/20].
    assert all(b <= a * EVAL_GROWTH + 16 for a, b in zip(early, early[1:]))
    # An explicit interval is that grid alone (the oracle's runs and earlier results stay comparable).
    plain = autobs.train(small, autobs.TrainConfig(batch_size=16, lr=0.05), samples=samples, eval_every_samples=every)
    assert [p.samples for p in plain.curve] == [0, *range(every, samples + 1, every)]


def test_early_evaluation_points_are_left_out_where_validation_costs_more_than_they_are_worth(small):
    from autobs.training import DEFAULT_EVAL_POINTS

    # A run of 10 validation sets' worth of samples: an early point (one pass over the validation set,
    # about a third of that many training samples) costs 3% of the run, so the 5% cap affords one, too few
    # for a grid: the run keeps the plain grid, as char_lm's short runs over a large validation set do.
    samples = 10 * len(small.val)  # batch 1, so that early points would have steps to land on
    result = autobs.train(small, autobs.TrainConfig(batch_size=1, lr=0.05), samples=samples)
    every = samples // DEFAULT_EVAL_POINTS
    first_plain = next(p.samples for p in result.curve if p.samples >= every)
    assert [p.samples for p in result.curve if 0 < p.samples < first_plain] == []


def test_time_budget_and_callback_stop_the_run(small):
    config = autobs.TrainConfig(batch_size=16, lr=0.05)
    timed = autobs.train(small, config, samples=10**7, max_seconds=0.3)
    assert timed.stop_reason == "time_budget" and timed.steps < timed.total_steps
    assert timed.curve[-1].step == timed.steps  # the last point is where it stopped
    stopped = autobs.train(small, config, samples=10**5, eval_every_samples=32, callback=lambda p: p.step >= 4)
    assert stopped.stop_reason == "callback" and stopped.steps == 4


def test_bad_settings_are_config_errors(small):
    with pytest.raises(autobs.ConfigError, match="larger than the training set"):
        autobs.train(small, autobs.TrainConfig(batch_size=1000, lr=0.1))
    with pytest.raises(autobs.ConfigError, match="divides batch_size"):
        autobs.TrainConfig(batch_size=30, lr=0.1, accumulation_steps=4)
    with pytest.raises(autobs.ConfigError, match="lr must be"):
        autobs.TrainConfig(batch_size=30, lr=float("nan"))
    with pytest.raises(autobs.ConfigError, match="unknown schedule"):
        autobs.TrainConfig(batch_size=30, lr=0.1, schedule="exp")
    with pytest.raises(autobs.ConfigError, match="unknown device"):
        autobs.train(small, autobs.TrainConfig(batch_size=16, lr=0.1), device="tpu9")


def test_result_serialises_to_json(small):
    import json

    result = autobs.train(small, autobs.TrainConfig(batch_size=16, lr=0.05, schedule="wsd"), samples=160)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["config"]["schedule"] == "wsd" and data["samples"] == 160
    assert data["curve"][0] == {"step": 0, "samples": 0, "seconds": 0.0, "metric": result.curve[0].metric,
                                "train_loss": None}


def test_digits_example_reaches_95_percent(digits):
    result = autobs.train(digits, autobs.TrainConfig(batch_size=32, lr=0.2, schedule="cosine"))
    assert result.stop_reason == "completed"
    assert result.final_metric >= 0.95

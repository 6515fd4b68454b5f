"""Peer runners (benchmarks/peers.py). Lightning and Ray peers need the `bench` extra and are slow."""

from __future__ import annotations

import pytest
import torch

import autobs
from benchmarks.peers import linear_scaling_recommendation

from .conftest import GOOD_TASK


def test_linear_scaling_rule_scales_the_default_lr_to_the_largest_batch(write_task):
    adam = autobs.load_task(write_task(GOOD_TASK))  # default optimizer: AdamW
    rec = linear_scaling_recommendation(adam, max_batch_size=128)
    assert (rec.batch_size, rec.lr, rec.schedule) == (128, pytest.approx(1e-3 * 128 / 32), "constant")
    assert rec.warmup_steps == round(0.05 * round(10 * 180 / 128))
    sgd = autobs.Task(model=adam.model, train_data=(adam.train.inputs, adam.train.targets),
                      optimizer=lambda p, lr: torch.optim.SGD(p, lr=lr))
    assert linear_scaling_recommendation(sgd, max_batch_size=64).lr == pytest.approx(0.01 * 64 / 32)
    assert linear_scaling_recommendation(sgd, max_batch_size=10_000).batch_size == len(sgd.train)


@pytest.mark.slow
def test_lightning_peer_gives_a_trainable_config(write_task):
    pytest.importorskip("lightning", reason="install the bench extra: pip install -e '.[bench]'")
    from benchmarks.peers import lightning_recommendation

    # 30 epochs: at one batch per epoch, lr_find gets 30 points (it needs more than 11 for a suggestion).
    task = autobs.load_task(write_task(GOOD_TASK + "epochs = 30\n"))
    rec = lightning_recommendation(task)
    assert rec.batch_size == len(task.train)  # no OOM on CPU: doubling stops at the dataset length
    assert rec.lr > 0 and rec.tuner_seconds > 0
    assert not autobs.train(task, rec.config()).diverged


@pytest.mark.slow
def test_ray_tpe_peer_runs_trials_and_returns_a_config_from_its_space(write_task):
    pytest.importorskip("ray.tune")
    from benchmarks.peers import ray_tpe_recommendation

    task = autobs.load_task(write_task(GOOD_TASK + "epochs = 2\n"))
    rec = ray_tpe_recommendation(task, max_batch_size=64, budget_s=25, cpus=2)
    assert rec.batch_size in (8, 16, 32, 64) and 1e-5 <= rec.lr <= 3.0
    assert rec.schedule in autobs.SCHEDULES and rec.details["trials"] >= 2
    # Proposes trials until its budget, then stops the running ones: it ends (a loose bound, not a timing goal).
    assert rec.tuner_seconds < 2 * 25

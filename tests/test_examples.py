"""Contract test run over every example task file."""

from __future__ import annotations

import pytest
import torch

import autobs

from .conftest import EXAMPLES


def test_there_are_examples():
    assert {p.stem for p in EXAMPLES} >= {"digits_mlp", "char_lm"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_loads_and_learns(path):
    task = autobs.load_task(path)
    summary = task.describe()
    assert summary["train_size"] > 0 and summary["val_size"] > 0 and summary["parameters"] > 0
    # A conventional starting LR for the optimizer family (not tuned to any example): SGD 0.1, Adam-type 1e-3.
    optimizer = task.optimizer(task.model().parameters(), 1.0)
    lr = 0.1 if isinstance(optimizer, torch.optim.SGD) else 1e-3
    batch = 32
    result = autobs.train(task, autobs.TrainConfig(batch_size=batch, lr=lr), samples=60 * batch)
    first, last = result.curve[0].metric, result.curve[-1].metric
    assert not result.diverged
    assert (last > first) if task.higher_is_better else (last < first)

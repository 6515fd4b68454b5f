"""Replicates: the search's leading trials rerun with fresh seeds, so the S(B) fit is not fitted to the
luckiest trial at each batch size."""

from __future__ import annotations

import numpy as np

import autobs
from autobs.replicate import SEED_BASE, SEEDS, replicate_best
from autobs.scaling import CONFIRM_EVALS, StepTimeModel, best_per_batch, fit_scaling, steps_to_target

from .conftest import ROOT
from .test_scaling import _trials


def _curve(crossing: float, length: int = 400):
    """Accuracy rising linearly from 0.1, through 0.9 at ``crossing``, evaluated every 10 steps."""
    return [{"steps": s, "samples": 32 * s, "metric": min(0.99, 0.1 + 0.8 * s / crossing)} for s in range(0, length, 10)]


def test_a_lucky_trial_is_judged_by_its_replicates_not_its_own_read():
    # Batch 32: trial 0 read 60 steps (lucky), trial 1 read 100. Their reruns: 150 and 200 for trial 0,
    # 110 and 130 for trial 1. Batch 256 has no replicates and keeps its read.
    trials = _trials(np.array([32, 32, 256]), [60, 100, 40])
    replicates = [{"trial": 0, "curve": _curve(150)}, {"trial": 0, "curve": _curve(200)},
                  {"trial": 1, "curve": _curve(110)}, {"trial": 1, "curve": _curve(130)}]
    rows = {r["config"]["batch_size"]: r for r in best_per_batch(trials, 0.9, True, replicates)}
    assert rows[32]["number"] == 1 and rows[32]["steps_to_target"] == 120  # the median of its reruns
    assert rows[32]["search_steps_to_target"] == 100 and rows[32]["replicates"] == 2
    assert rows[256]["steps_to_target"] == 40 and rows[256]["replicates"] == 0

    result = fit_scaling(trials, metric="accuracy", higher_is_better=True, target=0.9, planned_samples=10**5,
                         step_time=StepTimeModel.from_throughput([(32, 3200), (256, 12800)]), replicates=replicates)
    assert [r["steps_to_target"] for r in result.per_batch] == [120, 40]
    assert any("256 was not re-measured" in n for n in result.notes)  # the fit says where it is optimistic


def test_monotone_reading_ignores_a_lucky_evaluation_before_the_curve_gets_there():
    # One evaluation at step 20 reads 0.91 by chance; the curve passes 0.9 to stay at step 60.
    curve = [{"steps": s, "metric": m} for s, m in [(0, 0.1), (10, 0.5), (20, 0.91), (30, 0.85), (40, 0.87),
                                                     (50, 0.89), (60, 0.93), (70, 0.95)]]
    assert steps_to_target(curve, 0.9, True) == 20
    assert 50 < steps_to_target(curve, 0.9, True, monotone=True) <= 60


def test_replicates_rerun_each_sizes_leaders_with_fresh_seeds_and_stop_once_confirmed():
    task = autobs.load_task(ROOT / "examples/digits_mlp.py")
    trial_samples = 20 * 32 * 25  # 500 steps at batch 32, 125 at batch 128
    trials = _trials(np.array([32, 32, 32, 128]), [40, 80, 120, 30])
    for t in trials:  # configs that train digits to 0.8 accuracy within a few dozen steps
        t["config"].update(lr=0.3, schedule="constant", warmup_fraction=0.0)
    saved: list[dict] = []
    runs = replicate_best(task, trials, 0.8, True, trial_samples=trial_samples, budget_s=300, device="cpu",
                          on_run=saved.append, progress=False)
    # The two leaders at batch 32 (trials 0 and 1, not 2) and the one trial at 128, each with SEEDS seeds.
    assert sorted((r["trial"], r["seed"]) for r in runs) == sorted(
        (n, SEED_BASE + i) for n in (0, 1, 3) for i in range(SEEDS))
    assert saved == runs  # each run handed over as it ended, for the pipeline to save
    for r in runs:
        reached = [p["metric"] >= 0.8 for p in r["curve"]]
        assert all(reached[-CONFIRM_EVALS:]) and len(r["curve"]) < 21  # stopped once confirmed, not run to the end
    # A resumed stage does not rerun what is done; a spent budget starts nothing.
    assert replicate_best(task, trials, 0.8, True, trial_samples=trial_samples, budget_s=300, device="cpu",
                          done=runs, progress=False) == runs
    assert replicate_best(task, trials, 0.8, True, trial_samples=trial_samples, budget_s=0, device="cpu",
                          progress=False) == []
    # Nor does a run that its trial says would not end in the time left (it would be cut and wasted).
    slow = [{**trials[3], "curve": [{**point, "seconds": 100.0 * point["steps"]} for point in trials[3]["curve"]]}]
    assert replicate_best(task, slow, 0.8, True, trial_samples=trial_samples, budget_s=60, device="cpu",
                          progress=False) == []  # started, it would have ended in about a second

"""Replicates: the search's leading trials rerun with fresh seeds, so the S(B) fit is not fitted to the
luckiest trial at each batch size."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from autobs.replicate import SEED_BASE, SEEDS, next_rerun, rerun_scatter, split_reruns
from autobs.scaling import StepTimeModel, best_per_batch, fit_scaling, steps_to_target

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

    # A former leader (read 110, now third at 32) with a lucky rerun median of 50 is no leader: it is left out.
    former = {**_trials(np.array([32]), [110])[0], "number": 3}
    rows = {r["config"]["batch_size"]: r for r in best_per_batch(trials + [former], 0.9, True,
                                                                 replicates + [{"trial": 3, "curve": _curve(50)}])}
    assert rows[32]["number"] == 1 and rows[32]["steps_to_target"] == 120

    result = fit_scaling(trials, metric="accuracy", higher_is_better=True, target=0.9, planned_samples=10**5,
                         step_time=StepTimeModel.from_throughput([(32, 3200), (256, 12800)]), replicates=replicates)
    assert [r["steps_to_target"] for r in result.per_batch] == [120, 40]
    # 256 ran once: its read is one untuned trial's (the note says so), not an optimistic best of several
    assert any("single trial at batch size 256" in n for n in result.notes)
    assert not any("256 was not re-measured" in n for n in result.notes)
    twice = trials + [{**_trials(np.array([256]), [45])[0], "number": 10}]
    result = fit_scaling(twice, metric="accuracy", higher_is_better=True, target=0.9, planned_samples=10**5,
                         step_time=StepTimeModel.from_throughput([(32, 3200), (256, 12800)]), replicates=replicates)
    assert any("256 was not re-measured" in n for n in result.notes)  # the best of two reads: optimistic, said so


def test_monotone_reading_ignores_a_lucky_evaluation_before_the_curve_gets_there():
    # One evaluation at step 20 reads 0.91 by chance; the curve passes 0.9 to stay at step 60.
    curve = [{"steps": s, "metric": m} for s, m in [(0, 0.1), (10, 0.5), (20, 0.91), (30, 0.85), (40, 0.87),
                                                     (50, 0.89), (60, 0.93), (70, 0.95)]]
    assert steps_to_target(curve, 0.9, True) == 20
    assert 50 < steps_to_target(curve, 0.9, True, monotone=True) <= 60


def test_reruns_go_to_each_sizes_leaders_round_by_round_and_only_while_they_can_end():
    records = _trials(np.array([32, 32, 32, 128]), [40, 80, 120, 30])
    for t in records:  # a second of training per 10 steps; scored by the search as it ended
        t["curve"] = [{**p, "seconds": p["steps"] / 10} for p in t["curve"]]
        t.update(objective=math.log(t["config"]["batch_size"] * steps_to_target(t["curve"], 0.9, True, monotone=True)),
                 reached_target=True)
    # A rerun of trial 2 that happened to read 10 steps: a rerun is a measurement of its trial, never a leader.
    records.append({**_trials(np.array([32]), [10])[0], "number": 4, "rerun_of": 2, "objective": 0.0,
                    "reached_target": True})
    # Nor is a trial that missed the target.
    records.append({**_trials(np.array([128]), [10])[0], "number": 5, "objective": 99.0, "reached_target": False})
    issued: Counter = Counter()
    order = []
    while (leader := next_rerun(records, 0.9, True, issued=issued, seconds_left=60)) is not None:
        order.append(leader["number"])
        issued[leader["number"]] += 1
    # Each size's top leader once (32: trial 0, 128: trial 3) before any twice; the top leaders up to SEEDS
    # reruns before the second leader at 32.
    assert order[:2] == [0, 3] and order[-SEEDS:] == [1] * SEEDS
    assert Counter(order) == {0: SEEDS, 3: SEEDS, 1: SEEDS}
    assert not {2, 4, 5} & set(order)  # the third trial at 32 is no leader (TOP_K = 2)
    # Trial 3 confirms its crossing (30 steps + CONFIRM_EVALS evaluations) at about 3 s of training: with less
    # time left, its rerun would be cut before it measured anything, so none is started.
    assert next_rerun(records[3:4], 0.9, True, issued=Counter(), seconds_left=1) is None
    assert next_rerun(records[3:4], 0.9, True, issued=Counter(), seconds_left=10)["number"] == 3


def test_reruns_that_measured_nothing_are_left_out_and_one_cut_after_its_crossing_counts():
    records = _trials(np.array([32, 32, 32, 32, 32]), [40, 50, 60, 70, 200])
    records[1].update(rerun_of=0, seed=SEED_BASE + 1)
    records[2].update(rerun_of=0, seed=SEED_BASE + 2, status="failed")
    records[3].update(rerun_of=0, seed=SEED_BASE + 3, status="diverged")  # a read that never reaches the target
    records[4].update(rerun_of=0, seed=SEED_BASE + 4, status="stopped")  # cut by the time budget
    own, runs = split_reruns(records)
    assert [t["number"] for t in own] == [0]
    assert [(r["trial"], r["seed"], r["cut"]) for r in runs] == [(0, SEED_BASE + 1, False), (0, SEED_BASE + 3, False),
                                                                (0, SEED_BASE + 4, True)]
    assert runs[0]["curve"] is records[1]["curve"] and runs[0]["batch_size"] == 32

    # Batch 32's leader read 40 steps; its reruns 50 and, cut by the budget, 200 (the slow read the budget cuts).
    # Left out, the cut one would leave the size at the fast read alone.
    leader, ended, slow = _trials(np.array([32, 32, 32]), [40, 50, 200])
    slow["curve"] = [p for p in slow["curve"] if p["steps"] <= 220]  # cut just past its crossing
    runs = split_reruns([leader, {**ended, "rerun_of": 0}, {**slow, "rerun_of": 0, "status": "stopped"}])[1]
    row = best_per_batch([leader], 0.9, True, runs)[0]
    assert row["replicates"] == 2 and row["steps_to_target"] == pytest.approx(125, rel=0.02)
    # Cut before its crossing, it measured nothing: the size keeps the reads that did.
    slow["curve"] = [p for p in slow["curve"] if p["steps"] <= 150]
    runs = split_reruns([leader, {**ended, "rerun_of": 0}, {**slow, "rerun_of": 0, "status": "stopped"}])[1]
    row = best_per_batch([leader], 0.9, True, runs)[0]
    assert row["replicates"] == 1 and row["steps_to_target"] == pytest.approx(50, rel=0.02)


def test_later_reruns_go_where_reads_scatter_most_per_second():
    # Batch 16's leader (trial 0) takes 3x the seconds of batch 256's (trial 1), but its reruns so far read
    # 100 and 200 steps where 256's read 30 and 33: a third read at 16 narrows its estimate far more.
    records = _trials(np.array([16, 256]), [150, 30])
    for t in records:
        t["curve"] = [{**p, "seconds": p["steps"] / (5 if t["config"]["batch_size"] == 16 else 3)} for p in t["curve"]]
        t.update(objective=math.log(t["config"]["batch_size"] * 150 if t["number"] == 0 else 256 * 30),
                 reached_target=True)
    for number, (trial, steps) in enumerate([(0, 100), (0, 200), (1, 30), (1, 33)], start=2):
        b = records[trial]["config"]["batch_size"]
        records.append({**_trials(np.array([b]), [steps])[0], "number": number, "rerun_of": trial,
                        "objective": math.log(b * steps), "reached_target": True})
    scatter = rerun_scatter(records)
    assert scatter[16] == pytest.approx(math.log(2) / math.sqrt(2)) and scatter[256] == pytest.approx(math.log(1.1) / math.sqrt(2))
    issued = Counter({0: 2, 1: 2})
    order = []
    while (leader := next_rerun(records, 0.9, True, issued=issued, seconds_left=600)) is not None:
        order.append(leader["number"])
        issued[leader["number"]] += 1
    assert order == [0] * (SEEDS - 2) + [1] * (SEEDS - 2)  # 16 first, to its cap; then 256


def test_reruns_that_read_the_same_steps_do_not_stop_the_search():
    # Two reruns of batch 256's leader crossed at the same evaluation: their scatter estimate is 0. Before the
    # floor (replicate.READ_RESOLUTION) the next rerun's allocation divided by it and the search crashed.
    records = _trials(np.array([16, 256]), [150, 30])
    for t in records:
        t.update(objective=math.log(t["config"]["batch_size"] * (150 if t["number"] == 0 else 30)), reached_target=True)
    for number, (trial, steps) in enumerate([(0, 140), (0, 170), (1, 30), (1, 30)], start=2):
        b = records[trial]["config"]["batch_size"]
        records.append({**_trials(np.array([b]), [steps])[0], "number": number, "rerun_of": trial,
                        "objective": math.log(b * steps), "reached_target": True})
    assert rerun_scatter(records)[256] > 0
    leader = next_rerun(records, 0.9, True, issued=Counter({0: 2, 1: 2}), seconds_left=600)
    assert leader is not None and leader["number"] in (0, 1)


def test_reruns_after_the_first_go_to_the_leaders_that_can_be_the_fastest():
    # After one rerun each: batch 16 takes 0.19 s to the target, 64 0.22 s (a near tie that decides the answer),
    # 256 0.55 s (nearly 3x slower, whatever its next reads). Its reruns are the cheapest, but they would not
    # change the recommendation: the next ones go to 16 and 64 until their estimates are sure.
    step_time = {16: 0.001, 64: 0.003, 256: 0.010}
    records = []
    for number, (b, steps, rerun_of) in enumerate([(16, 200, None), (64, 70, None), (256, 60, None),
                                                    (16, 190, 0), (64, 75, 1), (256, 55, 2)]):
        t = _trials(np.array([b]), [steps])[0]
        t["curve"] = [{**p, "seconds": p["steps"] * step_time[b]} for p in t["curve"]]
        t.update(number=number, rerun_of=rerun_of, step_time_s=step_time[b], objective=math.log(b * steps),
                 reached_target=True)
        records.append(t)
    issued = Counter({0: 1, 1: 1, 2: 1})
    order = []
    for _ in range(4):
        leader = next_rerun(records, 0.9, True, issued=issued, seconds_left=60)
        order.append(leader["config"]["batch_size"])
        issued[leader["number"]] += 1
    assert sorted(order) == [16, 16, 64, 64]


def test_a_sizes_leaders_are_ranked_on_every_read_and_its_value_is_the_reruns_median():
    # Batch 128: trial 0 (lr 0.011) read 74 steps in the search and 170 in its one rerun; trial 1 (lr 0.005) read 116,
    # then 131 and 137. By reruns alone trial 1 would lead (134 < 170) on trial 0's one unlucky rerun; on every
    # read trial 0 does (122 < 131). The size's steps are still its reruns' (its own read was picked for being low).
    trials = _trials(np.array([128, 128]), [74, 116])
    trials[0]["config"]["lr"], trials[1]["config"]["lr"] = 0.011, 0.005
    replicates = [{"trial": 0, "curve": _curve(170)}, {"trial": 1, "curve": _curve(131)}, {"trial": 1, "curve": _curve(137)}]
    row = best_per_batch(trials, 0.9, True, replicates)[0]
    assert row["config"]["lr"] == 0.011 and row["steps_to_target"] == pytest.approx(170, rel=0.02)
    assert row["search_steps_to_target"] == pytest.approx(74, rel=0.02)

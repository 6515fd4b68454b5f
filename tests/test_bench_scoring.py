"""The benchmark scoring module (benchmarks/scoring.py) on synthetic grids with known answers."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.oracle import lr_of, read_runs
from benchmarks.scoring import RunRecord, grid_core_seconds, regret, summarize, tuning_cost

S_MIN, B_NOISE = 80.0, 256.0
BATCH_SIZES = [16, 32, 64, 128, 256, 512, 1024]
STEP_TIME = {b: 0.001 * (1 + b / 128) for b in BATCH_SIZES}  # per-step cost grows with B


def curve_reaching(steps_needed: float, total: int = 4000) -> tuple:
    """Accuracy rising linearly to 0.9 at exactly `steps_needed`, evaluated every step near it."""
    points = []
    for step in sorted({0, *range(0, total, 7), math.floor(steps_needed) if math.isfinite(steps_needed) else 0}):
        acc = 0.9 * step / steps_needed if math.isfinite(steps_needed) else 0.5 * step / total
        points.append({"step": step, "samples": 0, "seconds": 0.0, "metric": min(acc, 0.95), "train_loss": None})
    return tuple(points)


def synthetic_grid():
    """At each B the LR 0.1 reaches the target in S(B) steps; 0.03 needs 1.5x; 0.3 never (diverges)."""
    records = []
    for b in BATCH_SIZES:
        s = math.floor(S_MIN * (1 + B_NOISE / b))
        for lr, steps, diverged in ((0.03, 1.5 * s, False), (0.1, s, False), (0.3, math.inf, True)):
            for seed in (0, 1):
                records.append(RunRecord(b, lr, "constant", seed, curve_reaching(steps), 4000, diverged))
    return records


def test_summary_finds_best_lr_per_batch_size_and_b_noise():
    summary = summarize(synthetic_grid(), STEP_TIME, target=0.9, higher_is_better=True)
    assert [r.lr for r in summary.per_batch] == [0.1] * len(BATCH_SIZES)
    assert summary.fit.b_noise == pytest.approx(B_NOISE, rel=0.02)
    assert summary.fit.s_min == pytest.approx(S_MIN, rel=0.02)
    # Time-to-target: S(B)·t(B) = S_min(1 + B_noise/B)·0.001(1 + B/128), least at B = sqrt(128·256) ≈ 181.
    assert summary.best.batch_size in (128, 256)
    assert summary.regret(summary.best.time_to_target_s) == 1.0
    assert not any(summary.lr_on_edge(b) for b in BATCH_SIZES)


def test_regret_of_worse_and_unreached_configs():
    summary = summarize(synthetic_grid(), STEP_TIME, target=0.9, higher_is_better=True)
    slow = next(c for c in summary.configs if c.batch_size == 16 and c.lr == 0.03)
    assert summary.regret(slow.time_to_target_s) > 1.5
    never = next(c for c in summary.configs if c.lr == 0.3)
    assert summary.regret(never.time_to_target_s) == math.inf
    assert regret(2.0, 1.0) == 2.0 and tuning_cost(30.0, 300.0) == 0.1
    assert summary.grid_seconds == pytest.approx(sum(4000 * STEP_TIME[b] * 6 for b in BATCH_SIZES))


def test_the_grids_cost_is_its_runs_core_seconds_as_they_ran_evaluations_included():
    # Two runs that trained 30 s and 50 s, each holding 2 threads: 160 core-seconds of training, the unit a
    # tuner's wall time x cores is in. Evaluation time is not in a curve's seconds: a run that records its
    # whole time (wall_s) counts that; one that does not is scaled by its batch size's measured whole/training.
    def run(seconds, wall_s=None):
        curve = ({"step": 0, "samples": 0, "seconds": 0.0, "metric": 0.1, "train_loss": None},
                 {"step": 9, "samples": 90, "seconds": seconds, "metric": 0.9, "train_loss": 0.3})
        return RunRecord(16, 0.1, "constant", 0, curve, 9, False, wall_s)

    assert grid_core_seconds([run(30.0), run(50.0)], threads_per_run=2) == 160.0
    assert tuning_cost(16.0, grid_core_seconds([run(30.0), run(50.0)], threads_per_run=1)) == 0.2
    assert grid_core_seconds([run(30.0, wall_s=40.0), run(50.0)], threads_per_run=1) == 90.0
    assert grid_core_seconds([run(30.0), run(50.0)], 1, wall_per_train={16: 1.5}) == 120.0
    assert grid_core_seconds([run(30.0, wall_s=40.0)], 1, evaluations=False) == 30.0


def test_the_stored_grids_cost_counts_their_evaluations():
    from benchmarks.scoring import load_oracle

    oracle = load_oracle("digits_mlp")  # reports/oracle/digits_mlp with its measured eval_cost.json
    assert oracle["grid_core_seconds"] > oracle["grid_training_core_seconds"] > 0


def test_a_seed_that_misses_the_target_makes_the_config_miss_it():
    records = [RunRecord(64, 0.1, "constant", 0, curve_reaching(100), 4000, False),
               RunRecord(64, 0.1, "constant", 1, curve_reaching(math.inf), 4000, False),
               RunRecord(32, 0.1, "constant", 0, curve_reaching(300), 4000, False),
               RunRecord(32, 0.1, "constant", 1, curve_reaching(300), 4000, False)]
    summary = summarize(records, STEP_TIME, target=0.9, higher_is_better=True)
    assert math.isinf(next(c for c in summary.configs if c.batch_size == 64).steps_to_target)
    assert summary.best.batch_size == 32 and summary.fit is None


def test_best_lr_on_the_grid_edge_is_flagged():
    records = [r for r in synthetic_grid() if r.lr != 0.3]  # 0.1 is now the largest LR tried
    summary = summarize(records, STEP_TIME, target=0.9, higher_is_better=True)
    assert all(summary.lr_on_edge(b) for b in BATCH_SIZES)


def test_oracle_resume_reads_finished_runs_and_skips_a_cut_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"batch_size": 16}) + "\n" + '{"batch_size": 3')
    assert read_runs(path) == [{"batch_size": 16}]
    assert [lr_of(k, 2) for k in (-4, -3, 0)] == [0.01, 0.0316228, 1.0]


def _tiny_oracle(task) -> dict:
    """A grid of three LRs at batch 32 on the tests' small task, the middle one best (made-up steps)."""
    configs = [{"batch_size": 32, "lr": lr, "schedule": "constant", "seeds": 2, "steps_to_target": steps,
                "time_to_target_s": steps * 0.01, "best_metric": best, "final_metric": best}
               for lr, steps, best in ((0.1, 60.0, 0.85), (0.316228, 40.0, 0.9), (1.0, math.inf, 0.5))]
    return {"target": 0.8, "higher_is_better": True, "configs": configs,
            "per_batch": [{"batch_size": 32, "lr": 0.316228, "schedule": "constant", "steps_to_target": 40.0}],
            "settings": {"samples": 20 * len(task.train), "evals": 10}}


def test_configs_are_scored_with_the_grids_run_length_and_evaluation_interval(write_task):
    import autobs
    from benchmarks.scoring import grid_run
    from tests.conftest import GOOD_TASK

    task = autobs.load_task(write_task(GOOD_TASK))
    oracle = _tiny_oracle(task)
    run = grid_run(task, oracle, {"batch_size": 32, "lr": 0.3, "schedule": "constant"}, seed=0)
    samples = [p["samples"] for p in run.curve]
    interval = oracle["settings"]["samples"] // oracle["settings"]["evals"]
    assert samples[-1] <= oracle["settings"]["samples"]
    assert all(b - a <= interval + 32 for a, b in zip(samples, samples[1:]))  # at most an interval (and a batch)
    assert len(samples) >= oracle["settings"]["evals"]
    assert run.wall_s > run.curve[-1]["seconds"]  # its whole time, evaluations included (grid_core_seconds)


def test_refine_lr_trains_the_half_way_lrs_once_and_reports_the_refined_best(write_task, tmp_path, monkeypatch):
    import autobs
    from benchmarks import scoring
    from tests.conftest import GOOD_TASK

    task = autobs.load_task(write_task(GOOD_TASK))
    oracle = _tiny_oracle(task)
    (tmp_path / task.name).mkdir()
    monkeypatch.setattr(scoring, "ORACLE_DIR", tmp_path)
    best, fewest, steps = scoring.refine_lr(task, oracle, 32)
    assert sorted(steps) == [0.1, 0.177828, 0.316228, 0.562341, 1.0]  # the grid's and the two half-way LRs
    assert fewest == min(steps.values())
    tied = [lr for lr, s in steps.items() if s == fewest]
    assert min(tied) <= best <= max(tied)  # the fastest LR (among ties, one between them)
    lines = (tmp_path / task.name / "refine.jsonl").read_text().splitlines()
    assert len(lines) == 2 * len(scoring.SEEDS)

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(scoring, "grid_run", no_training)
    assert scoring.refine_lr(task, oracle, 32) == (best, fewest, steps)


def test_fresh_seed_regret_retrains_both_configs_on_seeds_the_grid_never_ran(write_task, monkeypatch):
    import autobs
    from benchmarks import scoring
    from tests.conftest import GOOD_TASK

    task = autobs.load_task(write_task(GOOD_TASK))
    oracle = _tiny_oracle(task) | {"target": 0.5, "higher_is_better": False, "best": {"batch_size": 32, "lr": 0.316228, "schedule": "constant",
                                            "steps_to_target": 40.0}, "step_time_s": {"32": 0.01, "64": 0.015}}
    seen = []
    real = scoring.grid_run
    monkeypatch.setattr(scoring, "grid_run", lambda task, oracle, config, seed: seen.append(seed) or real(task, oracle, config, seed))
    best_steps = scoring.fresh_oracle_best_steps(task, oracle)
    assert seen == list(scoring.FRESH_SEEDS) and not set(seen) & set(scoring.SEEDS)
    # The oracle's best against itself on the same fresh seeds: regret exactly 1, whatever its grid read.
    steps, reg = scoring.score_fresh(task, {"batch_size": 32, "lr": 0.316228, "schedule": "constant"}, oracle, best_steps)
    assert (steps, reg) == (best_steps, 1.0)
    # A far too small LR needs more steps on the same seeds, or never gets there.
    _, slow = scoring.score_fresh(task, {"batch_size": 32, "lr": 0.001, "schedule": "constant"}, oracle, best_steps)
    assert slow > 1.0


def test_many_seed_oracle_retrains_each_sizes_best_configs_on_the_seeds_the_grid_lacks_once(write_task, tmp_path,
                                                                                           monkeypatch):
    import statistics
    from dataclasses import asdict

    import autobs
    from autobs.scaling import steps_to_target
    from benchmarks import scoring
    from tests.conftest import GOOD_TASK

    task = autobs.load_task(write_task(GOOD_TASK))
    oracle = _tiny_oracle(task) | {"target": 0.5, "higher_is_better": False, "step_time_s": {"32": 0.01, "64": 0.015}}
    monkeypatch.setattr(scoring, "ORACLE_DIR", tmp_path)
    monkeypatch.setattr(scoring, "CONTENDERS", 2)
    (tmp_path / task.name).mkdir()
    grid = [scoring.grid_run(task, oracle, c, seed) for c in oracle["configs"] for seed in (0, 1)]
    (tmp_path / task.name / "runs.jsonl").write_text("".join(json.dumps(asdict(r)) + "\n" for r in grid))
    scoring.grid_records.cache_clear()
    try:
        contenders = scoring.many_seed_oracle(task, oracle, seeds=(0, 1, 2), workers=1)
        # The size's 2 best configs of the grid (fewest steps), each on seeds 0-2: the grid's own runs for 0 and 1,
        # seed 2 trained and kept, once per config.
        assert set(contenders) == {(32, 0.316228, "constant"), (32, 0.1, "constant")}
        for key, runs in contenders.items():
            assert [r.seed for r in runs] == [0, 1, 2]
            assert runs[:2] == [r for r in grid if (r.batch_size, r.lr, r.schedule) == key]
        kept = read_runs(tmp_path / task.name / "seeds.jsonl")
        assert sorted((r["lr"], r["seed"]) for r in kept) == [(0.1, 2), (0.316228, 2)]

        def no_training(*args, **kwargs):
            raise AssertionError("a kept run was trained again")

        monkeypatch.setattr(scoring, "worker_pool", no_training)
        assert scoring.many_seed_oracle(task, oracle, seeds=(0, 1, 2)) == contenders
    finally:
        scoring.grid_records.cache_clear()
    # Read at the target: the best is the contender with the least median over the seeds; it scores regret 1
    # against itself, the other at least 1.
    reference = scoring.many_seed_best(contenders, oracle, oracle["target"])
    medians = {k: statistics.median(steps_to_target(r.curve, 0.5, False) for r in runs) for k, runs in contenders.items()}
    assert reference.best == min(medians, key=medians.get) and reference.steps == {32: min(medians.values())}
    assert scoring.score_many(contenders[reference.best], oracle, reference) == (reference.steps[32], 1.0)
    other = next(k for k in contenders if k != reference.best)
    assert scoring.score_many(contenders[other], oracle, reference)[1] >= 1.0
    # Read at each curve's monotone fit's crossing, a config is scored read the same way as the oracle's best.
    monotone = scoring.many_seed_best(contenders, oracle, oracle["target"], monotone=True)
    medians = {k: statistics.median(steps_to_target(r.curve, 0.5, False, monotone=True) for r in runs)
               for k, runs in contenders.items()}
    assert monotone.steps == {32: min(medians.values())} != reference.steps
    assert scoring.score_many(contenders[monotone.best], oracle, monotone) == (monotone.steps[32], 1.0)


def test_a_config_is_scored_at_another_target_against_the_oracles_best_re_read_there():
    from benchmarks.scoring import grid_records, load_oracle, score_runs

    oracle = load_oracle("digits_mlp")  # the stored grid (reports/oracle/digits_mlp)
    best = oracle["best"]
    runs = [r for r in grid_records("digits_mlp")
            if (r.batch_size, r.lr, r.schedule) == (best["batch_size"], best["lr"], best["schedule"])]
    assert score_runs("digits_mlp", runs, oracle) == (best["steps_to_target"], pytest.approx(1.0))
    # At the oracle's own target, re-read from the grid's runs: the same best, so the same regret.
    assert score_runs("digits_mlp", runs, oracle, target=oracle["target"]) == pytest.approx(score_runs("digits_mlp", runs, oracle))
    # At a stricter target it takes more steps, against the best of the grid's configs at that target (each the
    # median over its seeds of the first evaluation past it, times the grid's step time), here another config.
    from statistics import median

    from autobs.scaling import steps_to_target

    configs: dict[tuple, list[float]] = {}
    for r in grid_records("digits_mlp"):
        configs.setdefault((r.batch_size, r.lr, r.schedule), []).append(steps_to_target(r.curve, 0.97, True))
    best_s = min(median(v) * oracle["step_time_s"][str(k[0])] for k, v in configs.items())
    steps, strict = score_runs("digits_mlp", runs, oracle, target=0.97)
    assert steps > best["steps_to_target"]
    assert strict == pytest.approx(steps * oracle["step_time_s"][str(best["batch_size"])] / best_s) and strict > 1.05


def test_held_out_regret_is_one_for_a_clear_best_and_above_one_among_noisy_near_ties():
    import numpy as np

    from benchmarks.yardstick_noise import SPLITS, held_out_regret

    rng = np.random.default_rng(0)
    step_time = {32: 0.01, 64: 0.015}
    # Batch 32's config needs half the time of 64's on every seed: whichever seeds choose, it is the best.
    clear = {(32, 0.1, "constant"): np.full(16, 100.0), (64, 0.1, "constant"): np.full(16, 140.0)}
    assert held_out_regret(clear, step_time, 4, rng) == [1.0] * SPLITS
    # Two configs as fast as each other, each seed's read scattered by 30%: the one chosen on 4 seeds is often not
    # the faster on 4 others, and by more with 2 seeds than with 8.
    ties = {(32, 0.1, "constant"): 100 * np.exp(rng.normal(0, 0.3, 16)),
            (32, 0.3, "constant"): 100 * np.exp(rng.normal(0, 0.3, 16))}
    few, many = held_out_regret(ties, step_time, 2, rng), held_out_regret(ties, step_time, 8, rng)
    assert min(few) >= 1.0 and np.mean(np.array(few) > 1.0) > 0.2
    assert np.percentile(few, 90) > np.percentile(many, 90)

"""The whole recommendation against its peers and the grid-search oracle (../shared/BENCHMARKS.md).

For each task: autobs's ``tune`` with a wall-time budget, then the peers (Lightning's batch-size scaler +
lr_find, the linear scaling rule from a common default, and Ray Tune + Optuna TPE given autobs's wall-time
budget on as many cores), each recommended config retrained with the oracle's seeds and scored by regret (its
time-to-target over the oracle's best) and tuning cost (the compute it spent over the grid's). Each config
is also retrained with fresh seeds, as is the oracle's best (``scoring.FRESH_SEEDS``: on the grid's own
seeds the oracle's best is a lucky draw).

Tuning cost of autobs = its wall time × the cores: every core-second the machine gave it, including evaluation,
Ray start-up and idle slots, so it is an upper bound. The search runs one trial a core; the serial stages
(probe, range test, noise, fit) run with torch's default thread count, one thread a core, so they hold every
core too (until 2026-12-02 they were counted as one core: 10-15% less on digits). The grid's compute is its
runs' whole time, evaluations included, in core-seconds as it ran (``scoring.grid_core_seconds``; until
2026-12-03 the share was taken of the oracle's ``grid_seconds``, seconds of the whole device, which overstated it
up to 2x on 2 cores, and then, that day, of the grid's training time alone, which left out its evaluations as
autobs's own were counted: 9% of digits's and friedman's grids, 30% of char_lm's, reports/grid_eval_cost.md).

    python benchmarks/recommend.py                      # both examples and friedman_mlp, budget 15% of each grid / 2 cores
    python benchmarks/recommend.py --tasks examples/digits_mlp.py --budget-share 0.3
    python benchmarks/recommend.py --skip-peers --seeds 0 1 2   # autobs's spread over seeds

Tasks: both examples, and ``benchmarks/tasks/friedman_mlp.py``, a regression with the contract's default
optimizer (AdamW) that no rule in autobs was tuned on before it was first scored (reports/recommend_friedman_c3c7ebc.md).

The oracle's B_noise is given from its grid and from its LR grid refined around each batch size's best
(``scoring.refine_lr``; the refinement's runs are cached in reports/oracle/<task>/refine.jsonl).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import autobs  # noqa: E402
from benchmarks import peers  # noqa: E402
from autobs.scaling import StepTimeModel  # noqa: E402
from benchmarks.scoring import (CONTENDERS, FRESH_SEEDS, MANY_SEEDS, SEEDS, fresh_oracle_best_steps, grid_run,  # noqa: E402
                                load_oracle, many_seed_best, many_seed_oracle, refine_lr, regret, score_config,
                                score_fresh, score_many, score_runs, time_to_target, train_on_many_seeds,
                                tuning_cost)


def _config(batch_size: int, lr: float, schedule: str, warmup_steps: int, total_steps: int, params=None) -> dict:
    return {"batch_size": batch_size, "lr": lr, "schedule": schedule, "schedule_params": params or {},
            "warmup_fraction": warmup_steps / max(1, total_steps)}


def refined_oracle_fit(task: autobs.Task, oracle: dict):
    """The oracle's S(B) fit over each batch size's best steps-to-target on the LR grid refined around its
    best (``scoring.refine_lr``): the 2-per-decade grid's best at a batch size can be off by what a finer
    LR saves, and B_noise is read from how those bests fall with B."""
    from autobs.scaling import fit_steps_to_target

    reached = [row["batch_size"] for row in oracle["per_batch"] if math.isfinite(row["steps_to_target"])]
    return fit_steps_to_target(reached, [refine_lr(task, oracle, b)[1] for b in reached])


def monotone_oracle_fit(task: autobs.Task, oracle: dict, target: float | None = None, seed: int | None = None):
    """The oracle's S(B) fit with its runs read as autobs reads them (``steps_to_target(monotone=True)``:
    the crossing of each curve's monotone fit, not its first evaluation past the target); per config the
    median over its seeds, per batch size the best config, as the oracle does. ``target``: read at this
    target instead of the oracle's (B_noise depends on it: it grows as the loss falls, McCandlish et al.
    2018 §4, so autobs's B_noise at its own target is also compared with the oracle's at that target).
    ``seed``: that seed's runs alone (the whole grid with one seed: how far the oracle's own B_noise moves
    with the seed, the floor for any comparison with it)."""
    target = oracle["target"] if target is None else target
    from autobs.scaling import fit_steps_to_target, steps_to_target
    from benchmarks.scoring import grid_records

    per_config: dict[tuple, list[float]] = {}
    for run in grid_records(task.name):
        if seed is not None and run.seed != seed:
            continue
        per_config.setdefault((run.batch_size, run.lr, run.schedule), []).append(
            steps_to_target(list(run.curve), target, oracle["higher_is_better"], monotone=True))
    best: dict[int, float] = {}
    for (b, _, _), values in per_config.items():
        best[b] = min(best.get(b, math.inf), float(np.median(values)))
    reached = {b: v for b, v in sorted(best.items()) if math.isfinite(v)}
    return fit_steps_to_target(list(reached), list(reached.values()))


def autobs_run(task: autobs.Task, oracle: dict, budget: float | None, cores: int, seed: int,
               keep: Path | None = None) -> dict:
    """autobs.tune with ``seed`` (its search's sampler and every stage's runs), scored against the oracle.
    ``keep``: write the run directory under it (``<task>/seed<seed>``) instead of a temporary one."""
    with contextlib.nullcontext(str(keep / task.name / f"seed{seed}")) if keep else tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        rec = autobs.tune(task, budget=budget, out=out, progress=True, seed=seed, fresh=True)
        wall = time.perf_counter() - began
        trials = json.loads((Path(out) / "trials.json").read_text())["trials"]
        scaling = json.loads((Path(out) / "scaling.json").read_text())
        memory = json.loads((Path(out) / "memory.json").read_text())
    # The same trials read at the oracle's target: B_noise depends on the target (it grows as the loss
    # falls, McCandlish et al. 2018 §4), so this separates the fit's error from the choice of target. The
    # search's reads alone: the reruns stop soon after autobs's own target and may not reach the oracle's.
    from autobs.scaling import StepTimeModel, fit_scaling

    at_oracle = fit_scaling(trials, metric=task.metric, higher_is_better=task.higher_is_better,
                            step_time=StepTimeModel.from_probes(memory["probes"]),
                            planned_samples=task.epochs * len(task.train), max_batch_size=rec.max_batch_size,
                            b_simple=rec.b_simple, target=oracle["target"])
    cost_s = wall * cores
    config = _config(rec.batch_size, rec.lr, rec.schedule, rec.warmup_steps, rec.total_steps, rec.schedule_params)
    runs = [grid_run(task, oracle, config, s) for s in SEEDS]
    steps, reg = score_runs(task.name, runs, oracle)
    # The question autobs answered: the fastest to its own target, which its rule chose (the oracle's was
    # chosen by hand). Read the same way, against the oracle's best re-read at that target.
    own_steps, own_reg = score_runs(task.name, runs, oracle, target=rec.target)
    row = {"tuner": "autobs" if seed == 0 else f"autobs (seed {seed})", "batch_size": rec.batch_size, "lr": rec.lr,
           "schedule": rec.schedule, "warmup_steps": rec.warmup_steps, "steps_to_target": steps, "regret": reg,
           "regret_own_target": own_reg, "cost_s": cost_s, "wall_s": wall, "config": config}
    print(f"autobs seed {seed}: {row}", file=sys.stderr)
    return {"seed": seed, "row": row, "rec": rec.to_dict(), "trials": len(trials),
            "target_rule": scaling["target_rule"], "b_noise_at_oracle_target": at_oracle.critical_batch_size,
            "oracle_b_noise_at_own_target": monotone_oracle_fit(task, oracle, rec.target).b_noise,
            "oracle_b_noise_per_seed_at_own_target": [monotone_oracle_fit(task, oracle, rec.target, s).b_noise
                                                      for s in SEEDS]}


# Passes over the batch sizes when the step times are measured in this run (``step_times_now``).
STEP_TIME_PASSES = 3


def step_times_now(task: autobs.Task, oracle: dict) -> dict[int, float]:
    """The step time at each of the grid's batch sizes measured now, in this process (the median of
    ``STEP_TIME_PASSES`` passes of the oracle's own measurement, ``oracle.measure_step_times``).

    Why: regret divides two times-to-target, each a step count times a step time, and the grid's step times
    were measured on another day. ../shared/BENCHMARKS.md asks for timing ratios measured side by side in one
    run: these machines are shared and noisy. Measured on 2026-12-01 (reports/recommend_31f6bde.md) against the grid's
    table (2026-11-22): every step time 1.4-2.7x shorter, and not by one factor (t(64)/t(32) 1.56 against 1.94,
    t(512)/t(16) 12.4 against 8.5), which moves the regret of a batch size against another. Both regrets are
    reported."""
    from benchmarks.oracle import measure_step_times

    sizes = sorted(int(b) for b in oracle["step_time_s"])
    passes = [measure_step_times(task, sizes, lr=oracle["best"]["lr"], timing_steps=20) for _ in range(STEP_TIME_PASSES)]
    return {b: float(np.median([p[b] for p in passes])) for b in sizes}




def run_task(path: str, budget_share: float | None, cores: int, skip_peers: bool, seeds: list[int],
             keep: Path | None = None, many_seeds: bool = False) -> dict:
    """``budget_share`` None: autobs runs without a budget (its default, sized to the task), and the Ray Tune
    peer gets autobs's mean wall time."""
    task = autobs.load_task(path)
    oracle = load_oracle(task.name)
    times = step_times_now(task, oracle)
    budget = None if budget_share is None else budget_share * oracle["grid_core_seconds"] / cores
    runs = [autobs_run(task, oracle, budget, cores, seed, keep) for seed in seeds]
    if budget is None:
        budget = statistics.mean(r["row"]["wall_s"] for r in runs)
    rows = [r["row"] for r in runs]
    if not skip_peers:
        max_batch_size = runs[0]["rec"]["max_batch_size"]
        found = [peers.lightning_recommendation(task), peers.linear_scaling_recommendation(task, max_batch_size),
                 peers.ray_tpe_recommendation(task, max_batch_size=max_batch_size, budget_s=budget, cpus=cores)]
        for p in found:
            total = max(1, task.epochs * len(task.train) // p.batch_size)
            config = _config(p.batch_size, p.lr, p.schedule, p.warmup_steps, total) if math.isfinite(p.lr) else None
            steps, reg = score_config(task, config, oracle) if config else (math.inf, math.inf)  # None: the peer gave no LR
            cost = p.tuner_seconds * cores  # as autobs's: in-process peers run torch on every core
            rows.append({"tuner": p.peer, "batch_size": p.batch_size, "lr": p.lr, "schedule": p.schedule,
                         "warmup_steps": p.warmup_steps, "steps_to_target": steps, "regret": reg, "cost_s": cost,
                         "wall_s": p.tuner_seconds, "config": config})
            print(f"{p.peer}: {rows[-1]}", file=sys.stderr)
    # Regret with this run's step times: each config's time-to-target over the oracle's best, both timed with them.
    now = StepTimeModel.from_throughput((b, b / t) for b, t in times.items())
    best_now = min(oracle["configs"], key=lambda c: time_to_target(c["steps_to_target"], now.at(c["batch_size"])))
    best_now_s = time_to_target(best_now["steps_to_target"], now.at(best_now["batch_size"]))
    for row in rows:
        row["regret_now"] = regret(time_to_target(row["steps_to_target"], now.at(row["batch_size"])), best_now_s)
    # Regret on fresh seeds: each config and the oracle's best retrained with seeds the grid never ran
    # (scoring.FRESH_SEEDS says why).
    best_fresh = fresh_oracle_best_steps(task, oracle)
    for row in rows:
        row["steps_fresh"], row["regret_fresh"] = (score_fresh(task, row["config"], oracle, best_fresh)
                                                   if row["config"] else (math.inf, math.inf))
        print(f"{row['tuner']}: fresh seeds {row['steps_fresh']} steps, regret {row['regret_fresh']:.2f}", file=sys.stderr)
    refined = refined_oracle_fit(task, oracle)
    result = {"task": task.name, "budget_s": budget, "oracle": oracle, "rows": rows, "autobs": runs,
              "step_time_now_s": times, "oracle_best_now": best_now, "oracle_best_steps_fresh": best_fresh,
              "oracle_b_noise_refined": refined.b_noise,
              "oracle_b_noise_monotone": monotone_oracle_fit(task, oracle).b_noise,
              "oracle_steps_refined": dict(zip(refined.batch_sizes, refined.steps))}
    if many_seeds:
        result["many_seeds"] = many_seed_scores(task, oracle, rows, runs, times)
    return result


def many_seed_scores(task: autobs.Task, oracle: dict, rows: list[dict], runs: list[dict],
                     step_time_now_s: dict, seeds: tuple[int, ...] = MANY_SEEDS) -> dict:
    """Every row's config and each batch size's best grid configs retrained on ``seeds``
    (``scoring.many_seed_oracle`` says why): each row gains ``steps_many`` and ``regret_many`` (the grid's step
    times), ``regret_many_now`` (``step_time_now_s``, this run's: both yardsticks at their most faithful, many
    seeds and timings side by side) and ``regret_many_monotone`` (the same, every curve read at the crossing of
    its monotone fit: the first evaluation past the target moves a read by up to one evaluation interval, 1/50 of
    a run, which at a fast config's crossing is up to a quarter of its steps), each autobs run the many-seed
    oracle's B_noise at its own target read as autobs reads; the oracle's best and B_noise on those seeds are
    returned."""
    contenders = many_seed_oracle(task, oracle, seeds)
    reference = many_seed_best(contenders, oracle, oracle["target"])
    now = StepTimeModel.from_throughput((int(b), int(b) / t) for b, t in step_time_now_s.items())
    reference_now = many_seed_best(contenders, oracle, oracle["target"], step_time=now)
    reference_monotone = many_seed_best(contenders, oracle, oracle["target"], monotone=True, step_time=now)
    scored = [row for row in rows if row["config"]]
    for row, config_runs in zip(scored, train_on_many_seeds(task, oracle, [row["config"] for row in scored], seeds)):
        row["steps_many"], row["regret_many"] = score_many(config_runs, oracle, reference)
        row["regret_many_now"] = score_many(config_runs, oracle, reference_now)[1]
        row["regret_many_monotone"] = score_many(config_runs, oracle, reference_monotone)[1]
        print(f"{row['tuner']}: {len(seeds)} seeds {row['steps_many']} steps, regret {row['regret_many']:.2f}",
              file=sys.stderr)
    for row in rows:
        row.setdefault("steps_many", math.inf)
        row.setdefault("regret_many", math.inf)
        row.setdefault("regret_many_now", math.inf)
        row.setdefault("regret_many_monotone", math.inf)
    for run in runs:
        fit = many_seed_best(contenders, oracle, run["rec"]["target"], monotone=True).fit
        run["oracle_b_noise_many_at_own_target"] = fit.b_noise if fit else math.nan
    monotone = reference_monotone.fit  # S(B) over steps alone: the step times it was read with do not enter it
    return {"seeds": list(seeds), "best": reference.best, "best_s": reference.best_s, "steps": reference.steps,
            "best_now": reference_now.best, "best_now_s": reference_now.best_s,
            "best_monotone": reference_monotone.best, "best_monotone_s": reference_monotone.best_s,
            "steps_monotone": reference_monotone.steps,
            "b_noise": reference.fit.b_noise if reference.fit else math.nan,
            "b_noise_monotone": monotone.b_noise if monotone else math.nan}


def _monotone_best(many: dict) -> str:
    """The many-seed oracle's best when every curve is read at its monotone fit's crossing, for the report."""
    b, lr, schedule = many["best_monotone"]
    return (f"Read at the monotone fit's crossing, with this run's step times: best batch {b}, lr {lr:.3g}, {schedule}, "
            f"{many['best_monotone_s']:.3g} s; fewest steps per batch size "
            + ", ".join(f"{k}: {fmt(v, '.0f')}" for k, v in many["steps_monotone"].items()) + ".")


def fmt(x: float, spec: str = ".3g") -> str:
    return "never" if x == math.inf else "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


DEFAULT_TASKS = [str(ROOT / "examples/digits_mlp.py"), str(ROOT / "examples/char_lm.py"),
                 str(ROOT / "benchmarks/tasks/friedman_mlp.py")]


def _relative(path: str) -> str:
    """A task path as the command line would give it from the repository root."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else path


def report(results: list[dict], args) -> str:
    lines = [
        "# Whole recommendation: autobs and its peers against the grid-search oracle",
        "",
        f"Command: `python benchmarks/recommend.py"
        f"{' --tasks ' + ' '.join(_relative(t) for t in args.tasks) if args.tasks != DEFAULT_TASKS else ''}"
        f"{' --default-budget' if args.default_budget else f' --budget-share {args.budget_share:g}'}"
        f"{' --skip-peers' if args.skip_peers else ''}"
        f"{' --seeds ' + ' '.join(map(str, args.seeds)) if args.seeds != [0] else ''}"
        f"{' --many-seeds' if args.many_seeds else ''}`  ",
        f"Machine: {platform.machine()}, {args.cores} cores, CPU; torch {torch.__version__}  ",
        f"Date: {time.strftime('%Y-%m-%d')}  ",
        ("autobs's budget: its default (no --budget: the search sized to the task, `pipeline.SEARCH_ROUNDS`); the "
         "Ray Tune peer gets autobs's mean wall time. " if args.default_budget else
         f"autobs's budget: {args.budget_share:.0%} of the grid's compute, divided by the {args.cores} cores its "
         "search runs trials on. ") +
        f"Every config retrained like the grid's runs (same length and evaluation "
        f"interval) with seeds {SEEDS}; "
        "time-to-target = median steps-to-target × the oracle's step time at that batch size (interpolated "
        "between grid sizes); regret = that / the oracle's best. *Regret, step times of this run*: the same with "
        "the step times measured at the start of this run (median of 3 passes, `step_times_now`), the oracle's "
        "best re-chosen with them: the grid's table was measured on another day, and timing ratios are to be "
        "measured side by side in one run (../shared/BENCHMARKS.md). *Regret, fresh seeds*: the config and the "
        f"oracle's best both retrained with seeds {FRESH_SEEDS}, which the grid never ran, with the grid's step times: "
        "the oracle's best was chosen as the least of its configs on the seeds the other regrets are read on, so "
        "there it is a lucky draw (`scoring.FRESH_SEEDS`). *Regret at its own target*: autobs's config read at the "
        "target its rule chose (the question it answered) against the oracle's best re-read at that target from the "
        "grid's runs, both read at the first evaluation past it (`scoring.score_runs`). "
        "With --many-seeds, the same on more seeds (`scoring.many_seed_oracle`), and *monotone read*: every curve, "
        "the config's and the oracle's, read at its monotone fit's crossing instead of the first evaluation past "
        "the target. Tuning cost = core-seconds spent (wall time × cores, evaluations included) / the grid's "
        "core-seconds as it ran, its evaluations included (`scoring.grid_core_seconds`, "
        "reports/grid_eval_cost.md): "
        + ", ".join(f"{r['task']} {r['oracle']['grid_core_seconds']:.0f} "
                    f"({r['oracle']['grid_training_core_seconds']:.0f} of training)" for r in results) + ".",
        "",
    ]
    for r in results:
        o, many = r["oracle"], r.get("many_seeds")
        lines += [
            f"## `{r['task']}` — target {o['target']:g} ({'≥' if o['higher_is_better'] else '≤'}), oracle's best: "
            f"batch {o['best']['batch_size']}, lr {o['best']['lr']:.3g}, {o['best']['schedule']}, "
            f"{o['best']['time_to_target_s']:.3g} s",
            "",
            "Step times (ms), grid's table / this run: " + ", ".join(
                f"{b}: {1000 * o['step_time_s'][str(b)]:.2f} / {1000 * t:.2f}" for b, t in r["step_time_now_s"].items())
            + f". Oracle's best with this run's: batch {r['oracle_best_now']['batch_size']}, lr "
            f"{r['oracle_best_now']['lr']:.3g}, {r['oracle_best_now']['schedule']}. Oracle's best on fresh seeds: "
            f"{fmt(r['oracle_best_steps_fresh'], 'g')} steps (on the grid's: {o['best']['steps_to_target']:g}).",
            "",
            "| tuner | batch size | lr | schedule | warmup steps | steps to target | regret | regret, step times of this run "
            "| steps, fresh seeds | regret, fresh seeds | regret at its own target | tuning cost (core-s) | share of grid |"
            + (f" steps, {len(MANY_SEEDS)} seeds | regret, {len(MANY_SEEDS)} seeds | regret, {len(MANY_SEEDS)} seeds, "
               f"step times of this run | regret, {len(MANY_SEEDS)} seeds, step times of this run, monotone read |"
               if many else ""),
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|---:|" if many else ""),
        ]
        for row in r["rows"]:
            lines.append(
                f"| {row['tuner']} | {row['batch_size']} | {fmt(row['lr'])} | {row['schedule']} | {row['warmup_steps']} "
                f"| {fmt(row['steps_to_target'], 'g')} | {fmt(row['regret'], '.2f')} | {fmt(row['regret_now'], '.2f')} "
                f"| {fmt(row['steps_fresh'], 'g')} | {fmt(row['regret_fresh'], '.2f')} "
                f"| {fmt(row.get('regret_own_target'), '.2f')} | {row['cost_s']:.0f} "
                f"| {tuning_cost(row['cost_s'], o['grid_core_seconds']):.1%} |"
                + (f" {fmt(row['steps_many'], 'g')} | {fmt(row['regret_many'], '.2f')} "
                   f"| {fmt(row['regret_many_now'], '.2f')} | {fmt(row['regret_many_monotone'], '.2f')} |"
                   if many else ""))
        o_b, o_refined = o["fit"]["b_noise"], r["oracle_b_noise_refined"]
        lines += ["", f"Oracle's B_noise: {o_b:.0f} from its grid's best steps per batch size, {o_refined:.0f} with its "
                  "LR grid refined around each batch size's best (refined best steps: "
                  + ", ".join(f"{int(b)}: {s_:g}" for b, s_ in r["oracle_steps_refined"].items())
                  + f"), {r['oracle_b_noise_monotone']:.0f} with its runs read as autobs reads steps (the crossing of "
                  "each curve's monotone fit).", ""]
        if many:
            b, lr, schedule = many["best"]
            lines += [f"On {len(MANY_SEEDS)} seeds (seeds {MANY_SEEDS[0]}–{MANY_SEEDS[-1]}: each batch size's "
                      f"{CONTENDERS} best configs of the grid, and every config of the table, retrained on them; the median "
                      "over seeds; `scoring.many_seed_oracle` says why): the oracle's best is batch "
                      f"{b}, lr {lr:.3g}, {schedule}, {many['best_s']:.3g} s (with this run's step times: batch "
                      f"{many['best_now'][0]}, lr {many['best_now'][1]:.3g}, {many['best_now'][2]}); fewest steps per batch size "
                      + ", ".join(f"{k}: {fmt(v, 'g')}" for k, v in many["steps"].items())
                      + f"; B_noise {fmt(many['b_noise'], '.0f')} (first evaluation past the target), "
                      f"{fmt(many['b_noise_monotone'], '.0f')} read as autobs reads. {_monotone_best(many)}", ""]
        for run in r["autobs"]:
            rec = run["rec"]
            crit, lo_hi = rec["critical_batch_size"], rec["critical_batch_size_interval"]
            lines += [
                f"{run['row']['tuner']}: {'wall' if args.default_budget else 'budget'} "
                f"{(run['row']['wall_s'] if args.default_budget else r['budget_s']):.0f} s, {run['trials']} trials; "
                f"B_noise {fmt(crit, '.0f')}"
                + (f" (90% interval {lo_hi[0]:.0f}–{lo_hi[1]:.0f})" if lo_hi else "")
                + f" at its own target {rec['target']:.4g}"
                + (f", ratio to the oracle's {crit / o_b:.2f} (grid) / {crit / o_refined:.2f} (refined) / "
                   f"{crit / r['oracle_b_noise_monotone']:.2f} (read as autobs reads); the oracle's at this target, "
                   f"read as autobs reads: {run['oracle_b_noise_at_own_target']:.0f}, ratio "
                   f"{crit / run['oracle_b_noise_at_own_target']:.2f} (its grid with one seed alone: "
                   + " and ".join(f"{x:.0f}" for x in run["oracle_b_noise_per_seed_at_own_target"]) + ")"
                   + (f"; the {len(MANY_SEEDS)}-seed oracle's at this target, read as autobs reads: "
                      f"{run['oracle_b_noise_many_at_own_target']:.0f}, ratio "
                      f"{crit / run['oracle_b_noise_many_at_own_target']:.2f}" if many else "")
                   if crit else "")
                + f"; at the oracle's target {o['target']:g}, from the search's reads alone: "
                f"{fmt(run['b_noise_at_oracle_target'], '.0f')}; B_simple {fmt(rec['b_simple'], '.0f')}. "
                f"Target rule: {run['target_rule']}. Stage seconds "
                + ", ".join(f"{k} {v:.0f}" for k, v in rec["stage_seconds"].items()) + ".",
                "",
            ]
        if len(r["autobs"]) > 1:
            regrets = sorted(run["row"]["regret"] for run in r["autobs"])
            regrets_now = sorted(run["row"]["regret_now"] for run in r["autobs"])
            regrets_fresh = sorted(run["row"]["regret_fresh"] for run in r["autobs"])
            regrets_own = sorted(run["row"]["regret_own_target"] for run in r["autobs"])
            ratios = sorted((run["rec"]["critical_batch_size"] or math.nan) / o_refined for run in r["autobs"])
            same_target = sorted((run["rec"]["critical_batch_size"] or math.nan) / run["oracle_b_noise_at_own_target"]
                                 for run in r["autobs"])
            lines += [f"Over {len(regrets)} seeds: regret {', '.join(fmt(x, '.2f') for x in regrets)} (with this run's "
                      f"step times {', '.join(fmt(x, '.2f') for x in regrets_now)}; on fresh seeds "
                      f"{', '.join(fmt(x, '.2f') for x in regrets_fresh)}; at its own target "
                      f"{', '.join(fmt(x, '.2f') for x in regrets_own)}); B_noise / the "
                      f"refined oracle's {', '.join(fmt(x, '.2f') for x in ratios)}; / the oracle's at autobs's "
                      f"own target (read as autobs reads) {', '.join(fmt(x, '.2f') for x in same_target)}."]
            if many:
                regrets_many = sorted(run["row"]["regret_many"] for run in r["autobs"])
                regrets_many_now = sorted(run["row"]["regret_many_now"] for run in r["autobs"])
                regrets_many_monotone = sorted(run["row"]["regret_many_monotone"] for run in r["autobs"])
                many_target = sorted((run["rec"]["critical_batch_size"] or math.nan)
                                     / run["oracle_b_noise_many_at_own_target"] for run in r["autobs"])
                lines[-1] += (f" On {len(MANY_SEEDS)} seeds: regret {', '.join(fmt(x, '.2f') for x in regrets_many)} "
                              f"(with this run's step times {', '.join(fmt(x, '.2f') for x in regrets_many_now)}; "
                              f"those read at the monotone fit's crossing "
                              f"{', '.join(fmt(x, '.2f') for x in regrets_many_monotone)}); "
                              f"B_noise / the {len(MANY_SEEDS)}-seed oracle's at autobs's own target (read as autobs "
                              f"reads) {', '.join(fmt(x, '.2f') for x in many_target)}.")
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS,
                        help="task files with a grid in reports/oracle/<name> (default: both examples and the "
                             "held-out friedman_mlp)")
    parser.add_argument("--budget-share", type=float, default=0.15,
                        help="autobs's budget as a share of the grid's compute (default 0.15, the goal)")
    parser.add_argument("--default-budget", action="store_true",
                        help="run autobs without --budget (its default, sized to the task) instead of a share")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="run autobs once per seed (its sampler and stages); peers run once")
    parser.add_argument("--many-seeds", action="store_true",
                        help=f"also score every config on {len(MANY_SEEDS)} seeds against each batch size's best "
                             "grid configs retrained on them (scoring.many_seed_oracle; its runs are kept in "
                             "reports/oracle/<task>/seeds.jsonl)")
    parser.add_argument("--out", default=str(ROOT / "reports/recommend.md"))
    parser.add_argument("--keep-runs", type=Path, default=None,
                        help="keep autobs's run directories under this folder (<task>/seed<N>; default: discarded)")
    args = parser.parse_args()
    args.cores = len(os.sched_getaffinity(0))
    share = None if args.default_budget else args.budget_share
    results = [run_task(t, share, args.cores, args.skip_peers, args.seeds, args.keep_runs, args.many_seeds)
               for t in args.tasks]
    text = report(results, args)
    Path(args.out).write_text(text + "\n")
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        [{k: v for k, v in r.items() if k != "oracle"} for r in results], indent=2, default=str))
    print(text)


if __name__ == "__main__":
    main()

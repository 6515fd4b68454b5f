"""Re-measure the search's leading trials with fresh seeds, so that the S(B) fit does not rest on the
luckiest trial at each batch size. Public entry: ``replicate_best``.

Why. The search runs each config once, with one seed, and a batch size's best steps-to-target is the
fewest among its trials: the minimum of noisy reads, which is the luckiest draw (the winner's curse).
Measured on digits (``autobs recommend examples/digits_mlp.py``, about 50 trials per batch size): the
best read at each size was 0.35–0.85x of the same config's median over 6 fresh seeds, furthest off at
the smallest sizes, whose curves hover near the target for the most steps — and that alone put B_noise
at 0.4x. The remedy is the one SMAC's intensification uses (Hutter, Hoos & Leyton-Brown 2011): run the
leading configs again on new seeds before trusting them, and judge them on those runs alone (the
original read is the biased one).

What. At each batch size, its ``TOP_K`` trials with the fewest steps to the target are rerun with
``SEEDS`` fresh seeds each, with ``autobs.train`` at the trial's own length and evaluation grid. A rerun
stops once its metric has been at or past the target for ``CONFIRM_EVALS`` evaluations in a row: the
crossing is then read, and the rest of the run would only cost time. Runs go round by round (every
size's first config's first seed, then every size's second seed, then the second configs), so a budget
that runs out leaves every batch size measured once before any twice.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable

TOP_K = 2
SEEDS = 2
SEED_BASE = 1_000_000  # replicate seeds are SEED_BASE + i: no trial uses them (a trial's is seed + its number)


def replicate_best(task, trials: list[dict], target: float, higher_is_better: bool, *, trial_samples: int,
                   budget_s: float, device: str = "auto", seed: int = 0, done: list[dict] | None = None,
                   on_run: Callable[[dict], None] | None = None, progress: bool = True) -> list[dict]:
    """Rerun each batch size's leading trials with fresh seeds; return the runs (``done`` first).

    Args:
        trials: the search's trial records (``trials.json``).
        target: the metric value the trials are ranked by (steps to reach it, ``steps_to_target``).
        trial_samples: the trials' length in samples (their schedule is laid out over it).
        budget_s: no run starts after this many seconds, nor one that its trial says would not end in the time
            left; a run still going at the end is cut and dropped.
        done: runs already made (a resumed stage); they are not run again.
        on_run: called with each new run as it ends (the pipeline saves them, so an interruption keeps them).

    Each run: ``trial`` (the trial's number), ``batch_size``, ``seed``, ``curve`` (steps, samples, metric).
    """
    from .scaling import CrossingWatch, reads_by_batch, steps_to_target
    from .training import TrainConfig, train

    began = time.time()
    leaders = {b: [t for read, t in reads[:TOP_K] if math.isfinite(read)]
               for b, reads in reads_by_batch(trials, target, higher_is_better).items()}
    leaders = {b: ts for b, ts in leaders.items() if ts}
    plan = [(leaders[b][k], SEED_BASE + seed + i) for k in range(TOP_K) for i in range(SEEDS) for b in leaders
            if k < len(leaders[b])]
    runs = list(done or [])
    made = {(r["trial"], r["seed"]) for r in runs}
    for n, (trial, run_seed) in enumerate(plan):
        if (trial["number"], run_seed) in made:
            continue
        left = budget_s - (time.time() - began)
        if left <= 0:
            break
        if _expected_seconds(trial, target, higher_is_better) > left:
            continue  # would be cut before its crossing is confirmed; a shorter run (a larger batch) may fit
        c = trial["config"]
        total_steps = max(1, round(trial_samples / c["batch_size"]))
        config = TrainConfig(batch_size=c["batch_size"], lr=c["lr"], schedule=c["schedule"],
                             schedule_params=c["schedule_params"] or {},
                             warmup_steps=int(round(c["warmup_fraction"] * total_steps)))
        result = train(task, config, samples=trial_samples, max_seconds=left, device=device, seed=run_seed,
                       callback=CrossingWatch(target, higher_is_better))
        if result.stop_reason == "time_budget":
            break  # cut by the budget before its crossing was confirmed: not a measurement
        run = {"trial": trial["number"], "batch_size": c["batch_size"], "seed": run_seed, "stop_reason": result.stop_reason,
               "curve": [{"steps": p.step, "samples": p.samples, "metric": p.metric} for p in result.curve]}
        runs.append(run)
        if on_run is not None:
            on_run(run)
        if progress:
            steps = steps_to_target(run["curve"], target, higher_is_better, monotone=True)
            read = f"{steps:.0f} steps to the target" if math.isfinite(steps) else "did not reach the target"
            print(f"[{n + 1}/{len(plan)}] trial {trial['number']} (batch {c['batch_size']}) again, seed {run_seed}: {read}",
                  file=sys.stderr, flush=True)
    return runs


def _expected_seconds(trial: dict, target: float, higher_is_better: bool) -> float:
    """How long a rerun of ``trial`` should train: the trial's own training seconds at its ``CONFIRM_EVALS``-th
    evaluation past its first at or past the target (or at its last evaluation)."""
    from .scaling import CONFIRM_EVALS

    curve = trial["curve"]
    reached = [i for i, p in enumerate(curve) if p["metric"] is not None and math.isfinite(p["metric"])
               and p.get("steps", 0) > 0 and (p["metric"] >= target if higher_is_better else p["metric"] <= target)]
    end = min(len(curve) - 1, reached[0] + CONFIRM_EVALS - 1) if reached else len(curve) - 1
    return float(curve[end].get("seconds", 0.0))

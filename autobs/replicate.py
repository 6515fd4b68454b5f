"""Re-measure the search's leading trials with fresh seeds, so that the S(B) fit does not rest on the
luckiest trial at each batch size. Public entry: ``next_rerun`` (the search asks it which trial to run
again); ``split_reruns`` parts a search's records into its own trials and those reruns.

Why. The search runs each config once, with one seed, and a batch size's best steps-to-target is the
fewest among its trials: the minimum of noisy reads, which is the luckiest draw (the winner's curse).
Measured on digits (``autobs recommend examples/digits_mlp.py``, about 50 trials per batch size): the
best read at each size was 0.35–0.85x of the same config's median over 6 fresh seeds, furthest off at
the smallest sizes, whose curves hover near the target for the most steps — and that alone put B_noise
at 0.4x. The remedy is the one SMAC's intensification uses (Hutter, Hoos & Leyton-Brown 2011): run the
leading configs again on new seeds before trusting them, and judge them on those runs alone (the
original read is the biased one).

What. At each batch size, its ``TOP_K`` trials with the fewest steps to the target are run again with
``SEEDS`` fresh seeds each, as trials of the search itself (``search.run_search``): the same config, length
and evaluation grid, on the search's workers, stopping once the crossing is confirmed like every trial
once the target is set. Reruns go round by round (every size's first leader once, then every size's first
leader again, then the second leaders), so a budget that runs out leaves every batch size measured once
before any twice. A leader displaced by a better trial keeps the reruns it has; the new leader gets its own.
"""

from __future__ import annotations

import math
from collections import Counter

TOP_K = 2
SEEDS = 2
SEED_BASE = 1_000_000  # a rerun's seed offset is SEED_BASE + i: no trial of the sampler's uses one that large


def next_rerun(records: list[dict], target: float, higher_is_better: bool, *, issued: Counter,
               seconds_left: float) -> dict | None:
    """The trial to run again next, or None when every leader has its ``SEEDS`` reruns (or none would end in
    ``seconds_left``: a rerun cut by the time budget is not a measurement).

    A batch size's leaders are its ``TOP_K`` trials with the least ``objective`` among those that reached the
    target (``reached_target``): the search scores each trial once as it ends (``search.objective``, the log of
    its samples to the target), which ranks a size's trials as their steps to the target do. Reading every
    curve again at each call cost 0.4 s at 659 trials, on the driver, once per rerun.

    Args:
        records: the search's trial records so far (``trials.json``), reruns included.
        target: the metric value the trials reached.
        issued: reruns started so far, by the number of the trial they rerun (finished or still running).
        seconds_left: the search's time left.
    """
    by_size: dict[int, list[dict]] = {}
    for r in records:
        if r.get("rerun_of") is None and r.get("reached_target"):
            by_size.setdefault(r["config"]["batch_size"], []).append(r)
    due = []
    for size_rank, (_, trials) in enumerate(sorted(by_size.items())):
        for k, trial in enumerate(sorted(trials, key=lambda t: t["objective"])[:TOP_K]):
            n = issued[trial["number"]]
            if n < SEEDS and _expected_seconds(trial, target, higher_is_better) <= seconds_left:
                due.append(((k, n, size_rank), trial))
    return min(due, key=lambda d: d[0])[1] if due else None


def split_reruns(trials: list[dict]) -> tuple[list[dict], list[dict]]:
    """A search's records as (its own trials, its reruns as runs for ``scaling.best_per_batch``). A rerun is
    a measurement when it ran to its confirmed crossing, to its end, or diverged (a read that never reaches
    the target); one cut by the time budget, failed or hung is not. Each run: ``trial`` (the number of the
    trial it reran), ``batch_size``, ``seed``, ``curve``."""
    own = [t for t in trials if t.get("rerun_of") is None]
    runs = [{"trial": t["rerun_of"], "batch_size": t["config"]["batch_size"], "seed": t.get("seed"), "curve": t["curve"]}
            for t in trials if t.get("rerun_of") is not None and t["status"] in ("completed", "diverged")]
    return own, runs


def _expected_seconds(trial: dict, target: float, higher_is_better: bool) -> float:
    """How long a rerun of ``trial`` should train: the trial's own training seconds at its ``CONFIRM_EVALS``-th
    evaluation past its first at or past the target (or at its last evaluation)."""
    from .scaling import CONFIRM_EVALS

    curve = trial["curve"]
    reached = [i for i, p in enumerate(curve) if p["metric"] is not None and math.isfinite(p["metric"])
               and p.get("steps", 0) > 0 and (p["metric"] >= target if higher_is_better else p["metric"] <= target)]
    end = min(len(curve) - 1, reached[0] + CONFIRM_EVALS - 1) if reached else len(curve) - 1
    return float(curve[end].get("seconds", 0.0))

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
fresh seeds, as trials of the search itself (``search.run_search``): the same config, length and evaluation
grid, on the search's workers, stopping once the crossing is confirmed like every trial once the target is
set (one the time budget cuts still counts if it had crossed: ``split_reruns``). Each size's top leader gets
one rerun before any gets a second, so a budget that runs out leaves every batch size measured once. After
that, each next rerun goes where it decides the recommendation (``next_rerun``: the optimal computing budget
allocation over the leaders' times to the target), up to ``SEEDS`` a leader: to the leaders that can still be
the fastest, most to those whose reads scatter most. Reads scatter far more at small batch sizes, whose curves
hover near the target longest. Measured on digits (10 searches at 41 s, reruns of one config): log-sd of
steps-to-target 0.40 at batches 16 and 32, 0.17–0.22 at 64 and 128, 0.12 at 256 — so two reruns at batch 16
leave its estimate 2–3x less sure than one at 256, and a single lucky pair of reads there had put B_noise at
0.3–0.4x the oracle's. A leader displaced by a better trial keeps the reruns it has; the new leader gets its own.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

from .training import EVAL_GROWTH

TOP_K = 2
SEEDS = 4  # reruns a leader at most (the variance of a median of n reads falls as 1/n; 4 reads halve its sd)
SEED_BASE = 1_000_000  # a rerun's seed offset is SEED_BASE + i: no trial of the sampler's uses one that large


def next_rerun(records: list[dict], target: float, higher_is_better: bool, *, issued: Counter,
               seconds_left: float) -> dict | None:
    """The trial to run again next, or None when every leader has its ``SEEDS`` reruns (or none would end in
    ``seconds_left``: a rerun the time budget cuts before its crossing measures nothing).

    A batch size's leaders are its ``TOP_K`` trials with the least ``objective`` among those that reached the
    target (``reached_target``): the search scores each trial once as it ends (``search.objective``, the log of
    its samples to the target), which ranks a size's trials as their steps to the target do. Reading every
    curve again at each call cost 0.4 s at 659 trials, on the driver, once per rerun.

    Order. First each size's top leader once, smaller sizes first: until then a size's estimate is its
    luckiest read, and the S(B) fit needs every size's. Then the reruns go where they decide the answer,
    by the optimal computing budget allocation (OCBA; Chen, Lin, Yücesan & Chick 2000, eq. 2-3), which
    minimises the chance of recommending the wrong leader for a given number of reruns: a leader i whose
    time to the target (``leader_times``) is δ_i slower than the fastest leader's, in log, with reads of
    log-sd σ_i (``rerun_scatter``; a size not yet measured twice: as unsure as the worst known) gets reruns in
    proportion to (σ_i/δ_i)², the fastest σ_b·√(Σ N_i²/σ_i²). The next rerun goes to the leader furthest below
    its share of the reruns so far (ties: the quicker one). Gaps below ``INDIFFERENCE`` count as that gap
    (Bechhofer's indifference zone, 1954): telling apart leaders that close does not change the user's time.

    Why. Before, the reruns after the first went where they narrowed a size's estimate most per second,
    wherever that size stood, and the second leaders waited until the top ones had ``SEEDS``; at 15% of a grid
    the search affords 2-8 reruns past the first round's, so they went to sizes that could not win while the
    answer rested on one read of each contender (digits at 5a9e3a6, seed 1: batch 16 read 234 steps and its
    one rerun 88, batch 32 51 from one rerun, against the oracle's 189 and 110; 16 was recommended, 1.47x the
    oracle's best time, while the one later rerun went to batch 64, 2x slower).

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
    leaders = [(size, k, trial) for size, trials in sorted(by_size.items())
               for k, trial in enumerate(sorted(trials, key=lambda t: t["objective"])[:TOP_K])]
    due = [(k, trial, seconds) for _, k, trial in leaders if issued[trial["number"]] < SEEDS
           and (seconds := _expected_seconds(trial, target, higher_is_better)) <= seconds_left]
    first = [trial for k, trial, _ in due if k == 0 and issued[trial["number"]] == 0]
    if first:
        return first[0]
    if not due:
        return None
    times = leader_times(records, [trial for _, _, trial in leaders])
    scatter = rerun_scatter(records)
    unknown = max(scatter.values(), default=1.0)
    fastest = min(times, key=times.get)
    sd = {t["number"]: scatter.get(size, unknown) for size, _, t in leaders}
    share = {n: (sd[n] / max(INDIFFERENCE, times[n] - times[fastest])) ** 2 for n in times if n != fastest}
    share[fastest] = sd[fastest] * math.sqrt(sum(v**2 / sd[n] ** 2 for n, v in share.items()))
    if len(share) == 1:
        share[fastest] = 1.0
    total = sum(share.values())
    reruns = sum(issued[n] for n in times) + 1
    return max(due, key=lambda d: (reruns * share[d[1]["number"]] / total - issued[d[1]["number"]], -d[2]))[1]


# Leaders whose times to the target differ by less than this (log) are told apart no further by reruns: the
# benchmark's goal tolerates 15% over the fastest (../shared/BENCHMARKS.md), and a tenth is within the scatter
# of the step times themselves between passes (reports/recommend_*.md, step times of this run vs the grid's).
INDIFFERENCE = math.log(1.1)


def leader_times(records: list[dict], leaders: list[dict]) -> dict[int, float]:
    """Each leader's log time to the target, by trial number: the median of its reruns' samples to the target
    (a rerun cut before its crossing left out, as ``split_reruns`` reads it; none yet: its own read) ÷ its batch
    size × that size's step time (``median_step_times``)."""
    reads = measured_reruns(records)
    step_times = median_step_times(records)
    times = {}
    for t in leaders:
        b = t["config"]["batch_size"]
        number = t["number"]
        log_samples = statistics.median(r["objective"] for r in reads[number]) if number in reads else t["objective"]
        times[t["number"]] = log_samples - math.log(b) + math.log(step_times.get(b, 1.0))
    return times


def measured_reruns(records: list[dict]) -> dict[int, list[dict]]:
    """The search's scored reruns that measured something, by the number of the trial they reran: those that
    ended (at their confirmed crossing, whole, or diverged: a miss), and those the time budget cut after their
    crossing (``reached_target``); one cut before it measured nothing (``split_reruns`` says why)."""
    by_trial: dict[int, list[dict]] = {}
    for r in records:
        if (r.get("rerun_of") is not None and r.get("curve") and r["status"] in ("completed", "diverged", "stopped")
                and (r["status"] != "stopped" or r.get("reached_target"))):
            by_trial.setdefault(r["rerun_of"], []).append(r)
    return by_trial


def median_step_times(records: list[dict]) -> dict[int, float]:
    """Each batch size's step time in the search: the median ``step_time_s`` over its trials that have one."""
    by_size: dict[int, list[float]] = {}
    for r in records:
        value = r.get("step_time_s")
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            by_size.setdefault(r["config"]["batch_size"], []).append(value)
    return {b: statistics.median(v) for b, v in by_size.items()}


def rerun_scatter(records: list[dict]) -> dict[int, float]:
    """Per batch size, the log-sd of steps-to-target between reruns of one trial, pooled over the trials with
    two or more reruns that reached the target (each trial's reads about their own mean; n − 1 degrees of
    freedom a trial). A rerun's ``objective`` is the log of its samples to the target, so at one batch size
    its spread is that of log steps."""
    reads: dict[tuple[int, int], list[float]] = {}
    for r in records:
        if r.get("rerun_of") is not None and r.get("reached_target"):
            reads.setdefault((r["config"]["batch_size"], r["rerun_of"]), []).append(r["objective"])
    squares: dict[int, list[float]] = {}
    for (size, _), values in reads.items():
        if len(values) >= 2:
            mean = sum(values) / len(values)
            sums = squares.setdefault(size, [0.0, 0.0])
            sums[0] += sum((v - mean) ** 2 for v in values)
            sums[1] += len(values) - 1
    return {size: max(READ_RESOLUTION, math.sqrt(ss / df)) for size, (ss, df) in squares.items()}


# No read is surer than the evaluation grid it is read from: trials are evaluated early at points each
# ``EVAL_GROWTH`` (1.25) times the samples of the last, and a crossing anywhere in such an interval, read
# uniformly, has a log-sd of log(1.25)/√12 ≈ 0.064. Reruns that read the same steps (both crossed at the same evaluation, or at
# the first: an easy target reached at once) estimate a scatter of 0, which ``next_rerun`` divides by.
READ_RESOLUTION = math.log(EVAL_GROWTH) / math.sqrt(12)


def split_reruns(trials: list[dict]) -> tuple[list[dict], list[dict]]:
    """A search's records as (its own trials, its reruns as runs for ``scaling.best_per_batch``). A rerun is
    a measurement when it ran to its confirmed crossing, to its end, or diverged (a read that never reaches
    the target); one that failed or hung is not. One cut by the time budget (``stopped``: the leader bound
    never stops a rerun) comes with ``cut`` set: it measured a crossing if its curve reached the target
    before the cut, and nothing if not (``best_per_batch`` reads it so).

    Why a cut rerun counts. The search's last reruns are cut when the budget ends, and the slow reads are the
    ones cut: left out, they leave a size the fast reads alone, which is survivorship bias (measured on digits
    at 15% of its grid, 5 seeds at 5a9e3a6: three of 31 reruns were cut, all after their crossing, reading 139,
    259 and 76 steps against 86, 207 and 59 for the reruns of the same trials that ended; with the first left
    out, batch 16 read 0.45x the oracle's steps there and was recommended, at 1.47x the oracle's best time).
    Its crossing is read off the curve it ran, as the search's own stopped trials are.

    Each run: ``trial`` (the number of the trial it reran), ``batch_size``, ``seed``, ``curve``, ``cut``."""
    own = [t for t in trials if t.get("rerun_of") is None]
    runs = [{"trial": t["rerun_of"], "batch_size": t["config"]["batch_size"], "seed": t.get("seed"), "curve": t["curve"],
             "cut": t["status"] == "stopped"}
            for t in trials if t.get("rerun_of") is not None and t["status"] in ("completed", "diverged", "stopped")
            and t.get("curve")]
    return own, runs


def _expected_seconds(trial: dict, target: float, higher_is_better: bool) -> float:
    """How long a rerun of ``trial`` should train: the trial's own training seconds at its ``CONFIRM_EVALS``-th
    evaluation past its first at or past the target (or at its last evaluation)."""
    from .scaling import CONFIRM_EVALS, reached

    curve = trial["curve"]
    past = [i for i, p in enumerate(curve) if p["metric"] is not None and math.isfinite(p["metric"])
            and p.get("steps", 0) > 0 and reached(p["metric"], target, higher_is_better)]
    end = min(len(curve) - 1, past[0] + CONFIRM_EVALS - 1) if past else len(curve) - 1
    return float(curve[end].get("seconds", 0.0))

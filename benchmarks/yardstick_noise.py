"""How finely the many-seed oracle can measure regret: the scatter of one config's read between seeds, and the
regret of the oracle's own best when it is chosen on some seeds and scored on as many others.

A regret goal of 1.15 needs a yardstick whose own error is well under 15%. Each batch size's ``CONTENDERS`` best
grid configs are read on seeds 0..N-1 (``scoring.many_seed_oracle``: kept runs are reused, missing ones trained
and kept), N the pool. For each read (the first evaluation past the target, as BENCHMARKS.md defines steps-to-target, and the
crossing of each curve's monotone fit, as autobs reads its trials) the table gives:

- *log-sd of one read*: the scatter of one seed's steps-to-target about the config's median, in log, the median
  over the configs of each batch size;
- *regret of the oracle's own best* with k seeds: two disjoint sets of k seeds drawn from the pool at random
  (``SPLITS`` times), the oracle's best chosen on one (the least median steps × the grid's step time) and its time
  on the other over that set's own best. A perfect yardstick reads 1.00; what a k-seed yardstick reads above that
  is the regret it gives a tuner exactly as good as the best config (choosing among near-tied contenders with
  noisy medians: the winner's curse).

    python benchmarks/yardstick_noise.py --pool 32 --sizes 2 4 8 16 --out reports/yardstick_noise.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import autobs  # noqa: E402
from autobs.scaling import steps_to_target  # noqa: E402
from benchmarks.recommend import _relative  # noqa: E402
from benchmarks.scoring import _grid_step_times, load_oracle, many_seed_oracle  # noqa: E402

SPLITS = 200
TASKS = {"digits_mlp": "examples/digits_mlp.py", "friedman_mlp": "benchmarks/tasks/friedman_mlp.py"}


def held_out_regret(reads: dict[tuple, np.ndarray], step_time: dict[int, float], k: int, rng) -> list[float]:
    """``reads``: config → its steps-to-target on each seed of the pool (the same seed order for every config).
    The regret of the best chosen on k random seeds, read on k others, for ``SPLITS`` draws."""
    n = len(next(iter(reads.values())))
    regrets = []
    for _ in range(SPLITS):
        order = rng.permutation(n)
        a, b = order[:k], order[k:2 * k]
        times_a = {k: np.median(v[a]) * step_time[k[0]] for k, v in reads.items()}
        times_b = {k: np.median(v[b]) * step_time[k[0]] for k, v in reads.items()}
        best = min(times_a, key=times_a.get)
        regrets.append(times_b[best] / min(times_b.values()))
    return regrets


def measure(name: str, pool: int, sizes: list[int]) -> list[dict]:
    task = autobs.load_task(str(ROOT / TASKS[name]))
    oracle = load_oracle(name)
    contenders = many_seed_oracle(task, oracle, seeds=tuple(range(pool)))
    times = _grid_step_times(oracle)
    step_time = {k[0]: times.at(k[0]) for k in contenders}
    rows = []
    for monotone in (False, True):
        reads = {k: np.array([steps_to_target(r.curve, oracle["target"], oracle["higher_is_better"], monotone=monotone)
                              for r in runs]) for k, runs in contenders.items()}
        sd: dict[int, list[float]] = {}
        for k, v in reads.items():
            if np.sum(np.isfinite(v)) > 2:
                sd.setdefault(k[0], []).append(float(np.std(np.log(v[np.isfinite(v)]), ddof=1)))
        rows.append({"task": name, "pool": pool, "read": "monotone fit" if monotone else "first evaluation",
                     "log_sd": {b: statistics.median(v) for b, v in sorted(sd.items())},
                     "regret": {k: held_out_regret(reads, step_time, k, np.random.default_rng(0)) for k in sizes}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--pool", type=int, default=8, help="seeds 0..N-1 (runs missing from the kept ones are trained)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[2, 4], help="seeds per yardstick (at most pool / 2)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if 2 * max(args.sizes) > args.pool:
        parser.error("each size needs two disjoint sets of seeds: at most --pool / 2")
    rows = [row for name in args.tasks for row in measure(name, args.pool, args.sizes)]
    lines = [
        "# How finely the many-seed oracle measures regret",
        "",
        f"Command: `python benchmarks/yardstick_noise.py --tasks {' '.join(args.tasks)} --pool {args.pool} --sizes "
        f"{' '.join(map(str, args.sizes))} --out {_relative(args.out)}`  ",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, CPU  ",
        f"Date: {time.strftime('%Y-%m-%d')}  ",
        f"Each batch size's best grid configs read on seeds 0–{args.pool - 1} at the oracle's target "
        "(`benchmarks/yardstick_noise.py` says how). *log-sd of one read*: per batch size, the median over its configs "
        f"of one seed's scatter in log. *k seeds*: the oracle's best chosen on k seeds and scored on k others ({SPLITS} "
        "random draws from the pool), median and 90th percentile: the regret a k-seed yardstick gives a tuner "
        "exactly as good as the best config.",
        "",
        "| task | read | log-sd of one read, by batch size | "
        + " | ".join(f"{k} seeds: median, p90" for k in args.sizes) + " |",
        "|---|---|---|" + "---:|" * len(args.sizes),
    ]
    lines += [f"| {r['task']} | {r['read']} | " + ", ".join(f"{b}: {s:.2f}" for b, s in r["log_sd"].items()) + " | "
              + " | ".join(f"{np.median(v):.2f}, {np.percentile(v, 90):.2f}" for v in r["regret"].values()) + " |"
              for r in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

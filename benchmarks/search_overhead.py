"""Search overhead and regret: how much of the search's wall time is Ray and Optuna rather than training,
and how good its best config is against the grid-search oracle (../shared/BENCHMARKS.md).

    python benchmarks/search_overhead.py                     # digits, 20 trials of about 10 s
    python benchmarks/search_overhead.py --trials 8 --trial-seconds 5

- Anchors first (memory probe, LR range test), outside the timed search: the search is what is measured.
- Trial length: ``--trial-seconds`` × the samples/s of one core at the middle batch size, so a trial that
  runs its whole length takes about that long (ASHA stops poor ones earlier, as in real use).
- Overhead share = 1 − Σ(time inside each trial's training, evaluations included) / (wall × parallel
  trials): what Ray (start, scheduling, reporting) and Optuna (proposals) cost.
- Regret: the best config retrained with 2 seeds for the planned run, time-to-target = steps-to-target ×
  the oracle's step time at that batch size, over the oracle's best (benchmarks/scoring.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import autobs  # noqa: E402
from autobs.lr_range import lr_at, lr_range_test  # noqa: E402
from autobs.memory import probe_memory  # noqa: E402
from autobs.search import STATUSES, run_search  # noqa: E402
from autobs.space import default_space_name, load_space  # noqa: E402
from benchmarks.scoring import SEEDS, load_oracle, score_config  # noqa: E402



def samples_per_s_one_core(task: autobs.Task, batch_size: int) -> float:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = autobs.train(task, autobs.TrainConfig(batch_size=batch_size, lr=1e-3), samples=40 * batch_size,
                              eval_every_samples=10**12)
    finally:
        torch.set_num_threads(threads)
    return batch_size / result.step_time_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default=str(ROOT / "examples/digits_mlp.py"))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--trial-seconds", type=float, default=10.0)
    parser.add_argument("--out", default=str(ROOT / "reports/search_overhead.md"))
    args = parser.parse_args()

    task = autobs.load_task(args.task)
    oracle = load_oracle(task.name)
    memory = probe_memory(task)
    ranges = lr_range_test(task, max_batch_size=memory.max_batch_size)
    mid = sorted(ranges.suggestions)[len(ranges.suggestions) // 2]
    trial_samples = int(args.trial_seconds * samples_per_s_one_core(task, mid))
    with torch.random.fork_rng(devices=[]):
        space_name = default_space_name(task.optimizer(task.model().parameters(), 1e-3))
    space = load_space(space_name)

    with tempfile.TemporaryDirectory() as out:
        began, began_epoch = time.perf_counter(), time.time()
        result = run_search(task, space, out=Path(out), trials=args.trials, trial_samples=trial_samples,
                            max_batch_size=memory.max_batch_size,
                            lr_at=partial(lr_at, ranges.suggestions, ranges.lr_scaling_exponent))
        wall = time.perf_counter() - began
    parallel = len(os.sched_getaffinity(0))
    inside = sum(t.get("train_s", 0.0) for t in result.trials)
    overhead = 1 - inside / (wall * parallel)
    startup = min(t["started_at"] for t in result.trials) - began_epoch  # Ray start to the first trial
    steady = 1 - inside / ((wall - startup) * parallel)
    # Where the rest goes. Warm-up: a fresh worker's first trial, from its start to its first training step
    # (importing torch and autobs, loading the task: the user's own imports and data). Tail: cores left
    # idle after the last trial started, because no trial was left to run (the trial count is reached).
    first = sorted(result.trials, key=lambda t: t["started_at"])[:parallel]
    warmup = sum(t["wall_s"] - t["train_s"] for t in first)
    ends = [t["started_at"] + t["wall_s"] for t in result.trials]
    last_start, last_end = max(t["started_at"] for t in result.trials), max(ends)
    running = [e for e in ends if e >= last_start]
    tail = sum(last_end - e for e in running) + (parallel - len(running)) * (last_end - last_start)
    best = result.best
    steps, best_regret = score_config(task, best["config"], oracle) if best else (float("inf"), float("inf"))
    counts = {s: sum(t["status"] == s for t in result.trials) for s in STATUSES}
    c = best["config"] if best else {}
    lines = [
        "# Search overhead and regret",
        "",
        f"Command: `python benchmarks/search_overhead.py --trials {args.trials} --trial-seconds {args.trial_seconds:g}`  ",
        f"Machine: {platform.machine()}, {parallel} cores, CPU; torch {torch.__version__}  ",
        f"Date: {time.strftime('%Y-%m-%d')}  ",
        f"Task: `{task.name}`, search space `{space_name}.yaml`, TPE, ASHA on samples, {parallel} trials in parallel "
        f"(one core each), each trial up to {trial_samples} samples (≈{args.trial_seconds:g} s at batch {mid} on one core).",
        "",
        "| trials | statuses | wall s | start-up s | worker warm-up core-s | tail idle core-s | inside training s (sum) | overhead share | after start-up | best config | steps to target | regret |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
        f"| {len(result.trials)} | {', '.join(f'{n} {s}' for s, n in counts.items() if n)} | {wall:.1f} | {startup:.1f} | "
        f"{warmup:.1f} | {tail:.1f} | {inside:.1f} | {overhead:.1%} | {steady:.1%} | batch {c.get('batch_size')}, lr {c.get('lr', float('nan')):.3g}, {c.get('schedule')}, "
        f"warmup {c.get('warmup_fraction', 0):.0%} | {steps:g} | {best_regret:.2f} |",
        "",
        f"Overhead share = 1 − inside / (wall × {parallel}); start-up = from the call to the first trial's start "
        "(imports, `ray.init`, Ray Tune's set-up); 'after start-up' leaves it out. Worker warm-up: the first trial on "
        "each worker, from its start to its first step (the worker imports torch and autobs and loads the task). Tail "
        "idle: cores idle after the last trial started, none being left to run. Regret: the best config retrained with seeds "
        f"{SEEDS} for the planned run ({task.epochs} epochs), time-to-target with the oracle's step time at its "
        f"batch size, over the oracle's best ({oracle['best']['time_to_target_s']:.3f} s at batch "
        f"{oracle['best']['batch_size']}, target {oracle['target']}).",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

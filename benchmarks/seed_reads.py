"""Steps-to-target of given configs on many seeds, read as the oracle's grid and as the search read them.

Each config is trained on seeds 0..N-1 twice over its whole run (the oracle's length): like the grid's runs (their
evaluation interval, ``scoring.run_spec``) and on the search's evaluation grid (``autobs.train``'s default). Each
curve is read off its monotone fit (``steps_to_target(monotone=True)``, as autobs reads a trial); the search-grid
curves also cut where a trial stops (``scaling.CrossingWatch``: the crossing confirmed), as the search reads them.
The medians over seeds say how far a search's read of a config sits from the oracle's reading of it, and how far
a config autobs found sits from the grid's best at its size: what the S(B) fit's points carry into B_noise.

    python benchmarks/seed_reads.py --config 32:0.316228:cosine --config 32:0.532:cosine --config 16:0.33:cosine \\
        --seeds 30 --targets 0.94 0.9456 --out reports/seed_reads_digits.md        # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autobs.scaling import CrossingWatch, steps_to_target  # noqa: E402
from benchmarks.scoring import load_oracle, run_spec  # noqa: E402

_TASK = None


def _init(task_path: str) -> None:
    global _TASK
    import torch

    import autobs

    torch.set_num_threads(1)
    _TASK = autobs.load_task(task_path)


def _train(job: tuple[dict, int, bool, dict]) -> list[dict]:
    """One run of ``config`` with ``seed``: on the grid's evaluation interval (``like_grid``) or the search's."""
    import autobs

    config, seed, like_grid, oracle = job
    spec = run_spec(oracle, config, seed)
    train_config = autobs.TrainConfig(batch_size=spec["batch_size"], lr=spec["lr"], schedule=spec["schedule"],
                                      schedule_params=spec["schedule_params"], warmup_steps=spec["warmup_steps"])
    run = autobs.train(_TASK, train_config, samples=spec["samples"], seed=seed, device="cpu",
                       eval_every_samples=spec["eval_every_samples"] if like_grid else None)
    return [{"step": p.step, "metric": p.metric} for p in run.curve]


def as_search_reads(curve: list[dict], target: float, higher_is_better: bool) -> float:
    """The crossing a search trial reads: its curve up to where ``CrossingWatch`` stops it, off the monotone fit."""
    watch = CrossingWatch(target, higher_is_better)
    for i, point in enumerate(curve):
        if watch(SimpleNamespace(**point)):
            curve = curve[: i + 1]
            break
    return steps_to_target(curve, target, higher_is_better, monotone=True)


def parse_config(text: str) -> dict:
    batch_size, lr, schedule = text.split(":")
    params = {"min_lr_ratio": 0.05} if schedule == "cosine" else {}  # the search spaces' cosine floor
    return {"batch_size": int(batch_size), "lr": float(lr), "schedule": schedule, "schedule_params": params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default=str(ROOT / "examples" / "digits_mlp.py"))
    parser.add_argument("--config", action="append", type=parse_config, required=True,
                        help="BATCH:LR:SCHEDULE (constant or cosine); repeat for more")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--targets", type=float, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import autobs

    task = autobs.load_task(args.task)
    oracle = load_oracle(task.name)
    hib = oracle["higher_is_better"]
    jobs = [(c, s, like_grid, oracle) for c in args.config for like_grid in (True, False) for s in range(args.seeds)]
    began = time.perf_counter()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                             initargs=(args.task,)) as pool:
        curves = list(pool.map(_train, jobs))
    runs: dict[tuple, list[list[dict]]] = {}
    for (c, _, like_grid, _), curve in zip(jobs, curves):
        runs.setdefault((c["batch_size"], c["lr"], c["schedule"], like_grid), []).append(curve)

    def median(values: list[float]) -> str:
        return f"{np.median(values):.0f}" if values else "–"

    configs = " ".join("--config {batch_size}:{lr:g}:{schedule}".format(**c) for c in args.config)
    lines = [
        "# Steps to the target of given configs on many seeds, read as the grid and as the search read them", "",
        f"Command: `python benchmarks/seed_reads.py {configs} --seeds {args.seeds} --targets "
        f"{' '.join(f'{t:g}' for t in args.targets)} --out {args.out}`  ",
        f"Task: {Path(args.task).name}; machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores; "
        f"{len(jobs)} runs in {time.perf_counter() - began:.0f} s; date {time.strftime('%Y-%m-%d')}.",
        "",
        f"Medians over seeds 0–{args.seeds - 1} of steps to the target, each read off its curve's monotone fit. *Grid's "
        "interval*: evaluated as the oracle's grid runs are. *Search's grid*: on the search's evaluation grid (dense "
        "early), the whole run; *stopped as a trial*: the same curve cut where a search trial stops (three evaluations "
        "in a row past the target); *ratio*: the geometric mean over seeds of stopped over whole.",
        "",
        "| target | batch size | lr | schedule | grid's interval | search's grid, whole run | stopped as a trial | ratio |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for target in args.targets:
        for c in args.config:
            key = (c["batch_size"], c["lr"], c["schedule"])
            grid = [steps_to_target(r, target, hib, monotone=True) for r in runs[(*key, True)]]
            whole = [steps_to_target(r, target, hib, monotone=True) for r in runs[(*key, False)]]
            stopped = [as_search_reads(r, target, hib) for r in runs[(*key, False)]]
            pairs = [(s, w) for s, w in zip(stopped, whole) if math.isfinite(s) and math.isfinite(w)]
            ratio = math.exp(np.mean([math.log(s / w) for s, w in pairs])) if pairs else math.nan
            lines.append(f"| {target:g} | {c['batch_size']} | {c['lr']:g} | {c['schedule']} | {median(grid)} | "
                         f"{median(whole)} | {median(stopped)} | {ratio:.2f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

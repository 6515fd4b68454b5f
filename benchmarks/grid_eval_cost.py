"""What a stored grid's evaluations cost: the whole run's time / its training time, per batch size.

A tuner's cost is its wall time × cores, evaluations included; the grid's compute must count its evaluations too
(``scoring.grid_core_seconds``). Runs recorded since 2026-12-03 carry their whole time (``wall_s``); the stored
grids' runs carry only their training time (each curve's last point). This retrains, per batch size of a stored
grid, one of its runs (seed 0, the median LR index of its runs that did not diverge, its first schedule) exactly as
the grid ran it (same samples and evaluation interval, in the grid's worker processes and threads) and measures
whole / training time side by side in that run: a ratio, not an absolute time, so a slow hour of this shared
machine slows both alike. It writes ``reports/oracle/<task>/eval_cost.json``, which ``scoring.load_oracle`` reads.

    python benchmarks/grid_eval_cost.py     # the four stored grids -> reports/grid_eval_cost.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import autobs  # noqa: E402
from benchmarks.scoring import (EVAL_COST_FILE, ORACLE_DIR, RunRecord, grid_core_seconds,  # noqa: E402
                                train_in_worker, worker_pool)

TASKS = ("examples/digits_mlp.py", "examples/char_lm.py", "benchmarks/tasks/friedman_mlp.py",
         "benchmarks/unseen_tasks/rms_reg.py")
SPEC_KEYS = ("batch_size", "lr_index", "lr", "schedule", "seed", "samples", "eval_every_samples")


def representative_specs(stored: list[dict]) -> list[dict]:
    """Per batch size, one stored run's spec: seed 0, the first schedule, the median LR index of those that did
    not diverge (a diverged run stops early and evaluates less)."""
    schedule = stored[0]["schedule"]
    specs = []
    for b in sorted({r["batch_size"] for r in stored}):
        runs = sorted((r for r in stored if r["batch_size"] == b and r["seed"] == 0 and r["schedule"] == schedule
                       and not r["diverged"]), key=lambda r: r["lr_index"])
        if runs:
            specs.append({k: runs[len(runs) // 2][k] for k in SPEC_KEYS})
    return specs


def measure(task_path: str) -> dict:
    from benchmarks.oracle import read_runs

    task = autobs.load_task(task_path)
    folder = ORACLE_DIR / task.name
    settings = json.loads((folder / "settings.json").read_text())
    workers = max(1, (os.cpu_count() or 1) // settings["threads_per_run"])  # as the grid ran
    stored = read_runs(folder / "runs.jsonl")
    specs = representative_specs(stored)
    with worker_pool(task, workers) as pool:
        runs = list(pool.map(train_in_worker, specs))
    ratios = {r["batch_size"]: r["wall_s"] / r["curve"][-1]["seconds"] for r in runs}
    records = [RunRecord.from_dict(r) for r in stored]
    threads = settings["threads_per_run"]
    result = {
        "task": task.name,
        "wall_per_train": {str(b): ratios[b] for b in sorted(ratios)},
        "runs": [{"batch_size": r["batch_size"], "lr": r["lr"], "schedule": r["schedule"], "wall_s": r["wall_s"],
                  "train_s": r["curve"][-1]["seconds"], "evaluations": len(r["curve"])} for r in runs],
        "grid_training_core_seconds": grid_core_seconds(records, threads, evaluations=False),
        "grid_core_seconds": grid_core_seconds(records, threads, ratios),
        "command": "python benchmarks/grid_eval_cost.py " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
    }
    (folder / EVAL_COST_FILE).write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--out", default=str(ROOT / "reports/grid_eval_cost.md"))
    args = parser.parse_args()
    results = []
    for path in args.tasks:
        print(f"{path}: retraining one run per batch size", file=sys.stderr)
        results.append(measure(path))
    lines = [
        "# What the stored grids' evaluations cost",
        "",
        f"Command: `python benchmarks/grid_eval_cost.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU; torch {torch.__version__}  ",
        f"Date: {datetime.date.today().isoformat()}",
        "",
        __doc__.split("\n\n")[1].replace("\n", " "),
        "",
        "| task | batch size | lr | evaluations | training (s) | whole run (s) | whole / training |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for r in res["runs"]:
            lines.append(f"| {res['task']} | {r['batch_size']} | {r['lr']:.3g} | {r['evaluations']} | "
                         f"{r['train_s']:.2f} | {r['wall_s']:.2f} | {r['wall_s'] / r['train_s']:.2f} |")
    lines += ["", "| task | grid, training only (core-s) | grid, evaluations included (core-s) | ratio | median "
              "whole / training |", "|---|---:|---:|---:|---:|"]
    for res in results:
        lines.append(f"| {res['task']} | {res['grid_training_core_seconds']:.0f} | {res['grid_core_seconds']:.0f} | "
                     f"{res['grid_core_seconds'] / res['grid_training_core_seconds']:.2f} | "
                     f"{statistics.median(res['wall_per_train'].values()):.2f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

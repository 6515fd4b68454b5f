"""Grid-search oracle: train every config of a grid with autobs.train and score it against a target.

    python benchmarks/oracle.py examples/digits_mlp.py --target 0.95 \\
        --batch-sizes 16 32 64 128 256 512 1024 --lr-min 0.01 --lr-max 3.2 --schedules constant cosine

For each batch size (powers of two), a log grid of LRs (``--lr-per-decade`` points per decade), each
schedule and each seed, the task is trained for its planned epochs with validation every 1/``--evals``
of the run; every curve is kept, so steps-to-target can be read for any target later. When a batch
size's best LR sits on an edge of the LRs tried at it, the grid is widened there by one grid step and
the new LRs are run, up to ``--max-widen`` times.

The median step time at each batch size is measured once, in this process, before the grid runs (so
no other run competes for the cores), and gives ``time_to_target = steps_to_target × step_time``.
The grid runs in ``--workers`` processes sharing the cores. Each finished run is appended to
``runs.jsonl`` in the output folder as it ends: an interrupted grid continues where it stopped when the
same command is run again (changing the task, epochs or evaluation interval is refused).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
from concurrent.futures import as_completed
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(ROOT))

import autobs  # noqa: E402
from benchmarks.scoring import (OracleSummary, RunRecord, grid_core_seconds, summarize, threads_per_worker,  # noqa: E402
                                train_in_worker, worker_pool)


def lr_of(index: int, per_decade: int) -> float:
    """The grid's LRs are 10^(index/per_decade): integer indices make widening and resuming exact."""
    return float(f"{10 ** (index / per_decade):.6g}")


def measure_step_times(task: autobs.Task, batch_sizes, lr: float, timing_steps: int) -> dict[int, float]:
    """Median step time per batch size, measured one batch size after another in this process."""
    from autobs.training import TIMING_SKIP_STEPS

    times = {}
    for b in batch_sizes:
        steps = TIMING_SKIP_STEPS + timing_steps
        result = autobs.train(task, autobs.TrainConfig(batch_size=b, lr=lr), samples=steps * b, device="cpu",
                              eval_every_samples=steps * b)
        times[b] = result.step_time_s
        print(f"step time at batch {b}: {1000 * result.step_time_s:.2f} ms", file=sys.stderr)
    return times


def read_runs(path: Path) -> list[dict]:
    """Finished runs; a last line cut short by a kill is ignored (that run is redone)."""
    runs = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return runs


def append_run(path: Path, run: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(run) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run_grid(args: argparse.Namespace) -> OracleSummary:
    task = autobs.load_task(args.task)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    samples = (args.epochs or task.epochs) * len(task.train)
    settings = {"task_fingerprint": task.fingerprint, "samples": samples, "evals": args.evals,
                "threads_per_run": threads_per_worker(args.workers)}
    settings_path = out / "settings.json"
    if settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        sys.exit(f"error: {out} holds a grid for other settings ({settings_path.read_text().strip()}); "
                 f"use another --out or delete it.")
    settings_path.write_text(json.dumps(settings, indent=2))

    times_path = out / "step_times.json"
    if times_path.exists():
        step_times = {int(b): t for b, t in json.loads(times_path.read_text()).items()}
    else:
        step_times = {}
    missing = [b for b in args.batch_sizes if b not in step_times]
    if missing:
        mid = lr_of(round((args.lr_lo + args.lr_hi) / 2), args.lr_per_decade)
        step_times |= measure_step_times(task, missing, mid, args.timing_steps)
        times_path.write_text(json.dumps({str(b): t for b, t in sorted(step_times.items())}, indent=2))

    runs_path = out / "runs.jsonl"
    lr_indices = {b: set(range(args.lr_lo, args.lr_hi + 1)) for b in args.batch_sizes}
    for run in read_runs(runs_path):  # LRs added by earlier widening stay in the grid
        if run["batch_size"] in lr_indices:
            lr_indices[run["batch_size"]].add(run["lr_index"])
    summary = None
    with worker_pool(task, args.workers) as pool:
        for round_ in range(args.max_widen + 1):
            done = {(r["batch_size"], r["lr_index"], r["schedule"], r["seed"]) for r in read_runs(runs_path)}
            specs = [
                {"batch_size": b, "lr_index": k, "lr": lr_of(k, args.lr_per_decade), "schedule": s, "seed": seed,
                 "samples": samples, "eval_every_samples": max(b, samples // args.evals)}
                for b in args.batch_sizes for k in sorted(lr_indices[b]) for s in args.schedules for seed in args.seeds
                if (b, k, s, seed) not in done
            ]
            # Largest batches first: they are the quickest, so results start arriving early.
            specs.sort(key=lambda s: -s["batch_size"])
            print(f"round {round_}: {len(specs)} runs to do, {len(done)} done", file=sys.stderr)
            futures = [pool.submit(train_in_worker, spec) for spec in specs]
            try:
                for i, future in enumerate(as_completed(futures), 1):
                    run = future.result()
                    append_run(runs_path, run)
                    print(f"  [{i}/{len(specs)}] batch {run['batch_size']} lr {run['lr']} {run['schedule']} "
                          f"seed {run['seed']}: final {run['curve'][-1]['metric']:.4f}"
                          f"{' (diverged)' if run['diverged'] else ''}", file=sys.stderr)
            except KeyboardInterrupt:
                pool.shutdown(cancel_futures=True)
                sys.exit(f"interrupted; finished runs are in {runs_path}. Run the same command to continue.")
            records = [RunRecord.from_dict(r) for r in read_runs(runs_path) if r["batch_size"] in lr_indices
                       and r["schedule"] in args.schedules and r["seed"] in args.seeds]
            summary = summarize(records, step_times, args.target, task.higher_is_better)
            widened = False
            for row in summary.per_batch:
                k = next(i for i in lr_indices[row.batch_size] if lr_of(i, args.lr_per_decade) == row.lr)
                if k == min(lr_indices[row.batch_size]):
                    lr_indices[row.batch_size].add(k - 1)
                    widened = True
                elif k == max(lr_indices[row.batch_size]):
                    lr_indices[row.batch_size].add(k + 1)
                    widened = True
            if not widened:
                break
    return summary


def fmt(x: float, digits: int = 3) -> str:
    if math.isnan(x):
        return "–"
    return "never" if math.isinf(x) else f"{x:.{digits}g}"


def write_report(args: argparse.Namespace, summary: OracleSummary) -> None:
    task = autobs.load_task(args.task)
    out = Path(args.out)
    (out / "oracle.json").write_text(json.dumps(summary.to_dict(), indent=1, default=str))
    fit = summary.fit
    direction = "≥" if task.higher_is_better else "≤"
    lines = [
        f"# Grid-search oracle: `{Path(args.task).name}`",
        "",
        f"Command: `python benchmarks/oracle.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU, torch {torch.__version__}; "
        f"grid in {args.workers} worker processes, step times measured alone in one process  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Task: {len(task.train)} training / {len(task.val)} validation items, optimizer as in the task file, "
        f"{args.epochs or task.epochs} epochs per run, validation every 1/{args.evals} of the run; "
        f"seeds {args.seeds}; schedules {args.schedules} (no warmup); LRs on a grid of "
        f"{args.lr_per_decade} per decade, widened where a batch size's best LR was on an edge.  ",
        f"Target: validation {task.metric} {direction} {args.target} ({args.target_rule})  ",
        f"Runs and curves: `{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/runs.jsonl`; "
        f"grid compute {summary.grid_seconds:.0f} device-seconds (steps × the step times below), "
        f"{grid_core_seconds(map(RunRecord.from_dict, read_runs(out / 'runs.jsonl')), threads_per_worker(args.workers)):.0f} "
        "core-seconds as it ran, evaluations included (the unit of a tuner's cost, `scoring.grid_core_seconds`).",
        "",
        "| batch size | step time (ms) | LRs tried | best LR | schedule | steps to target | fit S(B) | "
        "log residual | time to target (s) | final " + task.metric + " |",
        "|---:|---:|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in summary.per_batch:
        tried = summary.lrs_tried[row.batch_size]
        edge = " (edge)" if summary.lr_on_edge(row.batch_size) else ""
        fitted = fit.steps_at(row.batch_size) if fit else math.nan
        residual = math.log(row.steps_to_target / fitted) if fit and math.isfinite(row.steps_to_target) else math.nan
        lines.append(
            f"| {row.batch_size} | {1000 * summary.step_time_s[row.batch_size]:.2f} | {min(tried):.3g}–{max(tried):.3g} "
            f"({len(tried)}) | {row.lr:.3g}{edge} | {row.schedule} | {fmt(row.steps_to_target)} | {fmt(fitted)} | "
            f"{'' if math.isnan(residual) else f'{residual:+.2f}'} | {fmt(row.time_to_target_s)} | "
            f"{row.final_metric:.4f} |"
        )
    lines.append("")
    if fit:
        lines.append(f"**S(B) fit** (McCandlish et al. 2018, eq. 2.11; log-space least squares over the batch sizes "
                     f"that reach the target): S_min = {fit.s_min:.1f} steps, **B_noise = {fit.b_noise:.0f}**, "
                     f"E_min = {fit.e_min:.0f} samples; RMS log residual "
                     f"{math.sqrt(sum(r * r for r in fit.residuals) / len(fit.residuals)):.3f}.")
    else:
        lines.append("**S(B) fit**: fewer than two batch sizes reach the target; no fit.")
    if summary.best:
        b = summary.best
        lines.append("")
        lines.append(f"**Oracle's best config**: batch size {b.batch_size}, lr {b.lr:g}, schedule {b.schedule}: "
                     f"{fmt(b.steps_to_target)} steps, {b.time_to_target_s:.3f} s to the target.")
    if args.fixed_lr_check:
        lines += fixed_lr_check(summary, args, task)
    (Path(args.report)).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.report} and {out / 'oracle.json'}", file=sys.stderr)


def fixed_lr_check(summary: OracleSummary, args, task) -> list[str]:
    """The classic large-batch experiment: at a fixed LR, a larger batch (same epochs, so fewer steps)
    ends worse; raising the LR about 10x should recover it. Read from the grid, per schedule."""
    small, large, lr = int(args.fixed_lr_check[0]), int(args.fixed_lr_check[1]), args.fixed_lr_check[2]
    k = round(math.log10(lr) * args.lr_per_decade)
    lr, lr10 = lr_of(k, args.lr_per_decade), lr_of(k + args.lr_per_decade, args.lr_per_decade)
    by_key = {(c.batch_size, c.lr, c.schedule): c for c in summary.configs}
    epochs = args.epochs or task.epochs
    lines = ["", f"**Fixed-LR check** (same {epochs} epochs for every row, so fewer steps at the larger batch; "
                 "metrics are means over seeds):", "",
             f"| schedule | batch size | lr | steps | final {task.metric} | best {task.metric} | steps to target |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    findings = []
    for schedule in args.schedules:
        cells = [by_key.get((b, l, schedule)) for b, l in ((small, lr), (large, lr), (large, lr10))]
        for (b, l), c in zip(((small, lr), (large, lr), (large, lr10)), cells):
            steps = round(epochs * len(task.train) / b)
            lines.append(f"| {schedule} | {b} | {l:.3g} | {steps} | " + (
                f"{c.final_metric:.4f} | {c.best_metric:.4f} | {fmt(c.steps_to_target)} |" if c else "not in the grid | | |"))
        if all(cells):
            a, b_, c = cells
            findings.append(
                f"{schedule}: batch {small} → {large} at lr {lr:.3g} takes the final {task.metric} from "
                f"{a.final_metric:.3f} to {b_.final_metric:.3f}; at lr {lr10:.3g} batch {large} ends at "
                f"{c.final_metric:.3f} (best during the run {c.best_metric:.3f})."
            )
    if findings:
        lines += ["", "What the data show: " + " ".join(findings)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task")
    parser.add_argument("--target", type=float, required=True, help="validation metric value to reach")
    parser.add_argument("--target-rule", default="chosen so the best runs reach it in tens to hundreds of steps",
                        help="how the target was chosen, for the report")
    parser.add_argument("--batch-sizes", type=int, nargs="+", required=True)
    parser.add_argument("--lr-min", type=float, required=True)
    parser.add_argument("--lr-max", type=float, required=True)
    parser.add_argument("--lr-per-decade", type=int, default=2)
    parser.add_argument("--schedules", nargs="+", default=["constant"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, help="training length (default: the task's epochs)")
    parser.add_argument("--evals", type=int, default=50, help="validation points per run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-widen", type=int, default=3)
    parser.add_argument("--timing-steps", type=int, default=20)
    parser.add_argument("--fixed-lr-check", nargs=3, type=float, metavar=("B_SMALL", "B_LARGE", "LR"))
    parser.add_argument("--out", help="folder for runs.jsonl etc. (default reports/oracle/<task>)")
    parser.add_argument("--report", help="markdown table (default reports/oracle_<task>.md)")
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("use two or more seeds")
    stem = Path(args.task).stem
    args.out = args.out or str(ROOT / "reports/oracle" / stem)
    args.report = args.report or str(ROOT / f"reports/oracle_{stem}.md")
    args.lr_lo = round(math.log10(args.lr_min) * args.lr_per_decade)
    args.lr_hi = round(math.log10(args.lr_max) * args.lr_per_decade)
    summary = run_grid(args)
    write_report(args, summary)


if __name__ == "__main__":
    main()

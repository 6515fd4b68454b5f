"""Rescore the configs of a stored whole-recommendation report on many seeds (``scoring.many_seed_oracle``).

``benchmarks/recommend.py --many-seeds`` does the same for a new run; this reads the configs a run of it already
recommended (its ``.json``), so that a table made before the many-seed oracle existed can be read against it
without running the tuners again:

    python benchmarks/many_seeds.py reports/recommend_leaders_4d4e139.json --tasks digits_mlp \\
        --out reports/many_seeds_leaders_4d4e139.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import autobs  # noqa: E402
import torch  # noqa: E402
from benchmarks.recommend import DEFAULT_TASKS, _monotone_best, _relative, fmt, many_seed_scores  # noqa: E402
from benchmarks.scoring import CONTENDERS, MANY_SEEDS, load_oracle  # noqa: E402


def rescore(result: dict, task_path: str, seeds: tuple[int, ...]) -> dict:
    """``result`` (one task of a recommend report's JSON, its ``oracle`` added) with every row scored on
    ``seeds``."""
    runs = result["autobs"]
    by_tuner = {run["row"]["tuner"]: run["row"] for run in runs}  # the JSON holds two copies of autobs's rows
    rows = [by_tuner.get(row["tuner"], row) for row in result["rows"]]
    return result | {"rows": rows, "many_seeds": many_seed_scores(autobs.load_task(task_path), result["oracle"], rows,
                                                                  runs, result["step_time_now_s"], seeds)}


def report(args: argparse.Namespace, results: list[dict]) -> str:
    source, n = args.source, args.seeds
    lines = [
        f"# Whole recommendation rescored on {n} seeds",
        "",
        f"Command: `python benchmarks/many_seeds.py {_relative(source)}"
        f"{' --tasks ' + ' '.join(args.tasks) if args.tasks else ''}"
        f"{f' --seeds {n}' if n != len(MANY_SEEDS) else ''} --out {_relative(args.out)}`  ",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, CPU; torch {torch.__version__}  ",
        f"Date: {time.strftime('%Y-%m-%d')}  ",
        f"The configs `{_relative(source)}` recommended, each retrained like the grid's runs on seeds "
        f"0–{n - 1} (the median over them), against each batch size's {CONTENDERS} best grid "
        f"configs retrained on the same seeds (`scoring.many_seed_oracle` says why: with the grid's two seeds one "
        "config's read scatters by more than the 15% a regret goal tolerates, and the grid's best is the least of "
        "~40 such reads). Regret uses the grid's step times, as the source table's does; *regret, 2 seeds* is the "
        "source table's; *step times of the source run*: the same with the step times the source run measured at "
        "its start (`recommend.step_times_now`), the oracle's best re-chosen with them; *the same, monotone read*: "
        "with every curve, the config's and the oracle's, read at the crossing of its monotone fit (as autobs reads "
        "its trials) instead of at the first evaluation past the target, which moves a read by up to one "
        "evaluation interval (1/50 of a run).",
        "",
    ]
    for r in results:
        many = r["many_seeds"]
        b, lr, schedule = many["best"]
        lines += [
            f"## `{r['task']}` — target {r['oracle']['target']:g}",
            "",
            f"On {n} seeds the oracle's best is batch {b}, lr {lr:.3g}, {schedule}, {many['best_s']:.3g} s "
            f"(on the grid's 2 seeds: batch {r['oracle']['best']['batch_size']}, lr {r['oracle']['best']['lr']:.3g}, "
            f"{r['oracle']['best']['time_to_target_s']:.3g} s); fewest steps per batch size "
            + ", ".join(f"{k}: {fmt(v, 'g')}" for k, v in many["steps"].items())
            + f"; B_noise {fmt(many['b_noise'], '.0f')} (grid, 2 seeds: {r['oracle']['fit']['b_noise']:.0f}), "
            f"{fmt(many['b_noise_monotone'], '.0f')} read as autobs reads. {_monotone_best(many)}",
            "",
            f"| tuner | batch size | lr | schedule | regret, 2 seeds | steps, {n} seeds "
            f"| regret, {n} seeds | regret, {n} seeds, step times of the source run "
            f"| the same, monotone read | B_noise | the {n}-seed oracle's at its target | ratio |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        b_noise = {run["row"]["tuner"]: (run["rec"]["critical_batch_size"] or math.nan,
                                         run["oracle_b_noise_many_at_own_target"]) for run in r["autobs"]}
        for row in r["rows"]:
            mine, theirs = b_noise.get(row["tuner"], (math.nan, math.nan))
            lines.append(f"| {row['tuner']} | {row['batch_size']} | {fmt(row['lr'])} | {row['schedule']} "
                         f"| {fmt(row['regret'], '.2f')} | {fmt(row['steps_many'], 'g')} | {fmt(row['regret_many'], '.2f')} "
                         f"| {fmt(row['regret_many_now'], '.2f')} | {fmt(row['regret_many_monotone'], '.2f')} "
                         f"| {fmt(mine, '.0f')} | {fmt(theirs, '.0f')} | {fmt(mine / theirs, '.2f')} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a recommend report's .json (benchmarks/recommend.py)")
    parser.add_argument("--tasks", nargs="+", help="task names to rescore (default: all in the report)")
    parser.add_argument("--seeds", type=int, default=len(MANY_SEEDS),
                        help=f"retrain on seeds 0..N-1 (default {len(MANY_SEEDS)}; oracle runs are kept and reused)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    paths = {Path(p).stem: p for p in DEFAULT_TASKS}
    results = [r for r in json.loads(Path(args.source).read_text()) if not args.tasks or r["task"] in args.tasks]
    results = [rescore(r | {"oracle": load_oracle(r["task"])}, paths[r["task"]], tuple(range(args.seeds)))
               for r in results]
    text = report(args, results)
    Path(args.out).write_text(text + "\n")
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        [{k: v for k, v in r.items() if k != "oracle"} for r in results], indent=2, default=str))
    print(text)


if __name__ == "__main__":
    main()

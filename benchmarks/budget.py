"""Does `autobs recommend` keep to its --budget? Wall time of the whole command, from the shell's start of the
process to its exit, against the budget it was given (issue 7: "the budget is respected within 10%").

    python benchmarks/budget.py                                  # the runs below, table to reports/budget.md
    python benchmarks/budget.py --runs examples/digits_mlp.py:41s

Each run is `autobs recommend <task> --budget <b> --fresh` in its own process, in a fresh run directory, one at
a time, so that the wall time includes everything a user waits for: loading Python, torch and the task, every
stage, the report and the interpreter's exit. The stage times are the command's own progress lines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autobs.units import parse_duration  # noqa: E402

# 41 s is the benchmark's digits budget (15% of the grid's compute on 2 cores), where a fixed overhead weighs most;
# 5m is the cap of a run without --budget (the runs here give one: wall time is judged against it);
# char_lm's step is 10x digits', so its trials end later past a deadline.
DEFAULT_RUNS = ("examples/digits_mlp.py:41s", "examples/digits_mlp.py:2m", "examples/digits_mlp.py:5m",
                "examples/char_lm.py:2m")
STAGE_LINE = re.compile(r"^\[(\d+) s of (?:at most )?\d+ s\] (.+) done in ([\d.]+) s$")


def run_once(task: str, budget: str, out: Path) -> dict:
    """``autobs recommend`` in its own process; ``budget`` "default": without --budget (at most its 5-minute cap)."""
    from autobs.pipeline import DEFAULT_BUDGET_S

    default = budget == "default"
    command = [sys.executable, "-m", "autobs", "recommend", task, *([] if default else ["--budget", budget]),
               "--out", str(out), "--fresh", "--json"]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - began
    stages = {m.group(2): float(m.group(3)) for line in done.stderr.splitlines() if (m := STAGE_LINE.match(line))}
    trials = len(json.loads((out / "trials.json").read_text())["trials"]) if (out / "trials.json").exists() else 0
    return {"task": Path(task).stem, "budget_s": DEFAULT_BUDGET_S if default else parse_duration(budget),
            "wall_s": wall, "exit": done.returncode, "stages": stages, "trials": trials, "error": done.stderr[-2000:] if done.returncode else None,
            "recommendation": json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else None}


def table(rows: list[dict]) -> str:
    lines = ["| task | budget (s) | wall (s) | wall / budget | exit | trials | stages (s) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items())
        lines.append(f"| {r['task']} | {r['budget_s']:.0f} | {r['wall_s']:.1f} | {r['wall_s'] / r['budget_s']:.3f} "
                     f"| {r['exit']} | {r['trials']} | {stages} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), help="task:budget pairs")
    parser.add_argument("--out", default=str(ROOT / "reports" / "budget.md"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, spec in enumerate(args.runs):
            task, budget = spec.rsplit(":", 1)
            rows.append(run_once(task, budget, Path(tmp) / f"run{i}"))
            r = rows[-1]
            print(f"{spec}: wall {r['wall_s']:.1f} s, exit {r['exit']}, {r['trials']} trials", file=sys.stderr)
    worst = max(r["wall_s"] / r["budget_s"] for r in rows)
    text = "\n".join([
        "# `autobs recommend` against its --budget",
        "",
        f"Command: `{' '.join(['python benchmarks/budget.py', *sys.argv[1:]])}`  ",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, CPU; Python "
        f"{platform.python_version()}  ",
        f"Date: {time.strftime('%Y-%m-%d')}",
        "",
        "Each run is `autobs recommend <task> --budget <b> --fresh --json` in its own process, one at a time; wall is "
        "from the process's start to its exit (loading torch and the task, every stage, the report, the exit). "
        "Stages as the command's progress lines print them.",
        "",
        table(rows),
        "",
        f"Worst wall / budget: {worst:.3f} (the goal: at most 1.10).",
        "",
    ])
    Path(args.out).write_text(text)
    print(text)
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

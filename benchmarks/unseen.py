"""`autobs recommend` on task files written apart from the examples, each with something the examples do not
have: what a user's model file brings that autobs was not tuned on.

    python benchmarks/unseen.py                       # every file in benchmarks/unseen_tasks/, table to reports/unseen.md
    python benchmarks/unseen.py --budget 5m --tasks benchmarks/unseen_tasks/heavy_cnn.py

Each run is `autobs recommend <task> --fresh --json` (with ``--budget <b>`` when given) in its own process
(``budget.run_once``). There
is no grid search behind these tasks: the table says whether the command ends with a recommendation or a clear
error, within its budget, and what it recommends with which notes; a traceback, an estimate outside its own
interval, or a silent answer read off noise is what it is run to catch. Each file's docstring says what it brings.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.budget import run_once  # noqa: E402

TASKS = ROOT / "benchmarks" / "unseen_tasks"
# The pipeline's stages (Recommendation.stage_seconds), as the table names them
STAGE_LABELS = {"memory probe": "probe", "LR range test": "range test", "noise scale": "noise",
                "joint search": "search", "scaling fit": "fit"}


def what_it_brings(path: Path) -> str:
    return (ast.get_docstring(ast.parse(path.read_text())) or "").split("\n")[0]


def row(path: Path, r: dict) -> str:
    rec = r["recommendation"]
    if rec is None:
        lines = (r["error"] or "").strip().splitlines()
        error = next((line for line in reversed(lines) if line.startswith("error:")), lines[-1] if lines else "")
        answer = f"exit {r['exit']}: {error}"
        notes = stages = ""
    else:
        lo, hi = rec["critical_batch_size_interval"] or (None, None)
        b_noise = (f"{rec['critical_batch_size']:.3g} ({lo:.3g}–{hi:.3g})" if rec["critical_batch_size"] and lo
                   else "not fitted")
        answer = (f"batch {rec['batch_size']}, lr {rec['lr']:.3g}, {rec['schedule']}, warmup {rec['warmup_steps']} "
                  f"of {rec['total_steps']} steps; {rec['metric']} target {rec['target']:.4g}; B_noise {b_noise}")
        notes = "; ".join(rec["notes"])
        # where the wall time went (pipeline's stages; the rest is start-up, the report and the exit)
        stages = ", ".join(f"{STAGE_LABELS[k]} {v:.0f}" for k, v in rec["stage_seconds"].items() if k in STAGE_LABELS)
    return (f"| {path.stem} | {what_it_brings(path)} | {r['budget_s']:.0f} | {r['wall_s']:.0f} | {stages} | "
            f"{r['trials']} | {answer} | {notes} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=sorted(str(p) for p in TASKS.glob("*.py")))
    parser.add_argument("--budget", default="default",
                        help="e.g. 2m; default: none given (the search sized to the task, the run within 5 minutes)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "unseen.md"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, task in enumerate(args.tasks):
            r = run_once(task, args.budget, Path(tmp) / f"run{i}")
            print(f"{Path(task).stem}: exit {r['exit']}, wall {r['wall_s']:.0f} s, {r['trials']} trials", file=sys.stderr)
            rows.append(row(Path(task), r))
    text = "\n".join([
        "# `autobs recommend` on task files it was not tuned on",
        "",
        f"Command: `{' '.join(['python benchmarks/unseen.py', *sys.argv[1:]])}`  ",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, CPU; Python "
        f"{platform.python_version()}  ",
        f"Date: {time.strftime('%Y-%m-%d')}",
        "",
        f"Each run is `autobs recommend <task>{'' if args.budget == 'default' else ' --budget <b>'} --fresh --json` in "
        "its own process, one at a time (the budget column: without --budget, the 5-minute cap). No grid "
        "search stands behind these tasks: the table shows that each ends with a recommendation or a clear error, "
        "within its budget, and what it says.",
        "",
        "| task | what it brings | budget (s) | wall (s) | stages (s) | trials | answer | notes |",
        "|---|---|---:|---:|---|---:|---|---|",
        *rows,
        "",
    ])
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

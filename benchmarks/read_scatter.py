"""How much one steps-to-target read scatters between seeds of one config, at each batch size.

Each (batch size, LR) of digits is trained with ``--seeds`` seeds, evaluated after every step up to a few times
its crossing; each curve is then read as the search reads a trial (the points of the search's own evaluation
grid, stopped at the crossing's confirmation, ``scaling.CrossingWatch``, read off the monotone fit) and off the
every-step curve. The log-sd of those reads is the noise every S(B) point carries (``replicate.py``,
``scaling.py``): it is why the search reruns its leaders and why batch 16 is the hardest size to place.

    python benchmarks/read_scatter.py                    # digits, 12 seeds, target 0.9456 (~2 min on 2 cores)
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autobs.scaling import CONFIRM_EVALS, reached, steps_to_target  # noqa: E402
from autobs.task import load_task  # noqa: E402
from autobs.training import TrainConfig, train  # noqa: E402

# Near each size's best LR on the oracle's grid (reports/oracle_digits_mlp.md), cosine, and how far to run.
CONFIGS = {16: (0.316, 400), 32: (0.5, 250), 64: (0.7, 160), 128: (1.0, 110), 256: (1.0, 80)}


def search_grid(task, batch_size: int, samples: int) -> list[int]:
    """The steps a search trial at ``batch_size`` evaluates at (the training loop's default grid)."""
    run = train(task, TrainConfig(batch_size=batch_size, lr=0.1), samples=samples, seed=0,
                callback=lambda p: p.step >= 2000)
    return [p.step for p in run.curve]


def read_as_search(curve: list[tuple[int, float]], grid: list[int], target: float, past: float = 1.0) -> float:
    """The crossing the search reads: the grid's points up to ``past`` times the step of the crossing's
    confirmation (1: the trial stops there), off their monotone fit."""
    metric = dict(curve)
    points, streak, stop_at = [], 0, math.inf
    for step in grid:
        if step not in metric or step > stop_at:
            continue
        points.append({"steps": step, "metric": metric[step]})
        streak = streak + 1 if step > 0 and reached(metric[step], target, True) else 0
        if streak >= CONFIRM_EVALS and stop_at == math.inf:
            stop_at = past * step
    return steps_to_target(points, target, True, monotone=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--target", type=float, default=0.9456, help="accuracy (autobs's own target on digits)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "read_scatter.md")
    args = parser.parse_args()
    task = load_task(str(ROOT / "examples" / "digits_mlp.py"))
    samples = task.epochs * len(task.train)
    rows = []
    for b, (lr, stop) in CONFIGS.items():
        grid = search_grid(task, b, samples)
        search_reads, uncut_reads, dense_reads = [], [], []
        for seed in range(args.seeds):
            run = train(task, TrainConfig(batch_size=b, lr=lr, schedule="cosine"), samples=samples, seed=seed,
                        eval_every_samples=b, callback=lambda p, stop=stop: p.step >= stop)
            curve = [(p.step, p.metric) for p in run.curve]
            search_reads.append(read_as_search(curve, grid, args.target))
            uncut_reads.append(read_as_search(curve, grid, args.target, past=math.inf))
            dense_reads.append(steps_to_target([{"steps": s, "metric": m} for s, m in curve], args.target, True,
                                               monotone=True))
        rows.append((b, lr, search_reads, uncut_reads, dense_reads))
        print(f"batch {b}: done", file=sys.stderr)

    def summary(reads: list[float]) -> str:
        r = np.array(reads, dtype=float)
        fin = r[np.isfinite(r)]
        sd = float(np.std(np.log(fin), ddof=1)) if len(fin) > 2 else math.nan
        return f"{np.median(r):.0f} | {fin.min():.0f}–{fin.max():.0f} | {sd:.2f}"

    lines = [
        "# Steps-to-target: the scatter of one read between seeds",
        "",
        f"Command: `python benchmarks/read_scatter.py --seeds {args.seeds} --target {args.target:g}`  ",
        f"Task: examples/digits_mlp.py, accuracy {args.target:g}; {args.seeds} seeds a config, cosine, every-step "
        "evaluation up to a few times the crossing.",
        "",
        "| batch size | lr | as the search reads: median | range | log-sd | the search's points, not stopped: median "
        "| range | log-sd | every step, monotone: median | range | log-sd |",
        "|---:|---:|---:|---|---:|---:|---|---:|---:|---|---:|",
    ]
    lines += [f"| {b} | {lr:g} | {summary(s)} | {summary(u)} | {summary(d)} |" for b, lr, s, u, d in rows]
    lines += ["", "The search's read stops at the crossing's confirmation; *not stopped* reads the search's evaluation "
              "points up to the run's end, and *every step* the same runs evaluated after every step: how much of the "
              "scatter is the seed's and how much the reading's."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

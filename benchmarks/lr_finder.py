"""LR finders against the grid-search oracle: autobs vs Lightning ``lr_find`` vs ``torch-lr-finder``.

    python benchmarks/lr_finder.py          # writes reports/lr_finder.md

On each example, at the oracle's best batch size, each tool's suggested LR as a ratio to the oracle's
best LR at that batch size (reports/oracle/<task>/oracle.json, from benchmarks/oracle.py), with the
sweep steps each used. All three sweep the same range (1e-7 to 10, 100 steps, exponential) so that only
the reading of the curve differs. Then the LR-vs-batch exponent α: autobs's fit over its range tests
against a least-squares fit of log(best LR) on log(B) over the oracle's batch sizes that reached the
target.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import autobs  # noqa: E402
from autobs.lr_range import (  # noqa: E402
    LR_MAX, LR_MIN, SWEEP_STEPS, default_batch_sizes, lr_exponent, noise_power, noise_shaped_lr_at, range_level,
)
from autobs.noise import noise_scale  # noqa: E402
from autobs.task import TensorData  # noqa: E402
from benchmarks.scoring import load_oracle, refine_lr  # noqa: E402

EXAMPLES = ["examples/digits_mlp.py", "examples/char_lm.py"]


def _loader(task: autobs.Task, batch_size: int):
    from torch.utils.data import DataLoader, TensorDataset

    data = task.train
    dataset = TensorDataset(data.inputs, data.targets) if isinstance(data, TensorData) else data.dataset
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)


def lightning_lr(task: autobs.Task, batch_size: int) -> tuple[float, int]:
    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner

    from benchmarks.peers import _lightning_module

    torch.manual_seed(0)
    module = _lightning_module(task, batch_size, LR_MIN)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=10**6, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tempfile.mkdtemp())
    finder = Tuner(trainer).lr_find(module, min_lr=LR_MIN, max_lr=LR_MAX, num_training=SWEEP_STEPS)
    lr = finder.suggestion()
    return (math.nan if lr is None else float(lr)), len(finder.results["lr"])


def torch_lr_finder_lr(task: autobs.Task, batch_size: int) -> tuple[float, int]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder

    torch.manual_seed(0)
    model = task.model()
    finder = LRFinder(model, task.optimizer(model.parameters(), LR_MIN), task.loss, device="cpu")
    finder.range_test(_loader(task, batch_size), end_lr=LR_MAX, num_iter=SWEEP_STEPS)
    fig, ax = plt.subplots()
    _, lr = finder.plot(ax=ax, suggest_lr=True)  # its steepest-gradient suggestion
    plt.close(fig)
    return float(lr), len(finder.history["lr"])


def oracle_alpha(per_batch: list[dict]) -> float:
    rows = [(r["batch_size"], r["lr"]) for r in per_batch if r["steps_to_target"] is not None
            and math.isfinite(r["steps_to_target"])]
    x, y = np.log([b for b, _ in rows]), np.log([lr for _, lr in rows])
    return float(np.polyfit(x, y, 1)[0])


def _distance(ratios: list[float]) -> tuple[float, float]:
    """Mean |log10 ratio| (∞ if any suggestion is missing or not positive) and the worst ratio."""
    def far(r: float) -> float:
        return abs(math.log10(r)) if math.isfinite(r) and r > 0 else math.inf
    return sum(map(far, ratios)) / len(ratios), max(ratios, key=far)


def main() -> None:
    lines = [
        "# LR finders vs the grid-search oracle",
        "",
        "Command: `python benchmarks/lr_finder.py`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU only; torch {torch.__version__}  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Every tool sweeps {LR_MIN:g} to {LR_MAX:g} over {SWEEP_STEPS} exponential steps at the oracle's best batch "
        "size; ratio = suggestion / oracle's best LR at that batch size (1 is perfect), against the grid's best "
        "(2 LRs per decade, so known only within about 1.8x either way) and against the refined best (the grid "
        "made twice as fine around its best: the module docstring says how).",
        "",
        "| example | batch size | oracle best LR: grid / refined | tool | suggestion | ratio: grid / refined "
        "| training steps |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    refine_lines = []
    alpha_rows, ratios = [], {}
    for path in EXAMPLES:
        task = autobs.load_task(ROOT / path)
        oracle = load_oracle(task.name)
        best_b = oracle["best"]["batch_size"]
        best_lr = next(r["lr"] for r in oracle["per_batch"] if r["batch_size"] == best_b)
        sizes = sorted(set(default_batch_sizes(task)) | {best_b})
        result = autobs.lr_range_test(task, sizes, device="cpu", progress=True)
        curve = next(c for c in result.curves if c.batch_size == best_b)
        # What `autobs recommend` centres its search on: the range tests' level, the noise scale's shape.
        noise = noise_scale(task, lr=range_level(result.suggestions), device="cpu")
        with torch.random.fork_rng(devices=[]):
            power = noise_power(task.optimizer(task.model().parameters(), 1e-3))
        shaped = lambda b: noise_shaped_lr_at(result.suggestions, noise.b_simple, power, b)  # noqa: E731
        all_steps = sum(len(c.lrs) for c in result.curves) + noise.points[-1].step
        tools = {"autobs (this size's range test)": (curve.suggestion, len(curve.lrs)),
                 "autobs (range tests + noise scale)": (shaped(best_b), all_steps),
                 "lightning lr_find": lightning_lr(task, best_b),
                 "torch-lr-finder": torch_lr_finder_lr(task, best_b)}
        refined_lr, _, refined_steps = refine_lr(task, oracle, best_b)
        refine_lines.append(f"| {task.name} | {best_b} | " + ", ".join(
            f"{lr:.3g}: {s:.1f}" if math.isfinite(s) else f"{lr:.3g}: never" for lr, s in refined_steps.items())
            + f" | {best_lr:.3g} | {refined_lr:.3g} |")
        for tool, (lr, steps) in tools.items():
            ratio, refined_ratio = lr / best_lr, lr / refined_lr
            ratios.setdefault(tool, []).append((ratio, refined_ratio))
            lines.append(f"| {task.name} | {best_b} | {best_lr:.3g} / {refined_lr:.3g} | {tool} | {lr:.3g} | "
                         f"{ratio:.2f} / {refined_ratio:.2f} | {steps} |")
            print(f"{task.name} {tool}: {lr:.3g} ({ratio:.2f}x the grid's best, {refined_ratio:.2f}x the refined "
                  f"best, {steps} steps)", file=sys.stderr)
        rules = ", ".join(f"{name} {lr / best_lr:.2f}x" for name, lr in curve.rules.items())
        oracle_lr = {r["batch_size"]: r["lr"] for r in oracle["per_batch"] if math.isfinite(r["steps_to_target"])}
        per_size = "; ".join(f"{b}: {result.suggestions[b] / oracle_lr[b]:.2f}x / {shaped(b) / oracle_lr[b]:.2f}x"
                             for b in sizes if b in oracle_lr)
        alpha_rows.append(
            f"| {task.name} | {', '.join(map(str, sizes))} | {result.lr_scaling_exponent:.2f} ± "
            f"{result.lr_scaling_exponent_stderr:.2f} | {lr_exponent(shaped, sizes):.2f} (B_simple {noise.b_simple:.3g}) | "
            f"{oracle_alpha(oracle['per_batch']):.2f} | {rules} | {per_size} |"
        )
    lines += ["", "Steps to the target at the oracle's best batch size on the refined LR grid (median over the grid's "
              "seeds; the best config's schedule), and the best LR on each grid:", "",
              "| example | batch size | lr: steps to target | grid's best | refined best |", "|---|---:|---|---:|---:|",
              *refine_lines]
    lines += ["", "Distance from the oracle, |log₁₀ ratio| averaged over the examples (0 is perfect), against the "
              "grid's best / the refined best:", ""]
    lines += ["| tool | mean abs log10 ratio | worst ratio |", "|---|---:|---:|"]
    for tool, pairs in ratios.items():
        cells = [_distance([pair[i] for pair in pairs]) for i in (0, 1)]
        lines.append(f"| {tool} | {cells[0][0]:.2f} / {cells[1][0]:.2f} | {cells[0][1]:.2f} / {cells[1][1]:.2f} |")
    lines += [
        "",
        "LR-vs-batch exponent α in lr*(B) ∝ B^α: autobs's weighted fit over its range tests (± standard error), the "
        "slope of the noise-shaped LR over the same sizes (what the search is centred on), and a least-squares fit "
        "over the oracle's best LR per batch size (batch sizes that reached the target). Then each classic rule's "
        "reading at the oracle's best batch size, and at every range-test size the oracle reached the target with, "
        "the ratio to the oracle's best LR there: the range test's own suggestion / the noise-shaped LR.",
        "",
        "| example | range-test batch sizes | α range tests | α noise-shaped | α oracle | rules at the best batch size "
        "| ratio per size: range test / noise-shaped |",
        "|---|---|---:|---:|---:|---|---|",
        *alpha_rows,
    ]
    out = ROOT / "reports/lr_finder.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

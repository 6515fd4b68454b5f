"""Samples/s of autobs.train against a bare hand-written PyTorch loop, side by side in one run.

Both train the same fresh model of a task file on the same tensors, same optimizer, same number of
samples; runs alternate (bare, autobs, autobs with default evaluation, bare, ...) so machine noise hits
all alike, and the median over repeats is reported. Throughput is samples trained / wall time of the
whole call, model construction included. Two autobs variants:

- "autobs.train": validation only before the first and after the last step, i.e. the same work as the
  bare loop plus one evaluation: this is the loop's overhead (goal: < 10%).
- "autobs.train, default evaluation": ~20 validation passes over the run and the early ones before them
  (``training.EARLY_EVAL_SHARE``), as the stages use it. That is
  extra work the bare loop does not do, shown so its cost is known, not counted as overhead.

    python benchmarks/train_overhead.py                     # writes reports/train_overhead.md
    python benchmarks/train_overhead.py --device cuda --out reports/train_overhead_cuda.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import autobs

ROOT = Path(__file__).resolve().parents[1]


def bare_loop(task: autobs.Task, batch_size: int, lr: float, samples: int, device: torch.device) -> None:
    """What a user would write by hand: index tensors, forward, loss, backward, step."""
    torch.manual_seed(0)
    model = task.model().to(device)
    opt = task.optimizer(model.parameters(), lr)
    inputs, targets = task.train.inputs.to(device), task.train.targets.to(device)
    generator = torch.Generator().manual_seed(0)
    n, steps = len(inputs), round(samples / batch_size)
    done = 0
    while done < steps:
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            loss = task.loss(model(inputs[idx]), targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default=str(ROOT / "examples/digits_mlp.py"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 512])
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=10, help="training length of each run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(ROOT / "reports/train_overhead.md"))
    args = parser.parse_args()

    task = autobs.load_task(args.task)
    device = autobs.resolve_device(args.device)
    samples = args.epochs * len(task.train)
    rows = []
    for batch_size in args.batch_sizes:
        config = autobs.TrainConfig(batch_size=batch_size, lr=args.lr)
        variants = {
            "bare loop": lambda: bare_loop(task, batch_size, args.lr, samples, device),
            "autobs.train": lambda: autobs.train(task, config, samples=samples, device=device,
                                                 eval_every_samples=samples),
            "autobs.train, default evaluation": lambda: autobs.train(task, config, samples=samples, device=device),
        }
        for fn in variants.values():  # warm-up: first-call costs (allocator, kernels) outside the timing
            fn()
        seconds = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, fn in variants.items():
                seconds[name].append(timed(fn))
        steps = round(samples / batch_size)
        bare = statistics.median(seconds["bare loop"])
        for name, values in seconds.items():
            med = statistics.median(values)
            rows.append((batch_size, name, steps * batch_size / med, med / bare - 1, min(values), max(values)))
            print(f"batch {batch_size:>5}  {name:<34} {steps * batch_size / med:>9.0f} samples/s  "
                  f"{100 * (med / bare - 1):+6.1f}%", file=sys.stderr)

    lines = [
        "# autobs.train overhead against a bare PyTorch loop",
        "",
        f"Command: `python benchmarks/train_overhead.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Task: `{Path(args.task).name}`, {len(task.train)} training items, {args.epochs} epochs per run "
        f"({samples} samples), lr {args.lr}, median of {args.repeats} alternating repeats.",
        "",
        "| batch size | loop | samples/s (median) | vs bare loop | run time min–max (s) |",
        "|---:|---|---:|---:|---:|",
    ]
    for batch_size, name, rate, overhead, lo, hi in rows:
        lines.append(f"| {batch_size} | {name} | {rate:,.0f} | {100 * overhead:+.1f}% | {lo:.2f}–{hi:.2f} |")
    lines += [
        "",
        "\"vs bare loop\" is the median wall time relative to the bare loop's (positive = slower). The",
        "`autobs.train` row evaluates only before and after training, doing the bare loop's work plus",
        "bookkeeping (step timing, loss read-back for the divergence check, LR schedule, curve); the",
        "default-evaluation row adds ~20 validation passes and the early ones before them (up to 16 more, at most",
        "5% of the run's compute), which is extra work, not loop overhead.",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

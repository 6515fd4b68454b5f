"""The step time t(B) the recommendation uses, against step times measured side by side in one run.

The recommendation compares time-to-target S(B)·t(B) between neighbouring powers of two, so what matters is
the ratio t(2B)/t(B). For each task: the memory probe's step-time model (``StepTimeModel.from_probes``) as
``autobs recommend`` builds it (the ceiling search's sizes and every power of two below the ceiling), and as it
was before 2026-12-03 (the ceiling search's sizes alone, 2, 16, 128 and the ceiling, log-log between them),
each against a reference: the median of ``PASSES`` passes of ``TIMED`` steps at each power of two, passes
interleaved over the sizes so that a slow spell of this shared machine hits every size alike. The probes run
twice in alternation, each model against the same reference.

    python benchmarks/step_time.py        # both examples and friedman_mlp -> reports/step_time.md
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import autobs  # noqa: E402
from autobs.lr_range import largest_useful_batch  # noqa: E402
from autobs.memory import PROBE_LR  # noqa: E402
from autobs.scaling import StepTimeModel  # noqa: E402
from benchmarks.oracle import measure_step_times  # noqa: E402

TASKS = ("examples/digits_mlp.py", "examples/char_lm.py", "benchmarks/tasks/friedman_mlp.py")
PASSES = 5
TIMED = 20
REPEATS = 2  # probe runs of each kind, alternated


def reference_step_times(task: autobs.Task, sizes: list[int]) -> dict[int, float]:
    """Median over ``PASSES`` passes of the oracle's measurement (``TIMED`` steps at each size in turn, after the
    loop's warm-up steps), so the passes interleave over the sizes."""
    passes = [measure_step_times(task, sizes, lr=PROBE_LR, timing_steps=TIMED) for _ in range(PASSES)]
    return {b: statistics.median(p[b] for p in passes) for b in sizes}


def model(task: autobs.Task, time_below: bool) -> tuple[StepTimeModel, int]:
    """The step-time model of one memory probe, as the pipeline runs it, and the ceiling it found."""
    result = autobs.probe_memory(task, device="cpu", largest=largest_useful_batch(task), time_below=time_below)
    return StepTimeModel.from_probes([asdict(p) for p in result.probes]), result.max_batch_size


def adjacent_errors(model_: StepTimeModel, reference: dict[int, float]) -> list[float]:
    """|log| of the model's t(2B)/t(B) over the reference's, for each pair of neighbouring sizes."""
    sizes = sorted(reference)
    return [abs(math.log(model_.at(b2) / model_.at(b1)) - math.log(reference[b2] / reference[b1]))
            for b1, b2 in zip(sizes, sizes[1:])]


def run_task(path: str) -> dict:
    task = autobs.load_task(path)
    models: dict[str, list[StepTimeModel]] = {"every power of two": [], "ceiling search only": []}
    ceiling = None
    for _ in range(REPEATS):
        for name, below in (("every power of two", True), ("ceiling search only", False)):
            m, ceiling = model(task, below)
            models[name].append(m)
    sizes = [2**k for k in range(4, ceiling.bit_length()) if 2**k <= ceiling]
    reference = reference_step_times(task, sizes)
    rows = []
    for name, ms in models.items():
        for i, m in enumerate(ms):
            errors = adjacent_errors(m, reference)
            rows.append({"model": name, "repeat": i, "ratios": {b: m.at(b) / reference[b] for b in sizes},
                         "mean_error": statistics.mean(errors), "max_error": max(errors)})
    return {"task": task.name, "sizes": sizes, "reference": reference, "rows": rows}


def report(results: list[dict]) -> str:
    lines = [
        "# Step time t(B): the probe's model against step times measured side by side",
        "",
        f"Command: `python benchmarks/step_time.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU; torch {torch.__version__}  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Reference: the median of {PASSES} interleaved passes of {TIMED} steps at each power of two from 16 to the "
        f"ceiling, after the probes ({REPEATS} of each kind, alternated). *Model / reference*: the probe model's t(B) "
        "over the reference's at each size (the machine's speed drifts between the two, so a common factor is "
        "expected and harmless). *Error*: |log| of the model's t(2B)/t(B) over the reference's, over neighbouring "
        "sizes: what moves the pick (0.10 is a 10% bias of one size against its neighbour).",
        "",
    ]
    for r in results:
        lines += [f"## `{r['task']}`", "",
                  "Reference step times (ms): " + ", ".join(f"{b}: {1000 * t:.2f}" for b, t in r["reference"].items()),
                  "",
                  "| model | probe run | " + " | ".join(f"{b}" for b in r["sizes"]) + " | mean error | max error |",
                  "|---|---:|" + "---:|" * len(r["sizes"]) + "---:|---:|"]
        for row in r["rows"]:
            lines.append(f"| {row['model']} | {row['repeat'] + 1} | "
                         + " | ".join(f"{row['ratios'][b]:.2f}" for b in r["sizes"])
                         + f" | {row['mean_error']:.3f} | {row['max_error']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--out", default=str(ROOT / "reports/step_time.md"))
    args = parser.parse_args()
    text = report([run_task(t) for t in args.tasks])
    Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

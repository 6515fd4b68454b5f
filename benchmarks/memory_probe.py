"""Memory ceiling: autobs vs Lightning scale_batch_size (power, binsearch) vs Accelerate
find_executable_batch_size, each in its own subprocess under the same address-space cap.

    python benchmarks/memory_probe.py                 # writes reports/memory_probe.md
    python benchmarks/memory_probe.py --room 1GiB --tasks benchmarks/tasks/cnn.py

Each worker imports what it needs, then sets ``RLIMIT_AS`` to its current address-space size plus
``--room``, so every tool gets the same memory for tensors and a real allocation fails beyond it
(``DefaultCPUAllocator: can't allocate memory``). autobs is told the room as its ``memory_limit``
(it keeps its default 10% headroom); the peers find out by running into the cap.

Per task and tool: probe runs, wall time of the search (in the worker, imports excluded), the size
found, the true largest size (bisection over fresh subprocesses, each running one training step plus a
validation forward at the size), and whether one full epoch plus validation at the found size then runs
under the same cap.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["benchmarks/tasks/wide_mlp.py", "benchmarks/tasks/cnn.py", "benchmarks/tasks/transformer.py"]
TOOLS = ["autobs", "lightning-power", "lightning-binsearch", "accelerate"]


def _cap(room: int) -> None:
    vm = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + room, resource.RLIM_INFINITY))


def _lightning(task, mode: str):
    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner

    from benchmarks.peers import _lightning_module

    module = _lightning_module(task, 2, 1e-3)
    sizes = []
    step = module.training_step

    def recording_step(batch, batch_idx=0):  # Lightning passes batch_idx by this name
        if not sizes or sizes[-1] != len(batch[0]):
            sizes.append(len(batch[0]))
        return step(batch, batch_idx)

    module.training_step = recording_step
    import tempfile

    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tempfile.mkdtemp())
    found = Tuner(trainer).scale_batch_size(module, mode=mode, init_val=2, max_val=len(task.train))
    return found, len(sizes)


def _accelerate(task):
    from accelerate.utils import find_executable_batch_size

    import autobs

    tried = []
    start = 1 << (len(task.train).bit_length() - 1)  # the largest power of two the data allows

    @find_executable_batch_size(starting_batch_size=start)
    def run(batch_size):
        tried.append(batch_size)
        # What a user's loop under the decorator does first: a few training steps at that size.
        autobs.train(task, autobs.TrainConfig(batch_size=batch_size, lr=1e-6), samples=3 * batch_size,
                     device="cpu", eval_every_samples=10**12)
        return batch_size

    return run(), len(tried)


def worker(tool: str, task_path: str, room: int, batch_size: int | None) -> dict:
    import torch  # noqa: F401  (imported before the cap, like every tool's own imports)

    import autobs
    from autobs.memory import is_oom

    task = autobs.load_task(task_path)
    if tool.startswith("lightning"):
        import lightning.pytorch  # noqa: F401
    if tool == "accelerate":
        import accelerate  # noqa: F401
    _cap(room)
    start = time.perf_counter()
    if tool == "autobs":
        # The ceiling alone, as the peers find it: the throughput probes below it serve the recommendation.
        result = autobs.probe_memory(task, device="cpu", memory_limit=room, time_below=False)
        found, probes = result.max_batch_size, len(result.probes)
    elif tool.startswith("lightning"):
        found, probes = _lightning(task, tool.split("-")[1])
    elif tool == "accelerate":
        found, probes = _accelerate(task)
    elif tool in ("step", "epoch"):  # does a training step (or a full epoch) plus validation fit?
        samples = batch_size if tool == "step" else (len(task.train) // batch_size) * batch_size
        try:
            autobs.train(task, autobs.TrainConfig(batch_size=batch_size, lr=1e-6), samples=samples, device="cpu",
                         eval_every_samples=10**12)
            return {"fits": True}
        except Exception as exc:  # noqa: BLE001
            if not is_oom(exc):
                raise
            return {"fits": False}
    return {"found": found, "probes": probes, "seconds": time.perf_counter() - start}


def run_worker(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *map(str, args)], capture_output=True, text=True,
                         cwd=ROOT, timeout=1800)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def true_ceiling(task_path: str, room: int, n_train: int) -> int:
    lo, hi = 1, n_train + 1
    while hi - lo > max(1, lo // 100):  # to within 1%
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if run_worker("step", task_path, room, mid).get("fits") else (lo, mid)
    return lo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--room", default="1GiB", help="address space each tool gets above its imports")
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--tools", nargs="+", default=TOOLS)
    parser.add_argument("--out", default=str(ROOT / "reports/memory_probe.md"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from autobs.units import parse_bytes

    if args.worker:
        tool, task_path, room, *rest = args.worker
        print(json.dumps(worker(tool, task_path, int(room), int(rest[0]) if rest else None)))
        return

    import autobs

    room = parse_bytes(args.room)
    # Finished measurements are kept (keyed by task, tool and room) so an interrupted run continues.
    cache_path = Path(args.out).with_suffix(".json")
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def cached(key: str, compute):
        if key not in cache or "error" in (cache[key] if isinstance(cache[key], dict) else {}):
            cache[key] = compute()
            cache_path.write_text(json.dumps(cache, indent=1))
        return cache[key]

    rows = []
    for task_path in args.tasks:
        n_train = len(autobs.load_task(task_path).train)
        truth = cached(f"{task_path}|truth|{room}", lambda: true_ceiling(task_path, room, n_train))
        print(f"{task_path}: true largest size {truth}", file=sys.stderr)
        for tool in args.tools:
            def measure():
                r = run_worker(tool, task_path, room)
                if "error" not in r:
                    r["epoch_ok"] = run_worker("epoch", task_path, room, r["found"]).get("fits", False)
                return r

            r = cached(f"{task_path}|{tool}|{room}", measure)
            print(f"  {tool}: {r}", file=sys.stderr)
            rows.append((Path(task_path).stem, tool, truth, r))

    lines = [
        "# Memory ceiling: autobs vs Lightning vs Accelerate under the same address-space cap",
        "",
        f"Command: `python benchmarks/memory_probe.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU only; each tool in its own subprocess with "
        f"`RLIMIT_AS` = its address space after imports + {args.room}  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        "True largest size: bisection (to 1%) over fresh subprocesses, each one training step + validation "
        "forward. \"Epoch OK\": one full epoch plus validation at the size found, under the same cap.",
        "",
        "| task | tool | probe runs | wall time (s) | size found | true largest | found / true | epoch OK |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for task, tool, truth, r in rows:
        if "error" in r:
            lines.append(f"| {task} | {tool} | | | error: {r['error'][:80]} | {truth} | | |")
            continue
        lines.append(f"| {task} | {tool} | {r['probes']} | {r['seconds']:.1f} | {r['found']} | {truth} | "
                     f"{r['found'] / truth:.2f} | {'yes' if r['epoch_ok'] else '**OOM**'} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

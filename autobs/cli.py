"""Command line: a thin shell over the API. Parse, call, print.

``--json`` prints one JSON object on stdout and nothing else there; progress goes to stderr. An
``AutobsError`` (the user's to fix) prints ``error: <message>`` and exits 2; ``--debug`` shows its
traceback. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, Sequence

from . import __version__
from .errors import AutobsError, ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$", re.IGNORECASE)
_SECONDS_PER_UNIT = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"`` → seconds.

    Raises:
        ConfigError: not a positive duration.
    """
    match = _DURATION.match(str(text))
    seconds = float(match.group(1)) * _SECONDS_PER_UNIT[(match.group(2) or "").lower() or None] if match else 0
    if not seconds > 0:
        raise ConfigError(f"budget {text!r} is not a positive duration. Use seconds or a unit: 90s, 10m, 1.5h.")
    return seconds


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_json(obj: Any) -> None:
    from .rundir import to_json

    print(json.dumps(to_json(obj), indent=2))


def _cmd_check(args: argparse.Namespace) -> int:
    from .task import load_task

    summary = load_task(args.model).describe()
    if args.json:
        _print_json(summary)
    else:
        for key, value in summary.items():
            print(f"{key:>12}: {value}")
        print("task file OK")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .task import load_task
    from .training import TrainConfig, train

    task = load_task(args.model)
    config = TrainConfig(
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        schedule=args.schedule,
        accumulation_steps=args.accumulation_steps,
    )

    def report(point) -> None:
        loss = "" if point.train_loss is None else f"  train loss {point.train_loss:.4f}"
        _progress(
            f"step {point.step:>6}  samples {point.samples:>8}  val {task.metric} {point.metric:.4f}"
            f"{loss}  ({point.seconds:.1f}s)"
        )

    result = train(
        task,
        config,
        samples=args.epochs * len(task.train) if args.epochs else None,
        max_seconds=parse_duration(args.budget) if args.budget else None,
        device=args.device,
        seed=args.seed,
        callback=report,
        bf16=args.bf16,
    )
    if args.json:
        _print_json({"task": task.describe(), **result.to_dict()})
    else:
        print(
            f"{result.stop_reason}: {result.steps} steps of batch {config.batch_size} on {result.device}, "
            f"final val {task.metric} {result.final_metric:.4f}, "
            f"{config.batch_size / result.step_time_s:.0f} samples/s"
        )
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from .memory import probe_memory
    from .rundir import run_dir, write_json
    from .task import load_task

    task = load_task(args.model)
    out = run_dir(task.name, args.out)  # checked before the work starts
    result = probe_memory(task, device=args.device, memory_limit=args.memory_limit, headroom=args.headroom,
                          bf16=args.bf16, progress=True)
    path = write_json(out / "memory.json", {"task": task.describe(), **result.to_dict()})
    if args.json:
        _print_json(result.to_dict())
    else:
        best = max((p for p in result.probes if p.samples_per_s), key=lambda p: p.samples_per_s)
        print(
            f"max_batch_size {result.max_batch_size} on {result.device} "
            f"(budget {result.budget_bytes / 2**20:.0f} MiB = limit {result.memory_limit_bytes / 2**20:.0f} MiB "
            f"minus {result.headroom:.0%} headroom; {len(result.probes)} probes; {result.reason})\n"
            f"peak(B) ≈ {result.fixed_bytes / 2**20:.1f} MiB + {result.bytes_per_sample / 2**10:.1f} KiB × B; "
            f"fastest probed: {best.samples_per_s:.0f} samples/s at batch {best.batch_size}\n"
            + "".join(f"note: {n}\n" for n in result.notes)
            + f"saved {path}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autobs",
        description="Measured batch size, learning rate, warmup and LR schedule for a PyTorch model.",
    )
    parser.add_argument("--version", action="version", version=f"autobs {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="load and validate a model.py task file, print a summary")
    check.add_argument("model", metavar="MODEL.py")
    check.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    check.set_defaults(run=_cmd_check)

    probe = sub.add_parser("probe", help="largest batch size that fits in memory, and samples/s per size")
    probe.add_argument("model", metavar="MODEL.py")
    probe.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    probe.add_argument("--memory-limit", help="e.g. 8GiB (default: the GPU's memory; on CPU half the free RAM)")
    probe.add_argument("--headroom", type=float, default=0.10, help="fraction of the limit kept free (0.10)")
    probe.add_argument("--bf16", action="store_true", help="probe under bfloat16 autocast (CUDA)")
    probe.add_argument("--out", help="run directory (default runs/<model name>)")
    probe.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    probe.set_defaults(run=_cmd_probe)

    from .schedules import SCHEDULES  # light: math and torch.optim only at call time

    train = sub.add_parser("train", help="train one config with autobs's training loop and show its curve")
    train.add_argument("model", metavar="MODEL.py")
    train.add_argument("--batch-size", type=int, required=True)
    train.add_argument("--lr", type=float, required=True, help="peak learning rate")
    train.add_argument("--warmup-steps", type=int, default=0)
    train.add_argument("--schedule", default="constant", choices=list(SCHEDULES))
    train.add_argument("--accumulation-steps", type=int, default=1)
    train.add_argument("--epochs", type=int, help="training length (default: the task's epochs)")
    train.add_argument("--budget", help="stop after this much training time, e.g. 90s or 10m")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA)")
    train.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    train.set_defaults(run=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "epochs", None) is not None and args.epochs < 1:
            raise ConfigError(f"--epochs must be a positive integer; got {args.epochs}.")
        return args.run(args)
    except AutobsError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

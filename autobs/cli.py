"""Command line: a thin shell over the API. Parse, call, print.

``--json`` prints one JSON object on stdout and nothing else there; progress goes to stderr. An
``AutobsError`` (the user's to fix) prints ``error: <message>`` and exits 2; ``--debug`` shows its
traceback. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Sequence

from . import __version__
from .errors import AutobsError, ConfigError
from .units import parse_duration


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
    from .rundir import read_stage, run_dir, write_json
    from .task import load_task

    task = load_task(args.model)
    out = run_dir(task.name, args.out)  # checked before the work starts
    read_stage(out / "memory.json", task)  # refuses, before the work, to overwrite another task's result
    result = probe_memory(task, device=args.device, memory_limit=args.memory_limit, headroom=args.headroom,
                          bf16=args.bf16, progress=True)
    path = write_json(out / "memory.json", {"task": task.describe(), **result.to_dict()})
    if args.json:
        _print_json(result.to_dict())
    else:
        best = max((p for p in result.probes if p.samples_per_s), key=lambda p: p.samples_per_s)
        timed = sum(p.fits and p.peak_bytes is None for p in result.probes)  # below the ceiling, timed only
        print(
            f"max_batch_size {result.max_batch_size} on {result.device} "
            f"(budget {result.budget_bytes / 2**20:.0f} MiB = limit {result.memory_limit_bytes / 2**20:.0f} MiB "
            f"minus {result.headroom:.0%} headroom; {len(result.probes) - timed} probes"
            f"{f', {timed} more sizes timed' if timed else ''}; {result.reason})\n"
            f"peak(B) ≈ {result.fixed_bytes / 2**20:.1f} MiB + {result.bytes_per_sample / 2**10:.1f} KiB × B; "
            f"fastest probed: {best.samples_per_s:.0f} samples/s at batch {best.batch_size}\n"
            + "".join(f"note: {n}\n" for n in result.notes)
            + f"saved {path}"
        )
    return 0


def _cmd_lr_find(args: argparse.Namespace) -> int:
    from .lr_range import lr_range_test
    from .rundir import read_stage, run_dir, write_json
    from .task import load_task

    task = load_task(args.model)
    out = run_dir(task.name, args.out)
    read_stage(out / "lr_range.json", task)  # refuses, before the work, to overwrite another task's result
    memory = read_stage(out / "memory.json", task)  # `autobs probe` before: its ceiling bounds
    max_batch_size = memory["max_batch_size"] if memory else None
    result = lr_range_test(task, args.batch_size, max_batch_size=max_batch_size, device=args.device,
                           seed=args.seed, progress=True)
    path = write_json(out / "lr_range.json", {"task": task.describe(), **result.to_dict()})
    if args.json:
        _print_json(result.to_dict())
    else:
        for curve in result.curves:
            print(f"batch {curve.batch_size:>6}: {curve.summary()}" + "".join(f"; note: {n}" for n in curve.notes))
        print(f"lr ∝ B^α with α = {result.lr_scaling_exponent:.2f} ± {result.lr_scaling_exponent_stderr:.2f}"
              f"\nsaved {path}")
    return 0


def _cmd_noise(args: argparse.Namespace) -> int:
    from .lr_range import lr_range_test, range_level
    from .noise import measurement_batch_sizes, noise_scale
    from .rundir import read_stage, run_dir, write_json
    from .task import load_task

    task = load_task(args.model)
    out = run_dir(task.name, args.out)
    read_stage(out / "noise.json", task)  # refuses, before the work, to overwrite another task's result
    _, big = measurement_batch_sizes(task, args.small_batch)
    lr = args.lr
    if lr is None:  # the range tests' level (as `autobs recommend`): from `autobs lr-find`, else measured now
        saved = read_stage(out / "lr_range.json", task)
        if saved:
            lr = range_level(saved["suggestions"])
        else:
            _progress(f"no lr_range.json for this task in {out}: running the LR range test at batch {big}")
            lr = lr_range_test(task, [big], device=args.device, seed=args.seed, progress=True).suggestions[big]
    result = noise_scale(task, lr=lr, small_batch=args.small_batch, device=args.device, seed=args.seed,
                         progress=True)
    path = write_json(out / "noise.json", {"task": task.describe(), **result.to_dict()})
    if args.json:
        _print_json(result.to_dict())
    else:
        lo, hi = result.b_simple_spread
        print(f"B_simple {result.b_simple:.4g} (second half of the run: {lo:.4g}–{hi:.4g}; batches "
              f"{result.small_batch} and {result.big_batch} at lr {result.lr:.3g})"
              + "".join(f"\nnote: {n}" for n in result.notes) + f"\nsaved {path}")
    return 0


def _rerun_command(out, flag: str | None = None) -> str:
    """This command line again, without --fresh, with ``flag`` and with the run directory made explicit."""
    import shlex

    command = " ".join(shlex.quote(a) for a in ["autobs", *sys.argv[1:]] if a != "--fresh")
    if flag and flag not in command:
        command += f" {flag}"
    if "--out" not in command:
        command += f" --out {shlex.quote(str(out))}"
    return command


def _cmd_recommend(args: argparse.Namespace) -> int:
    from .pipeline import tune
    from .rundir import run_dir
    from .task import load_task

    task = load_task(args.model)
    out = run_dir(task.name, args.out)  # checked before the work starts
    try:
        rec = tune(task, budget=args.budget, device=args.device, memory_limit=args.memory_limit, out=out,
                   fresh=args.fresh, target=args.target, space=args.space, sampler=args.sampler, seed=args.seed,
                   ray_address=args.ray_address, trial_timeout=args.trial_timeout,
                   resume_command=_rerun_command(out), started_at=args.started_at)
    except KeyboardInterrupt:
        print(f"interrupted: the finished stages are saved in {out}. Continue with: {_rerun_command(out)}",
              file=sys.stderr)
        return 130
    if args.json:
        _print_json(rec.to_dict())
    else:
        print(rec.summary() + f"\nsaved {out / 'recommendation.json'}\nreport: {rec.report_path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report import write_report

    run = Path(args.run_dir)
    if not run.is_dir():
        raise ConfigError(f"{run} is not a directory. Give the run directory of `autobs recommend` (runs/<model name>).")
    if not any((run / name).exists() for name in ("memory.json", "lr_range.json", "noise.json", "trials.json")):
        raise ConfigError(f"{run} holds no autobs stage file (memory.json, lr_range.json, ...): nothing to report.")
    print(f"saved {write_report(run)}")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from .rundir import locked, run_dir
    from .task import load_task

    task = load_task(args.model)
    out = run_dir(task.name, args.out)
    with locked(out):  # one process per run directory: two would overwrite each other's stages
        return _tune_locked(task, out, args)


def _tune_locked(task, out, args: argparse.Namespace) -> int:
    from .pipeline import lr_at_from, memory_stage, range_stage
    from .search import STATUSES, TRIALS_FILE, run_search
    from .space import default_space_name, load_space
    from .task import sample_optimizer

    if args.fresh and (out / TRIALS_FILE).exists():
        (out / TRIALS_FILE).unlink()
    if args.space is None:
        args.space = default_space_name(sample_optimizer(task))
        _progress(f"search space: search_spaces/{args.space}.yaml (chosen for the task's optimizer)")
    space = load_space(args.space)
    anchors: dict[str, Any] = {"max_batch_size": None, "lr_at": None}  # the stage results the space uses
    if space.needs_max_batch_size or space.needs_range_test:
        memory = memory_stage(task, out, device=args.device, memory_limit=args.memory_limit)
        anchors["max_batch_size"] = memory["max_batch_size"]
    if space.needs_range_test:
        lr_range = range_stage(task, out, max_batch_size=anchors["max_batch_size"], device=args.device,
                               seed=args.seed)
        anchors["lr_at"] = lr_at_from(lr_range)
    result = run_search(
        task, space, out=out, trials=args.trials,
        budget_s=parse_duration(args.budget) if args.budget else None,
        trial_samples=args.trial_samples, sampler=args.sampler, seed=args.seed, device=args.device,
        gpus_per_trial=args.gpus_per_trial, ray_address=args.ray_address, resume=args.resume,
        trial_timeout_s=parse_duration(args.trial_timeout, "trial time limit"),
        resume_command=_rerun_command(out, "--resume"), **anchors,
    )
    if args.json:
        _print_json(result.to_dict())
    else:
        counts = {s: sum(t["status"] == s for t in result.trials) for s in STATUSES}
        print(f"{len(result.trials)} trials in {result.elapsed_s:.0f} s: "
              + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        best = result.best
        if best:
            c = best["config"]
            print(f"best: batch {c['batch_size']}, lr {c['lr']:.3g}, {c['schedule']} "
                  f"{c['schedule_params'] or ''}, warmup {c['warmup_fraction']:.0%} → val {result.metric} "
                  f"{best['val_metric']:.4g}")
        else:
            print("no trial ran its full length: no best config (see the statuses above)")
        print("".join(f"note: {n}\n" for n in result.notes) + f"saved {result.path}")
    return 0


_OPTIONS = {  # the options several commands share, spelled and explained once
    "device": ({"default": "auto"}, "auto, cpu, cuda, cuda:N or mps (default auto)"),
    "seed": ({"type": int, "default": 0}, "seed of model initialisation and data order (default 0)"),
    "out": ({}, "run directory (default runs/<model name>)"),
    "json": ({"action": "store_true"}, "print one JSON object on stdout"),
    "ray-address": ({}, "join this Ray cluster instead of starting a local one"),
    # "5m" is search.TRIAL_TIMEOUT_S, written out so that `--help` does not import torch and Ray.
    "trial-timeout": ({"default": "5m"}, "end a search trial that makes no progress for this long, e.g. 10m "
                                         "(default 5m)"),
}


def _option(parser: argparse.ArgumentParser, *names: str) -> None:
    for name in names:
        settings, help_text = _OPTIONS[name]
        parser.add_argument(f"--{name}", help=help_text, **settings)


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
    _option(check, "json")
    check.set_defaults(run=_cmd_check)

    probe = sub.add_parser("probe", help="largest batch size that fits in memory, and samples/s per size")
    probe.add_argument("model", metavar="MODEL.py")
    _option(probe, "device")
    probe.add_argument("--memory-limit", help="e.g. 8GiB (default: the GPU's memory; on CPU half the free RAM)")
    probe.add_argument("--headroom", type=float, default=0.10, help="fraction of the limit kept free (0.10)")
    probe.add_argument("--bf16", action="store_true", help="probe under bfloat16 autocast (CUDA)")
    _option(probe, "out", "json")
    probe.set_defaults(run=_cmd_probe)

    lr_find = sub.add_parser("lr-find", help="LR range test at several batch sizes, and the LR-vs-batch exponent")
    lr_find.add_argument("model", metavar="MODEL.py")
    lr_find.add_argument("--batch-size", type=int, action="append",
                         help="a batch size to test (repeatable; default: 3 spread up to the memory ceiling)")
    _option(lr_find, "device", "seed", "out", "json")
    lr_find.set_defaults(run=_cmd_lr_find)

    noise = sub.add_parser("noise", help="gradient noise scale B_simple (McCandlish et al. 2018)")
    noise.add_argument("model", metavar="MODEL.py")
    noise.add_argument("--lr", type=float, help="LR of the measuring run (default: the range tests' level, the geometric mean of their suggestions)")
    noise.add_argument("--small-batch", type=int, default=16, help="B_small; B_big is 16x (default 16)")
    _option(noise, "device", "seed", "out", "json")
    noise.set_defaults(run=_cmd_noise)

    recommend = sub.add_parser("recommend", help="the whole job: probe, range test, noise scale, search and "
                               "scaling fit; prints the batch size, LR, warmup and schedule to train with")
    recommend.add_argument("model", metavar="MODEL.py")
    recommend.add_argument("--budget", help="wall time for the whole run, e.g. 10m (default: the search sized to the "
                           "task, its trials twice as long as its first round; the whole run within 5m)")
    _option(recommend, "device")
    recommend.add_argument("--memory-limit", help="e.g. 8GiB (default: the GPU's memory; on CPU half the free RAM)")
    recommend.add_argument("--target", type=float,
                           help="validation metric to reach (default: chosen from the trials, see the README)")
    recommend.add_argument("--space", help="search space: a YAML file or default/sgd/adamw (default: by optimizer)")
    recommend.add_argument("--sampler", default="tpe", help="Optuna sampler: tpe, gp, cmaes or random (default tpe)")
    _option(recommend, "ray-address", "trial-timeout")
    recommend.add_argument("--fresh", action="store_true", help="redo every stage instead of reusing the run directory")
    _option(recommend, "seed", "out", "json")
    recommend.set_defaults(run=_cmd_recommend)

    report = sub.add_parser("report", help="write (again) the HTML report of a run directory")
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.set_defaults(run=_cmd_report)

    tune = sub.add_parser("tune", help="joint search over batch size, LR, warmup and schedule (Ray Tune + Optuna)")
    tune.add_argument("model", metavar="MODEL.py")
    tune.add_argument("--space", help="search space: a YAML file or default/sgd/adamw (default: by optimizer)")
    tune.add_argument("--trials", type=int, default=20, help="number of trials in all (default 20)")
    tune.add_argument("--budget", help="wall time for the search, e.g. 10m (default: none, --trials bounds it)")
    tune.add_argument("--trial-samples", type=int,
                      help="each trial's length in samples (default: the task's epochs over its training data)")
    tune.add_argument("--sampler", default="tpe", help="Optuna sampler: tpe, gp, cmaes or random (default tpe)")
    tune.add_argument("--memory-limit", help="memory limit of the probe run when memory.json is missing")
    tune.add_argument("--gpus-per-trial", type=float, default=1.0, help="GPUs per trial: 1 or a fraction (default 1)")
    _option(tune, "ray-address", "trial-timeout")
    tune.add_argument("--resume", action="store_true", help="continue the search recorded in the run directory")
    tune.add_argument("--fresh", action="store_true", help="discard a recorded search and start over")
    _option(tune, "device", "seed", "out", "json")
    tune.set_defaults(run=_cmd_tune)

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
    _option(train, "device", "seed")
    train.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA)")
    _option(train, "json")
    train.set_defaults(run=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    started_at = time.time()  # `recommend`'s budget counts from here: loading torch and the task is part of the run
    args = build_parser().parse_args(argv)
    args.started_at = started_at
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

"""The whole job: memory probe → LR range test → noise scale → joint search (with reruns of its leading
trials) → scaling fit, within a time budget, each stage cached in the run directory. Public entry: ``tune``
(``autobs recommend``).

Budget. The stages run in order against one deadline, counted from the CLI's start (or ``tune``'s call).
The probe comes first and is not cut (it is what prices the rest: its throughput gives the step time t(B)).
From t(B) the LR range test takes at most ``RANGE_SHARE`` of the budget (fewer or smaller batch sizes when
the planned ones cost more) and the noise measurement at most ``NOISE_SHARE`` (a smaller B_small, or
skipped: it is only a prior). The search gets what is left less a reserve for the fit, the report and the
exit (``RESERVE_S``, ``RESERVE_SHARE``), and runs as many trials as fit: once its first round has set the
target, trials stop at their confirmed crossing and every other one reruns a leading trial with a fresh
seed (``replicate.py``), so the fit's steps-to-target are measured more than once.

Caching. Each stage's JSON carries the task's fingerprint and the settings that change its result; a
matching file is reused, so rerunning an interrupted ``autobs recommend`` continues where it stopped, and
``fresh=True`` (``--fresh``) redoes every stage. A search cut short resumes from ``trials.json``; one
that ran to its end is marked done in ``search.json`` and reused as is.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError
from .search import TRIAL_TIMEOUT_S
from .units import parse_bytes, parse_duration

DEFAULT_BUDGET_S = 300.0  # without --budget, the whole run takes at most this
# Without --budget, the search is sized to the task: its trials run SEARCH_ROUNDS times as long as its first round
# (a default config at each batch size) took, and the whole run stays within DEFAULT_BUDGET_S. Why this unit: what
# the answer rests on is how many trials the search affords (the first round, then the LR ladders, the sampler's
# configs and the reruns, each a share of a whole run), not seconds: a fixed 5 minutes is a thousand trials of a
# small model (a 150-example task ran 1750 in 2 minutes) and several grid searches' compute, and a few trials of a
# large one. The round is timed as it runs, with the machine's load, the workers' start-up and the evaluations in
# it; pricing it from the memory probe's step times missed those and moved 2x between runs of the same task
# (digits: 12.5-25.9 s for one whole run at each size), and the search with it. Why 2: at what the benchmarks
# then took for 15% of a grid search's compute (../shared/BENCHMARKS.md; 9% in core-seconds, the unit a tuner's
# cost is in: benchmarks/scoring.py's grid_core_seconds), the search's trials ran 1.6-2.2 times its first round on
# digits (session 23's five runs, reports/recommend_digits_dd212dd.md), where its regret met the 1.15 goal to
# within the oracle's own resolution (reports/yardstick_noise_digits.md). The whole default run then costs 10-12% of
# digits's and friedman's grids and 13-14% of char_lm's, a lean grid (one schedule, five LRs a size), each grid's
# core-seconds counted with its evaluations as a tuner's are (reports/grid_eval_cost.md).
SEARCH_ROUNDS = 2.0
RANGE_SHARE = 0.15
NOISE_SHARE = 0.10
# Kept back from the search for what follows it: the fit with its bootstrap, the report, Ray's shutdown and the
# interpreter's exit. These took 4 s together on 2 CPU cores (digits: fit 0.6 s, report 1.5 s, exit with torch,
# Ray and matplotlib loaded 1.5-2 s) whatever the budget, and the search's last trials end up to a few percent
# of its time late; so a fixed part and a share.
RESERVE_S = 4.0
RESERVE_SHARE = 0.03
MIN_SEARCH_S = 20.0  # less than this cannot start Ray and finish one trial
STAGE_FILES = ("memory.json", "lr_range.json", "noise.json", "trials.json", "search.json", "scaling.json",
               "recommendation.json", "report.html")


@dataclass
class Recommendation:
    """What to train with, and the evidence's headline numbers. ``to_dict()`` is ``recommendation.json``."""

    batch_size: int
    lr: float
    warmup_steps: int
    schedule: str
    schedule_params: dict[str, float]
    optimizer_name: str  # the task's optimizer class, used at ``lr``
    total_steps: int  # the planned run (the task's epochs) at ``batch_size``
    max_batch_size: int
    max_batch_size_limit: str  # what sets it: the memory ceiling, the training set size, or the planned run's length
    critical_batch_size: float | None  # B_noise of the S(B) fit; None when too few batch sizes reached the target
    critical_batch_size_interval: tuple[float, float] | None
    batch_size_interval: tuple[float, float] | None
    lr_scaling_exponent: float
    time_to_target_s: float
    target: float
    metric: str
    b_simple: float | None
    report_path: Path | None
    run_dir: Path
    stage_seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)
    make_optimizer: Callable | None = field(default=None, repr=False, compare=False)

    def optimizer(self, params):
        """The task's optimizer at the recommended LR."""
        if self.make_optimizer is None:
            import torch

            return torch.optim.AdamW(params, lr=self.lr, weight_decay=0.01)  # the model.py contract's default
        return self.make_optimizer(params, self.lr)

    def scheduler(self, optimizer, total_steps: int | None = None):
        """A ``LambdaLR`` with the recommended schedule and warmup over ``total_steps`` (default: the
        planned run); call ``.step()`` after each ``optimizer.step()``. Warmup keeps its share of the run."""
        from .schedules import lambda_lr

        steps = total_steps or self.total_steps
        warmup = min(steps, round(self.warmup_steps * steps / self.total_steps))
        return lambda_lr(optimizer, self.schedule, steps, warmup, **self.schedule_params)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self) | {"report": str(self.report_path) if self.report_path else None, "run_dir": str(self.run_dir)}
        for key in ("make_optimizer", "report_path"):
            d.pop(key)
        return d

    def summary(self) -> str:
        """The answer in a few lines, for the terminal."""
        params = ", ".join(f"{k}={v:.3g}" for k, v in self.schedule_params.items())
        from .units import format_batch_size

        crit = format_batch_size(self.critical_batch_size) if self.critical_batch_size else "not fitted"
        if self.critical_batch_size_interval:
            lo, hi = self.critical_batch_size_interval
            crit += f" (90% interval {format_batch_size(lo)}–{format_batch_size(hi)})"
        lines = [
            f"batch size {self.batch_size}, lr {self.lr:.3g}, {self.schedule}"
            f"{f' ({params})' if params else ''}, warmup {self.warmup_steps} of {self.total_steps} steps",
            f"expected time to {self.metric} {self.target:.4g}: {self.time_to_target_s:.3g} s on this device",
            f"largest batch size {self.max_batch_size} ({self.max_batch_size_limit})",
            f"critical batch size {crit}; lr ∝ B^{self.lr_scaling_exponent:.2f}",
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cached(path: Path, task, settings: dict) -> dict | None:
    """The stage's saved result if it belongs to this task (``read_stage`` refuses another's) and was made
    with these settings (``--fresh`` deletes them first)."""
    from .rundir import read_stage

    saved = read_stage(path, task)
    if saved is None or saved.get("settings", settings) != settings:
        return None
    return saved


def _stage(path: Path, label: str, task, settings: dict, progress: bool,
           run: Callable[[], dict]) -> dict:
    """The stage saved at ``path`` if it matches (see ``_cached``), else ``run()``'s result, saved there."""
    saved = _cached(path, task, settings)
    if saved is not None:
        if progress:
            _progress(f"{label}: reused {path}")
        return saved
    if progress:
        _progress(f"{label}: measuring")
    return _save(path, task, settings, run())


def _save(path: Path, task, settings: dict, result: dict) -> dict:
    from .rundir import write_json

    data = {"task": task.describe(), "settings": settings, **result}
    write_json(path, data)
    return data


def memory_stage(task, out: Path, *, device: str = "auto", memory_limit=None, progress: bool = True) -> dict:
    """Stage 1 (memory ceiling and throughput) from the run directory, or measured and saved now."""
    from .lr_range import largest_useful_batch
    from .memory import probe_memory
    from .training import resolve_device

    def probe() -> dict:
        return probe_memory(task, device=device, memory_limit=memory_limit, largest=largest_useful_batch(task),
                            progress=progress).to_dict()

    # time_below: a memory.json made before the probe timed the powers of two below the ceiling is measured again.
    settings = {"device": str(resolve_device(device)), "memory_limit": memory_limit, "time_below": True}
    return _stage(out / "memory.json", "memory probe", task, settings, progress, probe)


def range_stage(task, out: Path, *, max_batch_size: int | None, batch_sizes: list[int] | None = None,
                device: str = "auto", seed: int = 0, progress: bool = True) -> dict:
    """Stage 2 (LR range test) from the run directory, or measured and saved now."""
    from .lr_range import LRRangeResult, NoDescentError, lr_range_test
    from .training import resolve_device

    def sweep() -> dict:
        try:
            result = lr_range_test(task, batch_sizes, max_batch_size=max_batch_size, device=device, seed=seed,
                                   progress=progress)
        except NoDescentError as exc:  # ``LRRangeResult.with_fallback`` says why the search goes on
            result = LRRangeResult.with_fallback(exc, task)
            if progress:
                _progress(f"LR range test: no sweep showed a descent; the search starts from the optimizer's "
                          f"default LR, {result.fallback_lr:g}")
        return result.to_dict()

    settings = {"device": str(resolve_device(device)), "seed": seed}
    return _stage(out / "lr_range.json", "LR range test", task, settings, progress, sweep)


def lr_at_from(lr_range: dict, b_simple: float | None = None, power: float | None = None):
    """``lr(B)`` as a picklable callable (Ray ships it to trial workers): from the range tests' level and the
    noise scale's shape when both are known (``noise_shaped_lr_at`` says why), else from the range tests'
    own exponent."""
    from .lr_range import lr_at, noise_shaped_lr_at

    suggestions = {int(b): v for b, v in lr_range["suggestions"].items()}
    if b_simple is not None and math.isfinite(b_simple) and b_simple > 0 and power is not None:
        return partial(noise_shaped_lr_at, suggestions, b_simple, power)
    return partial(lr_at, suggestions, lr_range["lr_scaling_exponent"])


def budget_for_rounds(probed_s: float, first_round_s: float) -> float:
    """The --budget whose search runs ``SEARCH_ROUNDS`` first rounds of ``first_round_s`` each: the start-up and
    memory probe as they ran (``probed_s``), the range test and the noise run at their shares of that budget (an
    upper bound: they take less when their planned sizes cost less), the rounds, and the reserve."""
    return ((probed_s + SEARCH_ROUNDS * first_round_s + RESERVE_S)
            / (1 - RANGE_SHARE - NOISE_SHARE - RESERVE_SHARE))


def _range_batch_sizes(task, max_batch_size: int, step_time, seconds: float) -> list[int]:
    """The range test's default batch sizes, the largest halved while the sweeps would cost more than
    ``seconds`` (two sizes at least, for the exponent, while two distinct sizes remain)."""
    from .lr_range import SWEEP_STEPS, default_batch_sizes

    sizes = default_batch_sizes(task, max_batch_size)

    def cost(bs: list[int]) -> float:
        return sum(SWEEP_STEPS * step_time.at(b) for b in bs)

    while cost(sizes) > seconds and len(sizes) > 1:
        if sizes[-1] // 2 > sizes[-2]:
            sizes[-1] //= 2
        elif len(sizes) > 2:
            sizes.pop(-2)  # merge: keep the spread, drop a middle size
        elif sizes[-1] // 2 >= 1 and sizes[0] // 2 >= 1:
            sizes = [sizes[0] // 2, sizes[-1] // 2]
        else:
            break
    return sizes


def _noise_small_batch(task, step_time, seconds: float) -> int | None:
    """The largest B_small (16 down to 2) whose noise run fits in ``seconds``; None if none does."""
    from .noise import EVERY, MEASUREMENTS, MICRO_BATCHES, SMALL_BATCH

    small = SMALL_BATCH
    while small >= 2:
        big = small * MICRO_BATCHES
        # the run's steps at B_big, plus each measurement's MICRO_BATCHES backward passes at B_small
        cost = MEASUREMENTS * EVERY * step_time.at(big) + MEASUREMENTS * MICRO_BATCHES * step_time.at(small)
        if cost <= seconds and big <= len(task.train):
            return small
        small //= 2
    return None


def tune(
    task,
    *,
    budget: float | str | None = None,
    device: str = "auto",
    memory_limit: int | str | None = None,
    out: str | Path | None = None,
    fresh: bool = False,
    target: float | None = None,
    space: str | Path | None = None,
    sampler: str = "tpe",
    seed: int = 0,
    ray_address: str | None = None,
    trial_timeout: float | str = TRIAL_TIMEOUT_S,
    progress: bool = True,
    resume_command: str | None = None,
    started_at: float | None = None,
) -> Recommendation:
    """Measure, search and fit; return the batch size, LR, warmup and schedule that reach the target
    soonest on this hardware.

    Args:
        task: a ``Task`` or the path of a model.py task file.
        budget: wall time for the whole run: seconds or ``"10m"``-style text. Default: the search sized to the task
            (its trials ``SEARCH_ROUNDS`` times as long as its first round), the whole run within 5 minutes.
        device, memory_limit: as for ``autobs probe``.
        out: the run directory (default ``runs/<task name>``).
        fresh: redo every stage instead of reusing the run directory's results.
        target: the validation metric to reach; default: the rule in ``autobs.scaling.choose_target`` over the
            search's first round (``run_search``'s ``stop_at_target``).
        space: search space name or YAML path; default by the task's optimizer.
        sampler, seed, ray_address: as for ``autobs tune``.
        trial_timeout: a search trial with no progress for this long is ended as hung (default 5 minutes).
        started_at: the ``time.time()`` the budget counts from (default: this call). The CLI passes its own
            start, so that loading torch and the task counts too.

    Raises:
        AutobsError: a bad task, setting or run directory; a search that cannot go on.
    """
    began = time.time() if started_at is None else started_at  # before the imports: they take seconds
    from .lr_range import MIN_RUN_STEPS, largest_useful_batch, lr_exponent, noise_power, noise_shaped_lr_at, range_level
    from .noise import noise_scale
    from .report import REPORT_FILE, write_report
    from .rundir import locked, read_json, read_stage, run_dir, write_json
    from .replicate import split_reruns
    from .scaling import USABLE, StepTimeModel, choose_target, fit_scaling
    from .search import TRIALS_FILE, run_search
    from .space import default_space_name, load_space
    from .task import Task, load_task, sample_optimizer
    from .training import resolve_device

    sized_to_task = budget is None  # the search then ends by its rounds (SEARCH_ROUNDS), within the 5-minute cap
    budget_s = DEFAULT_BUDGET_S if sized_to_task else parse_duration(budget)
    trial_timeout_s = parse_duration(trial_timeout, "trial time limit")
    if target is not None and not (isinstance(target, (int, float)) and math.isfinite(target)):
        raise ConfigError(f"target must be a finite number; got {target!r}.")
    if memory_limit is not None:
        parse_bytes(memory_limit)  # a bad limit fails now, before any stage runs
    from .search import make_sampler

    make_sampler(sampler, seed)  # so do an unknown sampler and a bad search-space file
    if space is not None:
        load_space(space)
    task = task if isinstance(task, Task) else load_task(task)
    out = run_dir(task.name, out)
    with locked(out):  # one process per run directory: two would overwrite each other's stages
        if fresh:
            for name in STAGE_FILES:
                (out / name).unlink(missing_ok=True)
        dev = str(resolve_device(device))
        seconds: dict[str, float] = {}
        notes: list[str] = []

        def stage(name: str, since: float) -> None:
            seconds[name] = time.time() - since
            if progress:
                of = f"{'at most ' if sized_to_task else ''}{budget_s:.0f} s"
                _progress(f"[{time.time() - began:.0f} s of {of}] {name} done in {seconds[name]:.1f} s")

        t = time.time()
        memory = memory_stage(task, out, device=device, memory_limit=memory_limit, progress=progress)
        stage("memory probe", t)
        probed_s = time.time() - began  # start-up and the probe, which a larger budget does not change
        step_time = StepTimeModel.from_probes(memory["probes"])
        max_batch_size = memory["max_batch_size"]
        if memory.get("capped_by_dataset"):
            max_batch_size_limit = "the training set size"
        elif max_batch_size >= largest_useful_batch(task):  # the probe was not asked past it
            max_batch_size_limit = (f"a larger one would leave the planned run under {MIN_RUN_STEPS} steps; "
                                    "memory allows more")
        else:
            max_batch_size_limit = "the memory ceiling"

        t = time.time()
        sizes = _range_batch_sizes(task, max_batch_size, step_time, RANGE_SHARE * budget_s)
        lr_range = range_stage(task, out, max_batch_size=max_batch_size, batch_sizes=sizes, device=device, seed=seed,
                               progress=progress)
        stage("LR range test", t)
        if lr_range.get("fallback_lr") is not None:
            notes.append(f"no LR range sweep showed a descent (see the LR range section), so the search's LRs are "
                         f"factors of the optimizer's default LR ({lr_range['fallback_lr']:g}) rather than of a range "
                         "test's reading")

        t = time.time()
        small = _noise_small_batch(task, step_time, NOISE_SHARE * budget_s)

        # The noise run trains at the range tests' level, not at the nearest size's suggestion: one test's read can
        # sit near the edge of stability, where training spikes and every spike inflates |G|² (measured on digits,
        # 6 seeds at 41 s: at the batch-128 suggestion of 1.5-2.0, |G|² jumped up to 100-fold between
        # measurements and B_simple read 3-6; at 0.5-1.0 it read 25-61; at the level, 44-58 in all six). B_simple shapes
        # the search's LRs (lr_at_from), so a read of 3 left batch 16's LRs 2-3x above the oracle's best there, and its
        # steps-to-target, and so B_noise, far too high.
        noise_lr = range_level(lr_range["suggestions"])

        def measure_noise() -> dict:
            return noise_scale(task, lr=noise_lr, small_batch=small, device=device, seed=seed,
                               progress=progress).to_dict()

        noise_settings = {"device": dev, "seed": seed, "lr": noise_lr}
        if small is not None:
            noise = _stage(out / "noise.json", "noise scale", task, noise_settings, progress, measure_noise)
        elif (noise := _cached(out / "noise.json", task, noise_settings)) is None:  # a saved one serves any budget
            notes.append("the noise scale was not measured: its run would take more than "
                         f"{NOISE_SHARE:.0%} of the budget; the S(B) fit has no B_simple prior")
        stage("noise scale", t)
        b_simple = noise["b_simple"] if noise else None

        t = time.time()
        optimizer = sample_optimizer(task)
        if space is None:
            space = default_space_name(optimizer)
        search_space = load_space(space)
        power = noise_power(optimizer)
        lr_anchor = lr_at_from(lr_range, b_simple, power)  # the search's LRs are factors of lr_anchor(B)
        shaped = lr_anchor.func is noise_shaped_lr_at
        search_settings = {"device": dev, "seed": seed, "sampler": sampler, "space": search_space.to_dict()["digest"],
                           "target": target,
                           "lr_anchor": f"range test × (1 + {b_simple:.4g}/B)^-{power:g}" if shaped else "range test",
                           # Another --budget is another search: a run given more time (as a starved run's note
                           # advises) continues the recorded one instead of reusing its answer.
                           "budget": None if sized_to_task else budget_s}
        done = _cached(out / "search.json", task, search_settings)
        resume = (out / TRIALS_FILE).exists()
        if (done is None and resume and target is None and (out / "search.json").exists()
                and read_stage(out / TRIALS_FILE, task).get("target") is None):
            # A search that ended (search.json) before its first round did, now run with other settings: its trials
            # the budget cut ran a fraction of their horizon, and the target rule needs each size's first run whole
            # (search.first_round_horizon), so the search starts over rather than continuing. (read_stage: another
            # task's trials.json is reported, never deleted.)
            (out / TRIALS_FILE).unlink()
            resume = False
            if progress:
                _progress("joint search: the recorded search ended before its first round did; it starts over")
        if done is None:
            reserve_s = RESERVE_S + RESERVE_SHARE * budget_s
            search_s = began + budget_s - time.time() - reserve_s
            if search_s < MIN_SEARCH_S:
                spent = time.time() - began
                raise ConfigError(
                    f"the budget ({budget_s:.0f} s) leaves {max(0.0, search_s):.0f} s for the search after the "
                    f"stages before it took {spent:.0f} s; the search needs at least {MIN_SEARCH_S:.0f} s. Fix: give "
                    f"--budget of at least {spent + MIN_SEARCH_S + reserve_s + 60:.0f}s (the finished "
                    "stages are saved and will be reused).")
            if progress:
                sized = (f" (its trials {SEARCH_ROUNDS:g} times as long as its first round takes; --budget sets it)"
                         if sized_to_task else "")
                _progress(f"joint search: {search_space.name} space, at most {search_s:.0f} s{sized}")
            # The search about to run replaces any finished one: interrupted, it leaves trials.json alone, which the
            # next run continues (a stale search.json would make it start over).
            (out / "search.json").unlink(missing_ok=True)
            result = run_search(
                task, search_space, out=out, trials=None, budget_s=search_s, max_batch_size=max_batch_size,
                lr_at=lr_anchor, sampler=sampler, seed=seed, device=device, ray_address=ray_address,
                rounds=SEARCH_ROUNDS if sized_to_task else None, resume=resume, stratify=True,
                step_time_at=step_time.at, stop_at_target=True,
                target=target,
                trial_timeout_s=trial_timeout_s, progress=progress, resume_command=resume_command,
            )
            trials = result.trials
            search_target = (result.target, result.target_rule)
            first_round_s = result.first_round_s
            advised_budget_s = (budget_for_rounds(probed_s, first_round_s)
                                if first_round_s is not None else None)
            _save(out / "search.json", task, search_settings, {"trials": len(trials), "elapsed_s": result.elapsed_s,
                                                              "notes": result.notes, "first_round_s": first_round_s,
                                                              "advised_budget_s": advised_budget_s})
        else:
            if progress:
                _progress(f"joint search: reused {out / TRIALS_FILE} ({done['trials']} trials)")
            recorded = read_json(out / TRIALS_FILE)
            trials = recorded["trials"]
            search_target = (recorded.get("target"), recorded.get("target_rule"))
            first_round_s, advised_budget_s = done.get("first_round_s"), done.get("advised_budget_s")
        stage("joint search", t)
        searched = sorted({r["config"]["batch_size"] for r in trials})
        if searched and searched[0] < search_space.batch_low:
            notes.append(f"the memory ceiling ({max_batch_size}) lies below the space's smallest batch size "
                         f"({search_space.batch_low}), so the search tried batch sizes {', '.join(map(str, searched))}, "
                         "the largest that fit")

        # The target the trials stopped at: the user's, else the rule's over the search's first round
        # (``run_search``'s stop_at_target), else (a search that ended before its first round did) over every trial.
        trials, reruns = split_reruns(trials)
        fit_target, target_rule = (target, None) if target is not None else search_target
        if fit_target is None and any(r["status"] in USABLE and r.get("curve") for r in trials):
            fit_target, target_rule = choose_target(trials, task.higher_is_better)
            tried = sorted({r["config"]["batch_size"] for r in trials if r["status"] in USABLE})
            notes.append(f"the budget ended before the search's first round had run every batch size (it ran "
                         f"{', '.join(map(str, tried))}), so the target was chosen over those trials alone, untuned and "
                         "one read a size, and the recommendation rests on them; a larger --budget lets the first "
                         "round try every size"
                         + (f": about --budget {math.ceil(advised_budget_s / 60)}m here (the first round would take "
                            f"about {first_round_s:.0f} s at the pace its trials ran, and the search {SEARCH_ROUNDS:g} "
                            "times that)" if advised_budget_s else ""))

        t = time.time()
        scaling = fit_scaling(
            trials, metric=task.metric, higher_is_better=task.higher_is_better, step_time=step_time,
            planned_samples=task.epochs * len(task.train), max_batch_size=max_batch_size, b_simple=b_simple,
            alpha_prior=(lr_exponent(lr_anchor, [t["config"]["batch_size"] for t in trials] or [1])
                         if shaped else lr_range["lr_scaling_exponent"]), target=fit_target, target_rule=target_rule,
            replicates=reruns, seed=seed,
        )
        _save(out / "scaling.json", task, {"target": target}, scaling.to_dict())
        stage("scaling fit", t)
        seconds["total"] = time.time() - began
        rec = Recommendation(
            batch_size=scaling.batch_size, lr=scaling.lr, warmup_steps=scaling.warmup_steps, schedule=scaling.schedule,
            schedule_params=scaling.schedule_params, optimizer_name=type(optimizer).__name__,
            total_steps=scaling.total_steps, max_batch_size=max_batch_size,
            max_batch_size_limit=max_batch_size_limit,
            critical_batch_size=scaling.critical_batch_size, critical_batch_size_interval=scaling.b_noise_interval,
            batch_size_interval=scaling.batch_size_interval, lr_scaling_exponent=scaling.lr_fit.alpha,
            time_to_target_s=scaling.time_to_target_s, target=scaling.target, metric=task.metric, b_simple=b_simple,
            report_path=out / REPORT_FILE, run_dir=out, stage_seconds=seconds, notes=notes + scaling.notes,
            make_optimizer=task.optimizer,
        )
        write_json(out / "recommendation.json", {"task": task.describe(), **rec.to_dict()})
        write_report(out)  # from the stage files, recommendation.json included
        if progress:
            _progress(f"report: {rec.report_path}")
        return rec

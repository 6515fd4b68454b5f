"""Stage 4, the joint search: Ray Tune runs the trials, an Optuna sampler proposes them, ASHA stops poor
ones early. Public entry: ``run_search``.

- Each trial trains with ``autobs.train`` (the one training loop) for ``trial_samples`` samples and reports
  every validation point to Ray as ``val_metric`` at ``samples`` seen. ASHA (Li et al. 2020) compares
  trials on samples, never steps, so batch sizes compete on the same data budget.
- A search with a target (``stop_at_target``, what ``autobs recommend`` runs): once the target is set, a
  trial ends at its confirmed crossing, the sampler minimises the samples to the target (``objective``),
  a trial that falls behind its batch size's leaders is stopped (``_leader_bound_class``, in ASHA's place),
  every other trial reruns a leader with a fresh seed (``replicate.py``), and in a stratified search the
  sampler's trials go to the batch sizes that can still be the fastest (``next_explored_size``).
- What the sampler is told otherwise: a finished trial's final metric; a diverged trial (NaN/inf loss) the
  metric of the untrained model, a bad result it learns from; an out-of-memory trial fails (Optuna ignores
  failed trials) and the space shrinks below its batch size, so that region is not proposed again; any
  other exception fails the trial, its traceback saved; a trial that makes no progress (no optimizer step,
  no evaluation) for ``trial_timeout_s`` is hung: its worker process is ended and the trial recorded ``hung``.
- Every trial's record (config, status, validation curve, step time) goes to ``trials.json`` in the run
  directory, rewritten atomically as each trial ends: steps-to-target can be read later for any target,
  and nothing finished is lost when the driver dies.
- Resume: a fresh Tuner whose sampler is first told every recorded trial (JSON, never a pickle), with the
  trial count reduced by what is already recorded. Trials running when the driver died are not recorded
  and are proposed anew.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AutobsError, ConfigError
from .lr_range import PROGRESS_EVERY_S, largest_useful_batch
from .rundir import read_json, write_json
from .space import ResolvedSpace, SearchSpace

TRIALS_FILE = "trials.json"
SAMPLERS = ("tpe", "gp", "cmaes", "random")
STATUSES = ("completed", "stopped", "diverged", "oom", "failed", "hung")  # stopped: by ASHA or the time budget
MAX_FAILURES_IN_ROW = 5
TRIAL_TIMEOUT_S = 300.0  # a trial with no optimizer step and no evaluation for this long is hung (see _Watchdog)
SAVE_SHARE = 0.1  # the most of the driver's time that rewriting trials.json may take (_Recorder.save)
HUNG_EXIT_CODE = 75  # a hung trial's worker exits with it: a mark in the worker's log (Ray does not pass it on)
TRIAL_CAP = 2000  # trials=None: as many as the time budget allows; this only stops a runaway count (trials
# stopped at the target are short: at 300 s on digits a search ran 500, the cap then, in 200 s)
ASHA_REDUCTION = 3  # ASHA's η: keep the best third at each rung (Li et al. 2020 use 3 or 4)
ASHA_RUNGS = 2  # grace period = trial_samples / η^RUNGS: rungs at 11% and 33% of a trial. One rung
# earlier (4%) judged trials before warmup ended (warmup reaches 30% of a run in adamw.yaml).


class SearchError(AutobsError):
    """The search cannot go on: too many failures in a row, or a resume that does not match."""


class TrialOutOfMemory(RuntimeError):
    """Raised inside a trial that ran out of memory, so the driver records it as ``oom``."""


@dataclass
class SearchResult:
    """The trial table and what produced it."""

    trials: list[dict[str, Any]]
    metric: str
    mode: str
    space: dict[str, Any]
    trials_requested: int | None  # None: as many as the time budget allowed
    trial_samples: int
    sampler: str
    elapsed_s: float
    path: Path | None = None
    notes: list[str] = field(default_factory=list)
    target: float | None = None  # the target trials stopped at (``stop_at_target``), and how it was chosen
    target_rule: str | None = None
    first_round_s: float | None = None  # the budget ended the first round: its whole length (``first_round_seconds``)

    @property
    def best(self) -> dict[str, Any] | None:
        """The best trial: in a search with a target, the one that reached it in the fewest samples (least
        ``objective``); else the best that ran its whole length (completed), by final metric."""
        if self.target is not None:
            scored = [t for t in self.trials if _finite(t.get("objective")) and t.get("rerun_of") is None]
            return min(scored, key=lambda t: t["objective"]) if scored else None
        done = [t for t in self.trials if t["status"] == "completed" and _finite(t["val_metric"])]
        if not done:
            return None
        sign = -1 if self.mode == "max" else 1
        return min(done, key=lambda t: sign * t["val_metric"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "mode": self.mode, "space": self.space, "sampler": self.sampler,
            "trials_requested": self.trials_requested, "trial_samples": self.trial_samples,
            "elapsed_s": self.elapsed_s, "best": self.best, "trials": self.trials, "notes": self.notes,
            "target": self.target, "target_rule": self.target_rule,
        }


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# ---------------------------------------------------------------------------------------------------
# The trial: runs in a Ray worker process


class _Watchdog:
    """Ends the trial's worker process when the trial makes no progress for ``trial_timeout_s`` seconds.

    A hang (a deadlocked data loader, a collective that never returns, a kernel stuck on a bad device)
    never reports, so nothing the driver sees tells Ray to stop it, and without a time budget the search
    would wait forever. A thread cannot be stopped from outside, and a hang in C code never returns to
    Python to see an exception, so the watchdog ends the process (``os._exit``). Ray then reports the
    trial's actor as dead, the driver records the trial ``hung`` (``_Recorder.end``) and the search goes
    on in a fresh worker. Progress is any optimizer step or evaluation, so the limit bounds the silence,
    not the trial's length: a slow trial that keeps stepping is never stopped."""

    def __init__(self, timeout_s: float):
        import threading

        self.timeout_s, self.last = timeout_s, time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="autobs-watchdog", daemon=True)
        self.thread.start()

    def progress(self, *_) -> None:
        self.last = time.monotonic()

    def stop(self) -> None:  # the worker is reused for the next trial: this trial's watch ends here
        self.done.set()

    def _watch(self) -> None:
        while not self.done.wait(min(1.0, self.timeout_s / 10)):
            if time.monotonic() - self.last > self.timeout_s:
                print(f"autobs: no progress for {self.timeout_s:.0f} s: ending this hung trial's worker",
                      file=sys.stderr, flush=True)
                os._exit(HUNG_EXIT_CODE)


def _trial(config: dict, *, task_ref: Any, trial_samples: int, device: str, seed: int,
           timeout_s: float = TRIAL_TIMEOUT_S) -> None:
    watchdog = _Watchdog(timeout_s)
    try:
        _train_trial(config, task_ref=task_ref, trial_samples=trial_samples, device=device, seed=seed,
                     watchdog=watchdog)
    finally:
        watchdog.stop()


def _train_trial(config: dict, *, task_ref: Any, trial_samples: int, device: str, seed: int,
                 watchdog: _Watchdog) -> None:
    import torch
    from ray import tune

    from .memory import is_oom
    from .scaling import CrossingWatch
    from .task import Task, load_task
    from .training import TrainConfig, train

    task = task_ref if isinstance(task_ref, Task) else _cached_task(task_ref, load_task)
    batch_size = config["batch_size"]
    total_steps = max(1, round(trial_samples / batch_size))
    warmup_steps = int(round(config["warmup_fraction"] * total_steps))
    train_config = TrainConfig(batch_size=batch_size, lr=config["lr"], warmup_steps=warmup_steps,
                               schedule=config["schedule"], schedule_params=config["schedule_params"])
    untrained = [math.nan]
    began = time.perf_counter()  # the time inside training (and its evaluations), for the overhead share
    # With a target, the run ends once its crossing is confirmed: the rest would tell the search nothing.
    watch = CrossingWatch(config["stop_target"], task.higher_is_better) if config.get("stop_target") is not None else None

    def report(point) -> bool:
        watchdog.progress()
        if point.step == 0:
            untrained[0] = point.metric
        if point.step >= total_steps:
            return False  # the run's last point comes with the final report (ASHA stops a trial at max_t)
        value = point.metric if math.isfinite(point.metric) else untrained[0]
        tune.report({"val_metric": value, "samples": point.samples, "steps": point.step,
                     "seconds": point.seconds, "train_s": time.perf_counter() - began, "final": False})
        return watch is not None and watch(point)

    try:
        result = train(task, train_config, samples=trial_samples, device=device,
                       seed=seed + config["sampler_number"], callback=report, on_step=watchdog.progress)
    except Exception as exc:  # noqa: BLE001 — an OOM is classified; anything else fails the trial as is
        if is_oom(exc):
            raise TrialOutOfMemory(f"batch size {batch_size} ran out of memory: {exc}") from None
        raise
    final = result.final_metric
    if result.diverged or not math.isfinite(final):
        final = untrained[0]  # diverged: no better than the untrained model, a bad result to learn from
    tune.report({"val_metric": final, "samples": result.samples, "steps": result.steps,
                 "seconds": result.curve[-1].seconds if result.curve else 0.0, "final": True,
                 "train_s": time.perf_counter() - began,
                 "diverged": result.diverged, "step_time_s": result.step_time_s, "warmup_steps": warmup_steps,
                 "threads": torch.get_num_threads(), "stopped_at_target": result.stop_reason == "callback"})


_TASKS: dict[str, Any] = {}


def _cached_task(path: str, load_task):
    # One load per worker process: Ray reuses workers, and loading builds data and checks the model.
    if path not in _TASKS:
        _TASKS[path] = load_task(path)
    return _TASKS[path]


# ---------------------------------------------------------------------------------------------------
# The target and the sampler's objective


class _TargetState:
    """What the driver knows of the target, shared by the recorder (which sets it and scores each trial that
    ends), the define-by-run space (which gives it to each new trial as ``stop_target``), the searcher (which
    tells the sampler each trial's ``objective`` and picks the reruns) and the leader bound. Plain data: Ray
    may pickle the searcher that holds it."""

    def __init__(self, target: float | None, first_round: int, records: list[dict], higher_is_better: bool,
                 deadline: float, per_size: bool = False, horizon: dict[int, int] | None = None,
                 horizon_s: float | None = None):
        self.target, self.first_round = target, first_round
        self.horizon = horizon or {}  # batch size → the samples a trial there runs before the target is set
        self.horizon_s = horizon_s  # the time those samples take at every size (``first_round_horizon``)
        self.records, self.higher_is_better, self.deadline = records, higher_is_better, deadline  # for the reruns
        self.objectives: dict[str, float] = {}  # Ray trial id → the value told to the sampler (``sampler_value``)
        self.per_size = per_size  # the searcher fixes each trial's batch size (a stratified search)
        self.baselines: dict[int, float] = {}  # batch size → the objective of its first scored trial (``sampler_value``)
        # batch size → the samples each of its trials (not reruns) took to reach the target, fewest first: the
        # leader bound reads it at every evaluation of every trial, so it is kept as trials end, not re-derived
        self.crossings: dict[int, list[float]] = {}
        self.crossed: set[str] = set()  # Ray trial ids the leader bound ended at their confirmed crossing

    def sampler_value(self, record: dict) -> float:
        """What the sampler is told of a scored trial: its ``objective``, or, where the searcher and not the
        sampler fixes each trial's batch size (``per_size``: a stratified search), its objective less that of
        the first trial recorded at its batch size with one (the first round's default config there).

        Why. TPE splits the trials it has into the best few (a tenth, at least one: Optuna's ``default_gamma``)
        and the rest by this value, and proposes what the best have and the rest lack. Told the samples to the
        target alone, its best are the smallest batch sizes' trials whatever their LR, warmup and schedule,
        since a small batch needs fewer samples (McCandlish et al. 2018, eq. 2.11): on friedman_mlp (e742862,
        seed 0) batch 16's default config took 8,600 samples, and a tuned trial at batch 256 that reached the
        target sooner in time took 21,000, so the best two were the default config (at batches 16 and 32) and
        the sampler kept proposing LRs near it. Where it does not choose the size, the size's part of the value
        is noise to it; relative to the default at the same size, a trial reads as what its config gained there,
        which is what it does choose. The LR is a factor of the range test's lr(B), so a factor that helps at
        one size is expected to help at its neighbours."""
        if not self.per_size:
            return record["objective"]
        b = record["config"]["batch_size"]
        if b not in self.baselines:  # kept once found: a value told never changes
            self.baselines[b] = next(r["objective"] for r in self.records if r["config"]["batch_size"] == b
                                     and r.get("rerun_of") is None and "objective" in r)
        return record["objective"] - self.baselines[b]


def objective(record: dict, target: float, higher_is_better: bool, trial_samples: int) -> float:
    """A trial's score in a search with a target (the sampler minimises it, relative to its batch size's
    default in a stratified search: ``_TargetState.sampler_value``): log of the samples a trial took to reach it
    (read off the curve's monotone fit, ``steps_to_target``; at least one step's). Samples, not steps, so
    batch sizes compete on the data they use (DESIGN, stage 4); at one batch size it ranks configs as their
    steps and their time to the target do, which is what the recommendation is made of. A trial that did not
    reach it (ASHA stopped it first, it ran out, it diverged) scores above any that did, log(2·trial_samples),
    plus its shortfall: how far its best metric stayed from the target, as a share of the way from the
    untrained model's metric (0 to 1), so TPE still learns which misses came close."""
    from .scaling import best_metric, steps_to_target

    curve, batch_size = record["curve"], record["config"]["batch_size"]
    steps = steps_to_target(curve, target, higher_is_better, monotone=True)
    if math.isfinite(steps):
        return math.log(max(1.0, steps) * batch_size)
    best = best_metric(curve, higher_is_better)
    start = curve[0]["metric"] if curve and curve[0]["steps"] == 0 and _finite(curve[0]["metric"]) else None
    shortfall = 1.0
    if math.isfinite(best) and start is not None and start != target:
        shortfall = min(1.0, max(0.0, (target - best) / (target - start)))
    return math.log(2.0 * trial_samples) + shortfall


# ---------------------------------------------------------------------------------------------------
# The driver's record of trials


class _Recorder:
    """A Ray Tune callback (built by ``_recorder_class``) that keeps each trial's record and writes
    ``trials.json`` as each trial ends."""

    def __init__(self, path: Path, header: dict, records: list[dict], space: ResolvedSpace, sampler_info: dict,
                 progress: bool, total: int, timeout_s: float = TRIAL_TIMEOUT_S, target: _TargetState | None = None,
                 higher_is_better: bool = True, rounds: float | None = None):
        self.path, self.header, self.records, self.timeout_s = path, header, records, timeout_s
        self.rounds = rounds  # with a target: the search's trials take this many times its first round's time
        self.end_at: float | None = None  # when they end (``_size_search``), known once the first round has ended
        self.space, self.sampler_info, self.progress, self.total = space, sampler_info, progress, total
        self.target, self.higher_is_better = target, higher_is_better
        self.live: dict[str, dict] = {}
        self.heard_at: dict[str, float] = {}  # when each live trial last reported (or started)
        self.failures_in_row = 0
        self.last_error = ""
        self.fatal: str | None = None  # a reason the search cannot go on (the trials learned nothing)
        self._saved_at, self._save_s = -math.inf, 0.0  # when trials.json was last written, and how long that took
        self._said_at = time.time()  # when the last progress line was printed
        self._update_target()
        self._size_search()

    def start(self, trial) -> None:
        config = trial.config
        info = self.sampler_info.get(config["sampler_number"], {})
        self.live[trial.trial_id] = {
            "number": config["number"],
            "trial_id": trial.trial_id,
            "config": {k: config[k] for k in ("batch_size", "lr", "warmup_fraction", "schedule", "schedule_params")},
            "rerun_of": config.get("rerun_of"), "seed": self.header.get("seed", 0) + config["sampler_number"],
            "params": info.get("params", {}), "distributions": info.get("distributions", {}),
            "status": "running", "val_metric": None, "samples": 0, "steps": 0, "seconds": 0.0, "train_s": 0.0,
            "step_time_s": None, "curve": [], "error": None, "started_at": time.time(),
        }
        self.heard_at[trial.trial_id] = time.time()

    def result(self, trial, result: dict) -> None:
        record = self.live.get(trial.trial_id)
        if record is None:
            return
        self.heard_at[trial.trial_id] = time.time()
        point = {k: result[k] for k in ("samples", "steps", "seconds")} | {"metric": result["val_metric"]}
        if result.get("final"):
            record.update(final=True, diverged=result["diverged"], step_time_s=result["step_time_s"],
                          warmup_steps=result["warmup_steps"], stopped_at_target=result.get("stopped_at_target", False))
        if not result.get("diverged") and (not record["curve"] or record["curve"][-1]["steps"] != point["steps"]):
            record["curve"].append(point)  # a diverged run's final value is a stand-in, not a measurement
        record.update(val_metric=result["val_metric"], samples=result["samples"], steps=result["steps"],
                      seconds=result["seconds"], train_s=result["train_s"])
        if self.progress and time.time() - self._said_at >= PROGRESS_EVERY_S:
            self._say_running()

    def _say_running(self) -> None:
        """One progress line on the trials still running: how far each has got and its last metric (said when nothing
        else has been for ``PROGRESS_EVERY_S``: heavy_cnn's trials, benchmarks/unseen_tasks, run 90-180 s each)."""
        metric = self.header["metric"]
        running = "; ".join(f"trial {r['number']} (batch {r['config']['batch_size']}) at step {r['steps']}, {metric} "
                            + (f"{r['val_metric']:.4g}" if _finite(r["val_metric"]) else "—")
                            for r in sorted(self.live.values(), key=lambda r: r["number"]))
        print(f"search: running {running} ({len(self.records)} trial{'s' if len(self.records) != 1 else ''} ended "
              "so far)", file=sys.stderr, flush=True)
        self._said_at = time.time()

    def end(self, trial, error: str | None = None) -> None:
        self._finish(trial.trial_id, error)

    def cut(self, ended_at: float) -> int:
        """Record the trials still running when the time budget ended the search as stopped, with their
        curves so far: a good trial reaches the target well before its end (the examples' best configs in
        20-30% of the run), so a trial cut at 70% is a measurement. Ray Tune does not end them through the
        callbacks; without this, at small budgets (char_lm at 15% of its grid) half the search's compute
        was thrown away. Trials with no evaluation after the untrained one are dropped. ``ended_at``: when Ray
        Tune ended them (their ``wall_s`` stops there, not at Ray's shut-down). Returns the count kept."""
        kept = 0
        for trial_id, record in list(self.live.items()):
            if any(p["steps"] > 0 for p in record["curve"]):
                self._finish(trial_id, ended_at=ended_at)
                kept += 1
            else:
                self.live.pop(trial_id)
                self.heard_at.pop(trial_id, None)
        return kept

    def _finish(self, trial_id: str, error: str | None = None, ended_at: float | None = None) -> None:
        record = self.live.pop(trial_id, None)
        silent_s = time.time() - self.heard_at.pop(trial_id, time.time())
        if record is None:
            return
        if error is not None:
            # A worker that died after at least the time limit of silence was ended by its _Watchdog (the driver's
            # silence since the last report is never shorter than the worker's since its last step).
            hung = _worker_died(error) and silent_s >= 0.9 * self.timeout_s
            record["status"] = "oom" if "TrialOutOfMemory" in error else "hung" if hung else "failed"
            record["error"] = (f"the trial made no progress (no optimizer step, no evaluation) for {self.timeout_s:.0f} s, "
                               f"so its worker was ended; set the limit with --trial-timeout. Ray's report:\n{error}"
                               if hung else error)
            record["val_metric"] = None  # a trial that reported and then crashed is not a result
            self.failures_in_row += 1
            self.last_error = error
            if record["status"] == "oom":
                self.space.exclude_from(record["config"]["batch_size"])
        else:
            crossed = self.target is not None and trial_id in self.target.crossed  # as if it had stopped itself
            record["status"] = ("diverged" if record.get("diverged")
                                else "completed" if record.get("final") or crossed else "stopped")
            if crossed:
                record["stopped_at_target"] = True
            self.failures_in_row = 0
        record.pop("final", None)  # the trial's last report's flags, folded into its status
        record.pop("diverged", None)
        record["wall_s"] = (ended_at or time.time()) - record["started_at"]
        self.records.append(record)
        self._update_target()
        self._size_search()
        self.save(force=False)
        if self.progress:
            c = record["config"]
            value = f"{record['val_metric']:.4g}" if _finite(record["val_metric"]) else "—"
            # "trial N" is its number in trials.json and the report; [k/total] counts the trials ended so far.
            status = "reached the target" if record.get("stopped_at_target") else record["status"]
            print(f"[{len(self.records)}{f'/{self.total}' if self.total else ''}] trial {record['number']}: "
                  f"batch {c['batch_size']}, lr {c['lr']:.3g}, "
                  f"{c['schedule']}, warmup {c['warmup_fraction']:.0%} → {self.header['metric']} {value} "
                  f"({status}, {record['samples']} samples, {record['wall_s']:.1f} s)", file=sys.stderr)
            self._said_at = time.time()

    def _size_search(self) -> None:
        """With ``rounds``, once the first round (the first ``first_round`` trials) has ended: end the search's trials
        ``rounds`` times the round's time after it began (``end_at``). Computed from the records, so a resumed search
        gets what its earlier session left of that (the time from its first trial's start to its last trial's end)."""
        state = self.target
        if self.rounds is None or self.end_at is not None or state is None or state.first_round < 1:
            return
        first = [r for r in self.records if r["number"] < state.first_round]
        if len(first) < state.first_round:
            return
        began = min(r["started_at"] for r in first)
        took = max(r["started_at"] + r["wall_s"] for r in first) - began
        spent = max(r["started_at"] + r["wall_s"] for r in self.records) - began
        self.end_at = time.time() + max(0.0, self.rounds * took - spent)
        state.deadline = min(state.deadline, self.end_at)  # no rerun is started that would end after it

    def _update_target(self) -> None:
        """Choose the target once the first round has ended (``run_search``'s ``stop_at_target`` says why),
        then score every ended trial with a curve for the sampler (``objective``)."""
        state = self.target
        if state is None or self.fatal is not None:
            return  # no target to keep, or the search is ending because its first round learned nothing
        if state.target is None:
            ended = {r["number"] for r in self.records}
            # The first round's trials alone (the first numbers): a trial of the sampler's that started while the
            # round's last ran, and ended first, is not a default config (the target rule's ground). Diverged ones
            # too: ``choose_target`` reads their untrained evaluations, and a round with no other trial is told
            # so at once (without a target the search has nothing to stop trials at, ladder or score by).
            first_round = [r for r in self.records if r["curve"] and r["number"] < state.first_round]
            if first_round and all(n in ended for n in range(state.first_round)):
                from .scaling import choose_target, target_rank

                try:
                    state.target, rule = choose_target(first_round, self.higher_is_better)
                except ConfigError as exc:  # in a Ray callback: the stopper ends the search, run_search raises it
                    self.fatal = str(exc)
                    return
                rule = f"{rule}, over the search's first round (a default config at each batch size"
                if state.horizon_s is not None:
                    rule += (f", each run at most as long as {target_rank(len(state.horizon))} of the "
                             f"{len(state.horizon)} sizes' whole runs take: {state.horizon_s:.3g} s at the probe's "
                             "step times")
                rule += ")"
                self.header.update(target=state.target, target_rule=rule)
                if self.progress:
                    print(f"target: {self.header['metric']} {state.target:.4g} ({rule}); later trials stop "
                          "once they have reached it", file=sys.stderr, flush=True)
        if state.target is None:
            return
        scored = [r for r in self.records
                  if "objective" not in r and r["status"] in ("completed", "stopped", "diverged") and r["curve"]]
        for r in scored:
            r["objective"] = objective(r, state.target, self.higher_is_better, self.header["trial_samples"])
            r["reached_target"] = r["objective"] < math.log(2.0 * self.header["trial_samples"])  # a miss scores more
            if r["reached_target"] and r.get("rerun_of") is None:
                bisect.insort(state.crossings.setdefault(r["config"]["batch_size"], []), math.exp(r["objective"]))
        for r in scored:  # once all are scored: a size's baseline is its first record's, in the records' order
            if r.get("rerun_of") is None:  # the sampler is not told of reruns
                state.objectives[r["trial_id"]] = state.sampler_value(r)

    def save(self, force: bool = True) -> None:
        """Rewrite trials.json whole. As trials end (``force`` false) it is rewritten only once the time since the
        last save is ``1/SAVE_SHARE`` times what that save took, so saving takes at most ``SAVE_SHARE`` of the
        driver's time: at a thousand short trials (a 150-example task, 2-minute budget) the file reached 2 MB and a
        save 80-150 ms, a minute and more of a 2-minute search. ``run_search`` saves at its end (and on an
        interruption) whatever was held back, so only a killed process can lose the last moments' trials.
        Compact JSON: indented, a save at hundreds of trials cost 80-130 ms where compact cost a fraction."""
        if not force and time.perf_counter() - self._saved_at < self._save_s / SAVE_SHARE:
            return
        began = time.perf_counter()
        write_json(self.path, {**self.header, "trials": self.records}, indent=None)
        self._saved_at = time.perf_counter()
        self._save_s = self._saved_at - began


def _recorder_class():
    from ray.tune import Callback
    from ray.tune.stopper import Stopper

    class RecorderCallback(Callback):
        def __init__(self, recorder: _Recorder):
            self.recorder = recorder

        def on_trial_start(self, iteration, trials, trial, **info):
            self.recorder.start(trial)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.recorder.result(trial, result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.recorder.end(trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.recorder.end(trial, error=_error_text(trial))

    class FailureStopper(Stopper):
        def __init__(self, recorder: _Recorder, limit: int):
            self.recorder, self.limit = recorder, limit

        def __call__(self, trial_id, result):
            return False

        def stop_all(self):
            recorder = self.recorder
            return (recorder.failures_in_row >= self.limit or recorder.fatal is not None
                    or (recorder.end_at is not None and time.time() >= recorder.end_at))

    return RecorderCallback, FailureStopper


def _worker_died(error: str) -> bool:
    """Whether Ray's error text says the trial's worker process died (rather than the trial raising)."""
    return "ActorDiedError" in error or "actor died unexpectedly" in error.lower()


def _error_text(trial) -> str:
    """The trial's error as Ray saved it (a text file with the traceback), last 4000 characters."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    return text[-4000:] or "the trial failed; Ray recorded no error text"


def _spread_order(values: list[int]) -> list[int]:
    """``values`` reordered so that every prefix spreads across the range: ends first, then midpoints
    (a van der Corput order), e.g. 4..9 → 4, 9, 6, 5, 7, 8."""
    order: list[int] = []
    pending = [(0, len(values) - 1)]
    if values:
        order = [values[0]] + ([values[-1]] if len(values) > 1 else [])
    while pending:
        lo, hi = pending.pop(0)
        if hi - lo > 1:
            mid = (lo + hi) // 2
            order.append(values[mid])
            pending += [(lo, mid), (mid, hi)]
    return order


def _per_batch_asha_class():
    """Ray's ASHA with one bracket per batch size: a trial is compared only with trials of its own batch
    size, at the same samples (and so the same steps)."""
    import copy

    from ray.tune.schedulers import ASHAScheduler

    class PerBatchASHA(ASHAScheduler):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._template = copy.deepcopy(self._brackets[0])  # an empty bracket (brackets=1)
            self._by_batch: dict[int, Any] = {}

        def on_trial_add(self, tune_controller, trial):
            super().on_trial_add(tune_controller, trial)  # checks metric and mode
            b = trial.config["batch_size"]
            self._trial_info[trial.trial_id] = self._by_batch.setdefault(b, copy.deepcopy(self._template))

    return PerBatchASHA


def first_round_horizon(batch_sizes: list[int], trial_samples: int, step_time_at) -> tuple[dict[int, int], float]:
    """How far each batch size's trial runs before the target is set: ``(samples by batch size, horizon_s)``.
    ``horizon_s`` is the time the ``scaling.target_rank``-th quickest whole run takes (``step_time_at(B)``:
    seconds per optimizer step, the memory probe's throughput model that the recommendation's times use);
    each size runs ``horizon_s`` of its steps, its whole run at most.

    Why it loses nothing. The target rule (``scaling.choose_target``) takes the level that k of the sizes
    reached, k = ``target_rank``; at least k sizes ran their whole run or the horizon, so at least k reach
    the target within ``horizon_s``, and the recommendation, the size that reaches it soonest, does too. A
    size that has not reached it in ``horizon_s`` of its own steps is slower than they are, so the rest of
    its run cannot change the answer. What it saves: the smallest sizes' runs take the most steps and the
    longest time, and their crossing comes early (friedman_mlp, 26a3929: batch 16's default config ran
    34-52 s of a 74-78 s search and crossed the target 7% into its 15,000 steps), so the first round took
    all but a few trials of the budget."""
    from .scaling import target_rank

    seconds = {b: math.ceil(trial_samples / b) * step_time_at(b) for b in batch_sizes}
    horizon_s = sorted(seconds.values())[target_rank(len(seconds)) - 1]
    return {b: min(trial_samples, math.ceil(horizon_s / step_time_at(b)) * b) for b in batch_sizes}, horizon_s


def first_round_seconds(horizon: dict[int, int], step_time_at, workers: int, records: list[dict] = ()) -> float:
    """Wall seconds the whole first round takes on ``workers`` concurrent trials: each size's run to its
    ``horizon`` (``first_round_horizon``'s samples by batch size) at the probe's step times, summed and shared among
    the workers, times the pace the ``records`` ran at (their ``wall_s`` over their steps at the probe's step times,
    in total: the long trials weigh most, as in a whole round; 1 without any, a lower bound). Why a pace: a trial runs
    on one core where the probe used them all, and its start-up and evaluations add to its steps (heavy_cnn,
    benchmarks/unseen_tasks, on 2 cores: the first round's two whole trials took 1.7x and 1.9x the probe's time, its
    two cut ones 2.5x and 3.9x)."""
    compute = sum(math.ceil(samples / b) * step_time_at(b) for b, samples in horizon.items())
    timed = [(r["wall_s"], math.ceil(r["samples"] / b) * step_time_at(b))
             for r in records if r.get("wall_s") and r.get("samples") and (b := r["config"]["batch_size"])]
    pace = sum(w for w, _ in timed) / sum(c for _, c in timed) if timed else 1.0
    return compute * pace / max(1, workers)


EXPLORE_WITHIN = 2.0  # a size is explored while its best time to the target is within this factor of the fastest


def next_explored_size(records: list[dict], batch_sizes: list[int], trial_samples: int, running: Counter,
                       target: float | None, higher_is_better: bool) -> int:
    """The batch size of the sampler's next trial in a stratified search with a target, after its first round
    (a default config at each size): the least-tried size among those whose best time to the target so far is
    within ``EXPLORE_WITHIN`` of the fastest size's (ties: the faster). ``running``: trials started and not yet
    recorded, by batch size. With ``target`` None (the first round's last trials still running), the target
    that ``scaling.choose_target`` reads from the trials ended so far stands in for it; with none to read, the
    least-tried size, the first in ``batch_sizes``'s order on ties.

    A size's time to the target is its samples to the target ÷ its batch size × its step time (the median
    ``step_time_s`` of its trials). Its samples are read as ``scaling.best_per_batch`` reads its steps: the
    rerun median of the leader that ranks first (``scaling.leader_rank``), else its fewest over its own trials
    (a lucky first read at a small size would otherwise draw trials there until a rerun corrects it). A size none
    of whose trials has reached the target is taken at its whole planned run's time, which its time to the target exceeds. A size with no
    timed trial yet (none ended) is always a candidate, after the timed ones as tried as it. A size whose LR ladder
    has not started (``next_lr_factor``) is also taken at its default's time × the largest gain the ladder made at
    another size, if that is less (below).

    Why. The recommendation is the size with the least time to the target, at the LR the search found there,
    and the search affords few trials after its first round (at 15% of a grid, 2-8), so they go where the
    answer can be. Every size's first trial ran the same default config, so a size slower than the fastest by
    more than the scatter between seeds of one config is unlikely to win after tuning: steps-to-target scatter
    by a log-sd of about 0.25 between seeds (digits, batch 16: 149 and 242 steps), about 0.35 for the ratio of
    two sizes' reads, and 2x is 2 of those sd. An LR that is off by one factor at every size (the range tests'
    level) slows every size alike and leaves the order. Before, the trials cycled over every size: on
    friedman_mlp (sizes 16-4096, 91 s) the 2-4 after the first round went to 16, 4096, 256 and 64 in that
    order, where 4096 (58 steps a run) never reaches the target and 16 was 2x slower than 64; and the one
    started while the first round ended, before the target, went to 16 and ran its whole run (up to 9 s).
    """
    from .replicate import TOP_K, measured_reruns, median_step_times
    from .scaling import choose_target, leader_rank

    tried = Counter(running)
    for r in records:
        if r.get("rerun_of") is None:
            tried[r["config"]["batch_size"]] += 1
    scored = [r for r in records if r["status"] in ("completed", "stopped", "diverged") and r["curve"]]
    if target is None:
        try:
            target = choose_target([r for r in scored if r["status"] != "diverged"], higher_is_better)[0]
        except ConfigError:  # no trial ended yet, or none learned anything
            return min(batch_sizes, key=lambda b: tried[b])
    missed = math.log(2.0 * trial_samples)  # ``objective`` scores any miss above this

    def samples(r: dict) -> float | None:
        """The trial's samples to the target; None for a miss."""
        value = r["objective"] if "objective" in r else objective(r, target, higher_is_better, trial_samples)
        return math.exp(value) if value < missed else None

    step_times = median_step_times(records)
    leaders: dict[int, list[tuple[float, dict]]] = {}
    # trial number → its reruns' samples to the target (a miss: the whole run)
    reruns = {n: [trial_samples if (read := samples(r)) is None else read for r in rs]
              for n, rs in measured_reruns(records).items()}
    defaults: dict[int, tuple[dict, float]] = {}  # batch size → its first scored trial (the first round's default)
    laddered: set[int] = set()  # sizes with a step of their LR ladder (``next_lr_factor``)
    for r in scored:
        if r.get("rerun_of") is not None:
            continue
        read = samples(r)
        b = r["config"]["batch_size"]
        default = defaults.setdefault(b, (r, math.inf if read is None else read))[0]
        if r is not default and _lr_step_of(r, default.get("params") or {}):
            laddered.add(b)
        if read is not None:
            leaders.setdefault(b, []).append((read, r))
    best: dict[int, float] = {}  # as scaling.best_per_batch reads a size: its first leader's rerun median, else its best read
    for b, reads in leaders.items():
        reads = sorted(reads, key=lambda x: x[0])[:TOP_K]
        ranked = [(leader_rank(read, reruns[r["number"]]), statistics.median(reruns[r["number"]]))
                  for read, r in reads if r["number"] in reruns]
        best[b] = min(ranked)[1] if ranked else reads[0][0]
    seconds = {b: min(best.get(b, trial_samples), trial_samples) / b * step_times[b]
               for b in batch_sizes if b in step_times}
    # A size whose LR was not laddered yet is judged by what tuning gained at the sizes laddered so far: its
    # default's read × the largest gain (best ÷ default) among them. Why: once the leaders' LRs are
    # tuned, an untuned size's default read is no like-for-like comparison: on friedman_mlp the LR ladder took
    # batch 128 from 196 steps to 115, and batch 256, whose default was 0.77 s to the target against 128's 0.61 s,
    # fell out of the 2x window and kept its default (1.8-3.0x the grid's best steps there, 5 seeds), which
    # flattened S(B) and put B_noise at 0.26-0.77x the oracle's. The LR is a factor of the range test's lr(B)
    # (``ResolvedSpace.suggest``), so a factor that helps at one size is expected to help at its neighbours.
    first = {b: read for b, (_, read) in defaults.items()}
    gain = min((best[b] / first[b] for b in laddered if b in best and math.isfinite(first[b])), default=1.0)
    for b in seconds:
        if b not in laddered and math.isfinite(first.get(b, math.inf)) and gain < 1:
            seconds[b] = min(seconds[b], first[b] * gain / b * step_times[b])
    fastest = min(seconds.values(), default=math.inf)
    candidates = [b for b in batch_sizes if b not in seconds or seconds[b] <= EXPLORE_WITHIN * fastest]
    return min(candidates, key=lambda b: (tried[b], seconds.get(b, math.inf)))  # untimed: explored once, then last


LR_LADDER_STEP = math.sqrt(10)  # half a decade: the usual LR grid's spacing (0.01, 0.0316, 0.1, ...)


def next_lr_factor(records: list[dict], batch_size: int, baseline: dict, low: float, high: float) -> float | None:
    """The LR factor of the next trial at ``batch_size`` in its LR ladder, or None once the ladder has bracketed
    the best factor (the sampler then proposes the whole config).

    The ladder: trials at the default config (``baseline``: ``ResolvedSpace.baseline_params`` at this size)
    with the LR factor alone changed, a step of ``LR_LADDER_STEP`` from the best of them so far, up first, then
    down, each clipped to the space's range [``low``, ``high``] and left out when it lies within half a step of
    one the ladder has already run. The best is the least ``objective`` (a diverged run, or one the leader
    bound stopped, scores as a miss). It has bracketed the best factor once both steps from the best are run
    (or out of range). A step at or above an LR factor that diverged at this size is not taken: with the rest
    of the config the same, a larger LR only steps further past the edge of stability. So where the default
    itself diverged (a range test that read its LR past that edge: a CNN whose loss sat flat for the range
    test's first 100 steps read 0.045 for AdamW, and its first round diverged at 6 of 7 sizes) the ladder
    goes down at once instead of spending a trial on the step up.

    Why. The LR moves the steps to the target most of all the settings searched (Bengio 2012, sec. 3.1.1), and
    the range tests' LR can sit far from the best of a whole run: on friedman_mlp (AdamW) the default at batch
    128 was 0.0016, the grid's best 0.01, and at 15% of a grid the search affords a few trials a size after its
    first round. TPE proposed LRs near the default there (factors 0.5-1.6 in 8 trials, seed 2 of session 18's
    runs), since its first proposals at a size fall where its history is. A ladder in half-decade steps, as a
    grid search spaces its LRs, finds a best that far off in two or three trials. The ladder's trials go through
    the sampler's study (enqueued) and are told to it like its own, so TPE starts from what they found.
    Measured on friedman (5 seeds, 15% of its grid): without the ladder (bca5fc9) the pick's LR was 0.2-0.6x the
    grid's best nearby in 3 of 5 and regret read 0.92-2.29; with it (103c413) 1.26-1.54, and 0.90-1.50 once
    the training loop no longer stopped AdamW's one-step overshoots as divergence (b1cea36; its LRs at the
    picked size were 0.96-1.2x the grid's best). On digits (SGD, whose default sits near the best) the step up
    mostly diverges and the step down is slower: two trials a size confirm the default (0.93-1.47, as before).

    Args:
        records: the search's trial records (reruns are skipped; trials not yet scored are not read).
        batch_size: the size of the next trial (``next_explored_size``).
        baseline: the default config's sampler parameters at that size.
        low, high: the space's LR factor range.
    """
    ladder = [r for r in records if r.get("rerun_of") is None and r["config"]["batch_size"] == batch_size
              and "objective" in r and _lr_step_of(r, baseline)]
    if not ladder:
        return None
    best = min(ladder, key=lambda r: r["objective"])["params"]["lr_factor"]
    diverged = [r["params"]["lr_factor"] for r in ladder if r.get("status") == "diverged"]
    half_step = math.log(LR_LADDER_STEP) / 2
    for factor in (best * LR_LADDER_STEP, best / LR_LADDER_STEP):
        factor = min(high, max(low, factor))
        if any(factor >= d for d in diverged):
            continue  # a config that diverged at a lower LR diverges at this one too: nothing to learn there
        if all(abs(math.log(factor / r["params"]["lr_factor"])) > half_step for r in ladder):
            return factor
    return None


def _lr_step_of(record: dict, baseline: dict) -> bool:
    """Whether ``record`` ran the default config ``baseline`` (sampler parameters) with at most its LR factor
    changed: a step of the size's LR ladder, or the default itself."""
    params = record.get("params") or {}
    return params.keys() == baseline.keys() and all(params[k] == v for k, v in baseline.items() if k != "lr_factor")


def _leader_bound_class():
    """The early stop of a search with a target, in ASHA's place: a trial that has not reached the target
    after the samples its batch size's leaders needed is stopped.

    Why not ASHA there. ASHA judges a trial by its metric at fixed shares of the run (11% and 33%), but the
    objective is the samples to the target, and the crossing comes at a different share at each batch size
    (on digits about 10% of the run at batch 16, 30-40% at 512): at 512, ASHA's first rung came 7 steps in,
    long before any crossing, and stopped most trials there, so few trials at the large sizes were ever read
    (measured: 9-15 of about 17 explored trials per search stopped unread). A trial that has not crossed by
    the time the size's ``TOP_K``-th fastest trial had is no leader whatever it does next: it is not rerun,
    so the fit never uses it, and the sampler learns enough from its shortfall. Where the size has fewer
    crossings, the bound is twice its one crossing: one config's steps-to-target scatter by about 25% between
    seeds (log sd; digits, batch 16: 149 and 242 steps), so a config as good as that one crosses within 2x
    with high probability. Reruns are never stopped (they are measurements), nor one whose latest evaluation
    is at or past the target (it is confirming its crossing). Before the target is set, a trial is stopped
    only past its batch size's horizon, where the search has one (``first_round_horizon``).

    It also ends, at its confirmed crossing, a trial that started before the target was set: such a trial
    does not know the target (``stop_target`` is given at its start), so it would run whole, and the rest of
    its run tells nothing more (on char_lm at 25% of its grid, the first trial after the first round had its
    crossing confirmed at 35% of its run, 14 s in, and ran on to 37 s). The crossing is confirmed as in the
    trial (``CrossingWatch``): its last ``CONFIRM_EVALS`` evaluations at or past the target; its id goes to
    ``target.crossed`` so the recorder records it as a trial that reached the target."""
    from collections import deque

    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    from .replicate import TOP_K
    from .scaling import CONFIRM_EVALS, reached

    class LeaderBound(FIFOScheduler):
        def __init__(self, target: _TargetState):
            super().__init__()
            self.target = target
            self.recent: dict[str, deque] = {}  # trial id → its last CONFIRM_EVALS metrics (after step 0)

        def bound(self, batch_size: int) -> float | None:
            """Samples past which a trial at ``batch_size`` that has not crossed is stopped; None: no bound."""
            crossings = self.target.crossings.get(batch_size)
            if not crossings:
                return None
            return crossings[TOP_K - 1] if len(crossings) >= TOP_K else 2 * crossings[0]

        def on_trial_result(self, tune_controller, trial, result):
            state = self.target
            if trial.config.get("stop_target") is None and result.get("steps", 0) > 0:
                self.recent.setdefault(trial.trial_id, deque(maxlen=CONFIRM_EVALS)).append(result.get("val_metric"))
            horizon = state.horizon.get(trial.config["batch_size"])
            if (state.target is None and horizon is not None and trial.config.get("rerun_of") is None
                    and not result.get("final") and result.get("samples", 0) >= horizon):
                return TrialScheduler.STOP  # before the target: no size runs past the horizon (first_round_horizon)
            if (state.target is None or trial.config.get("rerun_of") is not None or "samples" not in result
                    or result.get("final")):
                return TrialScheduler.CONTINUE  # the final report: the trial ran whole, there is nothing to stop

            def past(metric) -> bool:
                return _finite(metric) and reached(metric, state.target, state.higher_is_better)

            recent = self.recent.get(trial.trial_id, ())
            if len(recent) == CONFIRM_EVALS and all(past(m) for m in recent):
                state.crossed.add(trial.trial_id)  # started before the target: its crossing is confirmed
                return TrialScheduler.STOP
            if past(result.get("val_metric")):
                return TrialScheduler.CONTINUE
            bound = self.bound(trial.config["batch_size"])
            return TrialScheduler.STOP if bound is not None and result["samples"] > bound else TrialScheduler.CONTINUE

    return LeaderBound


# ---------------------------------------------------------------------------------------------------
# Sampler and Ray


def make_sampler(name: str, seed: int):
    """The Optuna sampler called ``name``: TPE (default; Bergstra et al. 2011, good with few trials and
    categorical choices such as the schedule), GP, CMA-ES or random."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401 — Optuna's CmaEsSampler needs it
        except ImportError:
            raise ConfigError("sampler 'cmaes' needs the cmaes package: pip install cmaes") from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler {name!r}. Use one of: {', '.join(SAMPLERS)}.")


def start_ray(address: str | None, num_cpus: int, num_gpus: int) -> bool:
    """Start a local Ray (dashboard off, every server on the loopback address) or join ``address`` (default:
    ``RAY_ADDRESS`` from the environment, if set).
    Returns whether this call started Ray (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")  # Ray's own convention for "join this cluster"
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        if not _token_auth_enabled():
            print(f"warning: joined the Ray cluster at {address} without authentication: anyone who can reach its "
                  "ports can run code on its machines and read what autobs sends there (the task file, its data). "
                  "Turn on Ray's token authentication on the cluster and here (RAY_AUTH_MODE=token; "
                  "https://docs.ray.io/en/latest/ray-security/token-auth.html).", file=sys.stderr, flush=True)
        return True
    # Ray resolves "127.0.0.1" given as the node address to the machine's outward IP, and its servers then
    # listen there. In the mode Ray uses on macOS/Windows (no multi-node cluster) the node address is the
    # loopback one, so nothing listens outside this machine: that is what a local search needs.
    # Ray reads that switch from the environment when first imported: set both, so it holds whether or
    # not Ray was imported already (tests/test_search.py checks every listening socket).
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    # Ray 2.60 turns token authentication on for a new local cluster and logs a notice saying so on every
    # start; the README says it, and the notice would sit among the search's progress lines.
    import logging

    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # When the budget ends a trial before its first report, Ray's result table warns that it "failed to fetch
    # metrics" for it, with a path into its folder. autobs reads its trials from its own record (trials.json),
    # which counts such a trial as cut short, so the warning only alarms: keep Ray's table analysis quiet.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # address="local": a Ray of our own even when another runs on this machine (or a killed one left its
    # address in /tmp/ray): without it ray.init joins that one and refuses num_cpus.
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    return True


def stop_ray() -> None:
    """``ray.shutdown()`` of the Ray that :func:`start_ray` started, less its wait on the autoscaler monitor.

    Ray stops its processes one by one, each with SIGTERM and up to 1 s to exit before SIGKILL. The autoscaler
    monitor does not exit on SIGTERM, so every shut-down waited the whole second on it (measured on Ray 2.60:
    monitor 1.01 s, every other process under 0.05 s). A Ray started by autobs has no autoscaler to stop
    cleanly (no cluster config; the monitor only reports), so the monitor is killed at once. Ray's private
    process table is read defensively: if it moves, this is plain ``ray.shutdown()``.
    """
    import ray

    try:
        from ray._private import ray_constants, worker

        for info in worker._global_node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []):
            info.process.kill()
            info.process.wait(timeout=1)
    except Exception:  # noqa: BLE001 - a Ray without this table still shuts down below
        pass
    ray.shutdown()


def _token_auth_enabled() -> bool:
    """Whether this process talks to Ray with token authentication (Ray >= 2.52 has it; older Ray has none)."""
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:
        return False
    return is_token_auth_enabled()


def _add_recorded(study, records: list[dict], target: _TargetState | None) -> None:
    """Tell a fresh study every recorded trial, so a resumed sampler knows what was already tried: in a
    search with a target, what it was told of the trial then (``_TargetState.sampler_value``; a trial not yet
    scored is left out), else its final metric."""
    import optuna
    from optuna.distributions import json_to_distribution

    for r in records:
        if not r.get("params") or (target is not None and r["status"] not in ("oom", "failed", "hung") and "objective" not in r):
            continue
        value = r["val_metric"] if target is None else (target.sampler_value(r) if "objective" in r else None)
        failed = r["status"] in ("oom", "failed", "hung") or not _finite(value)
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE,
            value=None if failed else value,
            params=r["params"],
            distributions={k: json_to_distribution(v) for k, v in r["distributions"].items()},
        ))


class _TrialNumbers:
    """Gives each trial its record number when the searcher proposes it: the smallest number no trial has.

    At the proposal, not when Ray starts the trial, because a resumed search maps its queue to numbers by position:
    the first round's sizes its records lack, queued in order, are to take the numbers the interruption lost, in
    order (with 0, 1 and 3 ended and 2 running at a Ctrl-C, the lost size reruns as 2). Proposals come in queue
    order; Ray's start callbacks need not (seen: two trials proposed together, 128's from the queue and then one of
    the sampler's at 64, whose start was heard first and took number 2). In a search never interrupted the numbers
    are the proposals' count."""

    def __init__(self, recorded: Iterable[int] = ()):
        self.taken = set(recorded)

    def next(self) -> int:
        number = next(n for n in range(len(self.taken) + 1) if n not in self.taken)
        self.taken.add(number)
        return number


class _DefineByRun:
    """Optuna's define-by-run space: draws a config, numbers it (``_TrialNumbers``) and keeps what the sampler drew
    (params and their distributions, as JSON) for the trial's record; in a search with a target, the config carries
    it as ``stop_target`` (None until it is chosen). A class, not a closure: Ray pickles the searcher."""

    def __init__(self, space: ResolvedSpace, numbers: _TrialNumbers, target: _TargetState | None = None):
        self.space, self.numbers, self.target = space, numbers, target
        self.sampler_info: dict[int, dict] = {}

    def __call__(self, trial) -> dict:
        from optuna.distributions import distribution_to_json

        config = self.space.suggest(trial)
        self.sampler_info[trial.number] = {
            "params": dict(trial.params),
            "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
        }
        return {**config, "sampler_number": trial.number, "number": self.numbers.next(),
                "stop_target": self.target.target if self.target else None, "rerun_of": None}


def _target_search_class():
    """Ray's ``OptunaSearch`` for a search with a target.

    - The sampler is told each trial's ``objective`` (samples to the target; in a stratified search, relative
      to the default config at its batch size: ``_TargetState.sampler_value``) instead of its last metric. A
      trial's objective is known only once the target is (the recorder chooses it after the first round) and
      the recorder has the trial's whole curve (Ray calls the searcher before the callbacks when a trial
      ends), so finished trials wait here and are told before the next proposal.
    - Once the target is set, every other trial is a rerun of a leading trial with a fresh seed
      (``replicate.next_rerun`` picks it), while one is due: the fit needs each batch size's steps measured
      more than once (``replicate.py`` says why), and the sampler needs new configs; with no way to tell
      which pays more, they share the trials equally. A rerun is not the sampler's: it is not told of it.
    - In a stratified search (``resolved`` given), once the first round's queue is used up, each of the
      sampler's trials has its batch size fixed first (``next_explored_size``); the sampler proposes the rest,
      after the size's LR ladder (``next_lr_factor``: the default config with the LR factor alone changed,
      enqueued one step at a time) has bracketed the best factor there.
    """
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    from .replicate import SEED_BASE, next_rerun

    class TargetSearch(OptunaSearch):
        def __init__(self, *, target: _TargetState, numbers: _TrialNumbers, resolved: ResolvedSpace | None = None,
                     trial_samples: int = 0, **kwargs):
            super().__init__(**kwargs)
            self._target, self._numbers = target, numbers  # reruns are numbered as the sampler's trials are
            self._resolved, self._trial_samples = resolved, trial_samples
            self._sizes: dict[str, int] = {}  # Ray trial id → its batch size, for the sampler's trials (this session's)
            self._waiting: dict[str, dict] = {}
            self._reruns: dict[str, int] = {}  # Ray trial id → the number of the trial it reruns (this session's)
            self._explored = 0  # the sampler's trials proposed since the target was set (this session's)
            self._ladder: dict[str, int] = {}  # Ray trial id → its batch size, for LR ladder steps (this session's)

        def on_trial_result(self, trial_id, result):
            pass  # intermediate metrics are not the objective (and no Optuna pruner reads them)

        def on_trial_complete(self, trial_id, result=None, error=False):
            if trial_id in self._reruns:
                return
            if error or not result:
                super().on_trial_complete(trial_id, result, error)
            else:
                self._waiting[trial_id] = result

        def suggest(self, trial_id):
            for done in [t for t in self._waiting if t in self._target.objectives]:
                result = self._waiting.pop(done)
                super().on_trial_complete(done, {**result, self.metric: self._target.objectives[done]})
            state = self._target
            if state.target is not None and len(self._reruns) <= self._explored:
                recorded = {r["trial_id"]: r["rerun_of"] for r in state.records if r.get("rerun_of") is not None}
                leader = next_rerun(state.records, state.target, state.higher_is_better,
                                    issued=Counter((recorded | self._reruns).values()),
                                    seconds_left=state.deadline - time.time())
                if leader is not None:
                    self._reruns[trial_id] = leader["number"]
                    return {**leader["config"], "sampler_number": SEED_BASE + len(recorded | self._reruns),
                            "number": self._numbers.next(), "stop_target": state.target,
                            "rerun_of": leader["number"]}
            if state.target is not None:
                self._explored += 1
            if self._resolved is not None and not self._ot_study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                order = [2**k for k in _spread_order([int(math.log2(b)) for b in self._resolved.batch_sizes])]
                ended = {r["trial_id"] for r in state.records}
                running = Counter(b for t, b in self._sizes.items() if t not in ended)
                size = next_explored_size(state.records, order, self._trial_samples, running, state.target,
                                          state.higher_is_better)
                params = {"log2_batch_size": int(math.log2(size))}
                if state.target is not None and size not in {b for t, b in self._ladder.items() if t not in ended}:
                    baseline = self._resolved.baseline_params(params["log2_batch_size"])
                    lr = self._resolved.space.lr
                    factor = next_lr_factor(state.records, size, baseline, lr.low, lr.high)
                    if factor is not None:  # the size's LR ladder is not done: its next step (one at a time)
                        params = {**baseline, "lr_factor": factor}
                        self._ladder[trial_id] = size
                self._ot_study.enqueue_trial(params)
            config = super().suggest(trial_id)
            if isinstance(config, dict):  # the first round's trials too: one still running counts as tried
                self._sizes[trial_id] = config["batch_size"]
            return config

    return TargetSearch


# ---------------------------------------------------------------------------------------------------


def run_search(
    task,
    space: SearchSpace,
    *,
    out: Path,
    trials: int | None = 20,
    budget_s: float | None = None,
    rounds: float | None = None,
    trial_samples: int | None = None,
    max_batch_size: int | None = None,
    lr_at=None,
    sampler: str = "tpe",
    seed: int = 0,
    device: str = "auto",
    gpus_per_trial: float = 1.0,
    ray_address: str | None = None,
    resume: bool = False,
    max_failures_in_row: int = MAX_FAILURES_IN_ROW,
    trial_timeout_s: float = TRIAL_TIMEOUT_S,
    first_params: list[dict] | None = None,
    stratify: bool = False,
    step_time_at=None,
    asha: bool = True,
    stop_at_target: bool = False,
    target: float | None = None,
    progress: bool = True,
    resume_command: str | None = None,
) -> SearchResult:
    """Search batch size, LR, warmup and schedule together; return every trial's record.

    Args:
        task: the task; trial workers reload it from ``task.path`` when it has one.
        space: a checked search space (``load_space``); its anchors are bound here.
        out: the run directory: ``trials.json`` and Ray's experiment folder ``search/`` go there.
        trials: the number of trials in all (a resumed search counts the recorded ones); None: as many as
            ``budget_s`` allows.
        budget_s: wall-time budget of this call, in seconds.
        rounds: with ``stop_at_target``, end the trials once they have run this many times as long as the first round
            took (its first ``len(batch sizes)`` trials with ``stratify``): a length in the task's own trials, which
            ``budget_s`` still cuts short.
        trial_samples: each trial's length in samples; default the task's planned run (epochs × data).
        max_batch_size / lr_at: the anchors (memory ceiling, range test ``lr_at(B)``) the space uses.
        sampler: ``tpe`` (default), ``gp``, ``cmaes`` or ``random``.
        device: where trials train; with GPUs, one trial per ``gpus_per_trial`` of a GPU.
        ray_address: join this Ray cluster instead of starting a local one.
        resume: continue the search recorded in ``out/trials.json``.
        max_failures_in_row: stop after this many failed, hung or out-of-memory trials in a row.
        trial_timeout_s: a trial with no optimizer step and no evaluation for this long is ended and
            recorded ``hung`` (default 300 s).
        first_params: sampler parameters (``log2_batch_size``, ``lr_factor``, ...) of trials to run first,
            such as a known-good config; the sampler proposes the rest.
        stratify: give every batch size of the space the same share of trials (in an order that spreads
            them early, so a search cut short still covers the range; the first round runs a default
            config at each size, ``ResolvedSpace.baseline_params``; the sampler proposes the rest of each
            later config), and run ASHA within each batch size. This is the search the scaling fit needs:
            its best steps-to-target at every size. Left to itself, a sampler scoring final metrics at a
            fixed data budget settles on the smallest sizes, and ASHA across sizes stops the large ones
            at its first rung, where they have taken few steps. With ``stop_at_target``, the trials after
            the first round go to the sizes that can still be the fastest to the target instead
            (``next_explored_size``).
        asha: stop poor trials early with ASHA, each compared with trials of its batch size when ``stratify``
            (in a search with a target, the leader bound of ``_leader_bound_class`` instead).
        stop_at_target: end each trial once its metric has reached the target for ``CONFIRM_EVALS``
            evaluations in a row, and have the sampler minimise the samples it took (``objective``) instead of
            the final metric; stop a trial that falls behind its batch size's leaders (``_leader_bound_class``);
            rerun the leaders with fresh seeds in every other trial (``_target_search_class``). The target is
            ``target`` when given, else ``scaling.choose_target``'s rule over the first round (with
            ``stratify``, the default config at each batch size; else the first trials run at once), whose
            trials run their whole length (with ``step_time_at``, up to ``first_round_horizon``). Why: the recommendation is made of steps to the target, which a
            trial yields at its crossing, well before its end; the rest of the run reads nothing more. Measured
            on digits at 15% of the grid (41 s): whole trials took 3-7 s, trials stopped at the target 0.5-2 s,
            and the search ran 28-42 trials where it ran 23-27. The target is saved in ``trials.json``
            (``target``, ``target_rule``) and in ``SearchResult``.
        target: the metric value to reach (with ``stop_at_target``); default the rule above.
        step_time_at: seconds per optimizer step at a batch size (the memory probe's model). With it, a
            stratified search that chooses its own target runs each first-round trial only as far as
            ``first_round_horizon`` says instead of whole.

    Raises:
        SearchError: a resume that does not match the record, or too many failures in a row.
    """
    entered = time.time()
    import optuna
    import torch
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    from .training import resolve_device

    if trials is None and budget_s is None:
        raise ConfigError("give the search a number of trials, a time budget, or both.")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise ConfigError(f"trials must be a positive integer; got {trials!r}.")
    if budget_s is not None and not budget_s > 0:
        raise ConfigError(f"the search budget must be positive; got {budget_s!r} s.")
    if not (isinstance(trial_timeout_s, (int, float)) and trial_timeout_s > 0):
        raise ConfigError(f"the trial time limit must be a positive number of seconds; got {trial_timeout_s!r}.")
    if not 0 < gpus_per_trial <= 1 and not (gpus_per_trial >= 1 and float(gpus_per_trial).is_integer()):
        raise ConfigError(f"gpus_per_trial must be a fraction in (0, 1] or a whole number; got {gpus_per_trial!r}.")
    make_sampler(sampler, seed)  # an unknown or unavailable sampler fails before anything starts
    n_train = len(task.train)
    trial_samples = trial_samples or task.epochs * n_train
    mode = "max" if task.higher_is_better else "min"
    if max_batch_size is not None:
        # A batch size that leaves the planned run too few optimizer steps cannot train well in the user's
        # budget whatever its LR (the range test skips such sizes for the same reason).
        max_batch_size = max(1, min(max_batch_size, largest_useful_batch(task)))
    resolved = space.resolve(max_batch_size=max_batch_size, n_train=n_train, lr_at=lr_at)
    path = Path(out) / TRIALS_FILE
    header = {"task": task.describe(), "space": space.to_dict(), "metric": task.metric, "mode": mode,
              "trials_requested": trials, "trial_samples": trial_samples, "sampler": sampler, "seed": seed,
              "target": target if stop_at_target else None,
              "target_rule": "given by the user" if stop_at_target and target is not None else None}

    records: list[dict] = []
    if path.exists() and not resume:
        raise SearchError(f"{path} already holds a search. Fix: add --resume to continue it, or use --fresh "
                          "(or another --out) to start over.")
    if resume and path.exists():
        saved = read_json(path)
        if stop_at_target and target is None:  # the rule's target, chosen in the run that is resumed
            header.update(target=saved.get("target"), target_rule=saved.get("target_rule"))
        for key, what in (("task", "task"), ("space", "search space"), ("metric", "metric"),
                          ("trial_samples", "trial length"), ("sampler", "sampler"), ("target", "target")):
            old, new = saved.get(key), header[key]
            if key == "task":
                old, new = (old or {}).get("fingerprint"), new["fingerprint"]
            if key == "space":
                old, new = (old or {}).get("digest"), new["digest"]
            if old != new:
                raise SearchError(f"{path}: cannot resume: the {what} differs from the recorded search "
                                  f"({old!r} then, {new!r} now). Fix: resume with the same settings, or start "
                                  "over with --fresh or another --out.")
        records = [r for r in saved.get("trials", []) if r.get("status") in STATUSES]
        for r in records:
            if r["status"] == "oom":
                resolved.exclude_from(r["config"]["batch_size"])
    count = trials or TRIAL_CAP
    remaining = count - len(records)
    notes = [f"resumed: {len(records)} recorded trials kept"] if resume and records else []
    if remaining <= 0:
        return _result(header, records, 0.0, path, notes + ["all requested trials were already recorded"])

    dev = resolve_device(device)
    num_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    num_gpus = torch.cuda.device_count() if dev.type == "cuda" else 0
    if num_gpus:
        resources = {"cpu": max(1, num_cpus // max(1, int(num_gpus / gpus_per_trial))), "gpu": gpus_per_trial}
        concurrent = max(1, int(num_gpus / gpus_per_trial))
    else:
        resources, concurrent = {"cpu": 1}, num_cpus  # one core per trial, as many trials as cores

    order = _spread_order([int(math.log2(b)) for b in resolved.batch_sizes]) if stratify else []
    target_state = None
    if stop_at_target:
        horizon, horizon_s = {}, None
        if stratify and header["target"] is None and step_time_at is not None:
            horizon, horizon_s = first_round_horizon(resolved.batch_sizes, trial_samples, step_time_at)
        target_state = _TargetState(header["target"], len(order) if stratify else concurrent, records,
                                    task.higher_is_better,
                                    deadline=math.inf if budget_s is None else entered + budget_s, per_size=stratify,
                                    horizon=horizon, horizon_s=horizon_s)
    recorder = _Recorder(path, header, records, resolved, {}, progress, trials, trial_timeout_s, target_state,
                         task.higher_is_better, rounds)  # on a resume, scores the recorded trials once the target is known
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    search_mode = "min" if stop_at_target else mode  # the objective is samples to the target: fewer is better
    study = optuna.create_study(storage=storage, study_name="autobs",
                                direction="maximize" if search_mode == "max" else "minimize")
    _add_recorded(study, records, target_state)
    # Queued trials take the numbers the records lack, in order (``_TrialNumbers``): on a resume, the first-round
    # trials an interruption lost run again before any new one.
    recorded = {r["number"] for r in records}
    queued = [params for i, params in enumerate(first_params or []) if i not in recorded]
    if stratify:  # the first round: a default config at every size (ResolvedSpace.baseline_params says why)
        queued += [resolved.baseline_params(order[i]) if i < len(order) else {"log2_batch_size": order[i % len(order)]}
                   for i in range(len(order) if stop_at_target else count) if i not in recorded]  # with a target,
        # the searcher fixes each later trial's size as it goes (``next_explored_size``)
    for params in queued:
        study.enqueue_trial(params)
    define_by_run = _DefineByRun(resolved, _TrialNumbers(recorded), target_state)
    recorder.sampler_info = define_by_run.sampler_info
    searcher_args = dict(space=define_by_run, metric="val_metric", mode=search_mode, sampler=make_sampler(sampler, seed),
                         storage=storage, study_name="autobs")
    searcher = (_target_search_class()(target=target_state, numbers=define_by_run.numbers,
                                       resolved=resolved if stratify else None,
                                       trial_samples=trial_samples, **searcher_args)
                if stop_at_target else OptunaSearch(**searcher_args))
    Callback, Stopper = _recorder_class()
    scheduler = FIFOScheduler()
    if stop_at_target:
        scheduler = _leader_bound_class()(target_state)
    elif asha:
        scheduler = (_per_batch_asha_class() if stratify else ASHAScheduler)(
            time_attr="samples", metric="val_metric", mode=mode, max_t=trial_samples,
            grace_period=max(1, trial_samples // ASHA_REDUCTION**ASHA_RUNGS), reduction_factor=ASHA_REDUCTION)
    task_ref = str(task.path) if task.path is not None else task
    trainable = tune.with_parameters(_trial, task_ref=task_ref, trial_samples=trial_samples,
                                     device="cuda" if num_gpus else str(dev), seed=seed, timeout_s=trial_timeout_s)
    started = start_ray(ray_address, num_cpus, num_gpus)
    began = time.time()
    if budget_s is not None:  # the budget is this call's: Ray's start-up is spent from it
        budget_s = max(1.0, budget_s - (began - entered))
    if target_state is not None and target_state.horizon and budget_s is not None and progress:
        # Said at the start, when the user can still stop and give a larger budget (the stages before are kept).
        at_least = first_round_seconds(target_state.horizon, step_time_at, concurrent)
        if at_least > budget_s:
            print(f"joint search: its first round (a default config at each of {len(resolved.batch_sizes)} batch "
                  f"sizes) needs at least {at_least:.0f} s at the probe's step times on {concurrent} worker"
                  f"{'s' if concurrent > 1 else ''}, more than the search's {budget_s:.0f} s: the budget will end it "
                  "first, and the answer will rest on the sizes it ran. A larger --budget lets it run (the "
                  "finished stages are kept)", file=sys.stderr, flush=True)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=remaining,
                                        max_concurrent_trials=concurrent, time_budget_s=budget_s,
                                        reuse_actors=True),  # no new worker process (and torch import) per trial
            run_config=tune.RunConfig(name="ray", storage_path=str((Path(out) / "search").resolve()), verbose=0,
                                      callbacks=[Callback(recorder)], stop=Stopper(recorder, max_failures_in_row)),
        )
        recorder.save()
        try:
            # Ray Tune's default output engine prints an experiment header and the results path even at
            # verbose=0, in among the progress lines; its legacy reporter prints nothing at verbose=0. Ray
            # reads the switch when fit() starts, so it is set for this call only.
            with contextlib.redirect_stdout(sys.stderr), _environ(RAY_AIR_NEW_OUTPUT="0"):
                tuner.fit()  # stdout is for --json alone: anything Ray still prints goes to stderr
            fit_ended = time.time()
        except KeyboardInterrupt:
            again = resume_command or "autobs tune ... --resume"
            raise SearchError(f"interrupted: {len(records)} finished trials are saved in {path}. Resume with: "
                              f"{again}") from None
    finally:
        recorder.save()  # what the throttle held back, also on an interruption
        if started:
            stop_ray()
    elapsed = time.time() - began
    sized = recorder.end_at is not None and time.time() >= recorder.end_at
    out_of_time = (budget_s is not None and elapsed >= budget_s * 0.98) or sized
    if out_of_time and (cut := recorder.cut(fit_ended)):  # not after a Ctrl-C: a resume reruns those trials whole
        notes.append(f"{cut} trial{'s' if cut > 1 else ''} still running when the search ended "
                     f"{'were' if cut > 1 else 'was'} kept as stopped, with {'their' if cut > 1 else 'its'} curve so far")
        recorder.save()
    if recorder.fatal is not None:
        raise ConfigError(f"the search stopped after its first round: {recorder.fatal} (its trials are saved in {path})")
    if len(records) < count and recorder.failures_in_row < max_failures_in_row and not out_of_time:
        # Ray Tune catches the first Ctrl-C itself and ends fit() early, without raising: a short count
        # that no budget or failure explains is that interruption.
        again = resume_command or "autobs tune ... --resume"
        raise SearchError(f"interrupted after {len(records)} of {count} trials; they are saved in {path}. "
                          f"Resume with: {again}")
    if recorder.failures_in_row >= max_failures_in_row:
        raise SearchError(
            f"the search stopped: {recorder.failures_in_row} trials in a row failed, hung or ran out of memory "
            f"(finished trials are saved in {path}). The last error:\n{recorder.last_error[-1500:]}"
        )
    if target_state is not None and target_state.horizon and target_state.target is None:
        # The first round did not end: how long it would have taken, at the pace its trials ran, tells the user
        # what budget would do (``pipeline.tune``'s note).
        header["first_round_s"] = first_round_seconds(target_state.horizon, step_time_at, concurrent, records)
        recorder.save()
    if sized:
        notes.append(f"the search ended after {len(records)} trials, {rounds:g} times as long as its first round took")
    elif out_of_time:
        notes.append(f"the time budget ({budget_s:.0f} s) ended the search after {len(records)} trials"
                     + (f" of {trials}" if trials else ""))
    return _result(header, records, elapsed, path, notes)


@contextlib.contextmanager
def _environ(**values: str):
    """Set environment variables for the ``with`` block, then put back what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _result(header: dict, records: list[dict], elapsed: float, path: Path, notes: list[str]) -> SearchResult:
    return SearchResult(trials=records, metric=header["metric"], mode=header["mode"], space=header["space"],
                        trials_requested=header["trials_requested"], trial_samples=header["trial_samples"],
                        sampler=header["sampler"], elapsed_s=elapsed, path=path, notes=notes,
                        target=header.get("target"), target_rule=header.get("target_rule"),
                        first_round_s=header.get("first_round_s"))

"""The whole job (`autobs recommend`, `autobs.tune`): stages cached and resumed, the answer usable."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time

import pytest
import torch

import autobs
import autobs.rundir
from autobs import pipeline, search
from autobs.cli import main as cli_main
from autobs.lr_range import largest_useful_batch
from autobs.rundir import write_json
from autobs.schedules import SCHEDULES

from .conftest import DIGITS
from .test_scaling import _trials


def _fake_search(calls: list, first_round_s: float | None = None):
    """A stand-in for the Ray search: synthetic trials at four batch sizes (S_min 40, B_noise 100), each rerun
    once (as the search reruns its leaders; the reruns' curves are their trials' own). It sets no target, as a
    search whose budget ended before its first round did; ``first_round_s``: how long that round would take."""

    def run(task, space, *, out, **settings):
        calls.append(settings)
        trials = _trials([16, 32, 64, 128], [40 * (1 + 100 / b) for b in (16, 32, 64, 128)])
        trials += [{**t, "number": len(trials) + t["number"], "rerun_of": t["number"]} for t in trials]
        write_json(out / search.TRIALS_FILE, {"task": task.describe(), "trial_samples": 1000, "trials": trials})  # as
        # the real search records them
        return search.SearchResult(trials=trials, metric=task.metric, mode="max", space=space.to_dict(),
                                   trials_requested=len(trials), trial_samples=1000, sampler="tpe",
                                   elapsed_s=1.0, path=out / search.TRIALS_FILE, first_round_s=first_round_s)

    return run


def _fake_stages(monkeypatch, calls: list, first_round_s: float | None = None) -> None:
    monkeypatch.setattr(search, "run_search", _fake_search(calls, first_round_s))


def test_interrupted_run_resumes_without_redoing_finished_stages(digits_run, monkeypatch):
    out = digits_run  # a run interrupted (Ctrl-C) once its search began (conftest.digits_stages)
    saved = {name: (out / name).read_text() for name in ("memory.json", "lr_range.json", "noise.json")}
    assert not (out / "recommendation.json").exists()
    # The noise run trains at the range tests' level (their geometric mean), not at one size's read.
    suggestions = json.loads(saved["lr_range.json"])["suggestions"].values()
    assert json.loads(saved["noise.json"])["lr"] == pytest.approx(math.prod(suggestions) ** (1 / len(suggestions)))

    # The rerun must not measure again: any probe, sweep or noise run now fails the test.
    def forbidden(*args, **kwargs):
        raise AssertionError("a finished stage was run again")

    for module, name in (("memory", "probe_memory"), ("lr_range", "lr_range_test"), ("noise", "noise_scale")):
        monkeypatch.setattr(f"autobs.{module}.{name}", forbidden)
    calls: list = []
    _fake_stages(monkeypatch, calls, first_round_s=400.0)
    rec = autobs.tune(DIGITS, budget=600, out=out, progress=False)
    assert {name: (out / name).read_text() for name in saved} == saved
    assert len(calls) == 1 and calls[0]["stratify"] and calls[0]["budget_s"] <= 600
    assert calls[0]["stop_at_target"]  # trials stop at the target once it is set, and leaders are rerun
    assert rec.batch_size in (16, 32, 64, 128)
    assert json.loads((out / "recommendation.json").read_text())["batch_size"] == rec.batch_size
    # On a CPU memory allows far more than digits's planned run can use: the answer says which limit set the largest.
    assert rec.max_batch_size == largest_useful_batch(autobs.load_task(DIGITS))
    assert f"largest batch size {rec.max_batch_size} (a larger one would leave the planned run under" in rec.summary()
    per_batch = json.loads((out / "scaling.json").read_text())["per_batch"]
    assert [r["replicates"] for r in per_batch] == [1, 1, 1, 1]  # the reruns re-measure the fit's points
    # The stand-in search set no target (as a search whose budget ended before its first round did): the answer
    # says its target and fit rest on the trials that ran.
    cut_short = [n for n in rec.notes
                 if "before the search's first round had run every batch size (it ran 16, 32, 64, 128)" in n]
    assert len(cut_short) == 1
    # ... and what budget would let that round run, and the sized search after it: 2 rounds of 400 s, the probe as it
    # ran (here, reused: a second or two), the range test and noise run at their shares, the reserve.
    minutes = math.ceil(pipeline.budget_for_rounds(0.0, 400.0) / 60)
    assert minutes == math.ceil((2 * 400 + 4) / 0.72 / 60) == 19
    assert f"about --budget {minutes}m here (the first round would take about 400 s" in cut_short[0]

    # A finished search is reused too, with what it said; --fresh redoes everything.
    again = autobs.tune(DIGITS, budget=600, out=out, progress=False)
    assert len(calls) == 1 and again.batch_size == rec.batch_size
    assert cut_short[0] in again.notes
    with pytest.raises(AssertionError, match="run again"):
        autobs.tune(DIGITS, budget=600, out=out, fresh=True, progress=False)


def test_another_budget_continues_the_search_or_starts_it_over_if_its_first_round_had_not_ended(digits_run, monkeypatch):
    # A starved run's note advises a larger --budget; run again in the same directory, it must search again, not
    # hand back the recorded search's answer.
    calls: list = []
    fake = _fake_search(calls, first_round_s=400.0)  # a search whose budget ended its first round (no target)

    def run(task, space, *, out, **settings):
        settings["recorded"] = (out / search.TRIALS_FILE).exists()  # what the search found when it began
        return fake(task, space, out=out, **settings)

    monkeypatch.setattr(search, "run_search", run)
    out = digits_run
    autobs.tune(DIGITS, budget=600, out=out, progress=False)
    autobs.tune(DIGITS, budget=600, out=out, progress=False)
    assert len(calls) == 1  # the same budget: the recorded search is the answer
    autobs.tune(DIGITS, budget=1200, out=out, progress=False)
    # Another budget searches again; with the first round cut short (trials at a fraction of their horizon), from
    # the start: the recorded trials are not continued.
    assert len(calls) == 2 and calls[1]["budget_s"] > calls[0]["budget_s"]
    assert not calls[1]["resume"] and not calls[1]["recorded"]
    # A recorded search whose first round ended (it set the target) is continued: its trials are kept.
    recorded = json.loads((out / search.TRIALS_FILE).read_text())
    write_json(out / search.TRIALS_FILE, {**recorded, "target": 0.9, "target_rule": "the rule"})
    autobs.tune(DIGITS, budget=900, out=out, progress=False)
    assert len(calls) == 3 and calls[2]["resume"] and calls[2]["recorded"]


def test_the_budget_counts_from_the_commands_start_not_from_the_search(digits_run, monkeypatch):
    calls: list = []
    _fake_stages(monkeypatch, calls)
    out = digits_run
    autobs.tune(DIGITS, budget=600, out=out, progress=False)
    (out / "search.json").unlink()  # the measured stages are reused; the search runs again
    # As `autobs recommend` passes it: the command began 300 s ago (loading, say), so the search gets 300 s less.
    autobs.tune(DIGITS, budget=600, out=out, progress=False, started_at=time.time() - 300)
    first, second = calls[0]["budget_s"], calls[1]["budget_s"]
    assert first < 600 - 4 and second < first - 250  # the reserve for fit, report and exit comes off both


def test_without_a_budget_the_search_is_sized_to_the_task(digits_stages, tmp_path, monkeypatch, capsys):
    calls: list = []
    _fake_stages(monkeypatch, calls)
    alone, budgeted = (shutil.copytree(digits_stages, tmp_path / name) for name in ("alone", "budgeted"))
    autobs.tune(DIGITS, out=alone)
    err = capsys.readouterr().err
    assert "times as long as its first round takes; --budget sets it" in err and " s of at most 300 s] " in err
    autobs.tune(DIGITS, budget=600, out=budgeted, progress=False)  # a budget given is the user's to spend
    assert [c["rounds"] for c in calls] == [pipeline.SEARCH_ROUNDS, None]
    assert calls[0]["budget_s"] < pipeline.DEFAULT_BUDGET_S < calls[1]["budget_s"]  # the whole run's cap still holds


def test_recommendation_builds_working_optimizer_and_scheduler(digits_run, monkeypatch):
    _fake_stages(monkeypatch, [])
    rec = autobs.tune(DIGITS, budget=600, out=digits_run, progress=False)
    task = autobs.load_task(DIGITS)
    model = task.model()
    opt = rec.optimizer(model.parameters())
    assert isinstance(opt, torch.optim.SGD)  # the task's own optimizer (digits_mlp.py uses SGD)
    assert opt.param_groups[0]["lr"] == pytest.approx(rec.lr)
    sched = rec.scheduler(opt)
    x, y = task.train.batch(torch.arange(rec.batch_size))
    lrs = []
    for _ in range(5):
        loss = task.loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert all(0 < lr <= rec.lr * (1 + 1e-9) for lr in lrs)
    assert math.isfinite(loss.item())
    half = rec.scheduler(rec.optimizer(model.parameters()), total_steps=rec.total_steps // 2)
    assert half.last_epoch == 0  # a shorter run gets its own schedule


def test_too_small_a_budget_is_a_clear_error(tmp_path, capsys):
    code = cli_main(["recommend", str(DIGITS), "--budget", "5s", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--budget of at least" in err and "Traceback" not in err
    assert (tmp_path / "run" / "memory.json").exists()  # what finished is kept for the next run


def test_recommend_cli_end_to_end_on_digits(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "autobs", "recommend", str(DIGITS), "--out", str(out), "--json"]  # default budget
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    rec = json.loads(done.stdout)
    for key in ("batch_size", "lr", "warmup_steps", "schedule", "max_batch_size", "critical_batch_size",
                "lr_scaling_exponent", "time_to_target_s", "report"):
        assert key in rec
    assert rec["batch_size"] & (rec["batch_size"] - 1) == 0 and rec["batch_size"] <= rec["max_batch_size"]
    assert rec["lr"] > 0 and rec["schedule"] in SCHEDULES and 0 <= rec["warmup_steps"] < rec["total_steps"]
    assert rec["time_to_target_s"] > 0
    assert rec["report"] and "<svg" in (out / "report.html").read_text()  # the report is written too
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert len({t["config"]["batch_size"] for t in trials}) >= 3  # the search covered several batch sizes
    first = {}
    for t in trials:
        first.setdefault(t["config"]["batch_size"], t["config"])
    assert all(c["schedule"] == "cosine" and c["warmup_fraction"] == 0.0 for c in first.values())  # the default first
    reruns = [t for t in trials if t.get("rerun_of") is not None]
    by_number = {t["number"]: t for t in trials}
    assert reruns and all(t["config"] == by_number[t["rerun_of"]]["config"] for t in reruns)  # the leaders' own configs
    assert any(r["replicates"] for r in json.loads((out / "scaling.json").read_text())["per_batch"])
    # Without --budget the search ended by its own length, a multiple of its first round, not at the 5-minute cap.
    assert any("times as long as its first round took" in n for n in json.loads((out / "search.json").read_text())["notes"])
    assert "joint search done" in done.stderr  # progress on stderr, JSON alone on stdout
    assert "Token authentication is enabled" not in done.stderr  # no Ray notice among the progress lines

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0
    assert "reused" in again.stderr and "joint search: reused" in again.stderr
    assert {k: v for k, v in json.loads(again.stdout).items() if k != "stage_seconds"} == \
        {k: v for k, v in rec.items() if k != "stage_seconds"}


def test_a_second_process_on_the_same_run_directory_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from autobs.rundir import locked\n"
        "with locked(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)"), str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for command in ("recommend", "tune"):
            done = subprocess.run([sys.executable, "-m", "autobs", command, str(DIGITS), "--out", str(out)],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 2, done.stderr[-2000:]
            assert f"in use by another autobs process (pid {holder.pid})" in done.stderr
    finally:
        holder.kill()
        holder.wait()
    with autobs.rundir.locked(out):  # released when its holder dies (here: killed)
        pass

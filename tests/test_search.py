"""The joint search: search-space files (no Ray), and a few small Ray searches (Ray is slow to start)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import autobs
from autobs.search import SearchError, run_search, start_ray, stop_ray
from autobs.space import SPACES_DIR, SearchSpaceError, load_space

from .conftest import ROOT

SMALL_SPACE = """\
batch_size: {low: 16, high: 128}
lr: {low: 0.05, high: 0.5}
warmup_fraction: {low: 0.0, high: 0.1}
schedules:
  constant: {}
  cosine: {min_lr_ratio: {low: 0.0, high: 0.1}}
"""

# The data every small task below trains on: 800 points in 4 dimensions, two classes.
TASK_DATA = """
def train_data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(800, 4, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()
"""

# A task whose training step does what its batch size says: 16 trains, 32 raises, 64 diverges (NaN
# outputs), 128 "runs out of memory" with the CPU allocator's real message. Evaluation is left alone.
FAULTY_TASK = """
import torch

class Faulty(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x):
        if self.training and x.shape[0] == 32:
            raise ValueError("a bug in the user's model")
        if self.training and x.shape[0] == 128:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
                               "you tried to allocate 1073741824 bytes. Error code 12 (Cannot allocate memory)")
        out = self.linear(x)
        return out * float("nan") if self.training and x.shape[0] == 64 else out

def model():
    return Faulty()

""" + TASK_DATA


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------
# Search-space files


@pytest.mark.parametrize("name", ["default", "sgd", "adamw"])
def test_bundled_spaces_load_and_cover_every_schedule(name):
    space = load_space(name)
    assert set(space.schedules) == set(autobs.SCHEDULES)
    assert space.needs_max_batch_size and space.needs_range_test


BAD_SPACES = [  # (case, text, what the message must name)
    ("unknown top key", SMALL_SPACE + "momentum: {low: 0.8, high: 0.99}\n", "momentum (line 7): unknown key"),
    ("unknown range key", SMALL_SPACE.replace("{low: 0.05, high: 0.5}", "{low: 0.05, hi: 0.5}"), "lr.hi (line 2)"),
    ("low above high", SMALL_SPACE.replace("{low: 0.0, high: 0.1}}", "{low: 0.2, high: 0.1}}"),
     "schedules.cosine.min_lr_ratio (line 6): low=0.2 is above high=0.1"),
    ("wrong type", SMALL_SPACE.replace("low: 16", "low: sixteen"), "batch_size.low (line 1): expected a positive integer"),
    ("unknown anchor", SMALL_SPACE.replace("high: 128", "high: max_batch"), "batch_size.high (line 1): unknown anchor"),
    ("unknown lr anchor", SMALL_SPACE.replace("{low: 0.05", "{anchor: lr_finder, low: 0.05"), "lr.anchor (line 2)"),
    ("unknown schedule", SMALL_SPACE + "  cyclic: {}\n", "schedules.cyclic (line 7): unknown key"),
    ("param of another schedule", SMALL_SPACE.replace("constant: {}", "constant: {gamma: 0.1}"),
     "schedules.constant.gamma (line 5): unknown key"),
    ("missing key", "batch_size: {low: 16, high: 128}\n", "lr is missing"),
    ("log of zero", SMALL_SPACE.replace("{low: 0.05", "{low: 0.0"), "lr.low (line 2): must be above 0"),
    ("not yaml", "batch_size: [16\n", "not valid YAML"),
]


@pytest.mark.parametrize("case,text,names", BAD_SPACES, ids=[c[0] for c in BAD_SPACES])
def test_bad_space_file_names_file_key_and_line(tmp_path, case, text, names):
    path = write(tmp_path, "space.yaml", text)
    with pytest.raises(SearchSpaceError) as info:
        load_space(path)
    assert str(path) in str(info.value) and names in str(info.value), str(info.value)
    assert "Fix" in str(info.value) or "YAML" in str(info.value)


def test_anchored_space_follows_the_range_test_and_the_ceiling(tmp_path):
    space = load_space("adamw")
    with pytest.raises(SearchSpaceError, match="autobs lr-find"):
        space.resolve(max_batch_size=1000, n_train=5000)
    resolved = space.resolve(max_batch_size=1000, n_train=5000, lr_at=lambda b: 1e-3 * (b / 64) ** 0.5)
    assert resolved.batch_sizes == [16, 32, 64, 128, 256, 512]  # powers of two up to the ceiling
    resolved.exclude_from(256)  # an out-of-memory trial at 256: never proposed again
    assert resolved.batch_sizes == [16, 32, 64, 128]
    # A ceiling below the bundled space's floor (16) is a model too big for its device at 16: the largest sizes that
    # fit are searched. A space file the user wrote keeps its floor, and the error says to lower it there.
    lr_at = lambda b: 1e-3  # noqa: E731
    assert space.resolve(max_batch_size=13, n_train=5000, lr_at=lr_at).batch_sizes == [2, 4, 8]
    assert space.resolve(max_batch_size=3, n_train=5000, lr_at=lr_at).batch_sizes == [2]
    own = tmp_path / "own.yaml"
    own.write_text((SPACES_DIR / "adamw.yaml").read_text())
    with pytest.raises(SearchSpaceError, match="lower batch_size.low in this space file, or give the memory probe"):
        load_space(own).resolve(max_batch_size=13, n_train=5000, lr_at=lr_at)


def test_baseline_config_is_the_middle_of_the_lr_range_with_cosine_and_least_warmup():
    import optuna

    resolved = load_space("adamw").resolve(max_batch_size=1000, n_train=5000, lr_at=lambda b: 1e-3 * (b / 64) ** 0.5)
    params = resolved.baseline_params(7)
    assert params == {"log2_batch_size": 7, "lr_factor": pytest.approx(2**0.5), "schedule": "cosine",
                      "warmup_fraction": 0.0, "cosine.min_lr_ratio": pytest.approx(0.05)}
    # Enqueued, it is what the search trains: the range test's LR at that size times the middle of the space's
    # factors (0.2-10: sqrt 2), no warmup, cosine.
    study = optuna.create_study()
    study.enqueue_trial(params)
    config = resolved.suggest(study.ask())
    assert config["batch_size"] == 128 and config["lr"] == pytest.approx(1e-3 * 2**0.5 * 2**0.5)
    assert config["warmup_fraction"] == 0.0 and config["schedule"] == "cosine"
    # With SGD the default trains at the range test's LR itself (sgd.yaml's factors 0.1-10 centre on 1).
    sgd = load_space("sgd").resolve(max_batch_size=1000, n_train=5000, lr_at=lambda b: 0.1)
    assert sgd.baseline_params(7)["lr_factor"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------
# Ray searches


def test_search_records_completed_diverged_oom_and_failed_trials_and_goes_on(tmp_path):
    task = autobs.load_task(write(tmp_path, "faulty.py", FAULTY_TASK))
    space = load_space(write(tmp_path, "space.yaml", SMALL_SPACE))
    order = [{"log2_batch_size": k, "lr_factor": 0.2, "warmup_fraction": 0.0, "schedule": "constant"}
             for k in (5, 6, 7, 4)]  # 32 raises, 64 diverges, 128 OOMs, then 16 trains
    result = run_search(task, space, out=tmp_path, trials=6, trial_samples=1600, first_params=order,
                        max_failures_in_row=10, asha=False, progress=False)
    by_size = {}
    for t in result.trials:
        by_size.setdefault(t["config"]["batch_size"], set()).add(t["status"])
    assert by_size[32] == {"failed"} and by_size[64] == {"diverged"} and by_size[128] == {"oom"}
    assert by_size[16] == {"completed"}
    assert len(result.trials) == 6  # the search went on past every failure, to the trials asked for
    failed = next(t for t in result.trials if t["status"] == "failed")
    assert "a bug in the user's model" in failed["error"] and failed["val_metric"] is None
    # After the OOM at 128, no later trial was proposed at 128 or above.
    oom_at = next(i for i, t in enumerate(result.trials) if t["status"] == "oom")
    assert all(t["config"]["batch_size"] < 128 for t in result.trials[oom_at + 1:])
    diverged = next(t for t in result.trials if t["status"] == "diverged")
    assert math.isfinite(diverged["val_metric"])  # told to the sampler as a bad result, not NaN
    completed = next(t for t in result.trials if t["status"] == "completed")
    assert completed["curve"][-1]["samples"] == completed["samples"] and completed["step_time_s"] > 0
    saved = json.loads((tmp_path / "trials.json").read_text())
    assert [t["status"] for t in saved["trials"]] == [t["status"] for t in result.trials]

    # Interrupted with trials 0, 1 and 3 ended and 2 still running (a Ctrl-C keeps ended trials alone): the
    # resumed search runs the lost queued trial (128's) under its number first, and numbers every trial once.
    saved["trials"] = [t for t in saved["trials"] if t["number"] in (0, 1, 3)]
    (tmp_path / "trials.json").write_text(json.dumps(saved))
    resumed = run_search(task, space, out=tmp_path, trials=6, trial_samples=1600, first_params=order,
                         max_failures_in_row=10, asha=False, progress=False, resume=True)
    numbers = [t["number"] for t in resumed.trials]
    assert sorted(numbers) == list(range(6))
    assert next(t for t in resumed.trials if t["number"] == 2)["config"]["batch_size"] == 128


# A model that trains for a while (so its trial reports validation points) and then raises.
CRASHES_LATER_TASK = """
import torch

class CrashesLater(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)
        self.steps = 0

    def forward(self, x):
        if self.training:
            self.steps += 1
            if self.steps > 30:
                raise RuntimeError("the user's data loader broke mid-run")
        return self.linear(x)

def model():
    return CrashesLater()

""" + TASK_DATA


def test_trial_that_reported_and_then_crashed_is_failed_not_complete(tmp_path):
    task = autobs.load_task(write(tmp_path, "crashes.py", CRASHES_LATER_TASK))
    space = load_space(write(tmp_path, "space.yaml", SMALL_SPACE.replace("low: 16, high: 128", "low: 16, high: 16")))
    result = run_search(task, space, out=tmp_path, trials=2, trial_samples=1600, asha=False, progress=False)
    assert [t["status"] for t in result.trials] == ["failed", "failed"]
    assert any(len(t["curve"]) > 3 for t in result.trials)  # it did report validation points first
    assert all(t["val_metric"] is None and "broke mid-run" in t["error"] for t in result.trials)
    assert result.best is None  # nothing counted as complete


# A model whose training step at batch size 32 blocks forever in C code (a deadlock: no exception can
# reach it), and trains at every other size.
HANGS_TASK = """
import threading
import torch

class Hangs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x):
        if self.training and x.shape[0] == 32:
            threading.Event().wait()
        return self.linear(x)

def model():
    return Hangs()

""" + TASK_DATA


def test_hung_trial_is_ended_after_the_time_limit_and_the_search_goes_on(tmp_path):
    task = autobs.load_task(write(tmp_path, "hangs.py", HANGS_TASK))
    space = load_space(write(tmp_path, "space.yaml", SMALL_SPACE.replace("low: 16, high: 128", "low: 16, high: 32")))
    order = [{"log2_batch_size": k, "lr_factor": 0.2, "warmup_fraction": 0.0, "schedule": "constant"} for k in (5, 4)]
    def too_long(*_):
        raise TimeoutError("the hung trial was not ended: the search would never return")

    # A broken watchdog fails this test (the alarm raises inside the search; Ray may wrap the error) instead of
    # hanging CI until its own time limit.
    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(300)
    try:
        result = run_search(task, space, out=tmp_path, trials=2, trial_samples=1600, first_params=order,
                            trial_timeout_s=4, asha=False, progress=False)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    by_size = {t["config"]["batch_size"]: t for t in result.trials}
    assert by_size[32]["status"] == "hung" and "no progress" in by_size[32]["error"]
    assert by_size[32]["val_metric"] is None
    assert by_size[16]["status"] == "completed"  # the search went on in a fresh worker


def test_failures_in_a_row_stop_the_search_with_a_message(tmp_path):
    task = autobs.load_task(write(tmp_path, "faulty.py", FAULTY_TASK))
    space = load_space(write(tmp_path, "space.yaml", SMALL_SPACE.replace("low: 16, high: 128", "low: 32, high: 32")))
    with pytest.raises(SearchError, match="2 trials in a row failed") as info:
        run_search(task, space, out=tmp_path, trials=8, trial_samples=640, max_failures_in_row=2, progress=False)
    assert "a bug in the user's model" in str(info.value)
    saved = json.loads((tmp_path / "trials.json").read_text())
    assert 2 <= len(saved["trials"]) < 8


def test_local_ray_listens_on_loopback_only_and_has_no_dashboard():
    import psutil

    # Children from before (another test's worker pool leaves multiprocessing's resource tracker running) are not Ray's.
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    assert start_ray(None, num_cpus=1, num_gpus=0)
    try:
        ray_processes = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        ours = {p.pid for p in ray_processes} | {os.getpid()}
        listening = [c.laddr for c in psutil.net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN and c.pid in ours]
        assert listening  # Ray's servers are up ...
        assert all(a.ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for a in listening), listening
        assert all(a.port != 8265 for a in listening)  # ... and the dashboard is not
    finally:
        stop_ray()
    # ... and stopping it (the monitor killed outright, the rest by Ray) leaves none of its processes behind
    _, alive = psutil.wait_procs(ray_processes, timeout=10)
    assert not alive, [p.cmdline() for p in alive]


def test_joining_a_ray_cluster_without_authentication_warns(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HOME": str(tmp_path), "RAY_AUTH_MODE": "disabled"}  # no token anywhere
    ray_cli = str(Path(sys.executable).with_name("ray"))
    # --block keeps the head's processes in one process group of their own, stopped below without
    # touching any other Ray on this machine (`ray stop` would stop them all).
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", "--node-ip-address=127.0.0.1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        env.pop("RAY_AUTH_MODE")
        joined = subprocess.run([sys.executable, "-c", (
            "import sys, time, ray; from autobs.search import start_ray\n"
            "for _ in range(60):\n"  # until the head is up
            "    try:\n        start_ray(sys.argv[1], 1, 0); break\n"
            "    except ConnectionError:\n        time.sleep(1)\n"
            "print(len(ray.nodes())); ray.shutdown()"), f"127.0.0.1:{port}"],
            env=env, capture_output=True, text=True, timeout=120)
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
    assert joined.returncode == 0 and joined.stdout.strip() == "1", joined.stderr[-2000:]
    assert f"joined the Ray cluster at 127.0.0.1:{port} without authentication" in joined.stderr
    assert "RAY_AUTH_MODE=token" in joined.stderr  # and how to turn it on
    # The killed head left its address behind (/tmp/ray/ray_current_cluster): a local search still starts
    # a Ray of its own instead of joining that address.
    local = subprocess.run([sys.executable, "-c", (
        "import ray; from autobs.search import start_ray\n"
        "assert start_ray(None, 1, 0); print(ray.cluster_resources()['CPU']); ray.shutdown()")],
        env={k: v for k, v in env.items() if k != "RAY_ADDRESS"}, capture_output=True, text=True, timeout=120)
    stale = Path("/tmp/ray/ray_current_cluster")
    if stale.exists() and stale.read_text().strip().endswith(f":{port}"):
        stale.unlink()  # leave no trace of the killed head for other programs on this machine
    assert local.returncode == 0 and local.stdout.strip() == "1.0", local.stderr[-2000:]


def test_tune_cli_resumes_after_kill_9_without_losing_or_rerunning_trials(tmp_path):
    space = write(tmp_path, "space.yaml", SMALL_SPACE)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "autobs", "tune", str(ROOT / "examples/digits_mlp.py"), "--space", str(space),
           "--trials", "6", "--trial-samples", "8000", "--out", str(out)]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    trials_file = out / "trials.json"
    deadline = time.time() + 240
    recorded = []
    while time.time() < deadline and len(recorded) < 2:
        time.sleep(0.5)
        if trials_file.exists():
            recorded = json.loads(trials_file.read_text())["trials"]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    os.killpg(driver.pid, signal.SIGKILL)  # and the local Ray it started (its own process group)
    assert len(recorded) >= 2, "no trial finished in time"
    before = json.loads(trials_file.read_text())["trials"]
    assert len(before) < 6

    done = subprocess.run(cmd + ["--resume", "--json"], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    after = json.loads(done.stdout)["trials"]
    assert len(after) == 6  # never more than asked for
    assert after[:len(before)] == before  # every finished trial kept, as it was
    ids = [t["trial_id"] for t in after]
    assert len(set(ids)) == len(ids)  # none rerun
    assert all({"config", "status", "val_metric"} <= set(t) for t in after)
    assert "trial 5:" in done.stderr  # autobs's progress lines, and not Ray Tune's own header among them
    assert "Configuration for experiment" not in done.stderr and "View detailed results" not in done.stderr

    again = subprocess.run(cmd + ["--resume", "--space", str(write(tmp_path, "other.yaml", SMALL_SPACE + "\n# changed\n"))],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "search space differs" in again.stderr


def test_trials_cut_by_the_time_budget_keep_their_curves(tmp_path):
    """Ray Tune ends the search at its time budget without ending the running trials through the callbacks;
    their curves so far are measurements (a good trial reaches the target early) and must not be lost."""
    from types import SimpleNamespace

    from autobs.search import _Recorder

    header = {"metric": "accuracy"}
    recorder = _Recorder(tmp_path / "trials.json", header, [], space=None, sampler_info={}, progress=False, total=0)
    config = {"batch_size": 32, "lr": 0.1, "warmup_fraction": 0.0, "schedule": "cosine", "schedule_params": {}}
    measured, unmeasured = (SimpleNamespace(trial_id=i, config=config | {"sampler_number": n, "number": n})
                            for n, i in enumerate(("a", "b")))
    for trial in (measured, unmeasured):
        recorder.start(trial)
        recorder.result(trial, {"samples": 0, "steps": 0, "seconds": 0.0, "val_metric": 0.1, "train_s": 0.0})
    recorder.result(measured, {"samples": 3200, "steps": 100, "seconds": 1.0, "val_metric": 0.9, "train_s": 1.0})

    ended_at = time.time()
    time.sleep(0.2)  # Ray's shut-down: not part of the trial's time
    assert recorder.cut(ended_at) == 1
    saved = json.loads((tmp_path / "trials.json").read_text())["trials"]
    assert [(t["status"], [p["steps"] for p in t["curve"]]) for t in saved] == [("stopped", [0, 100])]
    assert saved[0]["wall_s"] == pytest.approx(ended_at - saved[0]["started_at"])
    assert not recorder.live


def test_a_search_sized_in_rounds_ends_that_many_first_rounds_after_it_began_also_when_resumed(tmp_path):
    from autobs.search import _Recorder, _recorder_class, _TargetState

    from .test_scaling import _trials

    now = time.time()
    # A first round of two trials that began 30 s ago and took 10 s; a later trial ended 5 s ago.
    records = _trials([16, 32, 16], [100, 120, 90])
    for r, (start, wall) in zip(records, [(-30, 10), (-30, 8), (-15, 10)]):
        r.update(trial_id=str(r["number"]), started_at=now + start, wall_s=wall)

    def recorder(records, rounds):
        state = _TargetState(None, first_round=2, records=records, higher_is_better=True, deadline=now + 600)
        return _Recorder(tmp_path / "trials.json", {"metric": "accuracy", "trial_samples": 10**6}, records, space=None,
                         sampler_info={}, progress=False, total=0, target=state, rounds=rounds), state

    # Resumed with rounds=4: 40 s of trials in all, 25 s spent (first start to last end), 15 s left from now.
    resumed, state = recorder(records, 4)
    assert resumed.end_at == pytest.approx(time.time() + 15, abs=1) and state.deadline == resumed.end_at
    assert not _recorder_class()[1](resumed, limit=5).stop_all()
    # rounds=2: 20 s in all, already spent: it ends at once (its stopper tells Ray to stop every trial).
    spent, _ = recorder(records, 2)
    assert spent.end_at <= time.time() and _recorder_class()[1](spent, limit=5).stop_all()
    # Before its first round has ended nothing is sized; without rounds, nothing ever is.
    assert recorder(records[:1], 2)[0].end_at is None and recorder(records, None)[0].end_at is None


def test_a_resumed_search_gives_the_first_rounds_lost_number_to_its_next_trial_and_then_chooses_the_target(tmp_path):
    """A Ctrl-C during the first round keeps the ended trials alone: with 0, 1 and 3 ended and 2 running, trial 2 is
    lost. The resumed search's next proposal (the lost size's default, queued first by ``run_search``) must be number
    2 however Ray orders the trials' starts: the target is chosen once every first-round number has ended, and a
    second trial 3 would leave it unchosen."""
    from types import SimpleNamespace

    from autobs.search import _Recorder, _TargetState, _TrialNumbers

    from .test_scaling import _trials

    first_round = _trials([16, 128, 32, 64], [400, 100, 200, 150])
    for r in first_round:
        r.update(trial_id=f"old{r['number']}", started_at=time.time() - 60, wall_s=10.0)
    kept = [first_round[i] for i in (0, 1, 3)]
    state = _TargetState(None, first_round=4, records=kept, higher_is_better=True, deadline=math.inf)
    recorder = _Recorder(tmp_path / "trials.json", {"metric": "accuracy", "trial_samples": 10**6}, kept, space=None,
                         sampler_info={}, progress=False, total=0, target=state)
    assert state.target is None  # number 2 has not ended
    numbers = _TrialNumbers(r["number"] for r in kept)
    lost, later = (SimpleNamespace(trial_id=t, config=first_round[2]["config"] | {"sampler_number": n,
                                                                                  "number": numbers.next()})
                   for n, t in enumerate(("new0", "new1")))  # proposed in this order
    recorder.start(later)  # and started the other way round (Ray's start callbacks need not follow the proposals)
    recorder.start(lost)
    assert [recorder.live[t]["number"] for t in ("new0", "new1")] == [2, 4]
    for point in first_round[2]["curve"]:
        recorder.result(lost, {k: point[k] for k in ("samples", "steps", "seconds")} | {"val_metric": point["metric"],
                                                                                         "train_s": 0.0})
    recorder.end(lost)
    assert state.target is not None  # the first round is whole again
    assert sorted(r["number"] for r in recorder.records) == [0, 1, 2, 3]


def test_sampler_objective_is_samples_to_the_target_and_any_miss_scores_worse():
    from autobs.search import objective

    def record(batch_size, metrics):  # an evaluation every 10 steps
        return {"config": {"batch_size": batch_size},
                "curve": [{"steps": 10 * i, "samples": 10 * i * batch_size, "metric": m} for i, m in enumerate(metrics)]}

    fast = objective(record(32, [0.1, 0.5, 0.92, 0.95, 0.96]), 0.9, True, trial_samples=3200)
    slow = objective(record(32, [0.1, 0.5, 0.6, 0.8, 0.95]), 0.9, True, trial_samples=3200)
    assert fast == pytest.approx(math.log((10 + 10 * 0.4 / 0.42) * 32))  # the crossing, interpolated, in samples
    assert fast < slow == pytest.approx(math.log((30 + 10 * 0.1 / 0.15) * 32))
    near = objective(record(32, [0.1, 0.85]), 0.9, True, trial_samples=3200)
    far = objective(record(32, [0.1, 0.3]), 0.9, True, trial_samples=3200)
    assert slow < math.log(2 * 3200) < near < far  # a miss scores above any crossing, a near miss above a far one
    assert objective(record(32, [2.3, 1.5, 0.9]), 1.0, False, trial_samples=3200) < math.log(3 * 10 * 32)  # lower is better


def test_trials_after_the_first_round_go_to_the_sizes_that_can_still_be_fastest_least_tried_first():
    from collections import Counter

    from autobs.search import next_explored_size

    trial_samples = 64_000

    def trial(batch_size, steps, step_time_s, rerun_of=None, number=None, factor=1.0, schedule="cosine"):
        """A trial whose accuracy climbs linearly from 0.1 and crosses 0.9 at ``steps`` (None: tops out at 0.5); by
        default the first round's config (an LR ladder's step: another ``factor``; the sampler's: another schedule)."""
        top, at = (0.99, steps) if steps else (0.5, 100)
        curve = [{"steps": k * at // 25, "samples": k * at // 25 * batch_size, "metric": min(top, 0.1 + 0.8 * k / 25)}
                 for k in range(51)]
        return {"config": {"batch_size": batch_size}, "rerun_of": rerun_of, "step_time_s": step_time_s,
                "number": number, "status": "completed", "curve": curve,
                "params": {"lr_factor": factor, "schedule": schedule}}

    # Times to the target: 16: 500 steps × 1 ms = 0.5 s; 64: 200 × 1.5 ms = 0.3 s (the fastest); 256: 100 × 4 ms
    # = 0.4 s; 1024 never reached it, its whole run is 62.5 steps × 20 ms = 1.25 s, over 2x the fastest.
    first_round = [trial(16, 500, 0.001, number=0), trial(64, 200, 0.0015, number=1),
                   trial(256, 100, 0.004, number=2), trial(1024, None, 0.02, number=3)]
    sizes = [16, 1024, 256, 64]  # the first round's spread order

    def pick(records, running=Counter(), target=0.9):
        return next_explored_size(records, sizes, trial_samples, running, target, higher_is_better=True)

    assert pick(first_round) == 64  # all tried once: the fastest
    assert pick(first_round, Counter({64: 1})) == 256  # then the least tried, the faster first
    assert pick(first_round + [trial(64, 180, 0.0015), trial(256, 90, 0.004)]) == 16
    # A rerun is not the sampler's trial: it does not count as a try, and its leader's time is its reruns' median.
    assert pick(first_round + [trial(64, 400, 0.0015, rerun_of=1)]) == 256  # 64's reads: 200, rerun 400
    assert pick(first_round + [trial(64, s, 0.0015, rerun_of=1) for s in (400, 190, 210)]) == 64
    assert pick(first_round + [trial(16, 100, 0.001, rerun_of=0), trial(16, 120, 0.001, rerun_of=0)]) == 16
    # Once 64's LR ladder has taken it to 100 steps (0.15 s, half its default's), a size whose LR was not laddered
    # is judged at its default's time × that gain, like for like: 256 at 0.2 s and 16 at 0.25 s are within 2x of
    # 0.15 s, and a trial of the sampler's there (another config, no better) does not change that.
    faster = first_round + [trial(64, 100, 0.0015, factor=3.16)]
    assert pick(faster) == 256 and pick(faster, Counter({256: 1})) == 16
    assert pick(faster + [trial(256, 120, 0.004, schedule="constant")]) == 16
    assert pick(faster + [trial(256, 120, 0.004, schedule="constant"), trial(16, 600, 0.001, schedule="constant")],
                Counter({64: 1})) == 256
    # A size laddered without gain is judged on its own best: 256 (0.4 s) and 16 (0.5 s), over 2x 0.15 s, are out.
    tuned = faster + [trial(256, 100, 0.004, factor=3.16), trial(16, 500, 0.001, factor=3.16)]
    assert {pick(tuned, Counter({64: n})) for n in range(5)} == {64}
    # Without the ladder's gain, an untuned size's default is compared as read: with 64's 0.15 s from the sampler's
    # trial (another schedule), 256 (0.4 s) and 16 are out.
    assert {pick(first_round + [trial(64, 100, 0.0015, schedule="constant")], Counter({64: n})) for n in range(5)} == {64}
    # The whole run bounds a size that never reached the target: 1024 at 2x its step time is out of reach ...
    assert 1024 not in {pick(first_round, Counter({64: n, 256: n, 16: n})) for n in range(5)}
    # ... and a size not yet timed is always a candidate.
    assert pick(first_round[:3], Counter({64: 1, 256: 1, 16: 1})) == 1024
    assert pick(first_round[:3], Counter({1024: 1})) == 64  # but its first trial still running is no reason for another
    # Before the target is set, the one the ended trials give stands in for it (here 0.9455: the order holds) ...
    assert pick(first_round, Counter({1024: 1}), target=None) == 64
    # ... and with no trial ended, the least-tried size in the given order.
    assert pick([], Counter({16: 1}), target=None) == 1024


def test_search_with_a_target_chooses_it_after_the_first_round_stops_trials_at_their_crossing_and_reruns_leaders(tmp_path):
    from autobs.replicate import SEED_BASE
    from autobs.scaling import CONFIRM_EVALS, choose_target

    task = autobs.load_task(write(tmp_path, "linear.py", "import torch\nmetric = 'accuracy'\n"
                                  "def model():\n    return torch.nn.Linear(4, 2)\n" + TASK_DATA))
    space = load_space(write(tmp_path, "space.yaml", SMALL_SPACE.replace("low: 16, high: 128", "low: 16, high: 64")))
    trial_samples = 8000  # 10 epochs: a linear model of this data is at its best within one or two
    # Every step takes as long at every size: 64's whole run (125 steps) and 32's (250) are the two quickest of
    # three, the target rule's 2, so batch 16 runs 250 steps (4000 samples) of its 500 before the target is set.
    result = run_search(task, space, out=tmp_path, trials=9, trial_samples=trial_samples, stratify=True,
                        stop_at_target=True, step_time_at=lambda b: 0.01, progress=False)
    by_number = {t["number"]: t for t in result.trials}
    first_round = {by_number[n]["config"]["batch_size"]: by_number[n] for n in range(3)}  # the default config at each
    assert first_round[32]["samples"] == first_round[64]["samples"] == trial_samples  # run whole
    assert 4000 <= first_round[16]["samples"] < trial_samples and first_round[16]["status"] == "stopped"  # the horizon
    first_round = list(first_round.values())  # the target comes from them
    assert result.target == pytest.approx(choose_target(first_round, higher_is_better=True)[0])
    assert "first round" in result.target_rule and "2.5 s at the probe's step times" in result.target_rule
    stopped = [t for t in result.trials if t.get("stopped_at_target")]
    assert stopped and all(t["number"] >= 3 and t["samples"] < trial_samples for t in stopped)
    for t in stopped:  # stopped once the crossing was confirmed, not before
        assert all(p["metric"] >= result.target for p in t["curve"][-CONFIRM_EVALS:])
    # Leaders were run again, with their own config and a fresh seed, and no rerun was stopped short.
    reruns = [t for t in result.trials if t.get("rerun_of") is not None]
    assert reruns and len(reruns) <= len(result.trials) // 2 + 1  # every other trial at most
    for t in reruns:
        assert t["config"] == by_number[t["rerun_of"]]["config"] and t["seed"] >= SEED_BASE
    assert len({t["seed"] for t in reruns}) == len(reruns)
    assert all(t["status"] == "completed" for t in reruns)
    explored = [t for t in result.trials if t.get("rerun_of") is None]
    assert all("objective" in t for t in explored if t["status"] == "completed")
    assert result.best is min(explored, key=lambda t: t.get("objective", math.inf))
    saved = json.loads((tmp_path / "trials.json").read_text())
    assert saved["target"] == result.target and saved["target_rule"] == result.target_rule
    assert [t["number"] for t in saved["trials"]] == [t["number"] for t in result.trials]  # none held back unsaved


def test_trials_json_is_rewritten_as_trials_end_at_most_as_often_as_its_cost_allows(tmp_path):
    from types import SimpleNamespace

    from autobs.search import SAVE_SHARE, _Recorder

    space = load_space("sgd").resolve(max_batch_size=64, n_train=1000, lr_at=lambda b: 0.1)
    recorder = _Recorder(tmp_path / "trials.json", {"metric": "accuracy", "trial_samples": 1000}, [], space=space,
                         sampler_info={}, progress=False, total=0)
    config = {"batch_size": 32, "lr": 0.1, "warmup_fraction": 0.0, "schedule": "constant", "schedule_params": {},
              "rerun_of": None, "sampler_number": 0}

    def run_one(i):
        trial = SimpleNamespace(trial_id=str(i), config=config | {"number": i})
        recorder.start(trial)
        recorder.result(trial, {"samples": 320, "steps": 10, "seconds": 0.1, "train_s": 0.1, "val_metric": 0.5})
        recorder.end(trial)
        return len(json.loads((tmp_path / "trials.json").read_text())["trials"])

    assert run_one(0) == 1  # the first trial's end is saved at once
    recorder._save_s = 1000 * SAVE_SHARE  # as if a save took that long: the next is held back
    assert run_one(1) == 1
    recorder.save()  # what run_search does at its end
    assert len(json.loads((tmp_path / "trials.json").read_text())["trials"]) == 2


def test_long_trials_show_progress_while_none_ends(tmp_path, capsys):
    from types import SimpleNamespace

    from autobs.search import PROGRESS_EVERY_S, _Recorder

    space = load_space("sgd").resolve(max_batch_size=64, n_train=1000, lr_at=lambda b: 0.1)
    recorder = _Recorder(tmp_path / "trials.json", {"metric": "accuracy", "trial_samples": 10**5}, [], space=space,
                         sampler_info={}, progress=True, total=0)
    trials = [SimpleNamespace(trial_id=str(i), config={"batch_size": b, "lr": 0.1, "warmup_fraction": 0.0,
                                                       "schedule": "constant", "schedule_params": {}, "rerun_of": None,
                                                       "sampler_number": i, "number": i}) for i, b in enumerate((16, 64))]
    for t in trials:
        recorder.start(t)

    def report(trial, steps, metric):
        recorder.result(trial, {"samples": steps * trial.config["batch_size"], "steps": steps, "seconds": 1.0,
                                "train_s": 1.0, "val_metric": metric})

    report(trials[0], 100, 0.5)
    assert capsys.readouterr().err == ""  # a report soon after the search began: nothing to say yet
    recorder._said_at -= PROGRESS_EVERY_S  # as if that long had passed with no trial ending
    report(trials[1], 25, 0.25)
    line = capsys.readouterr().err
    assert line == ("search: running trial 0 (batch 16) at step 100, accuracy 0.5; trial 1 (batch 64) at step 25, "
                    "accuracy 0.25 (0 trials ended so far)\n")
    report(trials[0], 200, 0.75)
    assert capsys.readouterr().err == ""  # said just now: not again until another PROGRESS_EVERY_S
    recorder._said_at -= PROGRESS_EVERY_S
    recorder.end(trials[0])  # a trial's end is said, and counts as the latest line
    report(trials[1], 50, 0.5)
    said = capsys.readouterr().err
    assert "trial 0: batch 16" in said and "search: running" not in said


def test_leader_bound_stops_a_trial_only_once_it_cannot_be_a_leader(tmp_path):
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from autobs.search import _leader_bound_class, _Recorder, _TargetState

    from .test_scaling import _trials

    # Trials at batch 32 that reach accuracy 0.9 at steps 100 and 125 (3200 and 4000 samples), and a rerun of the
    # first that happened to take 31 steps (1000 samples): the recorder scores each as it ends.
    first, second = _trials([32, 32], [100, 125])
    rerun = {**_trials([32], [31.25])[0], "number": 2, "rerun_of": 0}
    records: list[dict] = []
    state = _TargetState(None, first_round=1, records=records, higher_is_better=True, deadline=math.inf)
    recorder = _Recorder(tmp_path / "trials.json", {"metric": "accuracy", "trial_samples": 10**5}, records,
                         space=None, sampler_info={}, progress=False, total=0, target=state)

    def end(t):
        records.append({**t, "trial_id": str(t["number"])})
        recorder._update_target()

    scheduler = _leader_bound_class()(state)
    trial = SimpleNamespace(trial_id="t", config={"batch_size": 32, "rerun_of": None, "stop_target": 0.9})
    stop, go = TrialScheduler.STOP, TrialScheduler.CONTINUE

    def decide(t, samples, metric=0.5):
        return scheduler.on_trial_result(None, t, {"samples": samples, "val_metric": metric})

    assert decide(trial, 7000) == go  # no target yet: the first round runs whole, with no horizon
    state.horizon = {32: 6000}  # ... or up to its size's horizon (first_round_horizon)
    assert decide(trial, 6000) == stop and decide(trial, 5000) == go
    assert decide(SimpleNamespace(trial_id="r", config={"batch_size": 32, "rerun_of": 0, "stop_target": None}),
                  6000) == go  # a rerun: never stopped
    state.target = 0.9  # once the target is set, the horizon is past
    end(first)
    end(rerun)  # a rerun is a measurement of its trial, no leader of its own
    assert decide(trial, 7000) == stop  # past twice the one crossing at its size, still short of the target
    assert decide(trial, 6000) == go
    assert decide(trial, 7000, metric=0.92) == go  # at the target: it is confirming its crossing
    assert decide(SimpleNamespace(trial_id="r", config={"batch_size": 32, "rerun_of": 0, "stop_target": 0.9}),
                  7000) == go  # a rerun: never stopped
    assert decide(SimpleNamespace(trial_id="u", config={"batch_size": 64, "rerun_of": None, "stop_target": 0.9}),
                  7000) == go  # none crossed at 64
    end(second)  # two leaders now
    assert decide(trial, 4100) == stop and decide(trial, 3900) == go  # behind the second leader: stopped


def test_a_trial_started_before_the_target_was_set_ends_at_its_confirmed_crossing(tmp_path):
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from autobs.scaling import CONFIRM_EVALS
    from autobs.search import _leader_bound_class, _Recorder, _TargetState

    space = load_space("sgd").resolve(max_batch_size=64, n_train=1000, lr_at=lambda b: 0.1)
    records: list[dict] = []
    state = _TargetState(None, first_round=1, records=records, higher_is_better=True, deadline=math.inf)
    recorder = _Recorder(tmp_path / "trials.json", {"metric": "accuracy", "trial_samples": 10**5}, records,
                         space=space, sampler_info={}, progress=False, total=0, target=state)
    scheduler = _leader_bound_class()(state)
    config = {"batch_size": 32, "lr": 0.1, "warmup_fraction": 0.0, "schedule": "constant", "schedule_params": {},
              "rerun_of": None, "sampler_number": 1, "stop_target": None}  # started with no target known
    early, late = (SimpleNamespace(trial_id=t, config=config | {"number": n}) for n, t in enumerate("ab"))
    recorder.start(early)

    def report(t, step, metric):
        result = {"samples": 32 * step, "steps": step, "seconds": step / 100, "train_s": step / 100, "val_metric": metric}
        if t is early:
            recorder.result(t, result)
        return scheduler.on_trial_result(None, t, result)

    accuracies = [0.3, 0.6] + [0.91] * (CONFIRM_EVALS - 1)  # one evaluation short of a confirmed crossing of 0.9
    assert all(report(early, 10 * (i + 1), a) == TrialScheduler.CONTINUE for i, a in enumerate(accuracies))
    assert all(report(late, 10 * (i + 1), a) == TrialScheduler.CONTINUE for i, a in enumerate(accuracies[:-1]))
    state.target = 0.9  # the first round has ended
    last = 10 * (len(accuracies) + 1)
    assert report(early, last, 0.93) == TrialScheduler.STOP  # its last CONFIRM_EVALS evaluations are past the target
    assert report(late, last, 0.93) == TrialScheduler.CONTINUE  # one fewer: not yet confirmed
    recorder.end(early)
    assert records[0]["status"] == "completed" and records[0]["stopped_at_target"]
    assert records[0]["reached_target"] and records[0]["steps"] == last
    # A trial whose confirming evaluation is its final report ran whole: it is not recorded as stopped at the target.
    whole = SimpleNamespace(trial_id="c", config=config | {"number": 2})
    recorder.start(whole)
    for step, metric in [(10, 0.91), (20, 0.92)]:
        recorder.result(whole, {"samples": 32 * step, "steps": step, "seconds": 1.0, "train_s": 1.0, "val_metric": metric})
        assert scheduler.on_trial_result(None, whole, {"samples": 32 * step, "steps": step, "val_metric": metric}) \
            == TrialScheduler.CONTINUE
    final = {"samples": 32 * 30, "steps": 30, "seconds": 1.0, "train_s": 1.0, "val_metric": 0.93, "final": True,
             "diverged": False, "step_time_s": 0.01, "warmup_steps": 0, "stopped_at_target": False}
    assert scheduler.on_trial_result(None, whole, final) == TrialScheduler.CONTINUE
    recorder.result(whole, final)
    recorder.end(whole)
    assert records[1]["status"] == "completed" and not records[1].get("stopped_at_target")


def test_in_a_stratified_search_the_sampler_ranks_a_trial_by_its_gain_over_its_sizes_default(tmp_path):
    import optuna

    from autobs.search import _add_recorded, _Recorder, _TargetState

    from .test_scaling import _trials

    # The first round's defaults at batch 16 (500 steps: 8,000 samples) and 256 (160 steps: 40,960 samples), then
    # a tuned trial at 256 that halves its default's steps (20,480 samples): 2.5x the default at 16 in samples,
    # but what its config gained is what the sampler, which does not choose the size, should learn from.
    trials = _trials([16, 256, 256], [500, 160, 80])
    for i, t in enumerate(trials):
        t.update(trial_id=str(i), params={"lr_factor": [1.4, 1.4, 5.0][i]},
                 distributions={"lr_factor": optuna.distributions.distribution_to_json(
                     optuna.distributions.FloatDistribution(0.2, 10, log=True))})

    def told(per_size: bool, resumed: bool = False) -> dict[str, float]:
        records = [dict(t) for t in trials]
        state = _TargetState(0.9, first_round=2, records=records if resumed else [], higher_is_better=True,
                             deadline=math.inf, per_size=per_size)
        recorder = _Recorder(tmp_path / "trials.json", {"metric": "accuracy", "trial_samples": 10**6},
                             state.records, space=None, sampler_info={}, progress=False, total=0, target=state)
        if not resumed:
            for r in records:  # as the trials end
                state.records.append(r)
                recorder._update_target()
            return state.objectives
        study = optuna.create_study()
        _add_recorded(study, records, _TargetState(0.9, 2, records, True, math.inf, per_size=per_size))
        return {str(i): t.value for i, t in enumerate(study.trials)}

    plain, relative = told(per_size=False), told(per_size=True)
    assert min(plain, key=plain.get) == "0"  # by samples alone the default at 16 is the best trial
    assert min(relative, key=relative.get) == "2"  # by its gain over 256's default, the tuned trial is
    assert relative["0"] == relative["1"] == 0.0
    assert relative["2"] == pytest.approx(math.log(0.5), abs=0.02)
    assert told(per_size=True, resumed=True) == pytest.approx(relative)  # a resumed sampler is told the same


def test_the_first_round_runs_each_size_as_long_as_the_target_rules_quickest_whole_runs_take():
    from autobs.scaling import target_rank
    from autobs.search import first_round_horizon

    sizes = [16, 32, 64, 128, 256, 512]
    step_time = {16: 0.002, 32: 0.0025, 64: 0.003, 128: 0.004, 256: 0.006, 512: 0.01}  # a CPU's: saturating
    samples = 2**15
    horizon, horizon_s = first_round_horizon(sizes, samples, step_time.get)
    whole_s = {b: samples // b * step_time[b] for b in sizes}  # 4.1, 2.56, 1.54, 1.02, 0.77, 0.64 s
    assert target_rank(len(sizes)) == 3 and horizon_s == pytest.approx(whole_s[128])
    assert {b for b in sizes if horizon[b] == samples} == {128, 256, 512}  # the 3 quickest run whole
    for b in (16, 32, 64):  # the rest run as long as those take: 1.02 s of their steps, not the whole run
        assert horizon[b] < samples and horizon[b] / b * step_time[b] == pytest.approx(horizon_s, rel=0.01)


def test_the_first_rounds_length_is_its_sizes_runs_to_the_horizon_shared_by_the_workers_at_the_trials_pace():
    from autobs.search import first_round_horizon, first_round_seconds

    sizes = [16, 32, 64, 128, 256, 512]
    step_time = {16: 0.002, 32: 0.0025, 64: 0.003, 128: 0.004, 256: 0.006, 512: 0.01}
    samples = 2**15
    horizon, horizon_s = first_round_horizon(sizes, samples, step_time.get)
    # 256 and 512 run whole (0.77 + 0.64 s at the probe's step times), 16-128 to the horizon (128's whole run, 1.02 s)
    compute = 4 * horizon_s + sum(samples // b * step_time[b] for b in (256, 512))
    assert first_round_seconds(horizon, step_time.get, workers=2) == pytest.approx(compute / 2, rel=0.01)
    # Trials that took twice the probe's time for their steps (one core each, start-up, evaluations) make the round
    # twice as long; a long trial weighs more than a short one: the pace is the round's, not a trial's.
    ran = [{"config": {"batch_size": 512}, "samples": 4096, "wall_s": 2 * 8 * 0.01},
           {"config": {"batch_size": 16}, "samples": 1600, "wall_s": 2 * 100 * 0.002}]
    assert first_round_seconds(horizon, step_time.get, 2, ran) == pytest.approx(compute, rel=0.01)
    slow_start = ran + [{"config": {"batch_size": 64}, "samples": 64, "wall_s": 1 * 0.003 + 0.5}]  # 0.5 s start-up
    assert first_round_seconds(horizon, step_time.get, 2, slow_start) == pytest.approx(
        compute / 2 * (0.16 + 0.4 + 0.503) / (0.08 + 0.2 + 0.003), rel=0.01)


def test_the_target_is_chosen_over_the_first_rounds_trials_alone(tmp_path):
    from autobs.scaling import choose_target
    from autobs.search import _Recorder, _TargetState

    from .test_scaling import _trials

    # The first round: the default config at 16 and 32 (trials 0 and 1). Trial 2, the sampler's, started while
    # trial 1 ran and ended before it, with a better best metric at 32: counted, it would raise the rule's level.
    first, second, sampler = _trials([16, 32, 32], [100, 120, 50], final=[0.95, 0.93, 0.99])
    sampler["number"] = 2
    records: list[dict] = []
    state = _TargetState(None, first_round=2, records=records, higher_is_better=True, deadline=math.inf)
    recorder = _Recorder(tmp_path / "trials.json", {"metric": "accuracy", "trial_samples": 10**6}, records,
                         space=None, sampler_info={}, progress=False, total=0, target=state)
    for t in (first, sampler, second):
        records.append({**t, "trial_id": str(t["number"])})
        recorder._update_target()
        assert (state.target is None) == (t is not second)  # set once the whole first round has ended
    assert state.target == pytest.approx(choose_target([first, second], higher_is_better=True)[0])
    assert state.target != pytest.approx(choose_target([first, second, sampler], higher_is_better=True)[0])


def test_after_the_first_round_a_sizes_lr_is_laddered_in_half_decades_from_its_default_until_bracketed():
    from autobs.search import LR_LADDER_STEP, next_lr_factor

    baseline = {"log2_batch_size": 7, "lr_factor": 1.4, "warmup_fraction": 0.0, "schedule": "cosine",
                "cosine.min_lr_ratio": 0.05}
    step = LR_LADDER_STEP

    def trial(factor, objective, batch_size=128, **changed):
        return {"config": {"batch_size": batch_size}, "rerun_of": None, "objective": objective,
                "params": {**baseline, "lr_factor": factor, **changed}}

    def next_factor(records):
        return next_lr_factor(records, 128, baseline, low=0.2, high=10.0)

    default = trial(1.4, 10.0)
    assert next_factor([]) is None  # no default read yet: nothing to step from
    assert next_factor([default]) == pytest.approx(1.4 * step)  # up first
    up_better = [default, trial(1.4 * step, 9.0)]
    assert next_factor(up_better) == pytest.approx(10.0)  # on up while it gains, clipped to the space's top
    assert next_factor(up_better + [trial(10.0, 9.5)]) is None  # bracketed: 1.4 and 10 are both worse than 4.4
    up_worse = [default, trial(1.4 * step, 11.0)]  # a miss or a divergence scores above any crossing
    assert next_factor(up_worse) == pytest.approx(1.4 / step)  # then down
    assert next_factor(up_worse + [trial(1.4 / step, 10.5)]) is None
    assert next_factor(up_worse + [trial(1.4 / step, 9.0)]) == pytest.approx(0.2)  # down again, clipped to the floor
    # Only the default config with its LR changed is on the ladder: the sampler's own trials, reruns and other
    # sizes' trials are not, and a trial not yet scored is not read.
    others = [trial(1.4 * step, 5.0, warmup_fraction=0.1), trial(1.4 * step, 5.0, batch_size=256),
              {**trial(1.4 * step, 5.0), "rerun_of": 0}, {k: v for k, v in trial(1.4 * step, 5.0).items() if k != "objective"}]
    assert next_factor([default] + others) == pytest.approx(1.4 * step)
    # A default that diverged bounds the LR from above: the ladder goes down at once, and not up again from a
    # lower best (up from 1.4/step would be 1.4, run already; a step at or past a diverged factor is never taken).
    diverged = {**trial(1.4, 12.0), "status": "diverged"}
    assert next_factor([diverged]) == pytest.approx(1.4 / step)
    assert next_factor([diverged, trial(1.4 / step, 9.0)]) == pytest.approx(0.2)
    assert next_factor([diverged, trial(1.4 / step, 9.0), trial(0.2, 9.5)]) is None

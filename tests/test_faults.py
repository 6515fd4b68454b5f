"""Faults a long run meets: bad settings, a damaged or foreign run directory, a read-only or full disk.

Each case checks what a user sees (exit code 2, one `error:` paragraph, no traceback) and that nothing
finished is lost or overwritten. More fault cases live with their stages: bad task files in test_task.py,
bad search spaces and trial failures in test_search.py, the directory lock and resume in test_pipeline.py,
hostile strings in test_report.py.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import autobs
from autobs.rundir import write_json

from .conftest import DIGITS, ROOT


def _recommend(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autobs", "recommend", str(DIGITS), *args],
                          capture_output=True, text=True, timeout=timeout)


def _user_error(done: subprocess.CompletedProcess, words: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "error: " in done.stderr and words in done.stderr


@pytest.mark.parametrize("args,words", [
    (["--budget", "-5"], "not a positive duration"),
    (["--budget", "ten minutes"], "not a positive duration"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--memory-limit", "lots"], "not a positive size"),
    (["--target", "nan"], "finite number"),
    (["--space", "no_such_space"], "no_such_space"),
    (["--sampler", "annealing"], "unknown sampler"),
    (["--trial-timeout", "0"], "trial time limit '0' is not a positive duration"),
])
def test_bad_settings_are_one_paragraph_errors_before_any_work(tmp_path, args, words):
    done = _recommend("--out", str(tmp_path / "run"), *args)
    _user_error(done, words)
    assert "memory probe" not in done.stderr  # refused before the first stage
    assert not (tmp_path / "run" / "memory.json").exists()


@pytest.mark.parametrize("damage", ["truncated", "empty", "not an object"])
def test_damaged_stage_file_is_reported_and_left_as_it_is(digits_stages, tmp_path, damage):
    out = tmp_path / "run"
    out.mkdir(mode=0o700)
    for name in ("memory.json", "lr_range.json"):
        (out / name).write_text((digits_stages / name).read_text())
    text = (digits_stages / "memory.json").read_text()
    broken = {"truncated": text[: len(text) // 2], "empty": "", "not an object": "[1, 2]"}[damage]
    (out / "memory.json").write_text(broken)
    done = _recommend("--out", str(out))
    _user_error(done, "memory.json is damaged")
    assert (out / "memory.json").read_text() == broken  # never silently replaced
    assert (out / "lr_range.json").read_text() == (digits_stages / "lr_range.json").read_text()  # the rest survives


@pytest.mark.parametrize("command,name", [("recommend", "memory.json"), ("probe", "memory.json"),
                                          ("lr-find", "lr_range.json"), ("noise", "noise.json")])
def test_stage_file_of_another_task_is_refused_not_overwritten(digits_stages, tmp_path, command, name):
    out = tmp_path / "run"
    out.mkdir(mode=0o700)
    foreign = json.loads((digits_stages / name).read_text()) if (digits_stages / name).exists() else {"task": {}}
    foreign["task"] = {**foreign["task"], "name": "other_model", "fingerprint": "0123456789abcdef"}
    write_json(out / name, foreign)
    before = (out / name).read_text()
    done = subprocess.run([sys.executable, "-m", "autobs", command, str(DIGITS), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    _user_error(done, "holds results for another task (other_model")
    assert "--fresh" in done.stderr
    assert (out / name).read_text() == before
    assert "probe batch" not in done.stderr and "lr range test at" not in done.stderr  # refused before work


def test_unwritable_run_directory_is_refused_before_work(tmp_path, monkeypatch):
    # Root writes through permission bits, so the check autobs makes (os.access) is what is exercised.
    out = tmp_path / "run"
    out.mkdir(mode=0o500)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(autobs.ConfigError, match="not writable"):
        autobs.tune(DIGITS, out=out, progress=False)
    assert list(out.iterdir()) == []


def test_run_directory_given_as_a_symlink_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run").symlink_to(tmp_path / "elsewhere")
    done = _recommend("--out", str(tmp_path / "run"))
    _user_error(done, "symbolic link")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_full_disk_leaves_the_old_file_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "memory.json"
    write_json(path, {"max_batch_size": 64})

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(autobs.ConfigError, match="No space left on device"):
        write_json(path, {"max_batch_size": 128})
    assert json.loads(path.read_text()) == {"max_batch_size": 64}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.json"]  # no temporary file left behind


def test_autobs_never_unpickles(tmp_path):
    """autobs's own state is JSON: no pickle.load, torch.load without weights_only, or Ray restore."""
    sources = {p: p.read_text() for p in (ROOT / "autobs").rglob("*.py")}
    for path, text in sources.items():
        assert "pickle.load" not in text, path
        assert "Tuner.restore" not in text and "tune.Tuner.restore" not in text, path
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}: {line}"


def _recommend_until(out, line_starts: str, *, also: str = "") -> tuple[str, int]:
    """Start `autobs recommend` (its own process group), read its progress until a line starts with
    ``line_starts`` (after ``also`` was seen, if given), then kill -9 the whole group: the driver and any
    worker it started. Returns the progress read and the group id."""
    driver = subprocess.Popen([sys.executable, "-m", "autobs", "recommend", str(DIGITS), "--budget", "2m",
                               "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    seen = ""
    try:
        for line in driver.stderr:
            seen += line
            if line.startswith(line_starts) and also in seen:
                break
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert line_starts in seen, seen[-2000:]
    return seen, driver.pid


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kill_9_during_the_probe_and_the_range_test_loses_nothing_finished(tmp_path):
    out = tmp_path / "run"
    # 1. Killed during the probe: nothing had finished; no stage file, no temporary file, no process left.
    _, pgid = _recommend_until(out, "probe batch")
    time.sleep(0.5)
    assert not _group_alive(pgid)
    assert [p.name for p in out.iterdir() if p.name != ".lock"] == []
    # 2. Rerun: the probe starts over and finishes; killed again during the range test.
    seen, _ = _recommend_until(out, "lr range test at batch", also="LR range test: measuring")
    assert "memory probe: measuring" in seen
    memory = (out / "memory.json").read_text()
    assert json.loads(memory)["max_batch_size"] > 0
    assert not (out / "lr_range.json").exists()
    # 3. Rerun: the finished probe is reused as it was, and the range test is measured and saved.
    seen, _ = _recommend_until(out, "noise scale: ")
    assert "memory probe: reused" in seen and "LR range test: measuring" in seen
    assert (out / "memory.json").read_text() == memory
    assert json.loads((out / "lr_range.json").read_text())["suggestions"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

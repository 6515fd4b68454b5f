from __future__ import annotations

import json
import subprocess
import sys

import pytest

import autobs
from autobs.units import parse_duration

from .conftest import GOOD_TASK


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autobs", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_user_error_prints_one_line_and_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\ndef train_data():\n    return torch.zeros(3, 2), torch.zeros(3)\n")
    result = run_cli("check", bad)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad}: `model` is not defined")
    assert "Traceback" not in result.stderr and result.stdout == ""
    debug = run_cli("--debug", "check", bad)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "TaskError" in debug.stderr


def test_train_json_prints_one_object_on_stdout_and_progress_on_stderr(write_task):
    path = write_task(GOOD_TASK)
    result = run_cli("train", path, "--batch-size", "16", "--lr", "0.1", "--schedule", "cosine",
                     "--warmup-steps", "5", "--epochs", "2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["config"]["batch_size"] == 16 and data["steps"] == 22  # 2 epochs x 180 items / 16
    assert data["curve"][-1]["samples"] == 22 * 16 and data["task"]["metric"] == "loss"
    assert "step" in result.stderr and "val loss" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--batch-size", "16", "--lr", "0.1", "--budget", "-5"], "budget '-5' is not a positive duration"),
    (["--batch-size", "16", "--lr", "0.1", "--device", "quantum"], "unknown device 'quantum'"),
    (["--batch-size", "0", "--lr", "0.1"], "batch_size must be a positive integer"),
    (["--batch-size", "16", "--lr", "0.1", "--epochs", "0"], "--epochs must be a positive integer"),
    (["--batch-size", "999", "--lr", "0.1"], "larger than the training set"),
])
def test_bad_cli_values_exit_2(write_task, args, message):
    result = run_cli("train", write_task(GOOD_TASK), *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_parse_duration():
    assert parse_duration("90") == 90 and parse_duration("10m") == 600 and parse_duration("1.5h") == 5400
    for bad in ("", "0", "ten minutes", "5d"):
        with pytest.raises(autobs.ConfigError):
            parse_duration(bad)


def test_import_autobs_is_light():
    code = "import sys, autobs; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]

"""CUDA paths of the training loop: run with `python -m pytest -m gpu` on a machine with a GPU."""

from __future__ import annotations

import pytest
import torch

import autobs

from .conftest import EXAMPLES

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)"),
]


@pytest.fixture(scope="module")
def digits():
    return autobs.load_task(next(p for p in EXAMPLES if p.stem == "digits_mlp"))


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_digits_trains_on_cuda(digits, bf16):
    result = autobs.train(digits, autobs.TrainConfig(batch_size=32, lr=0.2, schedule="cosine"), device="cuda",
                          bf16=bf16)
    assert result.device.startswith("cuda") and result.stop_reason == "completed"
    assert result.final_metric >= 0.95
    assert result.step_time_s > 0


def test_cuda_run_leaves_cuda_rng_alone_and_diverges_cleanly(digits):
    state = torch.cuda.get_rng_state()
    result = autobs.train(digits, autobs.TrainConfig(batch_size=64, lr=1e4), device="cuda")
    assert result.diverged
    assert torch.equal(torch.cuda.get_rng_state(), state)


def test_char_lm_bf16_learns(tmp_path):
    task = autobs.load_task(next(p for p in EXAMPLES if p.stem == "char_lm"))
    result = autobs.train(task, autobs.TrainConfig(batch_size=64, lr=3e-3, warmup_steps=10), samples=200 * 64,
                          device="cuda", bf16=True)
    assert not result.diverged and result.final_metric < result.curve[0].metric - 1.0

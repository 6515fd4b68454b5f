"""CUDA paths of the memory probe: run with `python -m pytest -m gpu` on a GPU machine."""

from __future__ import annotations

import pytest
import torch

import autobs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)"),
]


def wide_task(n: int = 200_000, width: int = 8192) -> autobs.Task:
    x = torch.randn(n, 64)
    return autobs.Task(model=lambda: torch.nn.Sequential(torch.nn.Linear(64, width), torch.nn.ReLU(),
                                                         torch.nn.Linear(width, 10)),
                       train_data=(x, torch.randint(0, 10, (n,))), name="wide-gpu")


def test_peak_stats_and_limit_on_cuda():
    task = wide_task()
    result = autobs.probe_memory(task, device="cuda", memory_limit="4GiB")
    assert result.device.startswith("cuda") and result.memory_limit_bytes == 4 * 2**30
    at_ceiling = next(p for p in result.probes if p.batch_size == result.max_batch_size)
    assert 0.5 * result.budget_bytes < at_ceiling.peak_bytes <= result.budget_bytes
    assert result.bytes_per_sample > 8192 * 4  # the hidden activation at least
    # Peak memory grows with the batch: one-time library allocations (cuBLAS workspace) are counted in
    # every probe, not only in whichever ran first.
    peaks = [p.peak_bytes for p in result.probes if p.peak_bytes is not None]
    assert peaks == sorted(peaks), peaks


def test_real_cuda_oom_is_caught_and_memory_released():
    # Cap this process at a small share of the card, so a real CUDA OOM happens below the budget.
    total = torch.cuda.get_device_properties(0).total_memory
    fraction = 3 * 2**30 / total
    torch.cuda.set_per_process_memory_fraction(fraction)
    try:
        before = torch.cuda.memory_allocated()
        result = autobs.probe_memory(wide_task(), device="cuda", memory_limit=f"{int(total * 0.9)}")
        assert any(p.oom for p in result.probes)
        assert result.max_batch_size < min(p.batch_size for p in result.probes if p.oom)
        torch.cuda.empty_cache()
        assert torch.cuda.memory_allocated() - before < 64 * 2**20  # nothing of the failed attempts kept
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import weakref

import pytest
import torch

import autobs
from autobs.memory import FIT_SIZES, _run_probe, is_oom
from autobs.units import parse_bytes

from .conftest import EXAMPLES, ROOT

# Real messages, as each backend words them.
OOM_MESSAGES = [
    "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.78 GiB total capacity; 14.53 GiB already allocated)",
    "HIP out of memory. Tried to allocate 2.00 GiB (GPU 0; 63.98 GiB total capacity)",
    "MPS backend out of memory (MPS allocated: 17.79 GB, other allocations: 2.00 MB, max allowed: 18.13 GB)",
    "XPU out of memory. Tried to allocate 1024.00 MiB (GPU 0; 15.56 GiB total capacity)",
    "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous input.",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
    "allocate 1073741824 bytes. Error code 12 (Cannot allocate memory)",
    "[enforce fail at alloc_cpu.cpp:83] data. DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes.",
]
NOT_OOM = [
    RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x4 and 3x2)"),
    RuntimeError("CUDA error: device-side assert triggered"),
    ValueError("out of memory"),  # not a RuntimeError: a user's own ValueError is not an allocator failure
    KeyError("memory"),
]


@pytest.mark.parametrize("message", OOM_MESSAGES)
def test_oom_messages_are_recognised(message):
    assert is_oom(RuntimeError(message))


def test_oom_types_and_chained_ooms_are_recognised():
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_oom(MemoryError())
    try:
        try:
            raise torch.OutOfMemoryError("CUDA out of memory")
        except torch.OutOfMemoryError as inner:
            raise RuntimeError("training step failed") from inner
    except RuntimeError as outer:
        assert is_oom(outer)


@pytest.mark.parametrize("exc", NOT_OOM, ids=[repr(e)[:40] for e in NOT_OOM])
def test_other_errors_are_not_oom(exc):
    assert not is_oom(exc)


def test_parse_bytes():
    assert parse_bytes("2GiB") == 2 * 2**30 and parse_bytes("512MB") == 512 * 10**6 and parse_bytes(1024) == 1024
    for bad in ("", "-1GiB", "0", "lots", "3 parsecs"):
        with pytest.raises(autobs.ConfigError, match="not a positive size"):
            parse_bytes(bad)


def wide_task(width: int = 4096, n: int = 3000, **kw) -> autobs.Task:
    """Per-sample activation memory of a few × width × 4 bytes, far above the parameters'."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return autobs.Task(model=lambda: torch.nn.Sequential(torch.nn.Linear(8, width), torch.nn.ReLU(),
                                                         torch.nn.Linear(width, 2)),
                       train_data=(x, (x[:, 0] > 0).long()), name="wide", **kw)


def test_ceiling_lands_within_5_percent_below_the_true_ceiling_in_few_probes():
    task = wide_task()
    limit = 64 * 2**20
    result = autobs.probe_memory(task, memory_limit=limit)
    budget = result.budget_bytes
    assert budget == int(0.9 * limit)
    # The true ceiling by exhaustive bisection with the same measurement (peak is monotone in B).
    lo, hi = 1, len(task.train) + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _run_probe(task, mid, torch.device("cpu"), budget, False).fits else (lo, mid)
    assert 0.95 * lo <= result.max_batch_size <= lo
    # Few probes to find it; the throughput probes at the powers of two below it come after and are not counted.
    powers_below = {2**k for k in range(4, result.max_batch_size.bit_length())} - set(FIT_SIZES) - {result.max_batch_size}
    assert len([p for p in result.probes if p.batch_size not in powers_below]) <= 7
    # Every power of two from 16 below the ceiling has its own throughput: t(B) is measured where the pick compares
    # sizes.
    rates = {p.batch_size: p.samples_per_s for p in result.probes}
    assert all(rates.get(b, 0) > 0 for b in powers_below | {16, 128})
    at_ceiling = next(p for p in result.probes if p.batch_size == result.max_batch_size)
    assert at_ceiling.fits and at_ceiling.peak_bytes <= budget and at_ceiling.samples_per_s > 0
    # The fit's slope is the real per-sample memory: at least the hidden activations kept for backward.
    assert result.bytes_per_sample >= 4096 * 4


def test_cap_at_training_set_and_model_too_big_for_batch_two():
    small = wide_task(width=64, n=500)
    result = autobs.probe_memory(small, memory_limit="1GiB")
    assert result.max_batch_size == len(small.train) and result.capped_by_dataset
    assert "training set size" in result.notes[0]
    with pytest.raises(autobs.OutOfMemory, match="batch size 2 needs .* Fix: raise --memory-limit"):
        autobs.probe_memory(wide_task(), memory_limit="1MiB")


def test_after_an_oom_the_failed_attempts_tensors_are_freed():
    refs = []

    class Hungry(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8, 2)
            refs.append(weakref.ref(self))

        def forward(self, x):
            big = torch.empty(len(x), 1000)
            refs.append(weakref.ref(big))
            if len(x) > 100:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.linear(x)

    x = torch.randn(1000, 8)
    task = autobs.Task(model=Hungry, train_data=(x, (x[:, 0] > 0).long()))
    result = autobs.probe_memory(task, memory_limit="1GiB")
    assert 95 <= result.max_batch_size <= 100  # a bracket closed by real OOMs is narrowed to 5%
    assert any(p.oom for p in result.probes)
    gc.collect()
    assert refs and all(r() is None for r in refs)


def test_real_allocation_failure_under_rlimit_as_is_caught(tmp_path):
    script = tmp_path / "capped.py"
    script.write_text(textwrap.dedent("""
        import json, resource, sys, torch, autobs
        from autobs.memory import is_oom
        x = torch.randn(4000, 8)
        task = autobs.Task(model=lambda: torch.nn.Sequential(torch.nn.Linear(8, 2**15), torch.nn.ReLU(),
                                                             torch.nn.Linear(2**15, 2)),
                           train_data=(x, (x[:, 0] > 0).long()))
        vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + 400 * 2**20, resource.RLIM_INFINITY))
        try:
            torch.empty(2**31, dtype=torch.uint8).fill_(0)
            raw = None
        except Exception as exc:
            raw = [type(exc).__name__, is_oom(exc)]
        result = autobs.probe_memory(task, memory_limit="100GiB")
        print(json.dumps({"raw": raw, **result.to_dict()}))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["raw"] == ["RuntimeError", True]
    ooms = [p["batch_size"] for p in data["probes"] if p["oom"]]
    assert ooms and data["max_batch_size"] < min(ooms)
    assert 0 < data["max_batch_size"] < len(range(3600))


def test_cli_probe_json_has_the_design_keys(tmp_path):
    digits = next(p for p in EXAMPLES if p.stem == "digits_mlp")
    out = subprocess.run([sys.executable, "-m", "autobs", "probe", str(digits), "--memory-limit", "2GiB", "--json",
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["max_batch_size"] == 1617 and data["memory_limit_bytes"] == 2 * 2**30
    for probe in data["probes"]:
        assert {"batch_size", "fits", "peak_bytes", "samples_per_s"} <= set(probe)
    saved = json.loads((tmp_path / "run" / "memory.json").read_text())
    assert saved["max_batch_size"] == 1617 and saved["task"]["name"] == "digits_mlp"
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o700


class Sequences(torch.utils.data.Dataset):
    """2000 sequences of 16-dim tokens: all 8 long but one of 400 (the rare long document)."""

    def __init__(self, items=None):
        g = torch.Generator().manual_seed(0)
        self.items = items or [(torch.randn(400 if i == 7 else 8, 16, generator=g), i % 2) for i in range(2000)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def pad(items):
    """Pad to the batch's longest sequence: a batch's memory grows with its longest item."""
    seqs = torch.nn.utils.rnn.pad_sequence([x for x, _ in items], batch_first=True)
    return seqs, torch.tensor([y for _, y in items])


class TokenMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.per_token = torch.nn.Sequential(torch.nn.Linear(16, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64))
        self.head = torch.nn.Linear(64, 2)

    def forward(self, x):
        return self.head(self.per_token(x).mean(dim=1))


def test_variable_length_items_are_probed_at_their_longest():
    task = autobs.Task(model=TokenMLP, train_data=Sequences(), collate=pad, name="seqs")
    limit = 256 * 2**20
    result = autobs.probe_memory(task, device="cpu", memory_limit=limit)
    budget = int(limit * (1 - result.headroom))
    # A batch of max_batch_size items that holds the longest sequence (which shuffled training draws
    # sooner or later) fits the budget: a probe on typical, short batches finds a size several times
    # larger (717 here, measured) that such a batch overruns.
    longest = [item for item in Sequences().items if len(item[0]) == 400]
    repeated = Sequences(longest * (2 * result.max_batch_size // len(longest) + 1))
    worst = autobs.Task(model=TokenMLP, train_data=repeated, val_data=repeated, collate=pad, name="worst")
    probe = _run_probe(worst, result.max_batch_size, torch.device("cpu"), budget, bf16=False)
    assert probe.fits, (result.max_batch_size, probe.peak_bytes, budget)
    # ... and the probe is not needlessly cautious: a tenth more than it found does not fit.
    over = _run_probe(worst, int(result.max_batch_size * 1.1) + 1, torch.device("cpu"), budget, bf16=False)
    assert not over.fits


def test_a_burst_of_other_work_during_the_first_timed_steps_does_not_set_the_throughput():
    import time

    class BusyAtFirst(torch.nn.Module):
        """A small model whose first forward calls are slowed, as by other processes taking the CPU: they cover
        the probe's memory-counting steps and its first five timed steps."""

        calls = 0

        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(8, 2)

        def forward(self, x):
            BusyAtFirst.calls += 1
            if BusyAtFirst.calls <= 20:
                time.sleep(0.02)
            return self.layer(x)

    x = torch.randn(512, 8, generator=torch.Generator().manual_seed(0))
    task = autobs.Task(model=BusyAtFirst, train_data=(x, (x[:, 0] > 0).long()), name="busy")
    probe = _run_probe(task, 16, torch.device("cpu"), budget=2**30, bf16=False)
    assert BusyAtFirst.calls > 20  # the probe timed past the burst
    # 20 ms a step would read under 800 samples/s; a step of this model takes well under 2 ms when the CPU is free.
    assert probe.samples_per_s > 16 / 0.005


def test_step_times_out_of_line_with_their_neighbours_are_timed_again_and_the_quicker_read_kept():
    from autobs.memory import Probe, _retime_implausible

    # Quiet-machine step times 1.8, 2.4, 3.8, 6.4 ms at 16-128, but 32 was read during a burst of other work (6.0 ms:
    # more than twice 16's, and more than 64's). Timed again it reads 2.5 ms.
    read = {16: 1.8e-3, 32: 6.0e-3, 64: 3.8e-3, 128: 6.4e-3}
    probes = {b: Probe(b, fits=True, peak_bytes=1, samples_per_s=b / t) for b, t in read.items()}
    quiet = {16: 1.9e-3, 32: 2.5e-3, 64: 4.5e-3, 128: 6.0e-3}
    asked = []

    def time_again(b, t):
        asked.append(b)
        return quiet[b]

    assert _retime_implausible(probes, time_again) == 3
    assert sorted(asked) == [16, 32, 64]  # both sizes of each pair out of line, each once; 128 was in line with 64
    step = {b: b / p.samples_per_s for b, p in probes.items()}
    assert step == pytest.approx({16: 1.8e-3, 32: 2.5e-3, 64: 3.8e-3, 128: 6.4e-3})  # the quicker read of each
    # In line everywhere now: nothing is timed again.
    assert _retime_implausible(probes, time_again) == 0 and len(asked) == 3


def test_short_timings_are_read_in_passes_over_the_sizes_and_the_quickest_read_kept():
    """A slow spell that covers a whole timing window (a median of its steps cannot hold it off) set 32's first read
    1.6x its usual, which is a different answer (t(16)/t(32) decides between those two sizes). Two more passes read
    every short size again, largest first and then smallest first; a size whose window is long is read once, and so
    are the sizes no recommendation compares (batch 2, a ceiling between powers of two)."""
    from autobs.memory import TIMING_PASSES, Probe, _time_in_passes

    first = {2: 1.0e-3, 16: 3.0e-3, 32: 6.4e-3, 64: 6.0e-3, 100: 8.0e-3, 4096: 0.5}  # 4096: 5 steps take 2.5 s
    probes = {b: Probe(b, fits=True, peak_bytes=1, samples_per_s=b / t) for b, t in first.items()}
    later = {16: [3.4e-3, 2.9e-3], 32: [4.1e-3, 4.3e-3], 64: [6.3e-3, 6.1e-3]}
    asked = []

    def time_again(b, t):
        asked.append(b)
        return later[b].pop(0)

    assert _time_in_passes(probes, time_again) == 3
    assert asked == [64, 32, 16, 16, 32, 64] and TIMING_PASSES == 3
    step = {b: b / p.samples_per_s for b, p in probes.items()}
    assert step == pytest.approx({2: 1.0e-3, 16: 2.9e-3, 32: 4.1e-3, 64: 6.0e-3, 100: 8.0e-3, 4096: 0.5})

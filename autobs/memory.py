"""Stage 1: the memory ceiling (largest batch size that fits) and throughput at each probed size: the sizes the
ceiling search measured and every power of two from 16 below the ceiling (the step time t(B) the recommendation
uses).

Instead of doubling until a crash (Lightning's ``scale_batch_size``) autobs measures: the peak bytes
of a real training step *and* a validation forward at batch sizes 2, 16 and 128, draws
``peak(B) = a + b·B`` through the two largest measured sizes (activation memory is linear in the batch;
parameters, gradients and optimizer state are the constant), jumps to the largest B the line allows
under ``limit × (1 − headroom)``, and confirms it with a real step there, refitting with every new
measurement. Only a real out-of-memory error, which leaves no measurement, makes it step down (10% at a
time, up to 3 times) and then bisect.

Peak bytes:
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was allocated
  before the probe; the limit is the card's memory unless ``memory_limit`` says less.
- CPU: torch keeps no allocator statistics, so a ``TorchDispatchMode`` counts the bytes of every tensor
  storage that torch operations create while the probe runs, and subtracts them when the storage is
  freed: the peak of what torch allocated, free of process RSS noise. The limit is ``memory_limit`` or
  a share of the RAM available now (``DEFAULT_CPU_SHARE``).
A real allocation failure (CUDA/HIP/MPS/XPU OOM, cuDNN/cuBLAS allocation failures, the CPU allocator
under an address-space limit, ``MemoryError``) counts as "does not fit"; any other error propagates.

Every probe is a run of the one training loop (``autobs.train``) on the task's own fresh model, so
nothing of the user's needs restoring.

Example:
    >>> import autobs
    >>> result = autobs.probe_memory(autobs.load_task("examples/digits_mlp.py"), memory_limit="64MiB")
    >>> 1000 < result.max_batch_size <= 1617
    True
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
import gc
import math
import resource
import sys
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .errors import AutobsError, ConfigError
from .task import ItemData, Task
from .training import TIMING_SKIP_STEPS, TrainConfig, resolve_device, train
from .units import parse_bytes

HEADROOM = 0.10  # DESIGN: keep 10% free for fragmentation, longer batches and whatever else runs
DEFAULT_CPU_SHARE = 0.5  # of the RAM available now: the rest stays for the data, the OS and other work
FIT_SIZES = (2, 16, 128)  # from 2 (BatchNorm needs 2 values per channel); to 128 so activations dominate the slope
TIMED_STEPS = 5  # timed steps per probed size (after TIMING_SKIP_STEPS warm-up steps); the median is kept
# A CPU timing run stops after this long: at a few seconds a step, the median of the steps done is as
# good an estimate as the median of more, and timing was most of a probe's wall time at large sizes.
TIMING_MAX_S = 8.0
# A timing shorter than this is taken again over at least this long. Five steps of a small model take 10-20 ms
# on a CPU, a few of the OS's time slices, so one burst of other work (a finished search's Ray processes
# shutting down, here) can cover the whole window: on friedman_mlp (5 runs back to back, 893502e) batch 128
# read 10.9k-62.6k samples/s, and its lowest read made t(128) 3.5x the usual and the recommendation batch 16
# (regret 7.6). The median of a quarter second's steps (over 100 of them at 2 ms) needs half of them slowed.
TIMING_MIN_S = 0.25
MAX_ROUNDS = 12  # probes after the fit sizes, at most (pure bisection of 32..4096 to 1% takes ~10)
BISECT_TOLERANCE = 0.01  # stop bisecting when the bracket is within 1% (or 1 sample)
REAL_OOM_BACKOFF = 0.9  # after a real OOM at the predicted ceiling, try 90% of it (Accelerate's factor)
MAX_OOM_BACKOFFS = 3  # 10% steps below a real OOM before bisecting: covers a ~27% misprediction
REAL_OOM_TOLERANCE = 0.05
PROBE_LR = 1e-6  # memory and step time do not depend on the LR; a tiny one keeps the run finite


class OutOfMemory(AutobsError):
    """The model does not fit in the memory limit even at the smallest batch size."""


# One predicate for every backend's out-of-memory message (message fragments, lower-cased).
_OOM_MESSAGES = (
    "out of memory",  # CUDA "CUDA out of memory", HIP "HIP out of memory", XPU, MPS "MPS backend out of memory"
    "can't allocate memory",  # CPU DefaultCPUAllocator under an address-space or overcommit limit
    "not enough memory",  # CPU allocator on Windows, XPU
    "cudnn_status_alloc_failed",
    "cudnn_status_not_supported",  # cuDNN reports a failed workspace allocation this way (Lightning treats it alike)
    "cublas_status_alloc_failed",
    "miopen_status_alloc_failed",  # ROCm's cuDNN
)


def is_oom(exc: BaseException) -> bool:
    """True if ``exc`` (or an exception it was raised from) is an out-of-memory error of any backend."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
            return True
        if isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MESSAGES):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def available_cpu_bytes() -> int:
    """RAM available now (``MemAvailable`` from /proc/meminfo; free pages elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Probe:
    """One probed batch size: did a training step plus a validation forward fit, at what peak, how fast."""

    batch_size: int
    fits: bool
    peak_bytes: int | None  # None when the attempt ran out of memory for real, or the size was timed only
    samples_per_s: float | None  # None when it did not fit
    oom: bool = False


@dataclass
class MemoryResult:
    max_batch_size: int
    memory_limit_bytes: int
    headroom: float
    device: str
    probes: list[Probe]
    fixed_bytes: float  # a in peak(B) = a + b·B: parameters, gradients, optimizer state, workspaces
    bytes_per_sample: float  # b
    reason: str
    capped_by_dataset: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def budget_bytes(self) -> int:
        return int(self.memory_limit_bytes * (1 - self.headroom))

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_batch_size": self.max_batch_size,
            "memory_limit_bytes": self.memory_limit_bytes,
            "headroom": self.headroom,
            "budget_bytes": self.budget_bytes,
            "device": self.device,
            "probes": [asdict(p) for p in sorted(self.probes, key=lambda p: p.batch_size)],
            "fit": {"fixed_bytes": self.fixed_bytes, "bytes_per_sample": self.bytes_per_sample},
            "reason": self.reason,
            "capped_by_dataset": self.capped_by_dataset,
            "notes": self.notes,
        }


class _CpuPeakBytes:
    """Peak bytes of tensor storages created by torch operations while active (CPU only)."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in tree_flatten(out)[0]:
                    if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                        counter._track(t.untyped_storage())
                return out

        self.mode = Mode()
        self.live: dict[int, int] = {}
        self.current = self.peak = 0

    def _track(self, storage) -> None:
        key = id(storage)  # storage objects are preserved while the C++ storage lives
        if key not in self.live:
            self.live[key] = storage.nbytes()
            self.current += self.live[key]
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter (malloc.h)
_GLIBC_INITIAL_MMAP_THRESHOLD = 128 * 1024  # glibc's default before its dynamic adjustment


@functools.cache  # find_library runs ldconfig: once per process is enough
def _glibc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def _prepare_cpu_heap(notes: list[str]) -> None:
    """Under an address-space limit (``RLIMIT_AS``), keep glibc from holding freed blocks.

    glibc raises its mmap threshold after each large block is freed (up to 32 MiB), so later blocks of
    that size come from the heap, and freed heap blocks stay mapped and count against the address-space
    limit. Over a dozen probe runs in one process this fragmentation made a size fail that fits in a fresh
    process (transformer benchmark: 730 ran a full epoch in a fresh process but ran out of address space
    as the fourth probe). Fixing the threshold at glibc's initial 128 KiB returns every large block to the
    system when freed, as in a fresh process. Without an address-space limit the RAM limit is what binds,
    freed heap pages are reclaimed by ``malloc_trim`` after each probe, and allocation stays as it is (so
    the samples/s measured are those of the user's own training).
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    libc = _glibc()
    if soft == resource.RLIM_INFINITY or libc is None:
        return
    if libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_INITIAL_MMAP_THRESHOLD):
        notes.append("address-space limit in force: glibc's mmap threshold fixed at 128 KiB during the probe "
                     "so freed blocks leave the address space")


def _release_cpu_memory() -> None:
    """Return what the last probe freed to the system: Python cycles first, then glibc's free heap."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _probe_view(task: Task, batch_size: int) -> Task:
    """The task cut to what one probe at ``batch_size`` needs: a validation set of one batch (the
    validation forward's memory is that of one batch; a full pass would only cost time, at large batch
    sizes on CPU most of the probe's time). Dataset items are cut to the ``batch_size`` items with the
    largest inputs, in training and validation: with variable-length items (padded sequences) a batch's
    memory grows with its longest item, so the probe measures the worst batch training can draw, not a
    typical one that a later batch of long items would overrun."""
    view = copy.copy(task)
    if isinstance(task.train, ItemData):
        view.train = task.train.largest(min(len(task.train), batch_size))
    view.val = (task.val.largest(min(len(task.val), batch_size)) if isinstance(task.val, ItemData)
                else task.val.subset(torch.arange(min(len(task.val), batch_size))))
    return view


def _cuda_library_bytes(task: Task, dev: torch.device, bf16: bool) -> int:
    """Bytes that CUDA libraries allocate on their first use and keep for the life of the process (the
    cuBLAS workspace, measured 64 MiB on an H200 with torch 2.11). Without this warm-up the first probe
    would count them and every later one would not (they sit in its starting ``memory_allocated``); with
    it every probe counts them once, as the user's own training process will hold them too."""
    torch.cuda.synchronize(dev)
    before = torch.cuda.memory_allocated(dev)
    try:
        train(_probe_view(task, 1), TrainConfig(batch_size=1, lr=PROBE_LR), samples=1, device=dev,
              eval_every_samples=10**12, bf16=bf16)
    except Exception as exc:  # noqa: BLE001 — an OOM here is reported by the first real probe
        if not is_oom(exc):
            raise
    gc.collect()
    torch.cuda.synchronize(dev)
    return max(torch.cuda.memory_allocated(dev) - before, 0)


def _run_probe(task: Task, batch_size: int, dev: torch.device, budget: int, bf16: bool,
               library_bytes: int = 0) -> Probe:
    """A real training run of a few steps at ``batch_size`` (validation forward included, at the same
    size), measuring peak bytes (plus ``library_bytes`` held from before, see ``_cuda_library_bytes``)
    and, if it fits, samples/s."""
    task = _probe_view(task, batch_size)
    config = TrainConfig(batch_size=batch_size, lr=PROBE_LR)
    timed = (TIMING_SKIP_STEPS + TIMED_STEPS) * batch_size
    # Validation before and after the steps, at the same batch size: evaluation memory is measured too.
    settings = dict(device=dev, eval_every_samples=10**12, bf16=bf16)
    oom, peak, step_time = False, None, math.nan
    try:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            base = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            result = train(task, config, samples=timed, **settings)
            peak = torch.cuda.max_memory_allocated(dev) - base + library_bytes
            step_time = result.step_time_s
        else:
            counter = _CpuPeakBytes()
            with counter:  # two steps: the second runs with the optimizer state the first created
                train(task, config, samples=2 * batch_size, **settings)
            peak = counter.peak
            if peak <= budget:  # timing without the counter's overhead
                step_time = train(task, config, samples=timed, max_seconds=TIMING_MAX_S, **settings).step_time_s
    except Exception as exc:  # noqa: BLE001 — anything but an OOM is re-raised at once
        if not is_oom(exc):
            raise
        oom = True
    # Outside the except block: the exception and its frames (holding the failed attempt's tensors)
    # are gone now, so the memory can really be released (PyTorch FAQ, "my out of memory exception
    # handler can't allocate memory").
    if dev.type == "cpu":
        _release_cpu_memory()
    elif oom:
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    if oom:
        return Probe(batch_size, fits=False, peak_bytes=None, samples_per_s=None, oom=True)
    fits = peak <= budget
    if fits and 0 < step_time * TIMED_STEPS < TIMING_MIN_S:  # too short a window to trust (TIMING_MIN_S)
        step_time = _time_step(task, batch_size, dev, bf16, step_time)
    rate = batch_size / step_time if fits and step_time > 0 else None
    return Probe(batch_size, fits=fits, peak_bytes=int(peak), samples_per_s=rate)


def _time_step(view: Task, batch_size: int, dev: torch.device, bf16: bool, step_time: float) -> float:
    """Seconds per step at ``batch_size`` (``view``: the task's ``_probe_view`` at it) again, over at least
    ``TIMED_STEPS`` steps and ``TIMING_MIN_S`` (at the ``step_time`` read before), at most ``TIMING_MAX_S``."""
    steps = max(TIMED_STEPS, math.ceil(TIMING_MIN_S / step_time))
    return train(view, TrainConfig(batch_size=batch_size, lr=PROBE_LR),
                 samples=(TIMING_SKIP_STEPS + steps) * batch_size, max_seconds=TIMING_MAX_S, device=dev,
                 eval_every_samples=10**12, bf16=bf16).step_time_s


# Neighbouring sizes whose timings disagree with how a step's work grows are timed again. A step of more samples
# does no less work, and one of k times the samples at most k times the work (the fixed part, parameters and
# optimizer, does not grow); TIMING_SLACK leaves room for the memory traffic of larger activations (digits, 512 to
# 646 samples: 1.26x the samples, 1.36x the time on a quiet machine). A pair outside that was read during a burst
# of other work (5 runs back to back on digits, 2026-12-03: t(16) 5.08 ms against t(32) 4.21 ms, 1.8 and 2.3 ms
# alone); the quicker of the two reads of each is kept, since other work only ever slows a step.
TIMING_SLACK = 1.1


# Each short timing (a window of at most TIMING_PASS_MAX_S) is read TIMING_PASSES times, in passes over the sizes,
# and its quickest read kept: other work only ever slows a step, so the least of several reads is the closest to the
# machine's own speed (Python's timeit takes the minimum for the same reason). Why: one read's median step holds off
# a burst within its window, not a slow spell that covers it. Measured on digits (2026-12-03, 2 cores, nothing else of
# ours running): six back-to-back reads of t(16) ran 2.9-5.0 ms and of t(32) 3.6-5.8 ms, their ratio 0.70-1.23; across
# five recommendations the probe's t(16)/t(32) read 0.51-0.91 (the grid's, measured alone: 0.77). The pick hangs on
# that ratio: replayed with the grid's step times, the 5 searches behind those recommendations all picked batch 32, and
# 34 of 35 kept digits searches (sessions 23-28); with their own probes' they picked 16, 32, 64 and 128. Passes, not
# three reads in a row, so that a slow spell spreads over every size instead of one.
# Only the sizes the recommendation compares are read in passes: the search's, powers of two from 16 (the bundled
# spaces' floor, FIT_SIZES[1]); batch 2 and a ceiling between powers of two are read once (on the small held-out tasks
# the passes over every size cost 3-7 s of probe, and the test suite two minutes).
TIMING_PASSES = 3
TIMING_PASS_MAX_S = 2.0


def _time_in_passes(probes: dict[int, Probe], time_again) -> int:
    """Time the powers of two from 16 whose timing window is short (``TIMED_STEPS`` steps within ``TIMING_PASS_MAX_S``)
    again in ``TIMING_PASSES`` − 1 passes (``time_again(batch_size, step_time) -> step_time``), largest first then
    smallest first, keeping each size's quickest read; how many sizes were."""
    sizes = sorted(b for b, p in probes.items() if b >= FIT_SIZES[1] and b & (b - 1) == 0 and p.samples_per_s
                   and TIMED_STEPS * b / p.samples_per_s <= TIMING_PASS_MAX_S)
    for k in range(TIMING_PASSES - 1):
        for b in (sizes[::-1] if k % 2 == 0 else sizes):
            p = probes[b]
            p.samples_per_s = max(p.samples_per_s, b / time_again(b, b / p.samples_per_s))
    return len(sizes)


def _retime_implausible(probes: dict[int, Probe], time_again) -> int:
    """Time again (``time_again(batch_size, step_time) -> step_time``) both sizes of each neighbouring pair
    whose step times break ``TIMING_SLACK``'s bounds, each size once, keeping its quicker read; how many were."""
    timed = sorted((p for p in probes.values() if p.samples_per_s), key=lambda p: p.batch_size)
    again: set[int] = set()
    for lo, hi in zip(timed, timed[1:]):
        t_lo, t_hi = lo.batch_size / lo.samples_per_s, hi.batch_size / hi.samples_per_s
        if not t_lo <= t_hi <= TIMING_SLACK * t_lo * hi.batch_size / lo.batch_size:
            again |= {lo.batch_size, hi.batch_size}
    for b in sorted(again):
        p = probes[b]
        p.samples_per_s = max(p.samples_per_s, b / time_again(b, b / p.samples_per_s))
    return len(again)


def _fit_line(probes) -> tuple[float, float]:
    """``(a, b)`` of ``peak(B) = a + b·B`` through the two largest measured sizes (a secant): nearest the
    ceiling, where the answer is decided, and free of small-batch effects (per-step workspaces, kernels
    that change with size) that bend the curve at tiny B. A probe that ran out of memory for real has
    no measurement and is left out."""
    points = sorted((p.batch_size, p.peak_bytes) for p in probes if p.peak_bytes is not None)[-2:]
    if len(points) < 2:
        return float(points[0][1]), 0.0
    (b0, y0), (b1, y1) = points
    slope = max((y1 - y0) / (b1 - b0), 0.0)
    return y1 - slope * b1, slope


def probe_memory(
    task: Task,
    *,
    device: str | torch.device = "auto",
    memory_limit: int | str | None = None,
    headroom: float = HEADROOM,
    bf16: bool = False,
    largest: int | None = None,
    time_below: bool = True,
    progress: bool = False,
) -> MemoryResult:
    """Find the largest batch size whose training step and validation forward fit in memory.

    Args:
        task: the task; probes train fresh copies of its model.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``…
        memory_limit: bytes or a size string (``"8GiB"``). Default: the card's memory on CUDA, a share
            (``DEFAULT_CPU_SHARE``) of the available RAM on CPU.
        headroom: fraction of the limit kept free (default 10%).
        bf16: probe under bfloat16 autocast, as training will run.
        largest: no batch size above this is probed (the pipeline passes the largest its planned run can
            use); the training set's size always caps the search too.
        time_below: once the ceiling is found, also time every power of two from 16 below it (the step times the
            recommendation compares; False finds the ceiling alone, as the peers in benchmarks/memory_probe.py do).
        progress: print each probe on stderr.

    Raises:
        OutOfMemory: the smallest batch size does not fit.
        ConfigError: a bad limit or headroom.
    """
    if not 0 <= headroom < 1:
        raise ConfigError(f"headroom must be in [0, 1); got {headroom!r}.")
    dev = resolve_device(device)
    notes = []
    if dev.type == "cuda":
        card = torch.cuda.get_device_properties(dev).total_memory
        limit = min(card, parse_bytes(memory_limit)) if memory_limit is not None else card
        if memory_limit is not None and parse_bytes(memory_limit) > card:
            notes.append(f"memory limit above the card's {card} bytes; the card's memory is used")
    else:
        limit = parse_bytes(memory_limit) if memory_limit is not None else int(DEFAULT_CPU_SHARE * available_cpu_bytes())
    budget = int(limit * (1 - headroom))
    if dev.type == "cpu":
        _prepare_cpu_heap(notes)
    library_bytes = 0
    if dev.type == "cuda":
        library_bytes = _cuda_library_bytes(task, dev, bf16)
        if library_bytes:
            notes.append(f"{library_bytes} bytes that CUDA libraries keep after first use are counted in every probe")
    n_train = len(task.train)
    top = n_train if largest is None else max(1, min(largest, n_train))  # no full batch above either
    probes: dict[int, Probe] = {}

    def probe(b: int) -> Probe:
        if b not in probes:
            probes[b] = _run_probe(task, b, dev, budget, bf16, library_bytes)
            p = probes[b]
            if progress:
                peak = "OOM" if p.oom else f"{p.peak_bytes / 2**20:.1f} MiB"
                rate = f", {p.samples_per_s:.0f} samples/s" if p.samples_per_s else ""
                _progress(f"probe batch {b}: {peak} of {budget / 2**20:.1f} MiB budget, "
                          f"{'fits' if p.fits else 'does not fit'}{rate}")
        return probes[b]

    sizes = sorted({min(s, top) for s in FIT_SIZES}) if top > 1 else [1]
    first = probe(sizes[0])
    if not first.fits:
        used = "more than the limit (OOM)" if first.oom else f"{first.peak_bytes} bytes"
        raise OutOfMemory(
            f"{task.name}: one training step at batch size {sizes[0]} needs {used}, but the budget is "
            f"{budget} bytes ({limit} limit minus {headroom:.0%} headroom). Fix: raise --memory-limit, use a "
            "device with more memory, or make the model smaller."
        )
    for s in sizes[1:]:
        if not probe(s).fits:
            break

    reason = "probe budget spent"
    for _ in range(MAX_ROUNDS):
        best = max(p.batch_size for p in probes.values() if p.fits)
        failed = min((p.batch_size for p in probes.values() if not p.fits), default=math.inf)
        if best == top:
            reason = ("every batch up to the training set size fits" if top == n_train
                      else f"every batch up to {top}, the largest asked for, fits")
            break
        real_oom = failed != math.inf and probes[failed].oom
        # A bracket closed by a measured miss is narrowed to 1%; one closed by a real OOM (no
        # measurement, so no line to trust) to 5%, well inside the 90% of the true ceiling asked for.
        tolerance = REAL_OOM_TOLERANCE if real_oom else BISECT_TOLERANCE
        if failed - best <= max(1, tolerance * best):
            reason = f"{best} fits and {failed} does not"
            break
        a, b = _fit_line(probes.values())
        ceiling = math.inf if b <= 0 else (budget - a) / b  # where the line crosses the budget
        if ceiling < best * (1 + BISECT_TOLERANCE):
            reason = f"a real step at {best} fits and the fit puts the ceiling at {ceiling:.0f}"
            break
        backoffs = sum(p.oom for p in probes.values())
        if ceiling < failed:
            next_size = max(best + 1, int(min(ceiling, top)))  # jump to the predicted ceiling
        elif real_oom and backoffs <= MAX_OOM_BACKOFFS and int(REAL_OOM_BACKOFF * failed) > best:
            # The predicted size ran out of memory for real: the allocator needed more than torch's
            # tensors (fragmentation, allocator and library scratch space), so the ceiling is most likely
            # just below. Step down 10% at a time, as Accelerate's find_executable_batch_size does, a few
            # times before bisecting the whole way down.
            next_size = int(REAL_OOM_BACKOFF * failed)
        else:
            next_size = (best + int(min(failed, top + 1))) // 2  # prediction was wrong: bisect
        if next_size in probes:  # cannot happen with the rules above; never loop on a cached probe
            next_size = (best + int(min(failed, top + 1))) // 2
        probe(next_size)
    lo = max(p.batch_size for p in probes.values() if p.fits)
    a, b = _fit_line(probes.values())
    # Throughput at every power of two from 16 below the ceiling too (after the line is drawn: it stays the secant
    # through the two largest sizes). The recommendation compares S(B)·t(B) between neighbouring powers of two, and
    # t(B) interpolated between the fit sizes misses where the step time turns from overhead-bound to compute-bound:
    # on the oracles' step times (measured alone, reports/oracle_*.md), log-log between 16 and 128 puts t(32) 17%
    # high on digits and 32% high on friedman_mlp, t(64) 20% high on friedman and 7% on char_lm. Those errors favour
    # the probed sizes over the ones between them by as much as the regret goal allows in all. A size below the
    # ceiling is timed only (TIMED_STEPS, TIMING_MIN_S): 1-4 s more in all on digits and the small unseen tasks
    # (benchmarks/unseen_tasks/), where a full probe of each size, memory count included, took 4-6 s more.
    # From 16 (FIT_SIZES[1], the bundled search spaces' floor; below it t(B) is overhead-bound and flat, and
    # interpolated from 2 and 16 within 6% on digits) unless the ceiling lies below it.
    first = 1 if lo <= FIT_SIZES[1] else FIT_SIZES[1].bit_length() - 1
    if time_below:
        for size in (2**k for k in range(first, lo.bit_length()) if 2**k < lo and 2**k not in probes):
            # Timed only, one short run: it fits, since peak memory grows with the batch and a larger one fit. The
            # next smaller measured size's step time sizes the window (a larger batch steps no faster, so it is
            # long enough).
            smaller = max((p for p in probes.values() if p.samples_per_s and p.batch_size < size), default=None,
                          key=lambda p: p.batch_size)
            estimate = smaller.batch_size / smaller.samples_per_s if smaller else math.inf
            step_time = _time_step(_probe_view(task, size), size, dev, bf16, estimate)
            rate = size / step_time if step_time > 0 else None
            probes[size] = Probe(size, fits=True, peak_bytes=None, samples_per_s=rate)
            if progress and rate:
                _progress(f"probe batch {size}: timed, {rate:.0f} samples/s")
        time_again = lambda size, t: _time_step(_probe_view(task, size), size, dev, bf16, t)  # noqa: E731
        passed = _time_in_passes(probes, time_again)
        if passed and progress:
            _progress(f"probe: {passed} sizes timed {TIMING_PASSES} times in passes over the sizes (the quickest read "
                      "kept)")
        retimed = _retime_implausible(probes, time_again)
        if retimed and progress:
            _progress(f"probe: {retimed} sizes timed again, their step times out of line with their neighbours' "
                      "(the quicker read kept)")
    capped = lo == n_train
    if capped:
        notes.append(f"capped at the training set size ({n_train} items): no larger full batch exists")
    elif lo == top:
        notes.append(f"capped at {top}, the largest batch size asked for; the memory ceiling may be higher")
    return MemoryResult(
        max_batch_size=lo, memory_limit_bytes=limit, headroom=headroom, device=str(dev),
        probes=sorted(probes.values(), key=lambda p: p.batch_size), fixed_bytes=a, bytes_per_sample=b,
        reason=reason, capped_by_dataset=capped, notes=notes,
    )

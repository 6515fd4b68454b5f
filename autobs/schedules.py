"""Learning-rate schedules: linear warmup followed by one of several decay shapes.

Each schedule is a pure function ``f(step, total_steps, warmup_steps, **params) -> factor`` that returns
the multiplier of the peak learning rate at optimizer step ``step`` (0-based). ``total_steps`` is the
length of the planned run, so a schedule ends where the run ends. Register a new schedule by adding one
function to ``SCHEDULES``.

Warmup is linear, ``(step + 1) / (warmup_steps + 1)`` (as in nanoGPT's ``get_lr``): the first step is
already above zero (a zero-LR step is wasted compute) and the factor reaches 1 on the first step after
warmup, so there is no jump between the phases.

Example:
    >>> from autobs.schedules import lr_factor
    >>> round(lr_factor("cosine", 550, total_steps=1000, warmup_steps=100), 3)
    0.5
"""

from __future__ import annotations

import inspect
import math
from functools import partial
from typing import TYPE_CHECKING, Callable

from .errors import ConfigError

if TYPE_CHECKING:  # torch loads only when a LambdaLR is built, so the CLI starts fast
    import torch

Schedule = Callable[..., float]


def _warmup(step: int, warmup_steps: int, start: float = 0.0) -> float:
    # Linear from just above `start` to just below 1 over `warmup_steps` steps (nanoGPT `get_lr`, step 1).
    return start + (1.0 - start) * (step + 1) / (warmup_steps + 1)


def _progress(step: int, total_steps: int, warmup_steps: int) -> float:
    # Fraction of the post-warmup phase done, in [0, 1]; 1 exactly at `total_steps`.
    return min(1.0, max(0.0, (step - warmup_steps) / max(1, total_steps - warmup_steps)))


def constant(step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Warmup, then the peak LR until the end."""
    return _warmup(step, warmup_steps) if step < warmup_steps else 1.0


def linear(step: int, total_steps: int, warmup_steps: int = 0, *, min_lr_ratio: float = 0.0) -> float:
    """Warmup, then linear decay to ``min_lr_ratio`` × peak at ``total_steps`` (Goyal et al. 2017 use
    warmup + step decay; linear decay to zero is the default of BERT and most fine-tuning recipes)."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    return 1.0 - (1.0 - min_lr_ratio) * _progress(step, total_steps, warmup_steps)


def cosine(step: int, total_steps: int, warmup_steps: int = 0, *, min_lr_ratio: float = 0.0) -> float:
    """Warmup, then half a cosine down to ``min_lr_ratio`` × peak (Loshchilov & Hutter 2017, eq. 5,
    one cycle without restarts)."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    p = _progress(step, total_steps, warmup_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


def one_cycle(
    step: int,
    total_steps: int,
    warmup_steps: int = 0,
    *,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> float:
    """Smith & Topin 2018 ("super-convergence"): rise from peak/``div_factor`` to the peak over the
    warmup, then cosine-anneal to peak/(``div_factor`` × ``final_div_factor``). Defaults are those of
    ``torch.optim.lr_scheduler.OneCycleLR``. Momentum is not cycled: that is the optimizer's business."""
    start = 1.0 / div_factor
    if step < warmup_steps:
        return _warmup(step, warmup_steps, start=start)
    end = start / final_div_factor
    p = _progress(step, total_steps, warmup_steps)
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * p))


def step_decay(
    step: int,
    total_steps: int,
    warmup_steps: int = 0,
    *,
    milestones: tuple[float, ...] = (0.5, 0.75),
    gamma: float = 0.1,
) -> float:
    """Warmup, then multiply by ``gamma`` at each milestone, given as a fraction of the post-warmup
    phase. Defaults follow the ImageNet ResNet recipe (He et al. 2016: ÷10 at 50% and 75% of training,
    as also used by Goyal et al. 2017)."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    p = _progress(step, total_steps, warmup_steps)
    return gamma ** sum(p >= m for m in milestones)


def inverse_sqrt(step: int, total_steps: int, warmup_steps: int = 0, *, timescale: float | None = None) -> float:
    """Warmup, then decay as ``sqrt(timescale / (timescale + steps since warmup))``.

    With the default ``timescale = warmup_steps`` this is Vaswani et al. 2017, eq. 3 (``lr ∝
    min(s^-0.5, s·w^-1.5)``, normalised to 1 at the peak). It never reaches zero, so ``total_steps``
    does not change its shape. Without warmup the default timescale is 1 step, a very fast decay: set
    ``timescale`` then.
    """
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    tau = float(timescale) if timescale is not None else float(max(warmup_steps, 1))
    return math.sqrt(tau / (tau + step - warmup_steps))


def wsd(
    step: int,
    total_steps: int,
    warmup_steps: int = 0,
    *,
    decay_fraction: float = 0.2,
    min_lr_ratio: float = 0.0,
) -> float:
    """Warmup-stable-decay (Hu et al. 2024, MiniCPM; Hägele et al. 2024): warmup, hold the peak, then
    decay linearly to ``min_lr_ratio`` × peak over the last ``decay_fraction`` of ``total_steps``
    (20% matches the best cooldown length reported by Hägele et al. 2024)."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    decay_start = max(warmup_steps, total_steps - decay_fraction * total_steps)
    p = min(1.0, max(0.0, (step - decay_start) / max(1.0, total_steps - decay_start)))
    return 1.0 - (1.0 - min_lr_ratio) * p


def exponential(step: int, total_steps: int, warmup_steps: int = 0, *, final_factor: float = 1e8) -> float:
    """The LR range test's sweep (Smith 2017, sec. 3.3, in its exponential form as in fastai and
    torch-lr-finder): from 1 at step 0 to ``final_factor`` at the last step, a constant ratio per step.
    ``warmup_steps`` is ignored. A sweep, not a training schedule: it is not in ``SCHEDULES``."""
    return final_factor ** (step / max(1, total_steps - 1))


# Training schedules: what the search chooses among and what a recommendation can name.
SCHEDULES: dict[str, Schedule] = {
    "constant": constant,
    "linear": linear,
    "cosine": cosine,
    "one-cycle": one_cycle,
    "step": step_decay,
    "inverse-sqrt": inverse_sqrt,
    "wsd": wsd,
}


# LR sweeps the stages run internally; accepted by ``TrainConfig`` but never searched or recommended.
SWEEPS: dict[str, Schedule] = {"exponential": exponential}


def get_schedule(name: str, **params) -> Callable[[int, int, int], float]:
    """Return ``f(step, total_steps, warmup_steps)`` for schedule ``name`` with its ``params`` bound.

    Raises:
        ConfigError: unknown name, or a parameter the schedule does not take.
    """
    known = {**SCHEDULES, **SWEEPS}
    if name not in known:
        raise ConfigError(f"unknown schedule {name!r}. Use one of: {', '.join(SCHEDULES)}.")
    fn = known[name]
    accepted = [p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no parameters"
        raise ConfigError(f"schedule {name!r} does not take {', '.join(unknown)}; it takes {takes}.")
    return partial(fn, **params)


def lr_factor(name: str, step: int, total_steps: int, warmup_steps: int = 0, **params) -> float:
    """The multiplier of the peak LR at ``step`` for schedule ``name``."""
    return get_schedule(name, **params)(step, total_steps, warmup_steps)


def lambda_lr(
    optimizer: torch.optim.Optimizer, name: str, total_steps: int, warmup_steps: int = 0, **params
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` that applies schedule ``name``; call ``.step()`` after each ``optimizer.step()``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> sched = lambda_lr(opt, "wsd", total_steps=100, warmup_steps=10)
    """
    if total_steps < 1:
        raise ConfigError(f"total_steps must be a positive integer; got {total_steps}.")
    if not 0 <= warmup_steps <= total_steps:
        raise ConfigError(f"warmup_steps must be in [0, total_steps={total_steps}]; got {warmup_steps}.")
    import torch

    fn = get_schedule(name, **params)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: fn(step, total_steps, warmup_steps))

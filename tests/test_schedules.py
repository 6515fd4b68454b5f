"""One contract run over every registered schedule."""

from __future__ import annotations

import math

import pytest
import torch

import autobs
from autobs.schedules import SCHEDULES, get_schedule

TOTAL, WARMUP = 1000, 100

# What each schedule promises at the end of the run, with the parameters the test passes.
PARAMS = {
    "constant": {},
    "linear": {"min_lr_ratio": 0.1},
    "cosine": {"min_lr_ratio": 0.1},
    "one-cycle": {"div_factor": 25.0, "final_div_factor": 100.0},
    "step": {"milestones": (0.5, 0.75), "gamma": 0.1},
    "inverse-sqrt": {},
    "wsd": {"decay_fraction": 0.2, "min_lr_ratio": 0.1},
}
END_VALUE = {
    "constant": 1.0,
    "linear": 0.1,
    "cosine": 0.1,
    "one-cycle": 1 / (25 * 100),
    "step": 0.01,
    "inverse-sqrt": math.sqrt(WARMUP / TOTAL),  # Vaswani et al. 2017: sqrt(w / s)
    "wsd": 0.1,
}
# Steps where a jump is part of the schedule (step decay's milestones), as post-warmup fractions.
JUMPS = {"step": [WARMUP + int(m * (TOTAL - WARMUP)) for m in (0.5, 0.75)]}


def test_every_schedule_is_covered():
    assert set(PARAMS) == set(SCHEDULES) == set(END_VALUE)


@pytest.fixture(params=sorted(SCHEDULES))
def curve(request):
    fn = get_schedule(request.param, **PARAMS[request.param])
    return request.param, [fn(s, TOTAL, WARMUP) for s in range(TOTAL + 1)]


def test_warmup_rises_from_near_zero_to_peak(curve):
    name, f = curve
    assert f[0] < 0.1
    assert all(b > a for a, b in zip(f[:WARMUP], f[1 : WARMUP + 1]))
    assert f[WARMUP] == pytest.approx(1.0)


def test_end_value_is_what_the_schedule_promises(curve):
    name, f = curve
    assert f[TOTAL] == pytest.approx(END_VALUE[name], rel=1e-6)
    assert f[TOTAL - 1] >= f[TOTAL] - 1e-12  # the last trained step is not below the end value


def test_no_jumps_except_declared_ones_and_never_rises_after_warmup(curve):
    name, f = curve
    jumps = set(JUMPS.get(name, []))
    for s in range(TOTAL):
        if s + 1 in jumps:
            assert f[s + 1] < f[s] * 0.5
            continue
        assert abs(f[s + 1] - f[s]) < 0.02, (name, s, f[s], f[s + 1])
    assert all(b <= a + 1e-12 for a, b in zip(f[WARMUP:], f[WARMUP + 1 :]))
    assert all(0 <= v <= 1 for v in f)


def test_no_warmup_starts_at_peak():
    for name in SCHEDULES:
        assert get_schedule(name)(0, TOTAL, 0) == pytest.approx(1.0)


def test_lambda_lr_drives_the_optimizer():
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=0.5)
    sched = autobs.lambda_lr(opt, "cosine", total_steps=TOTAL, warmup_steps=WARMUP)
    seen = []
    for _ in range(TOTAL):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.5 * autobs.lr_factor("cosine", s, TOTAL, WARMUP) for s in range(TOTAL)]
    assert seen == pytest.approx(expected)


def test_unknown_schedule_and_parameter_are_config_errors():
    with pytest.raises(autobs.ConfigError, match="unknown schedule 'cosin'.*cosine"):
        get_schedule("cosin")
    with pytest.raises(autobs.ConfigError, match="'constant' does not take gamma"):
        get_schedule("constant", gamma=0.1)
    with pytest.raises(autobs.ConfigError, match="warmup_steps"):
        autobs.lambda_lr(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1), "linear", 10, 11)

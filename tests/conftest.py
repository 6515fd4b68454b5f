from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
DIGITS = ROOT / "examples/digits_mlp.py"

# A small valid task: 200 points of a linearly separable problem, so training is fast and learnable.
GOOD_TASK = """
import torch

def model():
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

def train_data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 4, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()
"""


@pytest.fixture
def write_task(tmp_path):
    """Write a task file from source text and return its path."""

    def write(source: str, name: str = "model.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture(scope="session")
def digits_stages(tmp_path_factory) -> Path:
    """A digits run directory whose measured stages are done (memory probe, LR range test, noise scale: about 20 s
    on 2 cores) and whose search never began, measured once for the tests of what comes after those stages; each
    test takes its own copy (``digits_run``). Written by ``autobs.tune`` itself, interrupted at the search, so the
    stage files are what a real run leaves."""
    import autobs
    from autobs import search

    out = tmp_path_factory.mktemp("digits_stages") / "run"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(search, "run_search", interrupted)
        with pytest.raises(KeyboardInterrupt):
            autobs.tune(DIGITS, budget=600, out=out, progress=False)
    return out


@pytest.fixture
def digits_run(digits_stages, tmp_path) -> Path:
    """A copy of ``digits_stages`` at ``tmp_path/run``: a run directory whose next ``autobs.tune`` reuses the
    measured stages and begins at the search."""
    out = tmp_path / "run"
    shutil.copytree(digits_stages, out)
    return out

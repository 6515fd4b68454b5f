from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

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

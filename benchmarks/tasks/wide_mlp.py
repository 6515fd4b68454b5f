"""Benchmark task: a wide MLP (16 → 16384 → 10) on generated data. Memory per sample is dominated by the
hidden activations, compute is small: the memory ceiling is reached at thousands of samples cheaply."""

import torch


def model():
    return torch.nn.Sequential(torch.nn.Linear(16, 16384), torch.nn.ReLU(), torch.nn.Linear(16384, 10))


def train_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40000, 16, generator=g)
    return x, (x[:, :10].argmax(1))

"""Benchmark task: a small CNN on generated 3×32×32 images (activation memory of conv feature maps)."""

import torch


def model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(), torch.nn.Linear(32 * 16, 10),
    )


def train_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 3, 32, 32, generator=g)
    return x, x.mean(dim=(2, 3)).argmax(1)

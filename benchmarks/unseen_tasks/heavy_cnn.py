"""A heavier CNN on generated 1x32x32 images (12k samples, 10 classes), 8 epochs: a whole run takes minutes on CPU."""
import torch

metric = "accuracy"
epochs = 8

def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    protos = torch.randn(10, 1, 32, 32, generator=torch.Generator().manual_seed(123))
    x = protos[y] * 0.5 + torch.randn(n, 1, 32, 32, generator=g)
    return x, y

def model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(64, 10))

def train_data():
    return _data(12000, 0)

def val_data():
    return _data(1000, 1)

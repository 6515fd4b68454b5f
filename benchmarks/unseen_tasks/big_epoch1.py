"""One epoch over 60k generated samples: a wide MLP classifier; the planned run is short in epochs, long in steps."""
import torch

metric = "accuracy"
epochs = 1

def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    w = torch.randn(20, 5, generator=torch.Generator().manual_seed(7))
    y = (x @ w + 0.5 * torch.randn(n, 5, generator=g)).argmax(1)
    return x, y

def model():
    return torch.nn.Sequential(torch.nn.Linear(20, 256), torch.nn.ReLU(), torch.nn.Linear(256, 5))

def train_data():
    return _data(60000, 0)

def val_data():
    return _data(2000, 1)

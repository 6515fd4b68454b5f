"""Imbalanced classes (about 90% class 0): an untrained model's accuracy can already read 0.9; SGD, no momentum."""
import torch

metric = "accuracy"
epochs = 10

def train_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6000, 20, generator=g)
    w = torch.randn(20, generator=g)
    score = x @ w + 0.5 * torch.randn(6000, generator=g)
    y = (score > torch.quantile(score, 0.9)).long()
    return x, y

def model():
    return torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))

def optimizer(params, lr):
    return torch.optim.SGD(params, lr=lr)

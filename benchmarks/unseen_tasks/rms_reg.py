"""Regression with RMSprop (no noise-scale LR rule for it), a map-style dataset yielding tuples, loss metric."""
import torch

epochs = 6

class Waves(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, generator=g) * 6 - 3
        self.y = (torch.sin(self.x[:, 0]) * torch.cos(self.x[:, 1]) + 0.3 * self.x[:, 2] + 0.1 * torch.randn(n, generator=g)).unsqueeze(1)
    def __len__(self):
        return len(self.y)
    def __getitem__(self, i):
        return self.x[i], self.y[i]

def model():
    return torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 64), torch.nn.SiLU(), torch.nn.Linear(64, 1))

def train_data():
    return Waves(5000, 0)

def val_data():
    return Waves(500, 1)

def loss(outputs, targets):
    return torch.nn.functional.mse_loss(outputs, targets)

def optimizer(params, lr):
    return torch.optim.RMSprop(params, lr=lr)

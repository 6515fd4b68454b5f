"""LSTM regression on generated noisy sine windows; MSE loss; SGD with Nesterov momentum."""
import math
import torch

epochs = 4

def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    freq = 0.5 + torch.rand(n, 1, generator=g)
    t = torch.arange(21).float() * 0.3
    s = torch.sin(freq * t + phase) + 0.05 * torch.randn(n, 21, generator=g)
    return s[:, :20, None], s[:, 20:]

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(1, 32, batch_first=True)
        self.head = torch.nn.Linear(32, 1)
    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])

def model():
    return Net()

def train_data():
    return _data(3000, 0)

def val_data():
    return _data(500, 1)

def loss(outputs, targets):
    return torch.nn.functional.mse_loss(outputs, targets)

def optimizer(params, lr):
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)

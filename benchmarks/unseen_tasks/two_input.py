"""Map-style dataset whose inputs are a dict of two tensors; model takes the dict. Adam (no weight decay)."""
import torch

metric = "accuracy"
epochs = 3

class Pairs(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(n, 6, generator=g)
        self.b = torch.randn(n, 6, generator=g)
        self.y = ((self.a * self.b).sum(1) > 0).long()
    def __len__(self):
        return len(self.y)
    def __getitem__(self, i):
        return {"a": self.a[i], "b": self.b[i]}, self.y[i]

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.f = torch.nn.Sequential(torch.nn.Linear(12, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    def forward(self, x):
        return self.f(torch.cat([x["a"], x["b"]], 1))

def model():
    return Net()

def train_data():
    return Pairs(3000, 0)

def val_data():
    return Pairs(400, 1)

def optimizer(params, lr):
    return torch.optim.Adam(params, lr=lr)

"""Regression on sklearn's diabetes (442 rows), MSE loss, SGD with momentum, no val_data (held out)."""
import torch
from sklearn.datasets import load_diabetes

epochs = 30

def model():
    return torch.nn.Sequential(torch.nn.Linear(10, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))

def train_data():
    x, y = load_diabetes(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).unsqueeze(1)

def loss(outputs, targets):
    return torch.nn.functional.mse_loss(outputs, targets)

def optimizer(params, lr):
    return torch.optim.SGD(params, lr=lr, momentum=0.9)

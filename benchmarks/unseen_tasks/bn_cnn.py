"""CNN with BatchNorm and dropout on digits, map-style Dataset, default optimizer (AdamW)."""
import torch
from sklearn.datasets import load_digits

metric = "accuracy"
epochs = 5

class Digits(torch.utils.data.Dataset):
    def __init__(self, lo, hi):
        x, y = load_digits(return_X_y=True)
        self.x = torch.tensor(x[lo:hi] / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
        self.y = torch.tensor(y[lo:hi])
    def __len__(self):
        return len(self.y)
    def __getitem__(self, i):
        return self.x[i], self.y[i]

def model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Dropout(0.2), torch.nn.Linear(128, 10))

def train_data():
    return Digits(0, 1500)

def val_data():
    return Digits(1500, 1797)

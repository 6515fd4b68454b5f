"""A frozen random feature extractor (requires_grad False) with a trainable head on digits; SGD with weight decay."""
import torch
from sklearn.datasets import load_digits

metric = "accuracy"
epochs = 10

def train_data():
    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)

def model():
    state = torch.get_rng_state()  # the head is drawn from the RNG as autobs seeded it
    torch.manual_seed(123)  # the same "pretrained" backbone every call
    backbone = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU())
    torch.set_rng_state(state)
    for p in backbone.parameters():
        p.requires_grad_(False)
    return torch.nn.Sequential(backbone, torch.nn.Linear(128, 10))

def optimizer(params, lr):
    return torch.optim.SGD([p for p in params if p.requires_grad], lr=lr, momentum=0.9, weight_decay=5e-4)

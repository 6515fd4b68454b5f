"""Tiny transformer encoder on generated token sequences: is token 1 more frequent than token 2? AdamW default."""
import torch

metric = "accuracy"
epochs = 4

def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 8, (n, 24), generator=g)
    y = ((x == 1).sum(1) > (x == 2).sum(1)).long()
    return x, y

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(8, 32)
        self.pos = torch.nn.Parameter(torch.zeros(24, 32))
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, 2)
        self.head = torch.nn.Linear(32, 2)
    def forward(self, x):
        return self.head(self.enc(self.emb(x) + self.pos).mean(1))

def model():
    return Net()

def train_data():
    return _data(4000, 0)

def val_data():
    return _data(500, 1)

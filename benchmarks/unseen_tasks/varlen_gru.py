"""Variable-length token sequences with a collate that pads; a GRU classifies whether token 3 appears more than twice."""
import torch

metric = "accuracy"
epochs = 3

class Seqs(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(5, 30, (1,), generator=g))
            x = torch.randint(1, 6, (length,), generator=g)
            self.items.append((x, int((x == 3).sum() > 2 + length // 10)))
    def __len__(self):
        return len(self.items)
    def __getitem__(self, i):
        return self.items[i]

def collate(items):
    xs = torch.nn.utils.rnn.pad_sequence([x for x, _ in items], batch_first=True)
    return xs, torch.tensor([y for _, y in items])

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(6, 16, padding_idx=0)
        self.gru = torch.nn.GRU(16, 32, batch_first=True)
        self.out = torch.nn.Linear(32, 2)
    def forward(self, x):
        h, _ = self.gru(self.emb(x))
        return self.out(h.max(1).values)

def model():
    return Net()

def train_data():
    return Seqs(3000, 0)

def val_data():
    return Seqs(400, 1)

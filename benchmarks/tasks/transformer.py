"""Benchmark task: a one-layer causal transformer on generated token sequences (attention memory
grows with context²)."""

import torch
import torch.nn.functional as F

CONTEXT, VOCAB, WIDTH = 256, 64, 64


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, WIDTH)
        self.layer = torch.nn.TransformerEncoderLayer(WIDTH, 4, 4 * WIDTH, dropout=0.0, batch_first=True)
        self.head = torch.nn.Linear(WIDTH, VOCAB)
        self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(CONTEXT))

    def forward(self, tokens):
        return self.head(self.layer(self.embed(tokens), src_mask=self.mask, is_causal=True))


def model():
    return Model()


def train_data():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (2000, CONTEXT + 1), generator=g)
    return tokens[:, :-1], tokens[:, 1:]


def loss(outputs, targets):
    return F.cross_entropy(outputs.flatten(0, 1), targets.flatten())

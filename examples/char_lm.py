"""A small causal transformer that predicts the next character of Python source code.

The text is the source of standard-library modules that ship with every Python, so nothing is
downloaded. Characters outside printable ASCII become '?', which keeps the vocabulary fixed (96 symbols)
whatever the Python version. The validation text is the last 10% of the corpus, held apart as a whole
so that no window overlaps the training text. Optimizer: the contract's default, AdamW.

    autobs check examples/char_lm.py
    autobs train examples/char_lm.py --batch-size 32 --lr 3e-3 --schedule cosine --warmup-steps 20
"""

import inspect
import argparse, difflib, textwrap, string, shlex, fnmatch, tokenize, csv, json.decoder  # noqa: E401

import torch
import torch.nn.functional as F

epochs = 3
CONTEXT = 64  # characters seen per prediction
VOCAB = 96  # printable ASCII (32..126), newline, and '?' for everything else
MODULES = (argparse, difflib, textwrap, string, shlex, fnmatch, tokenize, csv, json.decoder)


def _encode(text):
    codes = [ord(c) - 32 if 32 <= ord(c) < 127 else (95 if c == "\n" else ord("?") - 32) for c in text]
    return torch.tensor(codes, dtype=torch.long)


def _corpus():
    return _encode("\n".join(inspect.getsource(m) for m in MODULES))


def _windows(codes):
    # Non-overlapping windows: inputs are CONTEXT characters, targets the same shifted by one.
    n = (len(codes) - 1) // CONTEXT
    inputs = codes[: n * CONTEXT].view(n, CONTEXT)
    targets = codes[1 : n * CONTEXT + 1].view(n, CONTEXT)
    return inputs, targets


def train_data():
    codes = _corpus()
    return _windows(codes[: int(0.9 * len(codes))])


def val_data():
    codes = _corpus()
    return _windows(codes[int(0.9 * len(codes)) :])


class Block(torch.nn.Module):
    """Pre-norm transformer block (GPT-2 layout, as in nanoGPT)."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.qkv, self.proj = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, 4 * width), torch.nn.GELU(), torch.nn.Linear(4 * width, width)
        )

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.norm2(x))


class CharTransformer(torch.nn.Module):
    def __init__(self, width=128, heads=4, layers=2):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, width)
        self.position = torch.nn.Parameter(torch.zeros(CONTEXT, width))
        self.blocks = torch.nn.Sequential(*[Block(width, heads) for _ in range(layers)])
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, VOCAB)

    def forward(self, tokens):
        x = self.embed(tokens) + self.position[: tokens.shape[1]]
        return self.head(self.norm(self.blocks(x)))  # (batch, time, vocab) logits


def model():
    return CharTransformer()


def loss(outputs, targets):
    return F.cross_entropy(outputs.flatten(0, 1), targets.flatten())

"""Handwritten digits (scikit-learn's bundled 8x8 images) with the MLP of the classic batch-size
experiments: two hidden layers of 1024 ReLU units, trained with plain SGD.

Keskar et al. 2017 and Shallue et al. 2019 use fully connected networks of this kind to show that
large batches at a fixed LR lose accuracy and that raising the LR recovers it; the digits are small
enough to repeat that on 2 CPU cores. The data ship with scikit-learn: nothing is downloaded.

    autobs check examples/digits_mlp.py
    autobs train examples/digits_mlp.py --batch-size 64 --lr 0.1 --schedule cosine
"""

import torch
from sklearn.datasets import load_digits

metric = "accuracy"
epochs = 20  # ~500 SGD steps at batch 64 over the 1617 training images


def model():
    return torch.nn.Sequential(
        torch.nn.Linear(64, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 10),
    )


def train_data():
    # 1797 images of 8x8 pixels with values 0..16; scaled to [0, 1]. autobs holds out a seeded 10% for
    # validation because this file defines no val_data().
    images, labels = load_digits(return_X_y=True)
    return torch.tensor(images / 16.0, dtype=torch.float32), torch.tensor(labels)


def optimizer(params, lr):
    return torch.optim.SGD(params, lr=lr)  # plain SGD, no momentum, as in the batch-size experiments

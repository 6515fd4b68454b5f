from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

import autobs
from autobs.task import ItemData, TensorData

from .conftest import GOOD_TASK

HEADER = "import torch\n"
MODEL = "def model():\n    return torch.nn.Linear(4, 2)\n"
DATA = "def train_data():\n    return torch.randn(20, 4), torch.randint(0, 2, (20,))\n"

# (case, file source, what the message must name, words of the fix)
BAD_TASKS = [
    ("syntax error", HEADER + MODEL + "def train_data(:\n    pass\n", "line 4", "Fix"),
    ("import error", HEADER + "import not_a_real_module_xyz\n" + MODEL + DATA, "not_a_real_module_xyz", "line 2"),
    ("model missing", HEADER + DATA, "`model`", "def model()"),
    ("train_data missing", HEADER + MODEL, "`train_data`", "def train_data()"),
    ("model not a module", HEADER + "def model():\n    return [1, 2]\n" + DATA, "model()", "torch.nn.Module"),
    ("model raises", HEADER + "def model():\n    raise ValueError('boom')\n" + DATA, "model()", "line 3"),
    ("empty dataset", HEADER + MODEL + "def train_data():\n    return torch.zeros(0, 4), torch.zeros(0).long()\n",
     "train_data()", "empty"),
    ("items not pairs",
     HEADER + MODEL + "class D(torch.utils.data.Dataset):\n    def __len__(self): return 5\n"
     "    def __getitem__(self, i): return torch.zeros(4)\ndef train_data():\n    return D()\n",
     "train_data()", "(inputs, target)"),
    ("three tensors", HEADER + MODEL + "def train_data():\n    return torch.zeros(5, 4), torch.zeros(5), torch.zeros(5)\n",
     "train_data()", "(inputs, targets)"),
    ("not batchable", HEADER + MODEL + "def train_data():\n    return 42\n", "train_data()", "Dataset"),
    ("loss not scalar", HEADER + MODEL + DATA +
     "def loss(outputs, targets):\n    return torch.nn.functional.cross_entropy(outputs, targets, reduction='none')\n",
     "loss(outputs, targets)", "mean"),
    ("optimizer not an optimizer", HEADER + MODEL + DATA + "def optimizer(params, lr):\n    return 'sgd'\n",
     "optimizer(params, lr)", "torch.optim"),
    ("unknown metric", HEADER + MODEL + DATA + "metric = 'f1'\n", "metric", "'loss', 'accuracy'"),
    ("epochs zero", HEADER + MODEL + DATA + "epochs = 0\n", "epochs", "positive integer"),
    ("epochs float", HEADER + MODEL + DATA + "epochs = 2.5\n", "epochs", "positive integer"),
    ("epochs string", HEADER + MODEL + DATA + "epochs = '10'\n", "epochs", "positive integer"),
    ("model input mismatch", HEADER + "def model():\n    return torch.nn.Linear(3, 2)\n" + DATA,
     "model()(inputs)", "accept a batch"),
    ("val_data empty", HEADER + MODEL + DATA + "def val_data():\n    return torch.zeros(0, 4), torch.zeros(0).long()\n",
     "val_data()", "empty"),
    ("variable-length items without collate",
     HEADER + "class D(torch.utils.data.Dataset):\n    def __len__(self): return 5\n"
     "    def __getitem__(self, i): return torch.zeros(i + 1, 4), 0\n" + MODEL +
     "def train_data():\n    return D()\n", "batch of two train_data items", "def collate(items)"),
    ("collate not callable", HEADER + MODEL + DATA + "collate = 3\n", "collate", "def collate(items)"),
    ("accuracy on scalar outputs", HEADER + "def model():\n    return torch.nn.Linear(4, 1)\n"
     "def train_data():\n    return torch.randn(20, 4), torch.randn(20, 1)\n"
     "def loss(o, t):\n    return ((o - t) ** 2).mean()\nmetric = 'accuracy'\n", "accuracy", "metric = 'loss'"),
    ("accuracy on one logit", HEADER + "def model():\n    return torch.nn.Linear(4, 1)\n"
     "def train_data():\n    return torch.randn(20, 4), (torch.arange(20) % 2).float()\n"
     "def loss(o, t):\n    return torch.nn.functional.binary_cross_entropy_with_logits(o[:, 0], t)\n"
     "metric = 'accuracy'\n", "one score per example", "two logits"),
]


@pytest.mark.parametrize("case,source,names,fix", BAD_TASKS, ids=[c[0] for c in BAD_TASKS])
def test_bad_task_file_names_file_name_and_fix(write_task, case, source, names, fix):
    path = write_task(source)
    with pytest.raises(autobs.TaskError) as info:
        autobs.load_task(path)
    message = str(info.value)
    assert str(path) in message
    assert names in message
    assert fix in message
    assert "Fix" in message or "line" in message


def test_missing_file_and_not_python(tmp_path):
    with pytest.raises(autobs.TaskError, match="not found.*Fix"):
        autobs.load_task(tmp_path / "absent.py")
    txt = tmp_path / "model.txt"
    txt.write_text("def model(): pass\n")
    with pytest.raises(autobs.TaskError, match=r"model\.txt: not a Python file.*Fix"):
        autobs.load_task(txt)


def test_load_does_not_use_sys_path_or_touch_global_rng(write_task, tmp_path, monkeypatch):
    # A module of the same name on sys.path must not be what gets loaded.
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "model.py").write_text("raise RuntimeError('imported from sys.path')\n")
    monkeypatch.syspath_prepend(str(decoy))
    path = write_task(GOOD_TASK)
    state = torch.get_rng_state()
    task = autobs.load_task(path)
    assert torch.equal(torch.get_rng_state(), state)
    assert task.name == "model" and task.path == path


def test_seeded_holdout_is_ten_percent_disjoint_and_repeatable(write_task):
    path = write_task(GOOD_TASK)
    a, b = autobs.load_task(path), autobs.load_task(path)
    assert (len(a.train), len(a.val)) == (180, 20)
    assert torch.equal(a.val.inputs, b.val.inputs)
    rows = {tuple(r.tolist()) for r in a.train.inputs}
    assert not any(tuple(r.tolist()) in rows for r in a.val.inputs)


def test_fingerprint_follows_content_and_settings(write_task):
    path = write_task(GOOD_TASK)
    first = autobs.load_task(path).fingerprint
    assert autobs.load_task(path).fingerprint == first
    assert autobs.load_task(path, val_fraction=0.2).fingerprint != first
    path.write_text(GOOD_TASK + "\nepochs = 3\n")
    assert autobs.load_task(path).fingerprint != first


def test_tensor_datasets_are_batched_by_indexing_not_item_by_item():
    class NoItems(TensorDataset):
        def __getitem__(self, index):
            raise AssertionError("item-by-item access")

    x, y = torch.randn(50, 4), torch.randint(0, 2, (50,))
    task = autobs.Task(model=lambda: torch.nn.Linear(4, 2), train_data=NoItems(x, y))
    assert isinstance(task.train, TensorData)
    inputs, targets = task.train.batch(torch.tensor([0, 3, 7]))
    assert inputs.shape == (3, 4) and targets.shape == (3,)


def test_task_built_in_python_with_item_dataset_and_explicit_val():
    class Pairs(Dataset):
        def __init__(self, n):
            self.x, self.y = torch.randn(n, 4), torch.randint(0, 2, (n,))

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i], self.y[i]

    task = autobs.Task(model=lambda: torch.nn.Linear(4, 2), train_data=Pairs(30), val_data=lambda: Pairs(7),
                       metric="accuracy", epochs=2, name="pairs")
    assert isinstance(task.train, ItemData)
    assert (len(task.train), len(task.val)) == (30, 7)
    inputs, targets = task.train.batch(torch.tensor([1, 2]))
    assert inputs.shape == (2, 4)
    assert task.higher_is_better


def test_python_task_errors_name_the_task():
    with pytest.raises(autobs.TaskError, match="Task 'mine'.*epochs"):
        autobs.Task(model=lambda: torch.nn.Linear(4, 2), train_data=(torch.randn(9, 4), torch.zeros(9).long()),
                    epochs=-1, name="mine")


SEQUENCE_TASK = HEADER + """
class Sequences(torch.utils.data.Dataset):
    def __len__(self):
        return 30

    def __getitem__(self, i):
        return torch.ones(1 + i % 7, 4), i % 2

def collate(items):
    x = torch.nn.utils.rnn.pad_sequence([x for x, _ in items], batch_first=True)
    return x, torch.tensor([y for _, y in items])

class Pool(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.linear(x.mean(dim=1))

def model():
    return Pool()

def train_data():
    return Sequences()
"""


def test_task_file_collate_batches_variable_length_items(write_task):
    task = autobs.load_task(write_task(SEQUENCE_TASK))
    inputs, targets = task.train.batch(torch.arange(len(task.train)))
    assert inputs.shape == (len(task.train), 7, 4) and targets.shape == (len(task.train),)
    assert task.train.largest(3).input_sizes().tolist() == [28, 28, 28]  # the three 7-token items
    result = autobs.train(task, autobs.TrainConfig(batch_size=8, lr=0.1), samples=64)
    assert result.steps == 8

"""What autobs's peers recommend for a task, each produced the way a user of that peer would.

Installed from the `bench` extra (`pip install -e '.[bench]'`); autobs itself never imports these.

- ``lightning_recommendation``: Lightning's ``Tuner.scale_batch_size`` (mode ``power``: double until
  OOM or the dataset length) and then ``Tuner.lr_find`` at the batch size found; constant LR, as
  Lightning's tuner suggests nothing else.
- ``linear_scaling_recommendation``: the linear scaling rule (Goyal et al. 2017) from a common default
  (batch 32 with lr 1e-3 for Adam-type optimizers, 0.01 for SGD) to the largest batch size that fits,
  with Goyal et al.'s gradual warmup (5 of 90 epochs, i.e. ~5% of the steps) and a constant LR after.
- ``ray_tpe_recommendation``: Ray Tune trials proposed by Optuna's TPE over the same kind of space as
  autobs searches (batch size up to a ceiling, log-uniform LR, warmup fraction, every schedule), the same
  wall-time budget as autobs (Ray Tune's ``time_budget_s``: trials still running at the deadline are stopped,
  as autobs's are), but none of autobs's probes or scaling fit: the best last validation metric wins.

Each returns a ``PeerRecommendation`` that the oracle's scoring trains with the same loop and seeds.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field

import torch

import autobs


@dataclass
class PeerRecommendation:
    peer: str
    batch_size: int
    lr: float
    schedule: str = "constant"
    warmup_steps: int = 0
    tuner_seconds: float = 0.0  # wall time the peer spent choosing
    details: dict = field(default_factory=dict)

    def config(self) -> autobs.TrainConfig:
        return autobs.TrainConfig(batch_size=self.batch_size, lr=self.lr, schedule=self.schedule,
                                  warmup_steps=self.warmup_steps)

    def to_dict(self) -> dict:
        return asdict(self)


def _is_sgd(task: autobs.Task) -> bool:
    with torch.random.fork_rng(devices=[]):
        return isinstance(task.optimizer(task.model().parameters(), 1e-3), torch.optim.SGD)


def linear_scaling_recommendation(task: autobs.Task, max_batch_size: int) -> PeerRecommendation:
    base_batch, base_lr = 32, (0.01 if _is_sgd(task) else 1e-3)
    batch = min(max_batch_size, len(task.train))
    steps = round(task.epochs * len(task.train) / batch)
    return PeerRecommendation("linear scaling rule", batch, base_lr * batch / base_batch, "constant",
                              warmup_steps=round(0.05 * steps),
                              details={"base_batch_size": base_batch, "base_lr": base_lr})


def _lightning_module(task: autobs.Task, batch_size: int, lr: float):
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    from autobs.task import TensorData

    class LitTask(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = task.model()
            self.batch_size, self.lr = batch_size, lr

        def training_step(self, batch, batch_idx):
            inputs, targets = batch
            return task.loss(self.net(inputs), targets)

        def configure_optimizers(self):
            return task.optimizer(self.parameters(), self.lr)

        def train_dataloader(self):
            data = task.train
            dataset = TensorDataset(data.inputs, data.targets) if isinstance(data, TensorData) else data.dataset
            return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, drop_last=True)

    return LitTask()


def lightning_recommendation(task: autobs.Task, *, init_batch_size: int = 2) -> PeerRecommendation:
    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner

    start = time.perf_counter()
    module = _lightning_module(task, init_batch_size, 1e-3)
    # max_epochs as the user plans it: lr_find's 100 steps are capped by it, so with max_epochs=1 and a
    # batch of half the dataset it gets 2 points and no suggestion.
    trainer = pl.Trainer(accelerator="cpu", max_epochs=task.epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tempfile.mkdtemp())  # its tuner checkpoints go there, not to cwd
    tuner = Tuner(trainer)
    batch = tuner.scale_batch_size(module, mode="power", init_val=init_batch_size)
    batch = min(batch, len(task.train))  # Lightning stops at the dataset length; a full batch must fit
    module.batch_size = batch
    finder = tuner.lr_find(module, min_lr=1e-6, max_lr=10.0, num_training=100)
    lr = finder.suggestion()  # None when lr_find had too few points: the peer gives no LR (regret ∞)
    return PeerRecommendation("lightning scale_batch_size + lr_find", batch, math.nan if lr is None else float(lr),
                              "constant", tuner_seconds=time.perf_counter() - start,
                              details={"lr_find_points": len(finder.results["lr"]), "lr_found": lr is not None})


def _ray_trial(config: dict, task_path: str, samples: int, mode: str) -> None:
    from ray import tune

    task = autobs.load_task(task_path)
    steps = max(1, round(samples / config["batch_size"]))
    train_config = autobs.TrainConfig(batch_size=config["batch_size"], lr=config["lr"], schedule=config["schedule"],
                                      warmup_steps=round(config["warmup_fraction"] * steps))
    worst = -math.inf if mode == "max" else math.inf

    def report(point):
        value = point.metric if math.isfinite(point.metric) else worst
        tune.report({"val_metric": value, "samples": point.samples})

    result = autobs.train(task, train_config, samples=samples, device="cpu", callback=report)
    if result.diverged:
        tune.report({"val_metric": worst, "samples": result.samples})


def ray_tpe_recommendation(task: autobs.Task, *, max_batch_size: int, budget_s: float, cpus: int = 2,
                           lr_range: tuple[float, float] = (1e-5, 3.0), seed: int = 0) -> PeerRecommendation:
    import optuna
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    start = time.perf_counter()
    mode = "max" if task.higher_is_better else "min"
    batch_sizes = [2**i for i in range(3, int(math.log2(min(max_batch_size, len(task.train)))) + 1)]
    space = {
        "batch_size": tune.choice(batch_sizes),
        "lr": tune.loguniform(*lr_range),
        "schedule": tune.choice(sorted(autobs.SCHEDULES)),
        "warmup_fraction": tune.uniform(0.0, 0.2),
    }
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        trainable = tune.with_parameters(_ray_trial, task_path=str(task.path),
                                         samples=task.epochs * len(task.train), mode=mode)
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space=space,
            tune_config=tune.TuneConfig(
                search_alg=OptunaSearch(metric="val_metric", mode=mode, sampler=optuna.samplers.TPESampler(seed=seed)),
                num_samples=-1, metric="val_metric", mode=mode, max_concurrent_trials=cpus,  # -1: until the deadline
                time_budget_s=max(1.0, budget_s - (time.perf_counter() - start)),  # Ray's start counts, as autobs's does
            ),
            run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="ray_tpe_"), verbose=0),
        )
        results = tuner.fit()
        best = results.get_best_result(metric="val_metric", mode=mode, scope="last")
    finally:
        if started_ray:
            ray.shutdown()
    c = best.config
    steps = max(1, round(task.epochs * len(task.train) / c["batch_size"]))
    return PeerRecommendation("ray tune + optuna TPE", c["batch_size"], float(c["lr"]), c["schedule"],
                              warmup_steps=round(c["warmup_fraction"] * steps),
                              tuner_seconds=time.perf_counter() - start,
                              details={"trials": len(results), "best_val_metric": best.metrics["val_metric"]})


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Print each peer's recommendation for a task as JSON.")
    parser.add_argument("task")
    parser.add_argument("--budget", type=float, default=60.0, help="Ray Tune + TPE wall time (s)")
    args = parser.parse_args()
    task = autobs.load_task(args.task)
    lightning = lightning_recommendation(task)
    recs = [lightning, linear_scaling_recommendation(task, lightning.batch_size),
            ray_tpe_recommendation(task, max_batch_size=lightning.batch_size, budget_s=args.budget)]
    print(json.dumps([r.to_dict() for r in recs], indent=2))

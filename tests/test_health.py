"""No verdict from a run that did not train: every run records its health, a degenerate run is
flagged on the page and excluded from verdicts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from msa_lib.core import masked_mean
from msa_lib.data.container import MODALITIES, MSADataset, MSASplit
from msa_lib.experiments import DatasetRuns
from msa_lib.metrics import compute_metrics, constant_prediction, is_constant
from msa_lib.models.base import ModelOutput, MSAModel
from msa_lib.report import avg_means, degenerate_keys, degenerate_warning, health_table, verdict_table
from msa_lib.results import tidy
from msa_lib.train import TrainConfig, Trainer

DIMS = {"text": 4, "audio": 2, "vision": 3}
T = 3


def dataset(n_train: int = 64) -> MSADataset:
    rng = np.random.default_rng(0)

    def split(name, n):
        feats = {m: rng.normal(size=(n, T, d)).astype(np.float32) for m, d in DIMS.items()}
        labels = np.clip(2.0 * feats["text"].mean(axis=(1, 2)) * 2, -3, 3).astype(np.float32)
        return MSASplit(text=feats["text"], audio=feats["audio"], vision=feats["vision"],
                        lengths={m: np.full(n, T) for m in MODALITIES}, labels=labels,
                        ids=[f"{name}{i}" for i in range(n)], name=name, source="t")

    return MSADataset("t", "mosi", {"train": split("train", n_train), "valid": split("valid", 32),
                                    "test": split("test", 32)}, source="t")


class Linear(MSAModel):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(sum(DIMS.values()), 1)

    def forward(self, batch):
        x = torch.cat([masked_mean(batch.features[m], batch.lengths[m]) for m in MODALITIES], 1)
        return ModelOutput(self.lin(x).squeeze(-1))


class Constant(Linear):
    """Ignores its input: predicts one learned number."""

    def forward(self, batch):
        return ModelOutput(self.lin.bias.expand(batch.size) + 0 * self.lin.weight.sum())


def fit(model, **cfg):
    trainer = Trainer(model, dataset(), TrainConfig(**{"epochs": 6, "batch_size": 16, "lr": 0.05, "patience": 10,
                                                       "progress": False, **cfg}), seed=1)
    trainer.fit()
    return trainer.health


def test_a_model_that_learns_is_healthy():
    h = fit(Linear())
    assert h["degenerate"] == [] and h["valid_score"] < h["reference_score"]
    assert h["epochs_run"] == h["epoch_cap"] == 6 and h["best_epoch"] > 0


def test_a_first_epoch_best_run_that_beats_the_blind_predictor_is_healthy():
    """One epoch can be the best a model does on held-out data (fast memorisation of leaky training
    features): recorded, not a reason to drop the run from verdicts."""
    trainer = Trainer(Linear(), dataset(), TrainConfig(epochs=1, batch_size=16, lr=0.05, progress=False), seed=1)
    trainer.fit()
    assert trainer.best_epoch == 0 and not trainer.health["first_epoch_best"]  # one epoch run: nothing to compare
    stage = trainer.model.stages(trainer.config)[-1]
    trainer.history += [{**trainer.history[0], "epoch": k} for k in (1, 2)]  # two later, worse epochs
    health = trainer._health(trainer.dataset["valid"], stage)
    assert health["first_epoch_best"] and health["degenerate"] == []


def test_an_input_blind_model_is_degenerate():
    h = fit(Constant())
    assert "constant predictions" in h["degenerate"]


def test_improving_at_the_cap_is_recorded():
    h = fit(Linear(), epochs=2, lr=0.01)
    assert h["best_epoch"] == 1 and h["improving_at_cap"]


def test_reference_predictor_and_constant_check(recwarn):
    y = np.array([[1, 0, 0, 1], [1, 0, 1, 1], [0, 0, 0, 1]])
    scores = constant_prediction("iemocap", y, 5)
    assert scores.shape == (5, 4, 2) and (scores.argmax(-1) == [1, 0, 0, 1]).all()
    assert is_constant("iemocap", scores) and not is_constant("iemocap", np.eye(2)[[[0, 1, 0, 1], [1, 1, 0, 1]]])
    assert constant_prediction("mosi", np.array([1.0, 2.0, 6.0]), 2).tolist() == [3.0, 3.0]
    assert is_constant("mosi", np.full(7, 0.25)) and not is_constant("mosi", np.linspace(-1, 1, 7))
    m = compute_metrics("mosi", constant_prediction("mosi", np.array([0.0, 1.0]), 3), np.array([0.0, 1.0, 2.0]))
    assert m["MAE"] == np.float64(2.5 / 3)  # predicts the training mean 0.5 for every sample


def record(label: str, seed: int, key: str, value: float, degenerate: list[str]) -> dict:
    metrics = {f"modality:{s}": {"MAE": value} for s in ("l", "a", "v", "la", "lv", "av", "lav")}
    return {"key": key, "config_key": label, "metrics": metrics,
            "spec": {"model": "m", "label": label, "dataset": "d", "design": "train_once",
                     "train_protocol": "complete", "seed": seed},
            "health": {"best_epoch": 0 if degenerate else 3, "epochs_run": 4, "epoch_cap": 10,
                       "improving_at_cap": False, "select_metric": "MAE", "valid_score": value,
                       "reference_score": 1.0, "degenerate": degenerate}}


def test_the_page_flags_a_degenerate_run_and_the_verdict_excludes_it():
    records = [record("A", 1, "k1", 0.5, []), record("A", 2, "k2", 9.0, ["best epoch 0", "constant predictions"]),
               record("B", 1, "k3", 0.7, [])]
    item = DatasetRuns("d", None, None, tidy(records), [], "caption", records=records)
    assert degenerate_keys(records) == {"k2"}
    warning = item.warning
    assert warning.startswith(":::{warning}") and "1 of 3 runs on `d` did not train" in warning
    assert "A, seed 2: best epoch 0; constant predictions" in warning
    assert avg_means(item.results, "MAE")["A"] == 4.75  # the table still shows every run
    assert avg_means(item.verdict_results, "MAE")["A"] == 0.5  # the verdict does not use the broken one
    table = health_table(records)
    assert table["degenerate"].tolist() == ["", "best epoch 0; constant predictions", ""]
    assert degenerate_warning([records[0], records[2]]) == ""
    old = {k: v for k, v in records[0].items() if k != "health"}
    assert "not recorded" in health_table([old])["degenerate"][0] and degenerate_keys([old]) == set()
    assert isinstance(table, pd.DataFrame)


def test_a_verdict_never_uses_a_degenerate_run():
    """A's only seed-2 run is broken: the paired verdict A vs B uses seed 1 only and says so."""
    records = [record("A", 1, "k1", 0.5, []), record("A", 2, "k2", 0.1, ["best epoch 0"]),
               record("B", 1, "k3", 0.7, []), record("B", 2, "k4", 0.7, [])]
    item = DatasetRuns("d", None, None, tidy(records), [], "caption", records=records)
    with_broken = verdict_table(item.results, "A", ["B"], ["MAE"]).iloc[0]
    assert with_broken["seeds"] == 2 and with_broken["verdict"] != "too few seeds"
    row = verdict_table(item.verdict_results, "A", ["B"], ["MAE"]).iloc[0]
    assert row["seeds"] == 1 and row["verdict"] == "too few seeds"
    only_broken = [records[1], records[2], records[3]]
    item = DatasetRuns("d", None, None, tidy(only_broken), [], "caption", records=only_broken)
    assert verdict_table(item.verdict_results, "A", ["B"], ["MAE"]).iloc[0]["verdict"] == "no run that trained"

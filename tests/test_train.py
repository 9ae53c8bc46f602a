"""Tests for msa_lib.train: determinism, loss summation, early stopping, protocols, errors.

Everything runs on tiny data (hand-built splits with dims 6/3/4 and T = 5, or the synthetic
presets at their minimum size) so the whole file takes seconds on CPU.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import msa_lib.train as train_mod
from msa_lib.data.container import MODALITIES, MSADataset, MSASplit
from msa_lib.data.synthetic import make_synthetic
from msa_lib.runs import run_one
from msa_lib.missing import observed_rate
from msa_lib.models import MODELS, build_model
from msa_lib.models.base import Batch, ModelOutput, MSAModel
from msa_lib.core import masked_mean
from msa_lib.models.tfn import TFN
from msa_lib.results import RunSpec
from msa_lib.train import TrainConfig, Trainer, evaluate, predict, task_loss

DIMS = {"text": 6, "audio": 3, "vision": 4}
T = 5
SMALL_TFN = {"text_hidden": 4, "audio_hidden": 2, "vision_hidden": 3, "text_out": 4, "post_fusion_dim": 5}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def tiny_split(n: int, name: str, rng: np.random.Generator) -> MSASplit:
    """An aligned regression split whose label depends on the mean text feature."""
    lengths = rng.integers(2, T + 1, size=n)
    valid = np.arange(T)[None, :] < lengths[:, None]
    feats = {m: (rng.normal(size=(n, T, d)) * valid[..., None]).astype(np.float32) for m, d in DIMS.items()}
    z = feats["text"].sum(axis=(1, 2)) / lengths + 0.3 * rng.normal(size=n)
    labels = np.clip(np.round(1.5 * z / 0.2) * 0.2, -3, 3).astype(np.float32)
    return MSASplit(text=feats["text"], audio=feats["audio"], vision=feats["vision"],
                    lengths={m: lengths.copy() for m in MODALITIES}, labels=labels,
                    ids=[f"{name}_{i}" for i in range(n)], name=name, source="tiny")


def tiny_dataset(n_train: int = 12, n_valid: int = 10, n_test: int = 10, seed: int = 0) -> MSADataset:
    rng = np.random.default_rng(seed)
    splits = {name: tiny_split(n, name, rng) for name, n in
              (("train", n_train), ("valid", n_valid), ("test", n_test))}
    return MSADataset(name="tiny", kind="mosi", splits=splits, source="tiny")


def pooled(batch: Batch) -> torch.Tensor:
    return torch.cat([masked_mean(batch.features[m], batch.lengths[m]) for m in MODALITIES], dim=1)


class Linear(MSAModel):
    """Mean-pool every modality, one linear layer; optional extra loss terms."""

    def __init__(self, dims=DIMS, extra: str | None = None):
        super().__init__()
        self.lin = nn.Linear(sum(dims.values()), 1)
        self.extra = extra

    def forward(self, batch: Batch) -> ModelOutput:
        h = pooled(batch)
        pred = self.lin(h).squeeze(-1)
        losses = {}
        if self.extra == "aux":
            losses["aux"] = (pred ** 2).mean()
        elif self.extra == "task":
            losses["task"] = pred.abs().mean()
        elif self.extra == "nan":
            losses["aux"] = pred.mean() * float("nan")
        return ModelOutput(prediction=pred, losses=losses, representation=h)


class Drift(MSAModel):
    """Prediction = fixed linear part + an offset buffer that moves by ``step`` on every training
    forward: its validation error is a known function of the epoch, and the offset is part of the
    state dict, so restoring the best weights restores the best offset."""

    def __init__(self, start: float, step: float = 1.0):
        super().__init__()
        self.lin = nn.Linear(sum(DIMS.values()), 1)
        self.register_buffer("offset", torch.tensor(float(start)))
        self.step = step

    def forward(self, batch: Batch) -> ModelOutput:
        if self.training:
            self.offset += self.step
        pred = self.lin(pooled(batch)).squeeze(-1) + self.offset.clone()
        return ModelOutput(prediction=pred)


class Recorder(Linear):
    """Records what the trainer feeds it (training and evaluation calls separately)."""

    def __init__(self, n_views: int = 1):
        super().__init__()
        self.n_views = n_views
        self.train_calls: list[Batch] = []
        self.eval_calls: list[Batch] = []

    def forward(self, batch: Batch) -> ModelOutput:
        (self.train_calls if self.training else self.eval_calls).append(batch)
        return super().forward(batch)


def cfg(**kw) -> TrainConfig:
    base = {"epochs": 1, "batch_size": 64, "progress": False, "device": "cpu"}
    return TrainConfig(**{**base, **kw})


def params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_json(a, b) -> bool:
    """Exact equality that also treats NaN == NaN (Corr may be NaN on degenerate data)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mosi_small() -> MSADataset:
    return make_synthetic("mosi", size=0.02)


def _spec(seed: int, protocol: str = "frame:0.5:resample") -> RunSpec:
    return RunSpec(model="tfn", dataset="mosi", seed=seed, train_protocol=protocol,
                   eval_protocols=("complete", "frame:0.5"), model_config=SMALL_TFN,
                   train_config={"epochs": 2, "batch_size": 8, "patience": 5})


def test_same_seed_same_numbers_different_seed_different_numbers(mosi_small):
    a = run_one(_spec(0), mosi_small, device="cpu", progress=False)
    b = run_one(_spec(0), mosi_small, device="cpu", progress=False)
    for key in ("metrics", "history", "valid", "best_epoch"):
        assert same_json(a[key], b[key]), key
    assert len(a["history"]) == 2
    c = run_one(_spec(1), mosi_small, device="cpu", progress=False)
    assert c["history"][0]["train/total"] != a["history"][0]["train/total"]
    assert c["metrics"]["complete"]["MAE"] != a["metrics"]["complete"]["MAE"]


def test_fit_seeds_itself_whatever_the_global_rng_state():
    """Dropout and batch order depend on the trainer's seed only, not on earlier RNG use."""
    ds = tiny_dataset(n_train=20)
    torch.manual_seed(0)
    init = build_model("tfn", ds.dims, {**SMALL_TFN, "dropout": 0.5}).state_dict()
    histories = []
    for global_seed, seed in ((1, 7), (2, 7), (1, 8)):
        model = build_model("tfn", ds.dims, {**SMALL_TFN, "dropout": 0.5})
        model.load_state_dict(init)
        torch.manual_seed(global_seed)
        histories.append(Trainer(model, ds, cfg(epochs=2, batch_size=6, lr=0.01), "mixed", seed=seed).fit())
    assert same_json(histories[0], histories[1])
    assert histories[0][0]["train/total"] != histories[2][0]["train/total"]


# ---------------------------------------------------------------------------------------------
# loss terms and weights
# ---------------------------------------------------------------------------------------------

def test_zero_weight_term_equals_model_without_term():
    ds = tiny_dataset()
    models = {}
    for name, extra, weights in (("plain", None, {}), ("zero", "aux", {"aux": 0.0}), ("one", "aux", {})):
        torch.manual_seed(0)
        models[name] = Linear(extra=extra)
        Trainer(models[name], ds, cfg(loss_weights=weights, lr=0.1), seed=0).fit()
    p_plain, p_zero, p_one = (params(models[k]) for k in ("plain", "zero", "one"))
    for k in p_plain:
        assert torch.equal(p_plain[k], p_zero[k]), k
    # control: with the default weight 1.0 the extra term does change the step
    assert any(not torch.equal(p_plain[k], p_one[k]) for k in p_plain)


@pytest.mark.parametrize("weights, w", [({"aux": 2.0}, 2.0), ({}, 1.0), ({"aux": 0.0}, 0.0)])
def test_history_sums_terms_with_weights(weights, w):
    ds = tiny_dataset()
    torch.manual_seed(0)
    trainer = Trainer(Linear(extra="aux"), ds, cfg(loss_weights=weights, epochs=2), seed=0)
    history = trainer.fit()
    assert len(history) == 2
    for rec in history:  # one batch per epoch: the epoch averages are the batch's values
        assert {"train/task", "train/aux", "train/total"} <= set(rec)
        assert rec["train/aux"] > 0
        assert rec["train/total"] == pytest.approx(rec["train/task"] + w * rec["train/aux"], rel=1e-6)


def test_total_loss_weights_every_term():
    trainer = Trainer(Linear(), tiny_dataset(), cfg(loss_weights={"a": 3.0, "b": 0.0}))
    total = trainer.total_loss({"task": torch.tensor(1.0), "a": torch.tensor(2.0), "b": torch.tensor(5.0),
                                "c": torch.tensor(0.5)})
    assert float(total) == pytest.approx(1.0 + 6.0 + 0.0 + 0.5)


def test_model_task_term_is_refused():
    with pytest.raises(ValueError, match="must not return a 'task' loss"):
        Trainer(Linear(extra="task"), tiny_dataset(), cfg()).fit()


def test_non_finite_loss_names_terms():
    with pytest.raises(FloatingPointError, match=r"non-finite loss at epoch 0.*'task'.*'aux': nan"):
        Trainer(Linear(extra="nan"), tiny_dataset(), cfg()).fit()


# ---------------------------------------------------------------------------------------------
# early stopping, best-weight restore, selection on valid
# ---------------------------------------------------------------------------------------------

def test_early_stopping_patience_one_restores_first_epoch():
    ds = tiny_dataset()
    torch.manual_seed(0)
    # offset 1, 2, 3, ... after each (single-batch) epoch: the error only grows
    model = Drift(start=0.0, step=3.0)
    trainer = Trainer(model, ds, cfg(epochs=6, patience=1, lr=0.0), train_protocol="frame:0.3", seed=0)
    history = trainer.fit()
    assert len(history) == 2  # epoch 1 is worse, patience 1 stops right there
    assert history[1]["valid/MAE"] > history[0]["valid/MAE"]
    assert trainer.best_epoch == 0
    assert float(model.offset) == 3.0  # the epoch-0 state, not the epoch-1 state (6.0)
    again = evaluate(model, ds, protocol="frame:0.3", split="valid")
    assert same_json(again, {k[len("valid/"):]: v for k, v in history[0].items() if k.startswith("valid/")})
    assert same_json(again, trainer.best_valid)


def test_best_epoch_in_the_middle_is_restored():
    ds = tiny_dataset()
    torch.manual_seed(0)
    model = Drift(start=-5.0, step=1.0)  # offsets -4, -3, ..., error falls, then rises again
    trainer = Trainer(model, ds, cfg(epochs=20, patience=2, lr=0.0), train_protocol="frame:0.3", seed=0)
    history = trainer.fit()
    maes = [h["valid/MAE"] for h in history]
    best = int(np.argmin(maes))
    assert 0 < best < len(history) - 1
    assert trainer.best_epoch == best
    assert len(history) == best + 1 + 2  # stopped by patience, not by the epoch budget
    assert float(model.offset) == -5.0 + (best + 1)
    assert evaluate(model, ds, protocol="frame:0.3", split="valid")["MAE"] == maes[best]


def test_tfn_restored_valid_metric_matches_history():
    ds = tiny_dataset(n_train=24)
    torch.manual_seed(0)
    model = build_model("tfn", ds.dims, SMALL_TFN)
    trainer = Trainer(model, ds, cfg(epochs=5, patience=1, lr=0.01, batch_size=8), train_protocol="frame:0.4",
                      seed=3)
    history = trainer.fit()
    assert len(history) <= trainer.best_epoch + 2
    restored = evaluate(model, ds, protocol="frame:0.4", split="valid")
    assert restored["MAE"] == history[trainer.best_epoch]["valid/MAE"]
    assert restored["MAE"] == min(h["valid/MAE"] for h in history)


def test_selection_uses_only_train_and_valid(monkeypatch):
    ds = tiny_dataset()
    masked, predicted = [], []
    real_mask, real_predict = train_mod.mask_split, train_mod.predict

    def spy_mask(split, *a, **k):
        masked.append(split.name)
        return real_mask(split, *a, **k)

    def spy_predict(model, split, *a, **k):
        predicted.append(split.name)
        return real_predict(model, split, *a, **k)

    monkeypatch.setattr(train_mod, "mask_split", spy_mask)
    monkeypatch.setattr(train_mod, "predict", spy_predict)
    Trainer(Linear(), ds, cfg(epochs=3), train_protocol="frame:0.5", seed=0).fit()
    assert sorted(set(masked)) == ["train", "valid"]
    assert predicted == ["valid"] * 4  # one per epoch, and the health check of the selected weights


# ---------------------------------------------------------------------------------------------
# protocols during training: two-flow views, fixed vs resampled masks
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["frame:0.5:resample", "mixed"])
def test_two_flow_model_gets_two_different_views(protocol):
    ds = tiny_dataset(n_train=16)
    model = Recorder(n_views=2)
    Trainer(model, ds, cfg(epochs=2, batch_size=8), train_protocol=protocol, seed=0).fit()
    assert len(model.train_calls) == 4
    complete = {m: torch.from_numpy(ds["train"].features(m)) for m in MODALITIES}
    for b in model.train_calls:
        assert b.views is not None and len(b.views) == 2
        a, c = b.views
        assert any(not torch.equal(a.keep[m], c.keep[m]) for m in MODALITIES)
        assert any(not torch.equal(a.features[m], c.features[m]) for m in MODALITIES)
        for v in b.views:
            assert v.views is None
            for m in MODALITIES:  # both views mask the same samples
                assert torch.equal(v.complete[m], complete[m][b.index])
    assert model.eval_calls and all(b.views is None for b in model.eval_calls)


def test_two_flow_model_under_fixed_protocol_gets_identical_views():
    ds = tiny_dataset()
    model = Recorder(n_views=2)
    Trainer(model, ds, cfg(epochs=1), train_protocol="complete", seed=0).fit()
    (b,) = model.train_calls
    assert len(b.views) == 2
    for m in MODALITIES:
        assert torch.equal(b.views[0].features[m], b.views[1].features[m])
        assert torch.equal(b.views[0].features[m], torch.from_numpy(ds["train"].features(m))[b.index])


def test_single_view_model_gets_no_views():
    model = Recorder(n_views=1)
    Trainer(model, tiny_dataset(), cfg(), train_protocol="frame:0.5:resample", seed=0).fit()
    assert all(b.views is None for b in model.train_calls)


def _seen_features(protocol: str, epochs: int = 3) -> tuple[dict[int, list[torch.Tensor]], Recorder, MSADataset]:
    ds = tiny_dataset(n_train=16)
    model = Recorder()
    Trainer(model, ds, cfg(epochs=epochs, batch_size=5, patience=epochs), train_protocol=protocol, seed=0).fit()
    seen: dict[int, list[torch.Tensor]] = {}
    for b in model.train_calls:
        x = torch.cat([b.features[m].flatten(1) for m in MODALITIES], dim=1)
        for row, i in enumerate(b.index.tolist()):
            seen.setdefault(i, []).append(x[row].clone())
    assert sorted(seen) == list(range(16)) and all(len(v) == epochs for v in seen.values())
    return seen, model, ds


def test_fixed_protocol_masks_are_identical_across_epochs():
    seen, model, ds = _seen_features("frame:0.5")
    complete = torch.cat([torch.from_numpy(ds["train"].features(m)).flatten(1) for m in MODALITIES], dim=1)
    for i, xs in seen.items():
        assert all(torch.equal(xs[0], x) for x in xs[1:]), i
    # ... and they are actually masked
    assert sum(not torch.equal(xs[0], complete[i]) for i, xs in seen.items()) >= 12


def test_resample_protocol_masks_differ_across_epochs():
    seen, model, ds = _seen_features("frame:0.5:resample")
    n_changed = sum(any(not torch.equal(xs[0], x) for x in xs[1:]) for xs in seen.values())
    assert n_changed >= 12
    rates = [observed_rate(b.keep[m], b.lengths[m]) for b in model.train_calls for m in MODALITIES]
    assert 0.3 < float(np.mean(rates)) < 0.7


# ---------------------------------------------------------------------------------------------
# configuration errors
# ---------------------------------------------------------------------------------------------

def test_train_config_from_dict_refuses_unknown_keys():
    assert TrainConfig.from_dict({"epochs": 3, "lr": 0.5}).lr == 0.5
    with pytest.raises(ValueError, match=r"unknown train config parameter\(s\) \['epoch', 'lrate'\]") as e:
        TrainConfig.from_dict({"epoch": 3, "lrate": 1.0})
    for valid in ("epochs", "lr", "patience", "loss_weights"):
        assert f"'{valid}'" in str(e.value)


def test_build_model_refuses_unknown_config_keys_and_models():
    model = build_model("tfn", DIMS, SMALL_TFN)
    assert isinstance(model, TFN) and model.config.text_out == 4
    with pytest.raises(ValueError, match=r"unknown tfn model config parameter\(s\) \['text_hiden'\]") as e:
        build_model("tfn", DIMS, {"text_hiden": 8})
    assert "'text_hidden'" in str(e.value) and "'dropout'" in str(e.value)
    with pytest.raises(ValueError, match="unknown model 'nope'") as e:
        build_model("nope", DIMS)
    for name in MODELS:
        assert name in str(e.value)


# ---------------------------------------------------------------------------------------------
# task loss and classification
# ---------------------------------------------------------------------------------------------

def _batch(b: int = 4, labels=None, class_labels=None) -> Batch:
    feats = {m: torch.zeros(b, T, d) for m, d in DIMS.items()}
    lengths = {m: torch.full((b,), T) for m in MODALITIES}
    keep = {m: torch.ones(b, T, dtype=torch.bool) for m in MODALITIES}
    return Batch(features=feats, lengths=lengths, keep=keep, labels=labels, class_labels=class_labels)


def test_task_loss_regression_values_and_shape_errors():
    y = torch.tensor([0.0, 1.0, -1.0, 2.0])
    p = torch.tensor([1.0, 1.0, 1.0, 1.0])
    batch = _batch(labels=y)
    assert float(task_loss(p, batch, "mse")) == pytest.approx((1 + 0 + 4 + 1) / 4)
    assert float(task_loss(p, batch, "l1")) == pytest.approx((1 + 0 + 2 + 1) / 4)
    with pytest.raises(ValueError, match=r"regression prediction must have shape \(4,\), got \(4, 1\)"):
        task_loss(p[:, None], batch)
    with pytest.raises(ValueError, match="unknown task loss 'huber'"):
        task_loss(p, batch, "huber")


def test_task_loss_classification_values_and_shape_errors():
    labels = torch.tensor([[0, 1, 0, 1], [1, 0, 0, 0]])
    batch = _batch(b=2, class_labels=labels)
    logits = torch.zeros(2, 4, 2)
    assert float(task_loss(logits, batch)) == pytest.approx(np.log(2.0))
    logits[:, :, 1] = 10.0 * (2 * labels - 1)  # confident and right
    assert float(task_loss(logits, batch)) < 1e-3
    with pytest.raises(ValueError, match=r"classification prediction must be \(B, C, K\).*got \(2, 8\)"):
        task_loss(logits.flatten(1), batch)
    with pytest.raises(ValueError, match=r"matching labels \(2, 4\), got \(2, 3, 2\)"):
        task_loss(logits[:, :3], batch)


def test_iemocap_classification_trains_with_tfn():
    ds = make_synthetic("iemocap", size=0.01)
    spec = RunSpec(model="tfn", dataset="iemocap", seed=0, model_config=SMALL_TFN,
                   train_config={"epochs": 2, "batch_size": 16})
    record = run_one(spec, ds, device="cpu", progress=False)
    m = record["metrics"]["complete"]
    assert {"Avg_F1", "Avg_Acc", "happy_F1", "neutral_Acc"} <= set(m)
    assert 0.0 <= m["Avg_F1"] <= 1.0
    assert all("valid/Avg_F1" in h and "train/task" in h for h in record["history"])
    assert record["valid"]["Avg_F1"] == max(h["valid/Avg_F1"] for h in record["history"])  # higher is better
    torch.manual_seed(0)
    model = build_model("tfn", ds.dims, SMALL_TFN, n_classes=4)
    Trainer(model, ds, cfg(epochs=1), seed=0).fit()
    assert predict(model, ds["test"])["prediction"].shape == (len(ds["test"]), 4, 2)
    trainer = Trainer(model, ds, cfg())
    assert trainer.select_metric == "Avg_F1" and trainer.higher_better


def test_aligned_only_model_refuses_unaligned_data():
    class AlignedOnly(Linear):
        requires_aligned = True

    sims = make_synthetic("sims", size=0.01)
    assert not sims.aligned
    with pytest.raises(ValueError, match="aligned") as e:
        Trainer(AlignedOnly(sims.dims), sims, cfg())
    assert "AlignedOnly" in str(e.value)
    Trainer(AlignedOnly(), tiny_dataset(), cfg())  # aligned data is accepted


def test_split_metrics_reads_a_stored_run_on_validation_and_refuses_test(tmp_path):
    from msa_lib.data import load_dataset
    from msa_lib.results import ResultsStore, RunSpec
    from msa_lib.runs import run_grid, split_metrics
    from msa_lib.train import evaluate

    data = load_dataset("synthetic:mosi", size=0.05, seed=0, max_len=5)
    spec = RunSpec(model="tfn", dataset="synthetic:mosi", seed=1, eval_protocols=(),
                   train_config={"epochs": 1, "batch_size": 16, "progress": False},
                   data_options={"size": 0.05, "seed": 0, "max_len": 5})
    store = ResultsStore(tmp_path)
    run_grid([spec], store, progress=False, loader=lambda s: data)
    got = split_metrics(spec, store, data, ("complete", "modality:l"), device="cpu")
    from msa_lib.runs import stored_model

    model = stored_model(spec, store, data, "cpu")
    assert got["modality:l"] == evaluate(model, data, "modality:l", "valid", device="cpu")
    assert got["complete"]["MAE"] == pytest.approx(store.load(spec)["valid"]["MAE"])  # what selection saw
    with pytest.raises(ValueError, match="split must be 'train' or 'valid'"):
        split_metrics(spec, store, data, ("complete",), split="test")


def test_bad_devices_are_refused_with_one_message():
    from msa_lib.train import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:1': CUDA is not available on this machine"):
            resolve_device("cuda:1")

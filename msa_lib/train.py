"""The one trainer: Adam, early stopping on a validation metric, best weights restored.

A model returns ``ModelOutput(prediction, losses)``; the trainer adds the task loss (MSE / L1 for
regression, cross-entropy for classification) and sums every term with ``loss_weights``
(default weight 1.0), so a paper's model owns its loss terms and an ablation is a weight of 0.
Missing-data protocols are applied here: ``fixed`` masks once per split, per-batch protocols
(``frame:P:resample``, ``erasure:R:random``, ``mixed``) on every training batch, and two-flow
models (``model.n_views > 1``) get that many independently masked views per batch.
Checkpoints are selected on the validation split, never on test.
"""
from __future__ import annotations

import copy
import os
import random
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data.container import MODALITIES, MSADataset, MSASplit
from .metrics import PRIMARY_METRIC, compute_metrics, higher_is_better
from .missing import Protocol, mask_batch, mask_split, parse_protocol, valid_mask
from .models.base import Batch, MSAModel


@dataclass
class TrainConfig:
    """Optimisation settings. ``select_metric=None`` uses the dataset's primary metric
    (MAE for MOSI/MOSEI/SIMS, Avg_F1 for IEMOCAP)."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5
    select_metric: str | None = None
    task_loss: str = "mse"
    loss_weights: dict[str, float] = field(default_factory=dict)
    grad_clip: float | None = None
    eval_batch_size: int = 256
    mask_seed: int = 0
    device: str = "auto"
    progress: bool = True

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        return config_from_dict(cls, values, "train config")


def config_from_dict(cls, values: dict | None, what: str):
    """Build dataclass ``cls`` from a dict, refusing unknown keys with one clear error."""
    values = dict(values or {})
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {what} parameter(s) {unknown}; valid: {sorted(names)}")
    return cls(**values)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; deterministic algorithms (same seed → same numbers on CPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also fills every new tensor with NaN by default, which costs more than the
    # training step on CPU; our ops never read uninitialised memory, so results stay identical.
    torch.utils.deterministic.fill_uninitialized_memory = False


class SplitTensors:
    """A split held as torch tensors (zero-copy from numpy) for fast batch slicing."""

    def __init__(self, split: MSASplit):
        self.split = split
        self.n = len(split)
        self.features = {m: torch.from_numpy(np.ascontiguousarray(split.features(m))) for m in MODALITIES}
        self.lengths = {m: torch.from_numpy(split.lengths[m]).clamp(min=1) for m in MODALITIES}
        if split.keep is not None:
            self.keep = {m: torch.from_numpy(split.keep[m]) for m in MODALITIES}
        else:
            self.keep = {m: valid_mask(self.lengths[m], self.features[m].shape[1]) for m in MODALITIES}
        self.labels = None if split.labels is None else torch.from_numpy(split.labels.astype(np.float32))
        self.class_labels = None if split.class_labels is None else torch.from_numpy(split.class_labels)
        self.unimodal = None if split.unimodal_labels is None else {
            m: torch.from_numpy(v.astype(np.float32)) for m, v in split.unimodal_labels.items()}
        self.text_ids = None if split.text_bert is None else torch.from_numpy(split.text_bert.astype(np.int64))

    def batch(self, idx: torch.Tensor, complete: "SplitTensors | None" = None) -> Batch:
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return Batch(
            features={m: v[idx] for m, v in self.features.items()},
            lengths={m: v[idx] for m, v in self.lengths.items()},
            keep={m: v[idx] for m, v in self.keep.items()},
            labels=pick(self.labels),
            class_labels=pick(self.class_labels),
            unimodal_labels=None if self.unimodal is None else {m: v[idx] for m, v in self.unimodal.items()},
            text_ids=pick(self.text_ids),
            complete=None if complete is None else {m: v[idx] for m, v in complete.features.items()},
            index=idx,
        )


def task_loss(prediction: torch.Tensor, batch: Batch, kind: str = "mse") -> torch.Tensor:
    """MSE/L1 against regression labels, or mean cross-entropy over (B, C, K) class logits."""
    if batch.class_labels is not None and batch.labels is None:
        if prediction.dim() != 3 or prediction.shape[:2] != batch.class_labels.shape:
            raise ValueError(f"classification prediction must be (B, C, K) matching labels "
                             f"{tuple(batch.class_labels.shape)}, got {tuple(prediction.shape)}")
        return F.cross_entropy(prediction.reshape(-1, prediction.shape[-1]), batch.class_labels.reshape(-1))
    if prediction.shape != batch.labels.shape:
        raise ValueError(f"regression prediction must have shape {tuple(batch.labels.shape)}, "
                         f"got {tuple(prediction.shape)}")
    if kind == "l1":
        return F.l1_loss(prediction, batch.labels)
    if kind == "mse":
        return F.mse_loss(prediction, batch.labels)
    raise ValueError(f"unknown task loss {kind!r}; use 'mse' or 'l1'")


@torch.no_grad()
def predict(model: MSAModel, split: MSASplit, batch_size: int = 256, device: str | torch.device = "cpu"
            ) -> dict[str, np.ndarray]:
    """Predictions (and joint representations when the model returns them) for a whole split."""
    model.eval()
    tensors = SplitTensors(split)
    preds, reps = [], []
    for start in range(0, tensors.n, batch_size):
        idx = torch.arange(start, min(start + batch_size, tensors.n))
        out = model(tensors.batch(idx).to(device))
        preds.append(out.prediction.detach().cpu().numpy())
        if out.representation is not None:
            reps.append(out.representation.detach().cpu().numpy())
    result = {"prediction": np.concatenate(preds)}
    if reps:
        result["representation"] = np.concatenate(reps)
    return result


def split_target(split: MSASplit) -> np.ndarray:
    return split.class_labels if split.labels is None else split.labels


def evaluate(model: MSAModel, dataset: MSADataset, protocol: Protocol | str = "complete", split: str = "test",
             mask_seed: int = 0, batch_size: int = 256, device: str | torch.device = "cpu",
             return_outputs: bool = False):
    """Metrics of ``model`` on ``split`` masked by ``protocol`` (a seeded, fixed mask).

    The mask seed is shared by every model and training seed, so all runs see the same test masks.
    """
    masked = mask_split(dataset[split], protocol, seed=mask_seed, text_special_tokens=dataset.text_special_tokens)
    outputs = predict(model, masked, batch_size, device)
    metrics = compute_metrics(dataset.kind, outputs["prediction"], split_target(masked))
    return (metrics, outputs) if return_outputs else metrics


def training_views(batch: Batch, protocol: Protocol, n_views: int, generator: torch.Generator,
                   text_special_tokens: bool = False) -> Batch:
    """The training batch a model sees: masked afresh for per-batch protocols, and for two-flow
    models (``n_views > 1``) carrying that many independently masked ``views``."""
    if not protocol.per_batch and n_views == 1:
        return batch
    views = [mask_batch(batch, protocol, generator, text_special_tokens) if protocol.per_batch else batch
             for _ in range(n_views)]
    # a fresh Batch carries the views (setting views[0].views = views would make the batch
    # contain itself, and Batch.to() would recurse forever)
    return views[0] if n_views == 1 else replace(views[0], views=views)


class Trainer:
    """Train ``model`` on ``dataset['train']`` under ``train_protocol``; select on ``valid``.

    ``valid_protocol`` defaults to the training protocol with a fixed seeded mask (for per-batch
    protocols: the training distribution frozen by seed).
    """

    def __init__(self, model: MSAModel, dataset: MSADataset, config: TrainConfig | None = None,
                 train_protocol: Protocol | str = "complete", valid_protocol: Protocol | str | None = None,
                 seed: int = 0):
        self.config = config or TrainConfig()
        self.model = model
        self.dataset = dataset
        self.protocol = parse_protocol(train_protocol)
        self.valid_protocol = parse_protocol(valid_protocol) if valid_protocol else self.protocol
        self.seed = seed
        self.device = resolve_device(self.config.device)
        if model.requires_aligned and not dataset.aligned:
            raise ValueError(f"{type(model).__name__} needs aligned sequences (equal length per modality) but "
                             f"{dataset.source} is unaligned (T = {dataset.seq_lens}); use an aligned_50.pkl file "
                             f"or an aligned synthetic preset")
        metric, mode = PRIMARY_METRIC[dataset.kind]
        self.select_metric = self.config.select_metric or metric
        self.higher_better = higher_is_better(self.select_metric)
        self.history: list[dict[str, float]] = []
        self.best_epoch = -1
        self.best_valid: dict[str, float] = {}

    def _loss_terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.model(batch)
        terms = {"task": task_loss(out.prediction, batch, self.config.task_loss)}
        for name, value in out.losses.items():
            if name == "task":
                raise ValueError("models must not return a 'task' loss term: the trainer computes it")
            terms[name] = value
        return terms

    def total_loss(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        w = self.config.loss_weights
        return sum(w.get(name, 1.0) * value for name, value in terms.items())

    def fit(self) -> list[dict[str, float]]:
        cfg, ds = self.config, self.dataset
        seed_everything(self.seed)
        self.model.to(self.device)
        tst = ds.text_special_tokens
        complete = SplitTensors(ds["train"])
        if self.protocol.per_batch or self.protocol.kind == "complete":
            train = complete
        else:  # fixed variant: one mask per split, drawn once from per-modality seeds
            train = SplitTensors(mask_split(ds["train"], self.protocol, cfg.mask_seed, tst))
        valid = mask_split(ds["valid"], self.valid_protocol, cfg.mask_seed, tst)
        gen = torch.Generator().manual_seed(self.seed)
        optim = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best_state, best_score, stale = None, None, 0
        bar = tqdm(range(cfg.epochs), desc=f"{type(self.model).__name__} seed {self.seed}",
                   disable=not cfg.progress, leave=False)
        for epoch in bar:
            self.model.train()
            sums: dict[str, float] = {}
            n_seen = 0
            for idx in torch.randperm(train.n, generator=gen).split(cfg.batch_size):
                batch = training_views(train.batch(idx, complete), self.protocol, self.model.n_views, gen, tst)
                batch = batch.to(self.device)
                terms = self._loss_terms(batch)
                loss = self.total_loss(terms)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss at epoch {epoch}: "
                                             f"{ {k: float(v.detach()) for k, v in terms.items()} }")
                optim.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                optim.step()
                b = len(idx)
                n_seen += b
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) * b
                sums["total"] = sums.get("total", 0.0) + float(loss.detach()) * b
            preds = predict(self.model, valid, cfg.eval_batch_size, self.device)
            vm = compute_metrics(ds.kind, preds["prediction"], split_target(valid))
            record = {"epoch": epoch, **{f"train/{k}": v / n_seen for k, v in sums.items()},
                      **{f"valid/{k}": v for k, v in vm.items()}}
            self.history.append(record)
            score = vm[self.select_metric]
            improved = best_score is None or (score > best_score if self.higher_better else score < best_score)
            if improved:
                best_score, stale, self.best_epoch, self.best_valid = score, 0, epoch, vm
                best_state = copy.deepcopy(self.model.state_dict())
            else:
                stale += 1
            bar.set_postfix({"loss": f"{record['train/total']:.3f}", self.select_metric: f"{score:.3f}"})
            if stale >= cfg.patience:
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return self.history

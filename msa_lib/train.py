"""The one trainer: early stopping on a validation metric, best weights restored.

A model returns ``ModelOutput(prediction, losses)``; the trainer adds the task loss (MSE / L1 for
regression, cross-entropy for classification) and sums every term with ``loss_weights``
(default weight 1.0), so a paper's model owns its loss terms and an ablation is a weight of 0.
Missing-data protocols are applied here: ``fixed`` masks once per split, per-batch protocols
(``frame:P:resample``, ``erasure:R:random``, ``mixed``) on every training batch through the
model's training views (``MSAModel.training_views``). A model brings its own optimizers
(``configure_optimizers``) and stages (``stages``); the learning-rate schedule is in
:class:`TrainConfig`. Checkpoints are selected on the validation split, never on test.
"""
from __future__ import annotations

import copy
import os
import random
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .core import Batch, config_from_dict, quiet, valid_mask
from .data.container import MODALITIES, MSADataset, MSASplit
from .metrics import PRIMARY_METRIC, compute_metrics, constant_prediction, higher_is_better, is_constant
from .missing import Protocol, mask_split, parse_protocol
from .models.base import MSAModel, OptimizerStep, Stage


#: ``TrainConfig.select_metric`` value that selects checkpoints on the validation total loss.
VALID_LOSS = "loss"


@dataclass
class TrainConfig:
    """Optimisation settings. ``select_metric=None`` uses the dataset's primary metric
    (MAE for MOSI/MOSEI/SIMS, Avg_F1 for IEMOCAP); ``"loss"`` (:data:`VALID_LOSS`) selects on the
    weighted total loss on the validation split (DAR: "the model with the smallest overall loss"). ``patience``: stop after that many epochs
    without a better validation score; ``None`` trains every epoch (as the papers do) — either way
    the weights of the best validation epoch are kept."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    #: ``Adam(fused=True)`` for every optimizer a model builds (:func:`msa_lib.models.base.adam`):
    #: ~1.05-1.1x per TFN step and ~1.1-1.2x per DAR step on a 2-core CPU (``benchmarks/throughput.py``);
    #: parameters agree with the unfused Adam to ~1e-6 but are not bit-identical (attention key biases,
    #: whose exact gradient is 0, drift apart: Adam scales their rounding noise to steps of ~lr; the
    #: predictions do not depend on them), so the book keeps it off and its stored numbers stay reproducible.
    fused_adam: bool = False
    patience: int | None = 5
    select_metric: str | None = None
    task_loss: str = "mse"
    loss_weights: dict[str, float] = field(default_factory=dict)
    grad_clip: float | None = None
    eval_batch_size: int = 256
    mask_seed: int = 0
    device: str = "auto"
    progress: bool = True
    #: learning-rate schedule (``torch.optim.lr_scheduler``, stepped once per epoch): a linear
    #: warm-up over ``warmup_epochs``, then ×``lr_gamma`` every ``lr_step_epochs`` epochs
    #: (0 = constant). SDUMC's released preset: 5, 10, 0.9.
    warmup_epochs: int = 0
    lr_step_epochs: int = 0
    lr_gamma: float = 1.0

    def __post_init__(self) -> None:
        if self.warmup_epochs < 0 or self.lr_step_epochs < 0 or not self.lr_gamma > 0:
            raise ValueError(f"train config: warmup_epochs and lr_step_epochs must be >= 0 and lr_gamma > 0; got "
                             f"{self.warmup_epochs}, {self.lr_step_epochs}, {self.lr_gamma}")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        return config_from_dict(cls, values, "train config")


def lr_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig
                 ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-epoch schedule of ``config`` for ``optimizer`` (None when the rate is constant)."""
    sched = torch.optim.lr_scheduler
    steps = [] if not config.lr_step_epochs else [
        sched.StepLR(optimizer, step_size=config.lr_step_epochs, gamma=config.lr_gamma)]
    if config.warmup_epochs:
        warm = sched.LinearLR(optimizer, start_factor=1.0 / (config.warmup_epochs + 1), end_factor=1.0,
                              total_iters=config.warmup_epochs)
        return sched.SequentialLR(optimizer, [warm, *steps], milestones=[config.warmup_epochs]) if steps else warm
    return steps[0] if steps else None


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA where available, else the CPU; an unknown name or CUDA on a machine without
    it is refused with one message."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine; use auto or cpu")
    return dev


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
    """A split held as torch tensors (zero-copy from numpy) for fast batch slicing; the split's
    ``extras`` / ``extra_lengths`` (None when it has none) are sliced into every batch."""

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
        self.extras = None if split.extras is None else {
            k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in split.extras.items()}
        self.extra_lengths = None if split.extra_lengths is None else {
            k: torch.from_numpy(v) for k, v in split.extra_lengths.items()}

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
            extras=None if self.extras is None else {k: v[idx] for k, v in self.extras.items()},
            extra_lengths=None if self.extra_lengths is None else {k: v[idx] for k, v in self.extra_lengths.items()},
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
    """Predictions for a whole split, plus the model's joint ``representation`` and its named
    ``representations`` (as ``representation_<name>``) when it returns them."""
    model.eval()
    tensors = SplitTensors(split)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, tensors.n, batch_size):
        idx = torch.arange(start, min(start + batch_size, tensors.n))
        out = model(tensors.batch(idx).to(device))
        named = {"prediction": out.prediction, "representation": out.representation,
                 **{f"representation_{k}": v for k, v in out.representations.items()}}
        for key, value in named.items():
            if value is not None:
                parts.setdefault(key, []).append(value.detach().cpu().numpy())
    return {key: np.concatenate(chunks) for key, chunks in parts.items()}


def split_target(split: MSASplit) -> np.ndarray:
    return split.class_labels if split.labels is None else split.labels


def evaluate(model: MSAModel, dataset: MSADataset, protocol: Protocol | str = "complete", split: str = "test",
             mask_seed: int = 0, batch_size: int = 256, device: str | torch.device = "cpu",
             return_outputs: bool = False):
    """Metrics of ``model`` on ``split`` masked by ``protocol`` (a seeded, fixed mask).

    The mask seed is shared by every model and training seed, so all runs see the same test masks.
    """
    masked = mask_split(dataset[split], protocol, seed=mask_seed, protect_special_tokens=model.uses_token_ids)
    outputs = predict(model, masked, batch_size, device)
    metrics = compute_metrics(dataset.kind, outputs["prediction"], split_target(masked))
    return (metrics, outputs) if return_outputs else metrics


class Trainer:
    """Train ``model`` on ``dataset['train']`` under ``train_protocol``; select on ``valid``.

    ``valid_protocol`` defaults to the training protocol with a fixed seeded mask (for per-batch
    protocols: the training distribution frozen by seed). A run is the model's stages in order
    (:meth:`MSAModel.stages`, default one); each stage gets fresh optimizers
    (:meth:`MSAModel.configure_optimizers`) and the config's schedule, early-stops on validation,
    and ends with its best weights restored.
    """

    def __init__(self, model: MSAModel, dataset: MSADataset, config: TrainConfig | None = None,
                 train_protocol: Protocol | str = "complete", valid_protocol: Protocol | str | None = None,
                 seed: int = 0):
        self.config = config or TrainConfig()
        self.model = model
        self.dataset = dataset
        self.protocol = parse_protocol(train_protocol)
        self.valid_protocol = parse_protocol(valid_protocol) if valid_protocol else None
        self.seed = seed
        self.device = resolve_device(self.config.device)
        if model.requires_aligned and not dataset.aligned:
            why = ("its modalities have different sequence lengths T = " + str(dataset.seq_lens)
                   if len(set(dataset.seq_lens.values())) > 1 else
                   "its modalities share T but some samples' lengths differ across modalities")
            raise ValueError(f"{type(model).__name__} needs aligned sequences (one T and, per sample, the same "
                             f"valid frames in every modality), but in {dataset.source} {why}; use an aligned "
                             f"file (aligned_50.pkl, MulT's aligned pickles) or an aligned synthetic preset")
        metric, _ = PRIMARY_METRIC[dataset.kind]
        self.select_metric = self.config.select_metric or metric
        self.higher_better = self.select_metric != VALID_LOSS and higher_is_better(self.select_metric)
        #: the metric the health check compares with the input-blind predictor
        self.health_metric = metric if self.select_metric == VALID_LOSS else self.select_metric
        self.history: list[dict[str, float]] = []
        self.best_epoch = -1
        self.best_valid: dict[str, float] = {}
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizers: list[OptimizerStep] = []
        self.scheduler = None
        self.views: list = []
        self.frozen: list = []
        self.epoch = 0
        self.health: dict = {}

    # -- one stage ----------------------------------------------------------------------------

    def start_stage(self, stage: Stage | None = None) -> Protocol:
        """Freeze the stage's modules, build its optimizers, schedule and training views; return
        the stage's training protocol. :meth:`fit` calls it per stage; a benchmark calls it once
        and then times :meth:`train_step`."""
        stage = stage or self.model.stages(self.config)[0]
        model = self.model.to(self.device)
        model.stage = stage.name
        frozen = [module for name, module in model.named_modules()
                  if any(name == f or name.startswith(f + ".") for f in stage.freeze)]
        missing = [f for f in stage.freeze if not any(n == f for n, _ in model.named_modules())]
        if missing:
            raise ValueError(f"stage {stage.name!r} freezes unknown module(s) {missing} of {type(model).__name__}")
        for p in model.parameters():
            p.requires_grad_(True)
        for module in frozen:
            module.requires_grad_(False)
        self.frozen = frozen
        # an auxiliary optimizer whose parameters are all frozen in this stage sits the stage out
        self.optimizers = [o for o in model.configure_optimizers(self.config) if o.loss is None or any(
            p.requires_grad for group in o.optimizer.param_groups for p in group["params"])]
        mains = [o for o in self.optimizers if o.loss is None]
        if len(mains) != 1:
            raise ValueError(f"{type(model).__name__}.configure_optimizers must return exactly one main optimizer "
                             f"(loss=None); got {len(mains)}")
        self.main = mains[0]
        self.scheduler = lr_scheduler(self.main.optimizer, self.config)
        protocol = parse_protocol(stage.protocol) if stage.protocol else self.protocol
        self.views = model.training_views(protocol)
        return protocol

    def train_mode(self) -> None:
        """Train mode, frozen modules in eval mode (a frozen teacher runs without dropout)."""
        self.model.train()
        for module in self.frozen:
            module.eval()

    def make_views(self, batch: Batch) -> Batch:
        """The batch the model sees: its single view, or the first view carrying all of them."""
        views = [transform(batch, self.generator) for transform in self.views]
        # a fresh Batch carries the views (setting views[0].views = views would make the batch
        # contain itself, and Batch.to() would recurse forever)
        return views[0] if len(views) == 1 else replace(views[0], views=views)

    def loss_terms(self, batch: Batch) -> dict[str, torch.Tensor]:
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

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The one training step: views, auxiliary optimizers (``steps`` each), then the main
        optimizer on the weighted total loss. Returns the detached loss terms and ``total``."""
        batch = self.make_views(batch).to(self.device)
        for aux in self.optimizers:
            if aux.loss is None:
                continue
            for _ in range(aux.steps):
                self.model.zero_grad(set_to_none=True)
                aux.loss(batch).backward()
                aux.optimizer.step()
        terms = self.loss_terms(batch)
        loss = self.total_loss(terms)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at epoch {self.epoch} (stage {self.model.stage!r}): "
                                     f"{ {k: float(v.detach()) for k, v in terms.items()} }")
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.main.optimizer.step()
        return {**{k: v.detach() for k, v in terms.items()}, "total": loss.detach()}

    # -- the whole run ------------------------------------------------------------------------

    def fit(self) -> list[dict[str, float]]:
        cfg, ds = self.config, self.dataset
        seed_everything(self.seed)
        self.generator.manual_seed(self.seed)
        tst = self.model.uses_token_ids
        complete = SplitTensors(ds["train"])
        valid_complete = SplitTensors(ds["valid"]) if self.select_metric == VALID_LOSS else None
        for stage in self.model.stages(cfg):
            protocol = self.start_stage(stage)
            if protocol.per_batch or protocol.kind == "complete":
                train = complete
            else:  # fixed variant: one mask per split, drawn once from per-modality seeds
                train = SplitTensors(mask_split(ds["train"], protocol, cfg.mask_seed, tst))
            valid = mask_split(ds["valid"], self.valid_protocol or protocol, cfg.mask_seed, tst)
            self._fit_stage(stage, train, complete, valid, valid_complete)
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.health = self._health(valid, stage)
        return self.history

    def _health(self, valid: MSASplit, stage: Stage) -> dict:
        """Did the last stage train? Best epoch (and whether it was the first of several), whether it
        stopped at the epoch cap while still improving, whether its (validation-selected) predictions
        are constant, and whether it beats the predictor that ignores the input on validation. ``degenerate`` lists what failed; a
        degenerate run must not carry a verdict."""
        cfg, kind = self.config, self.dataset.kind
        epochs = [h for h in self.history if h["stage"] == stage.name]
        cap = cfg.epochs if stage.epochs is None else stage.epochs
        pred = predict(self.model, valid, cfg.eval_batch_size, self.device)["prediction"]
        target = split_target(valid)
        with warnings.catch_warnings():  # Corr of a constant predictor is undefined: not used here
            warnings.simplefilter("ignore", RuntimeWarning)
            reference = compute_metrics(kind, constant_prediction(kind, split_target(self.dataset["train"]),
                                                                  len(target)), target)
        score, ref = self.best_valid.get(self.health_metric, float("nan")), reference[self.health_metric]
        beats = bool(score > ref if self.higher_better else score < ref)
        # The best epoch being the first is not a failure by itself: on features whose training split
        # is memorised fast (the utterance-level MOSI features were extracted by networks trained on
        # the train labels) one epoch is the best a model does on held-out speakers. It is recorded.
        reasons = [name for name, bad in (("constant predictions", is_constant(kind, pred)),
                                          (f"validation {self.health_metric} not better than the "
                                           f"{'majority' if kind == 'iemocap' else 'mean'} predictor", not beats))
                   if bad]
        return {"best_epoch": self.best_epoch, "epochs_run": len(epochs), "epoch_cap": cap,
                "improving_at_cap": len(epochs) == cap and self.best_epoch == cap - 1,
                "first_epoch_best": self.best_epoch == 0 and len(epochs) > 1,
                "select_metric": self.health_metric, "valid_score": score, "reference_score": ref,
                "selected_on": self.select_metric,
                "degenerate": reasons}

    def validation_loss(self, valid: MSASplit, complete: SplitTensors) -> float:
        """The weighted total loss on the (masked) validation split, the model in eval mode with the
        complete input beside the masked one: the trainer's task term plus the terms the model returns."""
        tensors = SplitTensors(valid)
        self.model.eval()
        total = 0.0
        with torch.no_grad():
            for idx in torch.arange(tensors.n).split(self.config.eval_batch_size):
                total += float(self.total_loss(self.loss_terms(tensors.batch(idx, complete).to(self.device)))) * len(idx)
        return total / tensors.n

    def _fit_stage(self, stage: Stage, train: SplitTensors, complete: SplitTensors, valid: MSASplit,
                   valid_complete: SplitTensors | None = None) -> None:
        cfg = self.config
        best_state, best_score, stale = None, None, 0
        epochs = cfg.epochs if stage.epochs is None else stage.epochs
        desc = f"{type(self.model).__name__} seed {self.seed}" + ("" if stage.name == "main" else f" {stage.name}")
        bar = tqdm(range(epochs), desc=desc, disable=quiet(cfg.progress), leave=False)
        for epoch in bar:
            self.epoch = epoch
            self.train_mode()
            lr = self.main.optimizer.param_groups[0]["lr"]
            sums: dict[str, torch.Tensor] = {}
            n_seen = 0
            for idx in torch.randperm(train.n, generator=self.generator).split(cfg.batch_size):
                terms = self.train_step(train.batch(idx, complete))
                b = len(idx)
                n_seen += b
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v * b
            if self.scheduler is not None:
                self.scheduler.step()
            preds = predict(self.model, valid, cfg.eval_batch_size, self.device)
            vm = compute_metrics(self.dataset.kind, preds["prediction"], split_target(valid))
            if valid_complete is not None:
                vm[VALID_LOSS] = self.validation_loss(valid, valid_complete)
            record = {"stage": stage.name, "epoch": epoch, "lr": lr,
                      **{f"train/{k}": float(v) / n_seen for k, v in sums.items()},
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
            if cfg.patience is not None and stale >= cfg.patience:
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)

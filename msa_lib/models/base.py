"""What every model in msa_lib is: the interface the one trainer drives.

A model takes a :class:`~msa_lib.core.Batch` and returns a :class:`ModelOutput`: its prediction
plus a dict of *named, unweighted* extra loss terms. The trainer adds the task loss (MSE or
cross-entropy) and sums everything with the weights in its config, so each paper's model owns its
loss terms and an ablation is "set a weight to 0 / switch a module off".

A model may also bring, without any change to the trainer:

* :meth:`MSAModel.training_views` — the views of a training batch it wants (default: one masked
  view per ``n_views``; a time-reversed or a text-removed flow is another transform);
* :meth:`MSAModel.configure_optimizers` — several optimizers with their own losses and step
  counts (default: one Adam over every trainable parameter; every Adam comes from :func:`adam`,
  so ``TrainConfig.fused_adam`` reaches all of them);
* :meth:`MSAModel.stages` — a run in several stages (e.g. train a teacher, freeze it, train the
  student), each with its own training protocol, frozen modules and early stopping.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn

from ..core import Batch
from ..missing import Protocol, mask_batch

#: A training view: (batch, generator) -> the batch the model sees.
ViewTransform = Callable[[Batch, torch.Generator], Batch]


@dataclass
class ModelOutput:
    """prediction: (B,) for regression, (B, C, K) logits for classification (IEMOCAP: C=4, K=2).
    losses: named extra loss terms, unweighted scalars. representation: (B, D) the model's joint
    representation (what t-SNE / UMAP figures plot by default); representations: other named
    (B, D') representations a figure may plot instead."""

    prediction: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    representation: torch.Tensor | None = None
    representations: dict[str, torch.Tensor] = field(default_factory=dict)


class AdamSettings(typing.Protocol):
    """What :func:`adam` reads from its ``config``: the fields of :class:`msa_lib.train.TrainConfig`."""

    lr: float
    weight_decay: float
    fused_adam: bool


def adam(params: Iterable[nn.Parameter], config: AdamSettings, lr: float | None = None,
         weight_decay: float | None = None) -> torch.optim.Adam:
    """The Adam every model builds: ``lr`` and ``weight_decay`` default to the TrainConfig's
    (``config``); with ``config.fused_adam`` it is ``Adam(..., fused=True)``, otherwise exactly
    ``torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)`` (no ``fused`` argument)."""
    lr = config.lr if lr is None else lr
    weight_decay = config.weight_decay if weight_decay is None else weight_decay
    if config.fused_adam:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@dataclass
class OptimizerStep:
    """One optimizer of a model and how the trainer steps it.

    ``loss=None`` marks the main optimizer: it steps once per batch on the trainer's weighted total
    loss. Any other entry is an auxiliary optimizer stepped ``steps`` times per batch, before the
    main step, on its own ``loss(batch)`` (e.g. a mutual-information estimator fitted by maximum
    likelihood). Gradients are cleared before every backward pass, so an optimizer only ever
    applies the gradients of its own loss to its own parameters.
    """

    optimizer: torch.optim.Optimizer
    loss: Callable[[Batch], torch.Tensor] | None = None
    steps: int = 1


@dataclass(frozen=True)
class Stage:
    """One stage of a run. ``protocol=None`` uses the run's training protocol; ``freeze`` names
    modules (attribute paths, e.g. ``"teacher"``) whose parameters are frozen and which stay in
    eval mode during the stage; ``epochs=None`` uses the train config's epochs. The model's
    ``stage`` attribute holds the current stage's name while it trains (and the last stage's
    name afterwards), so ``forward`` can depend on it."""

    name: str = "main"
    protocol: str | None = None
    freeze: tuple[str, ...] = ()
    epochs: int | None = None


@dataclass
class MaskView:
    """The default training view: the batch masked afresh by a per-batch protocol (a fixed
    protocol's split is masked once, before training, and passes through unchanged)."""

    protocol: Protocol
    protect_special_tokens: bool = False

    def __call__(self, batch: Batch, generator: torch.Generator) -> Batch:
        if not self.protocol.per_batch:
            return batch
        return mask_batch(batch, self.protocol, generator, self.protect_special_tokens)


class MSAModel(nn.Module):
    """Base class: subclasses implement ``forward(batch) -> ModelOutput``.

    ``n_views`` is the number of independently masked versions of each training sample the
    default :meth:`training_views` builds (2 for two-flow / self-distillation models).
    ``requires_aligned`` makes the trainer refuse unaligned data with a clear message.
    ``uses_token_ids``: the model reads BERT token ids (``batch.text_ids``), so masking keeps
    [CLS]/[SEP] for it (:mod:`msa_lib.missing`); a model reading text features gets no such
    protection, whatever the data file holds.
    """

    n_views: int = 1
    requires_aligned: bool = False
    uses_token_ids: bool = False
    stage: str = "main"

    def forward(self, batch: Batch) -> ModelOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def training_views(self, protocol: Protocol) -> list[ViewTransform]:
        """The views of each training batch, in order; with more than one, the model receives
        ``batch.views`` (the first view's batch carrying the list)."""
        return [MaskView(protocol, self.uses_token_ids) for _ in range(self.n_views)]

    def configure_optimizers(self, config) -> list[OptimizerStep]:
        """Default: one Adam over every trainable parameter (``config`` is the TrainConfig)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [OptimizerStep(adam(params, config))]

    def stages(self, config) -> list[Stage]:
        """Default: a single stage under the run's protocol."""
        return [Stage()]

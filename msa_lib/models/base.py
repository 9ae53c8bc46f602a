"""What every model in msa_lib consumes and returns.

A model takes a :class:`Batch` and returns a :class:`ModelOutput`: its prediction plus a dict of
*named, unweighted* extra loss terms. The trainer adds the task loss (MSE or cross-entropy) and
sums everything with the weights in its config, so each paper's model owns its loss terms and an
ablation is "set a weight to 0 / switch a module off".
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn


@dataclass
class Batch:
    """A mini-batch of (possibly masked) inputs.

    features: modality -> (B, T_m, d_m) float, zeros at dropped frames / missing modalities.
    lengths:  modality -> (B,) long, valid lengths (padding is never masked or counted).
    keep:     modality -> (B, T_m) bool, True where a valid frame is present.
    complete: modality -> (B, T_m, d_m), the unmasked inputs (teachers, reconstruction losses).
    views:    extra independently masked versions of the same samples for two-flow models
              (``model.n_views > 1``); ``None`` at inference, where a model clones ``features``.
    """

    features: dict[str, torch.Tensor]
    lengths: dict[str, torch.Tensor]
    keep: dict[str, torch.Tensor]
    labels: torch.Tensor | None = None
    class_labels: torch.Tensor | None = None
    unimodal_labels: dict[str, torch.Tensor] | None = None
    text_ids: torch.Tensor | None = None
    complete: dict[str, torch.Tensor] | None = None
    views: list["Batch"] | None = None
    index: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "Batch":
        def move(v):
            if isinstance(v, torch.Tensor):
                return v.to(device)
            if isinstance(v, dict):
                return {k: move(x) for k, x in v.items()}
            if isinstance(v, list):
                return [move(x) for x in v]
            if isinstance(v, Batch):
                return v.to(device)
            return v

        return Batch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})

    @property
    def size(self) -> int:
        return int(next(iter(self.features.values())).shape[0])


@dataclass
class ModelOutput:
    """prediction: (B,) for regression, (B, C, K) logits for classification (IEMOCAP: C=4, K=2).
    losses: named extra loss terms, unweighted scalars. representation: (B, D) joint
    representation just before the output head (for t-SNE / UMAP figures)."""

    prediction: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    representation: torch.Tensor | None = None


class MSAModel(nn.Module):
    """Base class: subclasses implement ``forward(batch) -> ModelOutput``.

    ``n_views`` is the number of independently masked versions of each training sample the
    trainer builds (2 for two-flow / self-distillation models). ``requires_aligned`` makes the
    trainer refuse unaligned data with a clear message.
    """

    n_views: int = 1
    requires_aligned: bool = False

    def forward(self, batch: Batch) -> ModelOutput:  # pragma: no cover - interface
        raise NotImplementedError

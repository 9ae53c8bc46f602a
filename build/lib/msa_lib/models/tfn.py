"""Tensor Fusion Network (Zadeh et al., EMNLP 2017) — the simplest baseline the papers compare to.

Modality embedding subnetworks: a length-aware LSTM over text (last valid hidden state → linear),
and for audio and vision a 3-layer MLP over the time-averaged valid frames (as in the TFN paper).
Tensor fusion: z = [h_l; 1] ⊗ [h_a; 1] ⊗ [h_v; 1] (the appended 1 keeps the unimodal and bimodal
terms), flattened, then a post-fusion MLP to the prediction.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..core import Batch, masked_mean
from .base import ModelOutput, MSAModel


@dataclass
class TFNConfig:
    text_hidden: int = 32
    audio_hidden: int = 8
    vision_hidden: int = 16
    text_out: int = 32
    post_fusion_dim: int = 32
    dropout: float = 0.2


class SubNet(nn.Module):
    """TFN audio/vision subnetwork: normalisation, dropout, three linear+ReLU layers (layer norm
    replaces the original batch norm so that small and single-sample batches behave the same)."""

    def __init__(self, d_in: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_in), nn.Dropout(dropout),
            nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TFN(MSAModel):
    def __init__(self, dims: dict[str, int], config: TFNConfig | None = None, n_classes: int | None = None):
        super().__init__()
        self.config = c = config or TFNConfig()
        self.n_classes = n_classes
        self.text_rnn = nn.LSTM(dims["text"], c.text_hidden, batch_first=True)
        self.text_out = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.text_hidden, c.text_out))
        self.audio_net = SubNet(dims["audio"], c.audio_hidden, c.dropout)
        self.vision_net = SubNet(dims["vision"], c.vision_hidden, c.dropout)
        fused = (c.text_out + 1) * (c.audio_hidden + 1) * (c.vision_hidden + 1)
        n_out = 1 if n_classes is None else 2 * n_classes
        self.post_fusion = nn.Sequential(
            nn.Dropout(c.dropout), nn.Linear(fused, c.post_fusion_dim), nn.ReLU(),
            nn.Linear(c.post_fusion_dim, c.post_fusion_dim), nn.ReLU(),
        )
        self.head = nn.Linear(c.post_fusion_dim, n_out)

    def encode_text(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.text_rnn(packed)
        return self.text_out(h[-1])

    def forward(self, batch: Batch) -> ModelOutput:
        f, lens = batch.features, batch.lengths
        h_l = self.encode_text(f["text"], lens["text"])
        h_a = self.audio_net(masked_mean(f["audio"], lens["audio"]))
        h_v = self.vision_net(masked_mean(f["vision"], lens["vision"]))
        one = torch.ones(h_l.shape[0], 1, device=h_l.device, dtype=h_l.dtype)
        z_l, z_a, z_v = (torch.cat([h, one], dim=1) for h in (h_l, h_a, h_v))
        # three-fold outer product, flattened (TFN Eq. for z^m)
        fusion = torch.einsum("bi,bj,bk->bijk", z_l, z_a, z_v).flatten(1)
        rep = self.post_fusion(fusion)
        out = self.head(rep)
        pred = out.squeeze(-1) if self.n_classes is None else out.view(-1, self.n_classes, 2)
        return ModelOutput(prediction=pred, representation=rep)

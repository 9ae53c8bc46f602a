"""UMDF: Unified Multimodal Missing-modality self-Distillation Framework (Li et al., AAAI 2024).

"A Unified Self-Distillation Framework for Multimodal Sentiment Analysis with Uncertain Missing
Modalities". Implemented from the paper's equations (grep ``UMDF Eq.``):

* MCIM, multi-grained crossmodal interaction (Eq. 7-9, Fig. 2a): temporal conv + positional
  embedding per modality, then D layers of coarse crossmodal attention over [Z_L; Z_A; Z_V] and
  fine crossmodal attention over the two bimodal concatenations containing the target, FFN, and a
  transformer encoder over the feature-wise concatenation -> H_k (B, T, 3d), k in {a, b}.
* Unified self-distillation (Eq. 1-6): MMD between the last elements h_a, h_b (feature
  distillation, ``losses["fea"]``) and MSE / JS divergence between f_y(h_a), f_y(h_b) (logits
  distillation, ``losses["logits"]``).
* DFIM, dynamic feature integration (Eq. 10-11, Fig. 2b): frame-level self-enhancement and a
  sigmoid gate mixing the two streams, then a transformer encoder and fully connected layers.

Two-flow protocol: during training the trainer provides ``batch.views = [S_a, S_b]`` (two
independently masked versions of each sample). At inference ``batch.views is None`` and, as in the
paper, the test sample is cloned into both streams. The model returns only its extra loss terms
("fea", "logits", unweighted); the trainer adds the task loss and applies lambda_1, lambda_2
(L_total = L_task + lambda_1 L_fea + lambda_2 L_logits, paper "Training Objective").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Batch, last_valid, padding_mask
from ..losses import js_divergence, mmd, paired_mmd
from .base import ModelOutput, MSAModel

MODALITIES: tuple[str, str, str] = ("text", "audio", "vision")
MCIM_MODES: tuple[str, ...] = ("crossmodal", "self")
DFIM_WEIGHTINGS: tuple[str, ...] = ("softmax", "scaled", "residual", "pooled")
FEA_READINGS: tuple[str, ...] = ("batch", "paired")


@dataclass
class UMDFConfig:
    """Hyper-parameters of :class:`UMDF` (defaults: the paper's MOSI setting).

    d: common feature size of every modality after the temporal conv (paper: 40).
    n_heads: attention heads, must divide ``d`` (paper: 10 on MOSI / IEMOCAP, 8 on MOSEI).
    n_layers: number D of stacked MCIM layers (paper: 4).
    fusion_layers: transformer-encoder layers over the concatenated Z^h (-> H_k).
    final_layers: transformer-encoder layers after DFIM (-> H-bar). Not given in the paper.
    ffn_mult: hidden size of every feed-forward network, as a multiple of its input size.
    dropout: dropout on the embeddings, residual branches, FFNs, encoders and the output head
        (the paper does not report dropout).
    attn_dropout: dropout on the attention weights of every attention layer (MCIM and both
        encoders). Default 0: any value > 0 makes PyTorch leave the fused CPU attention kernel
        for the explicit one, which was ~8x slower per training step in our CPU measurements.
    mcim: "crossmodal" (paper) or "self" (ablation: every crossmodal attention replaced by
        self-attention of the target over itself).
    dfim: True (paper) or False (ablation: DFIM replaced by concatenation + linear).
    dfim_weighting: how DFIM's frame-level self-enhancement applies M_k = softmax_t(F_k(H_k)) to
        H_k (the paper: "matrix multiplication of M_k with H_k", Eq. 10's input): "softmax"
        (M_k (.) H_k: each frame shrinks by about 1/T), "scaled" (T_valid M_k (.) H_k: weights
        average 1), "residual" (H_k + M_k (.) H_k) or "pooled" (M_k^T H_k: one 1 x 3d vector).
    fea_reading: L_fea of Eq. 3, (1/n) sum_i D(h_a, h_b): "batch" (one MMD between the two
        mini-batch samples of h_a and h_b, as in DAN-style code) or "paired" (the mean over samples
        of the kernel distance between the pair h_a,i, h_b,i).
    use_fea_distill / use_logit_distill: switch the L_fea / L_logits terms (ablations).
    kernel_mul / kernel_num: bandwidth ladder of the multi-kernel MMD (L_fea).
    share_logit_head: True (default) reuses the final prediction head as f_y of Eq. 5-6, so
        f_y(h_a), f_y(h_b) are sentiment logits shaped by the task loss; False gives f_y its own FC
        layer trained by L_logits alone, which can collapse to a constant and make L_logits vanish.
    logits_dropout: whether f_y applies the head's dropout when it computes L_logits (False:
        f_y(h_a), f_y(h_b) without dropout, so two identical views give L_logits = 0 and the term
        measures the views, not dropout noise; the prediction itself always uses dropout in
        training).
    """

    d: int = 40
    n_heads: int = 10
    n_layers: int = 4
    fusion_layers: int = 1
    final_layers: int = 1
    ffn_mult: int = 4
    dropout: float = 0.1
    attn_dropout: float = 0.0
    mcim: Literal["crossmodal", "self"] = "crossmodal"
    dfim: bool = True
    # chosen on synthetic validation (book profile): MOSI validation MAE over seeds 1-3 scaled 0.737,
    # pooled 0.739, softmax 0.746, residual 0.747 (std ~0.02 each: within noise); IEMOCAP validation
    # Avg-F1, seed 1 (``umdf.dfim_sweep``): softmax 0.734, scaled 0.730, pooled 0.727, residual 0.724.
    # softmax: best on IEMOCAP, tied on MOSI, and the paper's literal frame weighting.
    dfim_weighting: Literal["softmax", "scaled", "residual", "pooled"] = "softmax"
    fea_reading: Literal["batch", "paired"] = "batch"
    use_fea_distill: bool = True
    use_logit_distill: bool = True
    kernel_mul: float = 2.0
    kernel_num: int = 5
    share_logit_head: bool = True
    logits_dropout: bool = False

    def __post_init__(self) -> None:
        if self.d < 1 or self.n_heads < 1 or self.d % self.n_heads != 0:
            raise ValueError(
                f"UMDFConfig: n_heads={self.n_heads} must be >= 1 and divide the feature size d={self.d} "
                f"(paper: d=40 with 10 heads on MOSI/IEMOCAP, 8 on MOSEI)"
            )
        for name, valid in (("mcim", MCIM_MODES), ("dfim_weighting", DFIM_WEIGHTINGS), ("fea_reading", FEA_READINGS)):
            if getattr(self, name) not in valid:
                raise ValueError(f"UMDFConfig: {name} must be one of {valid}; got {getattr(self, name)!r}")
        if self.n_layers < 1 or self.fusion_layers < 1 or self.final_layers < 1 or self.ffn_mult < 1:
            raise ValueError(
                "UMDFConfig: n_layers, fusion_layers, final_layers and ffn_mult must be >= 1; got "
                f"{self.n_layers}, {self.fusion_layers}, {self.final_layers}, {self.ffn_mult}"
            )
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.attn_dropout < 1.0):
            raise ValueError(
                f"UMDFConfig: dropout and attn_dropout must be in [0, 1); got {self.dropout}, {self.attn_dropout}"
            )


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None,
                         dtype: torch.dtype = torch.float32) -> Tensor:
    """(length, dim) sinusoidal positional embeddings (Vaswani et al. 2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe.to(dtype)


def _encoder(dim: int, config: UMDFConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(dim, config.n_heads, dim_feedforward=config.ffn_mult * dim,
                                       dropout=config.dropout, batch_first=True)
    # Attention-weight dropout is governed by attn_dropout, like in the MCIM attention layers.
    layer.self_attn.dropout = config.attn_dropout
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


# ----------------------------------------------------------------------------------------------
# MCIM
# ----------------------------------------------------------------------------------------------


class AttentionBlock(nn.Module):
    """``LN(CA(X_s, X_t) + X_t)``: multi-head crossmodal attention, queries from the target X_t,
    keys/values from the source X_s (UMDF Eq. 7), residual + LayerNorm."""

    def __init__(self, d: int, heads: int, dropout: float, attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=attn_dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, source: Tensor, target: Tensor, source_pad: Tensor) -> Tensor:
        """source (B, S, d), target (B, T, d), source_pad (B, S) bool True on padding -> (B, T, d).

        ``self.attn`` (an ``nn.MultiheadAttention``) only holds the parameters: the attention runs
        in :func:`torch.nn.functional.scaled_dot_product_attention` on (B, h, T, d_k) views of the
        batch-first projections (the CPU kernel is ~1.8x faster on them than on the (T, B, h, d_k)
        strides ``nn.MultiheadAttention`` hands it), and its output is laid out (T, B, d) in memory
        as ``nn.MultiheadAttention`` lays it out, so the dropout after it draws the same mask (the
        same loss under the same seed). A sample whose keys are all padding gets a zero attention
        output, as from ``nn.MultiheadAttention`` in training (:func:`~msa_lib.core.padding_mask`
        never builds one: lengths are clamped to >= 1).
        """
        attn = self.attn
        b, t, d = target.shape
        s, h = source.shape[1], attn.num_heads
        w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
        # UMDF Eq. 7: queries X_t W_Q, keys X_s W_K and values X_s W_V, split into h heads (B, h, ., d_k)
        q = F.linear(target, w_q, b_q).view(b, t, h, d // h).transpose(1, 2)
        k = F.linear(source, w_k, b_k).view(b, s, h, d // h).transpose(1, 2)
        v = F.linear(source, w_v, b_v).view(b, s, h, d // h).transpose(1, 2)
        # UMDF Eq. 7: CA(X_s, X_t) = softmax(X_t W_Q W_K^T X_s^T / sqrt(d_k)) X_s W_V (multi-head)
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=~source_pad[:, None, None, :],
                                               dropout_p=attn.dropout if self.training else 0.0)
        # heads concatenated and projected by W_O in (T, B, d) memory, seen batch-first (MHA's layout)
        x_st = attn.out_proj(heads.permute(2, 0, 1, 3).reshape(t * b, d)).view(t, b, d).transpose(0, 1)
        # UMDF Eq. 7 (forward computation): X_t = LN(X_t + X_{s->t})
        return self.norm(target + self.drop(x_st))


class MCIMLayer(nn.Module):
    """One MCIM layer updating all three modalities from the previous layer's outputs.

    For target m: Z_m^c = LN(CA(Z_LAV, Z_m) + Z_m) (Eq. 8); Z_m^f = LN(CA(Z_mx, Z_m^c) + Z_m^c) +
    LN(CA(Z_my, Z_m^c) + Z_m^c) over the two bimodal concatenations containing m (Eq. 9); Z_m^h =
    LN(FFN(Z_m^f) + Z_m^f). With ``mode="self"`` every CA is self-attention of its target
    (keys/values = the query sequence itself), with the same layer structure.
    """

    def __init__(self, d: int, heads: int, ffn_mult: int, dropout: float,
                 mode: Literal["crossmodal", "self"] = "crossmodal", attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.mode = mode
        self.coarse = nn.ModuleDict({m: AttentionBlock(d, heads, dropout, attn_dropout) for m in MODALITIES})
        self.fine_x = nn.ModuleDict({m: AttentionBlock(d, heads, dropout, attn_dropout) for m in MODALITIES})
        self.fine_y = nn.ModuleDict({m: AttentionBlock(d, heads, dropout, attn_dropout) for m in MODALITIES})
        self.ffn = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(d, ffn_mult * d), nn.ReLU(), nn.Dropout(dropout),
                             nn.Linear(ffn_mult * d, d), nn.Dropout(dropout))
            for m in MODALITIES
        })
        self.ffn_norm = nn.ModuleDict({m: nn.LayerNorm(d) for m in MODALITIES})

    def forward(self, z: dict[str, Tensor], pad: dict[str, Tensor]) -> dict[str, Tensor]:
        # Coarse- and fine-grained sources are built from this layer's inputs Z (paper: Z_LAV,
        # Z_LA, Z_LV are concatenations of the low-level representations along time).
        z_all = torch.cat([z[m] for m in MODALITIES], dim=1)  # Z_LAV (B, T_L+T_A+T_V, d)
        pad_all = torch.cat([pad[m] for m in MODALITIES], dim=1)
        out: dict[str, Tensor] = {}
        for m in MODALITIES:
            others = [o for o in MODALITIES if o != m]  # L: (A, V); A: (L, V); V: (L, A)
            if self.mode == "self":
                z_c = self.coarse[m](z[m], z[m], pad[m])  # self-attention ablation of Eq. 8
                f_x = self.fine_x[m](z_c, z_c, pad[m])  # self-attention ablation of Eq. 9
                f_y = self.fine_y[m](z_c, z_c, pad[m])
            else:
                # UMDF Eq. 8: Z_m^c = LN(CA(Z_LAV, Z_m) + Z_m)
                z_c = self.coarse[m](z_all, z[m], pad_all)
                src_x = torch.cat([z[m], z[others[0]]], dim=1)  # e.g. Z_LA for m = L
                src_y = torch.cat([z[m], z[others[1]]], dim=1)  # e.g. Z_LV for m = L
                pad_x = torch.cat([pad[m], pad[others[0]]], dim=1)
                pad_y = torch.cat([pad[m], pad[others[1]]], dim=1)
                # UMDF Eq. 9: Z_m^f = LN(CA(Z_mx, Z_m^c) + Z_m^c) + LN(CA(Z_my, Z_m^c) + Z_m^c)
                f_x = self.fine_x[m](src_x, z_c, pad_x)
                f_y = self.fine_y[m](src_y, z_c, pad_y)
            z_f = f_x + f_y  # UMDF Eq. 9 (sum of the two fine-grained branches)
            out[m] = self.ffn_norm[m](self.ffn[m](z_f) + z_f)  # Z_m^h = LN(FFN(Z_m^f) + Z_m^f)
        return out


class MCIM(nn.Module):
    """Multi-grained Crossmodal Interaction Module: features -> (Z^h per modality, H_k).

    Per modality a temporal Conv1d (kernel 3, padding 1, d_m -> d) plus sinusoidal positional
    embeddings gives Z_m; ``n_layers`` :class:`MCIMLayer` refine them; the three Z^h are
    concatenated along features (T x 3d) and fed to a transformer encoder -> H_k (B, T, 3d).
    """

    def __init__(self, dims: dict[str, int], config: UMDFConfig) -> None:
        super().__init__()
        d = config.d
        self.d = d
        # "1D temporal convolutional layer with kernel size 3" projecting d_m -> d (no bias, like
        # the paper's W_{3x3}(X'_m)).
        self.proj = nn.ModuleDict({m: nn.Conv1d(dims[m], d, kernel_size=3, padding=1, bias=False)
                                   for m in MODALITIES})
        self.embed_drop = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList([
            MCIMLayer(d, config.n_heads, config.ffn_mult, config.dropout, config.mcim, config.attn_dropout)
            for _ in range(config.n_layers)
        ])
        self.fusion = _encoder(3 * d, config, config.fusion_layers)

    def forward(self, features: dict[str, Tensor], lengths: dict[str, Tensor],
                joint_lengths: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """features m -> (B, T, d_m); lengths m -> (B,); joint_lengths (B,) for H's padding mask.

        Returns ({m: Z_m^h (B, T, d)}, H (B, T, 3d)).
        """
        pad: dict[str, Tensor] = {}
        z: dict[str, Tensor] = {}
        for m in MODALITIES:
            x = features[m]
            t = x.shape[1]
            pad[m] = padding_mask(lengths[m].to(x.device), t)
            # Zero the padding so the kernel-3 conv cannot leak padded content into valid frames.
            x = x.masked_fill(pad[m].unsqueeze(-1), 0.0)
            x_hat = self.proj[m](x.transpose(1, 2)).transpose(1, 2)  # \hat X'_m = W_3(X'_m)
            z[m] = self.embed_drop(x_hat + sinusoidal_positions(t, self.d, x.device, x.dtype))  # Z_m
        for layer in self.layers:  # D stacked MCIM layers
            z = layer(z, pad)
        joint = torch.cat([z[m] for m in MODALITIES], dim=-1)  # [Z_L^h; Z_A^h; Z_V^h] (B, T, 3d)
        h = self.fusion(joint, src_key_padding_mask=padding_mask(joint_lengths.to(joint.device), joint.shape[1]))
        return z, h


# ----------------------------------------------------------------------------------------------
# DFIM
# ----------------------------------------------------------------------------------------------


class DFIM(nn.Module):
    """Dynamic Feature Integration Module: (H_a, H_b) -> H_e (UMDF Eq. 10-11).

    ``weighting`` reads the paper's frame-level self-enhancement, "the matrix multiplication of
    M_k with H_k" (M_k = softmax over time of F_k(H_k)), which the text leaves open:

    * "softmax": H~_k = M_k (.) H_k, frame weighting (the default of :class:`UMDFConfig`, chosen on
      validation; the sequence is kept; every frame shrinks by about 1/T, and the post-LayerNorm
      encoder after DFIM largely undoes the weighting);
    * "scaled": H~_k = T_valid M_k (.) H_k (the weights average 1, so the scale of H_k is kept);
    * "residual": H~_k = H_k + M_k (.) H_k (padding zeroed);
    * "pooled": H~_k = M_k^T H_k, attention pooling to one 1 x 3d vector per sample (H_e then has
      length 1 and its "last element" is that vector).
    """

    def __init__(self, dim: int, weighting: str) -> None:
        super().__init__()
        self.weighting = weighting
        # F_k(H_k; W_theta): one FC (3d -> 1) per stream, as the subscript k in the paper suggests.
        self.score_a = nn.Linear(dim, 1)
        self.score_b = nn.Linear(dim, 1)
        # W_{3x3} of Eq. 10: temporal conv over the feature-wise concatenation [H~_a; H~_b] -> 3d.
        self.gate = nn.Conv1d(2 * dim, dim, kernel_size=3, padding=1)

    def _enhance(self, h: Tensor, score: nn.Linear, pad: Tensor) -> Tensor:
        # Frame-level self-enhancement: M_k = softmax_t(F_k(H_k)), padding masked to -inf.
        logits = score(h).squeeze(-1).masked_fill(pad, float("-inf"))  # \hat H_k (B, T)
        weights = torch.softmax(logits, dim=1)  # M_k
        if self.weighting == "pooled":
            return torch.bmm(weights.unsqueeze(1), h)  # M_k^T H_k (B, 1, 3d)
        weighted = weights.unsqueeze(-1) * h  # M_k (.) H_k
        if self.weighting == "scaled":
            return (~pad).sum(1, keepdim=True).unsqueeze(-1).to(h.dtype) * weighted
        if self.weighting == "residual":  # padding zeroed, so the gate's kernel-3 conv cannot read it
            return (h + weighted).masked_fill(pad.unsqueeze(-1), 0.0)
        return weighted

    def forward(self, h_a: Tensor, h_b: Tensor, pad: Tensor) -> Tensor:
        """h_a, h_b (B, T, 3d); pad (B, T) bool True on padding -> H_e (B, T, 3d), or (B, 1, 3d)
        with ``weighting="pooled"``."""
        ht_a = self._enhance(h_a, self.score_a, pad)
        ht_b = self._enhance(h_b, self.score_b, pad)
        # UMDF Eq. 10: mu = sigmoid(W_{3x3}([H~_a; H~_b]))
        mu = torch.sigmoid(self.gate(torch.cat([ht_a, ht_b], dim=-1).transpose(1, 2)).transpose(1, 2))
        # UMDF Eq. 11: H_e = mu (.) H~_a + (1 - mu) (.) H~_b
        return mu * ht_a + (1.0 - mu) * ht_b


# ----------------------------------------------------------------------------------------------
# UMDF
# ----------------------------------------------------------------------------------------------


class UMDF(MSAModel):
    """UMDF model. ``UMDF(dims, config, n_classes=None)``.

    dims: {"text": d_L, "audio": d_A, "vision": d_V}. ``n_classes=None`` -> regression, prediction
    (B,); otherwise classification with prediction logits (B, n_classes, 2) (IEMOCAP: 4 emotions x
    {no, yes}). ``losses`` holds "fea" (L_fea, Eq. 1-3) and "logits" (L_logits, Eq. 4-6) when
    ``batch.views`` is given and the corresponding switch is on; nothing at inference.
    ``representation`` is h_k, the last valid element of H_k (B, 3d) — the paper's "joint
    multimodal representation" that L_fea distils; ``representations["h_bar"]`` is the last element
    of H-bar, the input of the output head.
    """

    n_views = 2
    requires_aligned = True

    def __init__(self, dims: dict[str, int], config: UMDFConfig | None = None, n_classes: int | None = None) -> None:
        super().__init__()
        config = config if config is not None else UMDFConfig()
        missing = [m for m in MODALITIES if m not in dims]
        if missing:
            raise ValueError(f"UMDF: dims must give a feature size for {MODALITIES}; missing {missing}")
        if n_classes is not None and n_classes < 1:
            raise ValueError(f"UMDF: n_classes must be None (regression) or >= 1; got {n_classes}")
        self.config = config
        self.dims = {m: int(dims[m]) for m in MODALITIES}
        self.n_classes = n_classes
        dim = 3 * config.d
        self.out_dim = 1 if n_classes is None else 2 * n_classes

        self.mcim = MCIM(self.dims, config)
        if config.dfim:
            self.dfim = DFIM(dim, config.dfim_weighting)
        else:
            # Ablation: "DFIM is replaced by a simple concatenation operation": [H_a; H_b] (6d)
            # followed by a linear map back to 3d, then the same encoder and head.
            self.concat_proj = nn.Linear(2 * dim, dim)
        self.final_encoder = _encoder(dim, config, config.final_layers)
        # "fully-connected layers" producing y-hat from the last element of H-bar.
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(config.dropout),
                                  nn.Linear(dim, self.out_dim))
        if config.use_logit_distill and not config.share_logit_head:
            # f_y of Eq. 5-6: a fully connected layer on h_k, shared by both streams.
            self.logit_head = nn.Linear(dim, self.out_dim)

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    def check_aligned(features: dict[str, Tensor]) -> None:
        """Raise ValueError unless every modality has the same sequence length T."""
        lens = {m: int(features[m].shape[1]) for m in MODALITIES}
        if len(set(lens.values())) != 1:
            got = ", ".join(f"{m} T={t}" for m, t in lens.items())
            raise ValueError(
                f"UMDF needs aligned sequences (equal length per modality); got {got} — use an "
                "aligned_50.pkl file or an aligned synthetic preset"
            )

    def _shape_logits(self, logits: Tensor) -> Tensor:
        if self.n_classes is None:
            return logits.squeeze(-1)  # (B,)
        return logits.view(logits.shape[0], self.n_classes, 2)  # (B, C, 2)

    def f_y(self, h: Tensor) -> Tensor:
        """f_y of UMDF Eq. 5-6 on the last elements h_k (B, 3d) -> (B,) or (B, C, 2); the shared
        head's dropout applies only with ``logits_dropout``."""
        if not self.config.share_logit_head:
            return self._shape_logits(self.logit_head(h))
        for layer in self.head:
            if self.config.logits_dropout or not isinstance(layer, nn.Dropout):
                h = layer(h)
        return self._shape_logits(h)

    def encode(self, features: dict[str, Tensor], lengths: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        """MCIM on one (or a stacked) batch: ({m: Z_m^h (B, T, d)}, H (B, T, 3d))."""
        return self.mcim(features, lengths, lengths["text"])

    def integrate(self, h_a: Tensor, h_b: Tensor, joint_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """DFIM (or its concatenation ablation): (H_a, H_b) -> (H_e, its lengths); H_e is (B, T, 3d),
        or (B, 1, 3d) with lengths 1 for the pooled DFIM reading."""
        pad = padding_mask(joint_lengths.to(h_a.device), h_a.shape[1])
        if not self.config.dfim:
            return self.concat_proj(torch.cat([h_a, h_b], dim=-1)), joint_lengths
        h_e = self.dfim(h_a, h_b, pad)
        return h_e, joint_lengths if h_e.shape[1] == h_a.shape[1] else torch.ones_like(joint_lengths)

    # -- forward --------------------------------------------------------------------------------

    def forward(self, batch: Batch) -> ModelOutput:
        if batch.views is not None:
            if len(batch.views) != 2:
                raise ValueError(f"UMDF is a two-flow model (n_views=2); got {len(batch.views)} views")
            view_a, view_b = batch.views
            distill = True
        else:
            # Inference: "we clone a copy of the testing sample" and use both as the two streams.
            view_a = view_b = batch
            distill = False
        self.check_aligned(view_a.features)  # the views share their shapes
        bsz = view_a.size

        # Both streams go through the same (shared) network; stacking them along the batch is
        # equivalent to two passes since every operation is per-sample.
        if distill:
            feats = {m: torch.cat([view_a.features[m], view_b.features[m]], dim=0) for m in MODALITIES}
            lens = {m: torch.cat([view_a.lengths[m], view_b.lengths[m]], dim=0) for m in MODALITIES}
            _, h = self.mcim(feats, lens, lens["text"])
            h_a, h_b = h[:bsz], h[bsz:]  # H_a, H_b (B, T, 3d)
        else:  # the cloned streams are identical, so H_a = H_b: compute it once
            _, h_a = self.mcim(batch.features, batch.lengths, batch.lengths["text"])
            h_b = h_a
        # The joint sequence is indexed by the text length (all modalities are aligned).
        joint_len = view_a.lengths["text"]

        losses: dict[str, Tensor] = {}
        if distill and (self.config.use_fea_distill or self.config.use_logit_distill):
            # h_k = last element of H_k. With post-padded sequences "last" = position length-1;
            # with full-length sequences this is exactly the paper's last element.
            last = last_valid(h, lens["text"])
            hl_a, hl_b = last[:bsz], last[bsz:]
            if self.config.use_fea_distill:
                # UMDF Eq. 3: L_fea = (1/n) sum_i D(h_a, h_b) (Eq. 1-2 in losses.mmd / paired_mmd)
                fea = paired_mmd if self.config.fea_reading == "paired" else mmd
                losses["fea"] = fea(hl_a, hl_b, kernel_mul=self.config.kernel_mul, kernel_num=self.config.kernel_num)
            if self.config.use_logit_distill:
                y_ab = self.f_y(last)
                y_a, y_b = y_ab[:bsz], y_ab[bsz:]
                if self.n_classes is None:
                    losses["logits"] = F.mse_loss(y_a, y_b)  # UMDF Eq. 6
                else:
                    losses["logits"] = js_divergence(y_a, y_b)  # UMDF Eq. 4-5, per emotion, averaged

        h_e, e_len = self.integrate(h_a, h_b, joint_len)
        h_bar = self.final_encoder(h_e, src_key_padding_mask=padding_mask(e_len.to(h_e.device), h_e.shape[1]))
        rep = last_valid(h_bar, e_len)  # last (valid) element of H-bar
        prediction = self._shape_logits(self.head(rep))
        # h_k, "the joint multimodal representation" (last element of H_k; at inference H_a = H_b)
        h_k = last_valid(h_a, joint_len)
        return ModelOutput(prediction=prediction, losses=losses, representation=h_k,
                           representations={"h_bar": rep})

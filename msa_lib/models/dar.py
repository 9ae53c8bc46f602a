"""DAR: Decoupling and Reconstructing common and specific features for robust multimodal sentiment
analysis (IJCAI 2025). Implemented from the paper's equations (grep ``DAR Eq.``); the paper has no
released code and follows LNLN's (Haoyu-ha/LNLN) input erasure.

* alignment layer: per modality a 1-D convolution and a non-linearity to width d, then a
  length-aware average pool to the common length t (U¹_m, Ũ¹_m); shared by the complete input U_m
  and the erased input Ũ_m;
* decouple (Eq. 1-11): per modality a common encoder E_c and a specific encoder E_s (Eq. 1), shared
  by both inputs; L_sim (Eq. 4, 6-7): InfoNCE on the time-averaged erased features; L_diff (Eq. 5,
  8-9): the CLUB upper bound of I(common; specific) with q_θ = BiLSTM + non-linear FC, fitted by its
  own optimizer (:meth:`DAR.configure_optimizers`); L_re (Eq. 10-11): a private decoder per modality
  restores Ũ¹_m from the other two modalities' common features and its own specific features;
* reconstruct (Eq. 12-17): Ĥ^com_m from all modalities' common features, Ĥ^spec_m from the erased
  input's own specific features (Eq. 13 prints H without the tilde: a typo, the complete input's
  features are the target), Û¹_m by a second private decoder, the gate g = σ(W [Ĥ; H̃] + b) and
  H_fused = g ⊙ Ĥ + (1 − g) ⊙ H̃ (Eq. 16 prints Ĥ twice: a typo); L_recon against the complete
  input's features;
* fusion-output (Eq. 18-23): per modality a multi-layer self-attention over the fused common
  features, last frame (Eq. 18); cross-modal attention between fused specific features, each
  modality reinforced by the other two (Eq. 19-20); ŷ = MLP([h^com; h^spec]) (Eq. 21) and the
  bootstrap head ŷ_boot = MLP(H) on the complete input's common features (Eq. 22).

Loss terms are returned unweighted (the trainer adds ℓ(y, ŷ) and applies the weights of Eq. 2 and
24: ``sim`` and ``diff`` α·λ, ``re`` α, ``recon`` β, ``boot`` 1).

Our reading of Fig. 3 (the positive/negative pairing did not survive the paper's text extraction):
common features — positives are the same sample's common features of the other modalities,
negatives every other sample's common features; specific features — positives are the same
modality's specific features of the other samples ("different batches", Eq. 4), negatives the
specific features of the other modalities.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Batch, clamp_lengths
from ..losses import club_upper_bound, gaussian_log_likelihood, info_nce
from .base import ModelOutput, MSAModel, OptimizerStep, adam

MODALITIES: tuple[str, str, str] = ("text", "audio", "vision")
#: The loss terms a training step returns (besides the trainer's ℓ(y, ŷ)), and the Table 2 switch of each.
#: L_re (part of L_decouple, Eq. 2) has no switch: Table 2 never removes it.
TERMS: dict[str, str | None] = {"sim": "use_sim", "diff": "use_diff", "re": None, "recon": "use_recon",
                                "boot": "use_boot"}


@dataclass
class DARConfig:
    """Hyper-parameters and switches of :class:`DAR` (the paper gives no sizes: ours are small).

    d, t: the aligned width and length of every modality (the alignment layer; the length is
    min(t, the longest modality's padded length), so one-frame features stay one frame). kernel: the alignment
    convolution's kernel (odd). heads, sa_layers: the common features' self-attention (Eq. 18).
    dropout: in the self-attention and the output MLP. temperature: τ of InfoNCE (Eq. 6).
    include_positive: False = Eq. 6 as printed (the denominator sums over the negatives only); True =
    the standard InfoNCE (the positive pair in the denominator too). club_hidden: q_θ's BiLSTM width
    per direction; club_steps: q_θ's maximum-likelihood steps per main step; club_lr: its learning
    rate (0 = the main one). detach_targets: stop the gradient of L_recon into the complete input's
    features (the paper says nothing; its bootstrap loss is there to keep the encoders from
    degenerating under the reconstruction loss, so by default the gradient flows).
    use_sim / use_diff / use_recon / use_boot: Table 2's switches (use_recon removes L_recon, which the
    paper's text also calls the "alignment loss"; L_re stays). boot_loss: ℓ of the bootstrap head (Eq. 23; the trainer's
    ``task_loss`` is the other ℓ).
    """

    d: int = 32
    t: int = 8
    kernel: int = 3
    heads: int = 2
    sa_layers: int = 2
    dropout: float = 0.1
    temperature: float = 0.1
    include_positive: bool = False
    club_hidden: int = 32
    club_steps: int = 5
    club_lr: float = 0.0
    detach_targets: bool = False
    use_sim: bool = True
    use_diff: bool = True
    use_recon: bool = True
    use_boot: bool = True
    boot_loss: Literal["mse", "l1"] = "mse"

    def __post_init__(self) -> None:
        if min(self.d, self.t, self.heads, self.sa_layers, self.club_hidden, self.club_steps) < 1:
            raise ValueError(f"DARConfig: d, t, heads, sa_layers, club_hidden and club_steps must be >= 1; got "
                             f"{self.d}, {self.t}, {self.heads}, {self.sa_layers}, {self.club_hidden}, "
                             f"{self.club_steps}")
        if self.d % self.heads:
            raise ValueError(f"DARConfig: heads ({self.heads}) must divide d ({self.d})")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"DARConfig: kernel must be an odd number >= 1; got {self.kernel}")
        if not self.temperature > 0 or self.club_lr < 0:
            raise ValueError(f"DARConfig: temperature must be > 0 and club_lr >= 0; got {self.temperature}, "
                             f"{self.club_lr}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DARConfig: dropout must be in [0, 1); got {self.dropout}")
        if self.boot_loss not in ("mse", "l1"):
            raise ValueError(f"DARConfig: boot_loss must be 'mse' or 'l1'; got {self.boot_loss!r}")


def pool_matrix(lengths: Tensor, t_in: int, t_out: int) -> Tensor:
    """(B, t_out, t_in) averaging weights: output slot s averages the valid input frames
    [⌊s·L/t_out⌋, ⌈(s+1)·L/t_out⌉) of a sample of length L (adaptive average pooling over each
    sample's own valid frames; a 1-frame sample is repeated t_out times)."""
    n = clamp_lengths(lengths, t_in).to(torch.float32)[:, None, None]  # (B, 1, 1)
    s = torch.arange(t_out, device=lengths.device, dtype=torch.float32)[None, :, None]
    k = torch.arange(t_in, device=lengths.device, dtype=torch.float32)[None, None, :]
    start, end = torch.floor(s * n / t_out), torch.ceil((s + 1) * n / t_out)
    w = ((k >= start) & (k < end)).to(torch.float32)
    return w / w.sum(-1, keepdim=True)


def mlp(d_in: int, d_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class Align(nn.Module):
    """The alignment layer: Conv1d(d_m -> d) + GELU, then pooled to length t. (B, T_m, d_m) -> (B, t, d)."""

    def __init__(self, d_in: int, c: DARConfig) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d_in, c.d, c.kernel, padding=c.kernel // 2)

    def forward(self, x: Tensor, lengths: Tensor, t: int) -> Tensor:
        h = F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # (B, T_m, d)
        return pool_matrix(lengths, x.shape[1], t).to(h) @ h


class GaussianEstimator(nn.Module):
    """q_θ(y | x) of CLUB (DAR Eq. 8-9): a BiLSTM over x, then a non-linear FC giving the mean and a
    tanh-bounded log-variance of y, per frame. (B, t, d) -> two (B, t, d)."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(d, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU())
        self.mu = nn.Linear(hidden, d)
        self.logvar = nn.Linear(hidden, d)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.fc(self.lstm(x)[0])
        return self.mu(h), torch.tanh(self.logvar(h))


class Gate(nn.Module):
    """g = σ(W [Ĥ; H̃] + b) (DAR Eq. 15); H_fused = g ⊙ Ĥ + (1 − g) ⊙ H̃ (Eq. 16, the typo corrected)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.w = nn.Linear(2 * d, d)

    def forward(self, restored: Tensor, erased: Tensor) -> Tensor:
        g = torch.sigmoid(self.w(torch.cat([restored, erased], dim=-1)))
        return g * restored + (1 - g) * erased


class CrossModalAttention(nn.Module):
    """h_{S→T} = softmax(Q_T K_Sᵀ / √d) V_S [−1] (DAR Eq. 19): the target's last query frame."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, target: Tensor, source: Tensor) -> Tensor:
        return F.scaled_dot_product_attention(self.q(target[:, -1:]), self.k(source), self.v(source))[:, 0]


@dataclass
class Decoupled:
    """One input's aligned features U¹_m and its common / specific features, each (B, t, d)."""

    aligned: dict[str, Tensor]
    common: dict[str, Tensor]
    specific: dict[str, Tensor]


def others(m: str) -> tuple[str, str]:
    return tuple(o for o in MODALITIES if o != m)  # type: ignore[return-value]


class DAR(MSAModel):
    """Decouple, reconstruct, fuse. Training (and validation-loss) batches carry the complete input
    (``batch.complete``) beside the erased one (``batch.features``) and get the loss terms; inference
    batches carry the erased input only."""

    display_name = "DAR"

    def __init__(self, dims: dict[str, int], config: DARConfig | None = None, n_classes: int | None = None) -> None:
        super().__init__()
        if n_classes is not None:
            raise ValueError("DAR regresses sentiment intensity (MOSI/MOSEI, its bootstrap head and task loss are "
                             f"regressions); it does not train on classification data ({n_classes} classes)")
        c = self.config = config or DARConfig()
        d = c.d
        each = lambda build: nn.ModuleDict({m: build(m) for m in MODALITIES})  # noqa: E731
        self.align = each(lambda m: Align(dims[m], c))
        self.enc_common = each(lambda m: mlp(d, d, d))  # DAR Eq. 1, E_c
        self.enc_specific = each(lambda m: mlp(d, d, d))  # DAR Eq. 1, E_s
        self.estimator = each(lambda m: GaussianEstimator(d, c.club_hidden))  # q_θ, DAR Eq. 9
        self.restore = each(lambda m: mlp(3 * d, d, d))  # D_m of DAR Eq. 10
        self.rec_common = each(lambda m: mlp(3 * d, d, d))  # E_com^m, DAR Eq. 12
        self.rec_specific = each(lambda m: mlp(d, d, d))  # E_spec^m, DAR Eq. 13
        self.decode = each(lambda m: mlp(2 * d, d, d))  # D_m of DAR Eq. 14
        self.gate_common, self.gate_specific = each(lambda m: Gate(d)), each(lambda m: Gate(d))
        self.self_attention = each(lambda m: nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, c.heads, 2 * d, dropout=c.dropout, batch_first=True), c.sa_layers,
            enable_nested_tensor=False))  # DAR Eq. 18
        self.cross = nn.ModuleDict({f"{s}->{m}": CrossModalAttention(d) for m in MODALITIES for s in others(m)})
        self.head = nn.Sequential(nn.Linear(9 * d, d), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(d, 1))  # Eq. 21
        self.boot_head = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Linear(d, 1))  # DAR Eq. 22
        self._estimator_cache: tuple[Batch, dict[str, tuple[Tensor, Tensor]]] | None = None

    # -- decouple ----------------------------------------------------------------------------

    def decouple(self, features: dict[str, Tensor], lengths: dict[str, Tensor]) -> Decoupled:
        """Align every modality (shared layer) and split it into common and specific features (Eq. 1)."""
        # t, but never longer than the longest input: on one-frame features t copies of the frame add nothing
        t = min(self.config.t, max(features[m].shape[1] for m in MODALITIES))
        aligned = {m: self.align[m](features[m], lengths[m], t) for m in MODALITIES}
        return Decoupled(aligned, {m: self.enc_common[m](aligned[m]) for m in MODALITIES},
                         {m: self.enc_specific[m](aligned[m]) for m in MODALITIES})

    def estimator_loss(self, batch: Batch) -> Tensor:
        """q_θ's maximum-likelihood loss on the batch's matched (specific, common) pairs of the erased
        input, the main network's features detached (computed once per batch, reused for every step)."""
        if self._estimator_cache is None or self._estimator_cache[0] is not batch:
            with torch.no_grad():
                erased = self.decouple(batch.features, batch.lengths)
            self._estimator_cache = (batch, {m: (erased.specific[m], erased.common[m]) for m in MODALITIES})
        pairs = self._estimator_cache[1]
        return -sum(gaussian_log_likelihood(*self.estimator[m](x), y) for m, (x, y) in pairs.items())

    def configure_optimizers(self, config) -> list[OptimizerStep]:
        """The main Adam over every parameter but q_θ's, and (with L_diff) q_θ's own Adam, stepped
        ``club_steps`` times per batch on :meth:`estimator_loss` before the main step."""
        estimator = {id(p) for p in self.estimator.parameters()}
        main = [p for p in self.parameters() if p.requires_grad and id(p) not in estimator]
        steps = [OptimizerStep(adam(main, config))]
        if self.config.use_diff:
            lr = self.config.club_lr or config.lr
            steps.append(OptimizerStep(adam(self.estimator.parameters(), config, lr=lr, weight_decay=0),
                                       self.estimator_loss, self.config.club_steps))
        return steps

    # -- the terms ---------------------------------------------------------------------------

    def similarity_loss(self, erased: Decoupled) -> Tensor:
        """L_sim = L_sim^com + L_sim^spec (DAR Eq. 4, 6-7) on the time-averaged erased features."""
        c = self.config
        b = erased.common["text"].shape[0]
        sample = torch.arange(b, device=erased.common["text"].device).repeat(len(MODALITIES))
        modality = torch.arange(len(MODALITIES), device=sample.device).repeat_interleave(b)
        same_sample, same_modality = sample[:, None] == sample[None, :], modality[:, None] == modality[None, :]
        z_com = torch.cat([erased.common[m].mean(1) for m in MODALITIES])
        z_spec = torch.cat([erased.specific[m].mean(1) for m in MODALITIES])
        com = info_nce(z_com, same_sample & ~same_modality, ~same_sample, c.temperature, c.include_positive)
        spec = info_nce(z_spec, same_modality & ~same_sample, ~same_modality, c.temperature, c.include_positive)
        return com + spec  # DAR Eq. 7

    def difference_loss(self, erased: Decoupled) -> Tensor:
        """L_diff = Σ_m CLUB(H̃^spec_m; H̃^com_m) (DAR Eq. 5, 9); gradients reach the features, not q_θ's
        optimizer (the main optimizer does not hold q_θ)."""
        return sum(club_upper_bound(*self.estimator[m](erased.specific[m]), erased.common[m]) for m in MODALITIES)

    def restoration_loss(self, erased: Decoupled) -> Tensor:
        """L_re = Σ_m ‖Ũ¹_m − D_m([H̃^com of the other two; H̃^spec_m])‖² (DAR Eq. 10-11), as a mean."""
        return sum(F.mse_loss(self.restore[m](torch.cat([*(erased.common[o] for o in others(m)),
                                                          erased.specific[m]], dim=-1)), erased.aligned[m])
                   for m in MODALITIES)

    # -- forward -----------------------------------------------------------------------------

    def forward(self, batch: Batch) -> ModelOutput:
        c = self.config
        erased = self.decouple(batch.features, batch.lengths)
        all_common = torch.cat([erased.common[m] for m in MODALITIES], dim=-1)
        restored_common = {m: self.rec_common[m](all_common) for m in MODALITIES}  # DAR Eq. 12
        restored_specific = {m: self.rec_specific[m](erased.specific[m]) for m in MODALITIES}  # DAR Eq. 13
        fused_common = {m: self.gate_common[m](restored_common[m], erased.common[m]) for m in MODALITIES}
        fused_specific = {m: self.gate_specific[m](restored_specific[m], erased.specific[m]) for m in MODALITIES}
        h_com = torch.cat([self.self_attention[m](fused_common[m])[:, -1] for m in MODALITIES], dim=-1)  # Eq. 18
        h_spec = torch.cat([self.cross[f"{s}->{m}"](fused_specific[m], fused_specific[s])  # DAR Eq. 19-20
                            for m in MODALITIES for s in others(m)], dim=-1)
        joint = torch.cat([h_com, h_spec], dim=-1)
        out = ModelOutput(self.head(joint).squeeze(-1), representation=joint,  # DAR Eq. 21
                          representations={"common": h_com, "specific": h_spec})
        if batch.complete is None:  # inference: the erased input only
            return out
        if batch.labels is None:
            raise ValueError("DAR's loss terms need regression labels (the batch has none)")
        terms: dict[str, Tensor] = {}
        if c.use_sim:
            terms["sim"] = self.similarity_loss(erased)
        if c.use_diff:
            terms["diff"] = self.difference_loss(erased)
        terms["re"] = self.restoration_loss(erased)
        if c.use_recon or c.use_boot:
            complete = self.decouple(batch.complete, batch.lengths)  # the complete input U_m
        if c.use_recon:
            target = (lambda x: x.detach()) if c.detach_targets else (lambda x: x)  # noqa: E731
            terms["recon"] = sum(  # DAR Eq. 14, 17
                F.mse_loss(restored_common[m], target(complete.common[m]))
                + F.mse_loss(restored_specific[m], target(complete.specific[m]))
                + F.mse_loss(self.decode[m](torch.cat([restored_common[m], restored_specific[m]], dim=-1)),
                             target(complete.aligned[m]))
                for m in MODALITIES)
        if c.use_boot:
            boot = self.boot_head(torch.cat([complete.common[m].mean(1) for m in MODALITIES], dim=-1)).squeeze(-1)
            ell = F.mse_loss if c.boot_loss == "mse" else F.l1_loss
            terms["boot"] = ell(boot, batch.labels.to(boot))  # DAR Eq. 22-23
        out.losses = terms
        return out

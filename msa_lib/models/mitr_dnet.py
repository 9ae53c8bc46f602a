"""MITR-DNet: Modality-Invariant Bidirectional Temporal Representation Distillation Network
(Wang et al., ICASSP 2025). Implemented from the paper's equations (grep ``MITR Eq.``):

* input masking F(X̄_m, g_m) with a random time mask g_m per modality: the trainer's ``frame``
  protocol (``batch.features`` masked, ``batch.complete`` the complete input, ``batch.keep`` the
  mask M_m: True where a frame is present);
* unimodal encoders 𝓔: one self-attention encoder layer per modality on the raw feature size
  (1 head, causal mask: the released code's encoder) -> E_m;
* MIB-TRL (Eq. 1-3): two identical convolutions, then a forward and a backward stack of n
  time-aware modules 𝓕 (dilated causal conv, kernel 2, dilation 2^(i-1); tanh·σ; 1x1 conv;
  residual); Z_m^i = f_m^i(→𝓕) + f_m^i(←𝓕), Z_m = Σ_i Z_m^i;
* Transformer Fusion (Eq. 4-10), text-centred, on one token per modality (the mean of Z_m over the
  valid frames);
* the objective (Eq. 11-20): the student's L1 task loss (the trainer's, ``task_loss="l1"``), the
  teacher's, distillation (Eq. 13-15), reconstruction at the masked positions only (Eq. 16-17) and
  SimSiam (Eq. 18-20). The model returns each term unweighted; λ1, λ2, λ3 are loss weights.

Two readings of the paper against its released code are switches (``teacher``, ``backward``):
see :class:`MITRConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Batch, clamp_lengths, masked_mean, valid_mask
from ..losses import masked_smooth_l1, simsiam
from .base import ModelOutput, MSAModel, Stage

MODALITIES: tuple[str, str, str] = ("text", "audio", "vision")
TEACHERS: tuple[str, ...] = ("shared", "frozen")
BACKWARDS: tuple[str, ...] = ("time", "features")
FUSIONS: tuple[str, ...] = ("tf", "sum")
PHASES: tuple[str, ...] = ("both", "teacher", "student")
#: The loss terms a training step returns, by group (λ1 weighs ``dis_*``, λ2 ``rec_en``, λ3 ``sim_en``).
TERMS: dict[str, tuple[str, ...]] = {
    "teacher": ("teacher",),
    "dis": ("dis_ts_mib", "dis_ts_tf", "dis_ss_tf"),
    "rec": ("rec_en", "rec_mib"),
    "sim": ("sim_mib", "sim_en"),
}


@dataclass
class MITRConfig:
    """Hyper-parameters and readings of :class:`MITRDNet` (the paper gives no sizes: ours are small).

    d: width of MIB-TRL and the fusion. encoder_dim: width of the unimodal encoders; 0 = each
    modality's raw feature size (the released code); > 0 = a linear projection to that size first
    (the CPU profiles: a 768-d BERT encoder dominates the step). n_modules: n, the modules 𝓕 per direction (paper: 4;
    Table II sweeps 1-5). encoder_heads / encoder_causal: the unimodal encoders (released code: one
    layer, one head, causal mask). share_blocks: the backward direction reuses the forward
    direction's modules (released code) or has its own. proj_dim / pred_dim: SimSiam projector
    output and predictor bottleneck. dropout: on the fusion MLPs.

    teacher: "shared" (released code: one network on the complete and on the masked view, trained
        jointly, distillation targets not detached; the teacher's task term |y - Ȳ| is added) or
        "frozen" (the paper's Fig. 2: a teacher network trained first on complete data with Eq. 11,
        then frozen while a student network trains with Eq. 12).
    phase: for ``teacher="frozen"``: "both" stages in one run, "teacher" only (the run the students
        of every missing rate start from, ``RunSpec.init_from``), or "student" only (the teacher's
        weights come from ``init_from``).
    backward: the backward direction of MIB-TRL: "time" (the paper: the sequence reversed in time,
        each sample within its valid length) or "features" (the released code: the channel axis of
        the (B, C, T) tensor flipped; the time order is unchanged, so the "backward" stack is a
        second causal stack).
    fusion: "tf" (Transformer Fusion, Eq. 4-10) or "sum" (Table III, w/o TF: the sum of the pooled
        Z_m through an MLP).
    use_dis / use_rec / use_sim: the loss groups of Eq. 12 (Table IV).
    """

    d: int = 32
    encoder_dim: int = 0
    n_modules: int = 4
    encoder_heads: int = 1
    encoder_causal: bool = True
    share_blocks: bool = True
    proj_dim: int = 32
    pred_dim: int = 16
    dropout: float = 0.1
    teacher: Literal["shared", "frozen"] = "shared"
    phase: Literal["both", "teacher", "student"] = "both"
    backward: Literal["time", "features"] = "time"
    fusion: Literal["tf", "sum"] = "tf"
    use_dis: bool = True
    use_rec: bool = True
    use_sim: bool = True

    def __post_init__(self) -> None:
        for name, valid in (("teacher", TEACHERS), ("backward", BACKWARDS), ("fusion", FUSIONS), ("phase", PHASES)):
            if getattr(self, name) not in valid:
                raise ValueError(f"MITRConfig: {name} must be one of {valid}; got {getattr(self, name)!r}")
        if self.phase != "both" and self.teacher != "frozen":
            raise ValueError(f"MITRConfig: phase={self.phase!r} needs teacher='frozen' (a shared network has one phase)")
        if self.encoder_dim < 0:
            raise ValueError(f"MITRConfig: encoder_dim must be >= 0 (0 = the raw feature sizes); got {self.encoder_dim}")
        if min(self.d, self.n_modules, self.encoder_heads, self.proj_dim, self.pred_dim) < 1:
            raise ValueError(f"MITRConfig: d, n_modules, encoder_heads, proj_dim and pred_dim must be >= 1; got "
                             f"{self.d}, {self.n_modules}, {self.encoder_heads}, {self.proj_dim}, {self.pred_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MITRConfig: dropout must be in [0, 1); got {self.dropout}")


# ----------------------------------------------------------------------------------------------
# MIB-TRL
# ----------------------------------------------------------------------------------------------


def reverse_valid(x: Tensor, lengths: Tensor) -> Tensor:
    """(B, T, D): each sample's valid frames in reverse order, padding left where it was (after
    them): frame t < L of sample b becomes frame L - 1 - t."""
    b, t, _ = x.shape
    pos = torch.arange(t, device=x.device)[None, :]
    lens = clamp_lengths(lengths, t).to(x.device)[:, None]
    idx = torch.where(pos < lens, lens - 1 - pos, pos)
    return x.gather(1, idx[..., None].expand_as(x))


class TimeAwareModule(nn.Module):
    """𝓕 (MITR Eq. 1-2): y_dc = DConv(y, d_i) (dilated causal, kernel 2); ξ = tanh(y_dc)·σ(y_dc);
    η = Conv1x1(ξ); y' = η + y. Input and output (B, T, C), channels last: the kernel-2 convolution
    is one linear map of [y_{t-d}; y_t] (zeros before the start), the 1x1 convolution a linear map
    of ξ_t — the same operations as ``nn.Conv1d``, several times cheaper on CPU at these sizes."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.dconv = nn.Linear(2 * channels, channels)  # taps [y_{t-d}, y_t]
        self.pointwise = nn.Linear(channels, channels)

    def forward(self, y: Tensor) -> Tensor:
        past = F.pad(y, (0, 0, self.dilation, 0))[:, : y.shape[1]]  # y_{t-d}, zero for t < d: causal
        y_dc = self.dconv(torch.cat([past, y], dim=-1))  # MITR Eq. 1, DConv(y, d_i)
        xi = torch.tanh(y_dc) * torch.sigmoid(y_dc)  # MITR Eq. 1
        return self.pointwise(xi) + y  # MITR Eq. 2


class CausalStack(nn.Module):
    """n modules 𝓕 with dilations 1, 2, ..., 2^(n-1); returns every module's output f^i (B, T, C)."""

    def __init__(self, channels: int, n_modules: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TimeAwareModule(channels, 2 ** i) for i in range(n_modules))

    @property
    def receptive_field(self) -> int:
        """Frames (the current one included) an output can see: 1 + Σ_i 2^(i-1) = 2^n."""
        return 1 + sum(b.dilation for b in self.blocks)

    def forward(self, y: Tensor) -> list[Tensor]:
        outs = []
        for block in self.blocks:
            y = block(y)
            outs.append(y)
        return outs


class MIBTRL(nn.Module):
    """MIB-TRL for one modality (MITR Eq. 3): two identical convolutions (kernel 1, so the forward
    direction stays causal), a forward and a backward stack of 𝓕; Z = Σ_i (f^i(→) + f^i(←)).
    Input (B, T, f_m), output (B, T, d), zero on padding."""

    def __init__(self, d_in: int, d: int, n_modules: int, share_blocks: bool, backward: str) -> None:
        super().__init__()
        self.backward = backward
        self.convs = nn.Sequential(nn.Linear(d_in, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU())  # kernel-1 convs
        self.forward_stack = CausalStack(d, n_modules)
        self.backward_stack = self.forward_stack if share_blocks else CausalStack(d, n_modules)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        valid = valid_mask(clamp_lengths(lengths, x.shape[1]).to(x.device), x.shape[1])[..., None]
        y = self.convs(x) * valid  # (B, T, d)
        # the paper: the sequence reversed in time (and the outputs back); the released code: the
        # channel axis of its (B, C, T) tensor flipped (and flipped back here)
        y_bwd = reverse_valid(y, lengths) if self.backward == "time" else y.flip(-1)
        if self.backward_stack is self.forward_stack:  # shared modules: both directions in one batch
            both = self.forward_stack(torch.cat([y, y_bwd]))
            fwd, bwd = [o[: len(y)] for o in both], [o[len(y):] for o in both]
        else:
            fwd, bwd = self.forward_stack(y), self.backward_stack(y_bwd)
        if self.backward == "time":
            bwd = [reverse_valid(o, lengths) for o in bwd]
        else:
            bwd = [o.flip(-1) for o in bwd]
        z = sum(f + b for f, b in zip(fwd, bwd))  # MITR Eq. 3
        return z * valid


# ----------------------------------------------------------------------------------------------
# Transformer Fusion
# ----------------------------------------------------------------------------------------------


def mlp(d: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d, d))


class TransformerFusion(nn.Module):
    """Text-centred Transformer Fusion (MITR Eq. 4-10) on one token per modality, (B, d) each.

    Eq. 8 and Eq. 9 write the same MLP term twice (MLP(Y_t↔v) + Y + MLP(Y_t↔v)): implemented
    literally, with two separately parameterised MLPs per path."""

    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        self.sa = nn.ModuleDict({k: nn.MultiheadAttention(d, 1, batch_first=True) for k in ("tv", "ta")})
        self.ca = nn.ModuleDict({k: nn.MultiheadAttention(d, 1, batch_first=True) for k in ("vta", "atv")})
        self.y_mlp = nn.ModuleDict({k: mlp(d, dropout) for k in ("tv", "ta")})  # Y_t↔v, Y_t↔a (Eq. 5)
        self.ca_mlp = nn.ModuleDict({k: mlp(d, dropout) for k in ("vta", "atv")})  # Eq. 7
        self.aux = nn.ModuleDict({k: nn.ModuleList([mlp(d, dropout), mlp(d, dropout)]) for k in ("vta", "atv")})

    def forward(self, x: dict[str, Tensor]) -> Tensor:
        tok = {m: v[:, None, :] for m, v in x.items()}  # (B, 1, d)
        pair = {"tv": tok["text"] + tok["vision"], "ta": tok["text"] + tok["audio"]}
        sa = {k: self.sa[k](p, p, p, need_weights=False)[0] + p for k, p in pair.items()}  # MITR Eq. 4
        y = {k: self.y_mlp[k](s) for k, s in sa.items()}  # MITR Eq. 5
        out = 0
        for path, (q, kv) in {"vta": ("tv", "ta"), "atv": ("ta", "tv")}.items():  # MITR Eq. 6
            attended = self.ca[path](sa[q], sa[kv], sa[kv], need_weights=False)[0]
            y_path = self.ca_mlp[path](attended)  # MITR Eq. 7
            first, second = self.aux[path]
            out = out + first(y[q]) + y_path + second(y[q])  # MITR Eq. 8 / 9, summed: Eq. 10
        return out[:, 0]


class MITRNetwork(nn.Module):
    """One MITR-DNet network (teacher or student): encoders -> MIB-TRL -> pooling -> fusion -> head,
    plus the reconstruction decoders and SimSiam heads its losses use."""

    def __init__(self, dims: dict[str, int], c: MITRConfig, n_out: int) -> None:
        super().__init__()
        enc = {m: c.encoder_dim or dims[m] for m in MODALITIES}
        odd = {m: k for m, k in enc.items() if k % c.encoder_heads}
        if odd:
            raise ValueError(f"MITRConfig: encoder_heads={c.encoder_heads} must divide every encoder width; "
                             f"{odd} do not (set encoder_dim, or encoder_heads=1 as the released code)")
        self.inputs = nn.ModuleDict({m: nn.Linear(dims[m], enc[m]) if c.encoder_dim else nn.Identity()
                                     for m in MODALITIES})
        self.encoders = nn.ModuleDict({m: nn.TransformerEncoderLayer(
            enc[m], c.encoder_heads, dim_feedforward=2 * enc[m],
            dropout=c.dropout, batch_first=True) for m in MODALITIES})
        self.mib = nn.ModuleDict({m: MIBTRL(enc[m], c.d, c.n_modules, c.share_blocks, c.backward) for m in MODALITIES})
        self.fusion = TransformerFusion(c.d, c.dropout) if c.fusion == "tf" else mlp(c.d, c.dropout)
        self.head = nn.Linear(c.d, n_out)
        # reconstruction decoders back to the input features (MITR Eq. 16)
        self.dec_en = nn.ModuleDict({m: nn.Sequential(nn.Linear(enc[m], enc[m]), nn.ReLU(), nn.Linear(enc[m], dims[m]))
                                     for m in MODALITIES})
        self.dec_mib = nn.ModuleDict({m: nn.Sequential(nn.Linear(c.d, c.d), nn.ReLU(), nn.Linear(c.d, dims[m]))
                                      for m in MODALITIES})
        # SimSiam (MITR Eq. 18): h = projector (Linear + BN without affine), f = predictor ∘ projector
        self.proj_en = nn.ModuleDict({m: projector(enc[m], c.proj_dim) for m in MODALITIES})
        self.proj_mib = nn.ModuleDict({m: projector(c.d, c.proj_dim) for m in MODALITIES})
        self.pred = nn.ModuleDict({k: predictor(c.proj_dim, c.pred_dim) for k in ("en", "mib")})
        self.causal = c.encoder_causal
        self.sum_fusion = c.fusion == "sum"

    def forward(self, features: dict[str, Tensor], lengths: dict[str, Tensor]) -> dict:
        e, z, pooled = {}, {}, {}
        for m in MODALITIES:
            x = features[m]
            t = x.shape[1]
            lens = clamp_lengths(lengths[m], t).to(x.device)
            pad = ~valid_mask(lens, t)
            causal = nn.Transformer.generate_square_subsequent_mask(t, device=x.device, dtype=torch.bool) \
                if self.causal else None
            e[m] = self.encoders[m](self.inputs[m](x), src_mask=causal, src_key_padding_mask=pad) * (~pad)[..., None]
            z[m] = self.mib[m](e[m], lens)
            pooled[m] = masked_mean(z[m], lens)  # one token per modality, valid frames only
        y = self.fusion(sum(pooled.values())) if self.sum_fusion else self.fusion(pooled)
        return {"E": e, "Z": z, "X": pooled, "Y": y, "out": self.head(y)}


def split_outputs(outputs: dict, n: int) -> tuple[dict, dict]:
    """Split a :class:`MITRNetwork` output of a doubled batch into its first ``n`` samples and the rest."""
    def part(v, sl):
        return {k: part(x, sl) for k, x in v.items()} if isinstance(v, dict) else v[sl]

    return part(outputs, slice(None, n)), part(outputs, slice(n, None))


class BatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that passes a training batch of one sample through unchanged (batch statistics
    cannot normalise one sample; the trainer's last batch of an epoch can be that small)."""

    def forward(self, x: Tensor) -> Tensor:
        return x if self.training and x.shape[0] < 2 else super().forward(x)


def projector(d_in: int, d_out: int) -> nn.Sequential:
    """SimSiam projector h (MITR Eq. 18): Linear + BatchNorm without affine parameters."""
    return nn.Sequential(nn.Linear(d_in, d_out), BatchNorm(d_out, affine=False))


def predictor(d: int, bottleneck: int) -> nn.Sequential:
    """SimSiam predictor (f = predictor ∘ h, MITR Eq. 18): a bottleneck MLP."""
    return nn.Sequential(nn.Linear(d, bottleneck), BatchNorm(bottleneck), nn.ReLU(), nn.Linear(bottleneck, d))


# ----------------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------------


class MITRDNet(MSAModel):
    """Teacher (complete input) and student (masked input); see :class:`MITRConfig` for the readings.

    Training batches carry the masked input in ``features`` and the complete one in ``complete``
    (any training protocol; the trainer fills ``complete``) and get the loss terms; so do the
    validation-loss batches (eval mode, no dropout), which early stopping selects on. At inference
    (no ``complete``) the student (the shared network, or the frozen reading's student; in the
    frozen reading's teacher stage, the teacher) predicts from the input it is given.
    """

    display_name = "MITR-DNet"

    def __init__(self, dims: dict[str, int], config: MITRConfig | None = None, n_classes: int | None = None) -> None:
        super().__init__()
        self.config = c = config or MITRConfig()
        self.n_classes = n_classes
        n_out = 1 if n_classes is None else 2 * n_classes
        self.student = MITRNetwork(dims, c, n_out)
        self.teacher = MITRNetwork(dims, c, n_out) if c.teacher == "frozen" else self.student
        self.stage = self.stages(None)[-1].name

    def stages(self, config) -> list[Stage]:
        """shared: one stage; frozen: the teacher on complete data, then the student with the teacher
        frozen (``phase`` keeps one of them)."""
        if self.config.teacher == "shared":
            return [Stage()]
        teacher = Stage("teacher", protocol="complete", freeze=("student",))
        student = Stage("student", freeze=("teacher",))
        return {"both": [teacher, student], "teacher": [teacher], "student": [student]}[self.config.phase]

    def _shape(self, out: Tensor) -> Tensor:
        return out.squeeze(-1) if self.n_classes is None else out.view(-1, self.n_classes, 2)

    def forward(self, batch: Batch) -> ModelOutput:
        c = self.config
        teacher_only = c.teacher == "frozen" and self.stage == "teacher"
        net = self.teacher if teacher_only else self.student
        with_losses = not teacher_only and batch.complete is not None  # training or the validation loss
        if with_losses and c.teacher == "shared":  # one network: both views in one batch (no op mixes samples)
            both = net({m: torch.cat([batch.features[m], batch.complete[m]]) for m in MODALITIES},
                       {m: torch.cat([batch.lengths[m], batch.lengths[m]]) for m in MODALITIES})
            s, t = split_outputs(both, batch.size)
        else:
            s = net(batch.features, batch.lengths)
        out = ModelOutput(prediction=self._shape(s["out"]), representation=s["Y"])
        if not with_losses:
            return out  # inference, or Eq. 11 (the trainer's task loss alone)
        if c.teacher == "frozen":
            with torch.no_grad():
                t = self.teacher(batch.complete, batch.lengths)
        else:
            # the teacher's task term |y - Ȳ| (released code: both views trained jointly)
            if batch.labels is not None:
                out.losses["teacher"] = F.l1_loss(self._shape(t["out"]), batch.labels)
            else:
                out.losses["teacher"] = F.cross_entropy(t["out"].reshape(-1, 2), batch.class_labels.reshape(-1))
        if c.use_dis:  # MITR Eq. 13-14 (λ1 is the loss weight of each: Eq. 15)
            out.losses["dis_ts_mib"] = sum(F.mse_loss(s["X"][m], t["X"][m]) for m in MODALITIES)
            out.losses["dis_ts_tf"] = sum(F.l1_loss(s["X"][m], t["Y"]) for m in MODALITIES)
            out.losses["dis_ss_tf"] = sum(F.mse_loss(s["X"][m], s["Y"]) for m in MODALITIES)
        if c.use_rec:  # MITR Eq. 16-17: decoders back to the complete input, masked positions only
            missing = {m: valid_mask(clamp_lengths(batch.lengths[m], batch.features[m].shape[1]),
                                     batch.features[m].shape[1]) & ~batch.keep[m] for m in MODALITIES}
            out.losses["rec_en"] = sum(masked_smooth_l1(net.dec_en[m](s["E"][m]), batch.complete[m], missing[m])
                                       for m in MODALITIES)
            out.losses["rec_mib"] = sum(masked_smooth_l1(net.dec_mib[m](s["Z"][m]), batch.complete[m], missing[m])
                                        for m in MODALITIES)
        if c.use_sim:  # MITR Eq. 18-20, on the pooled encoder outputs and MIB-TRL tokens
            lens = {m: clamp_lengths(batch.lengths[m], batch.features[m].shape[1]) for m in MODALITIES}
            tokens = {"en": lambda r, m: masked_mean(r["E"][m], lens[m]), "mib": lambda r, m: r["X"][m]}
            for key, proj in (("en", net.proj_en), ("mib", net.proj_mib)):
                terms = []
                for m in MODALITIES:
                    z_s, z_t = proj[m](tokens[key](s, m)), proj[m](tokens[key](t, m))  # h(·)
                    terms.append(simsiam(net.pred[key](z_s), z_s, net.pred[key](z_t), z_t))  # f = pred ∘ h
                out.losses[f"sim_{key}"] = sum(terms)
        return out

"""SDUMC: Double-Flow Self-Distillation with Unified Modality Cross-Attention (UMCA) and the
Modality Imagination Autoencoder (MIA) for a missing text modality (Weng et al., 2024).
Implemented from the paper's equations (grep ``SDUMC Eq.``):

* the cross-attention unit (Eq. 1-2): K_m = tanh(W V_m + b), R_m = softmax(Q K_mᵀ / τ) V_m;
* UMCA stage 1: per-modality MLP to width D (E_m), a learnable Gaussian query Q_m (1 × D) per
  modality, R_m by cross-attention; AFG: the three R_m concatenated -> MLP -> three attention
  weights -> the weighted sums of the 7 modality combinations (an unused modality's weight set to
  0, the others kept) = the multi-view query Q_multv (7 × D);
* UMCA stage 2: Q_multv queries each modality's K_m / V_m -> R_m^seq; AFG over R_m^seq -> the final
  representation r -> regression head;
* the text simulator standing in for LLM_g (Eq. 4), pluggable (:class:`SDUMCConfig` ``text_sim``);
* MIA (Eq. 5-6), a residual autoencoder that refines the simulated text representation from the
  other two, after stage 1 (MIA-1, on R_m) and after stage 2 (MIA-2, on R_m^seq), in the
  text-missing flow only;
* the double flow: one network, two flows per training batch (the trainer's two views: the batch,
  and the same batch with the text removed); the objective (Eq. 7-12): the trainer's MSE task loss
  on the complete flow plus the model's terms ``task_missing`` (Eq. 8 on the text-missing flow),
  ``mkd1`` / ``mkd2`` (Eq. 9, the real text representation detached), ``rs`` (Eq. 10) and ``rnc``
  (Rank-N-Contrast over both flows' 2N representations, Eq. 11-12), returned unweighted: α, β, γ, δ
  are the trainer's loss weights. The learned simulator adds ``text_sim`` (its regression onto the
  real text features).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Batch, clamp_lengths, masked_mean, valid_mask
from ..losses import rank_n_contrast, rmse
from ..missing import SUBSETS
from .base import MaskView, ModelOutput, MSAModel

MODALITIES: tuple[str, str, str] = ("text", "audio", "vision")
TEXT_SIMS: tuple[str, ...] = ("learned", "precomputed", "none")
#: The loss terms a training step returns (besides the trainer's task term on the complete flow).
TERMS: tuple[str, ...] = ("task_missing", "mkd1", "mkd2", "rs", "rnc", "text_sim")
#: The 7 modality combinations of Q_multv (rows) over (text, audio, vision) (columns): 1 = used.
COMBINATIONS: Tensor = torch.tensor([[float(letter in s) for letter in "lav"] for s in SUBSETS])


@dataclass
class SDUMCConfig:
    """Hyper-parameters and switches of :class:`SDUMC` (the paper gives no sizes: ours are small).

    d: D, the width of UMCA (Eq. 1-2). mia_hidden: D', the width of MIA's hidden state H_t (Eq. 5).
    attn_scale: τ of Eq. 2; 0 = sqrt(D). dropout: on the regression head.
    text_sim: the stand-in for LLM_g (Eq. 4) in the text-missing flow:
        "learned" — a small transformer over the audio frames projected to the text feature size,
        trained jointly to regress the real text features (term ``text_sim``);
        "precomputed" — simulated text features the data file holds under ``text_sim_key`` (e.g.
        SLAM-ASR + Vicuna run offline; load the data with ``extra_keys=(key,)``);
        "none" — no simulated text: imagination from audio and vision only (Table I, "w/o LLM_g").
    sim_dim / sim_layers / sim_heads: the learned simulator's width, encoder layers and heads.
    use_mia / use_mkd / use_rs / use_rnc: Table I's switches (MIA-1 and MIA-2; L_MKD1 and L_MKD2;
        L_RS; L_RNC).
    rnc_temperature: τ of Eq. 11 (the official Rank-N-Contrast default, 2). rnc_dim: 0 = Rank-N-
        Contrast on r itself (the paper); > 0 = on a linear projection of r to that width (the
        released code: 64).
    text_present: at inference, None = per sample (the text-missing flow, MIA on, for a sample
        whose text has no present frame), True = always the complete flow, False = always the
        text-missing flow.
    """

    d: int = 32
    mia_hidden: int = 32
    attn_scale: float = 0.0
    dropout: float = 0.1
    text_sim: Literal["learned", "precomputed", "none"] = "learned"
    text_sim_key: str = ""
    sim_dim: int = 32
    sim_layers: int = 2
    sim_heads: int = 2
    use_mia: bool = True
    use_mkd: bool = True
    use_rs: bool = True
    use_rnc: bool = True
    rnc_temperature: float = 2.0
    rnc_dim: int = 0
    text_present: bool | None = None

    def __post_init__(self) -> None:
        if self.text_sim not in TEXT_SIMS:
            raise ValueError(f"SDUMCConfig: text_sim must be one of {TEXT_SIMS}; got {self.text_sim!r}")
        if (self.text_sim == "precomputed") != bool(self.text_sim_key):
            raise ValueError("SDUMCConfig: text_sim='precomputed' needs text_sim_key (the data file's key of the "
                             f"simulated text features), and only it takes one; got text_sim={self.text_sim!r}, "
                             f"text_sim_key={self.text_sim_key!r}")
        if min(self.d, self.mia_hidden, self.sim_dim, self.sim_layers, self.sim_heads) < 1:
            raise ValueError(f"SDUMCConfig: d, mia_hidden, sim_dim, sim_layers and sim_heads must be >= 1; got "
                             f"{self.d}, {self.mia_hidden}, {self.sim_dim}, {self.sim_layers}, {self.sim_heads}")
        if self.sim_dim % self.sim_heads:
            raise ValueError(f"SDUMCConfig: sim_heads ({self.sim_heads}) must divide sim_dim ({self.sim_dim})")
        if self.attn_scale < 0 or self.rnc_dim < 0 or not self.rnc_temperature > 0:
            raise ValueError(f"SDUMCConfig: attn_scale and rnc_dim must be >= 0 and rnc_temperature > 0; got "
                             f"{self.attn_scale}, {self.rnc_dim}, {self.rnc_temperature}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"SDUMCConfig: dropout must be in [0, 1); got {self.dropout}")
        if self.text_present not in (None, True, False):
            raise ValueError(f"SDUMCConfig: text_present must be None (per sample), True or False; got "
                             f"{self.text_present!r}")


# ----------------------------------------------------------------------------------------------
# UMCA
# ----------------------------------------------------------------------------------------------


class CrossAttention(nn.Module):
    """The cross-attention unit: K = tanh(W V + b) (SDUMC Eq. 1), R = softmax(Q Kᵀ / τ) V (Eq. 2),
    padding frames masked out. ``query``: (n_q, D) shared by the batch or (B, n_q, D)."""

    def __init__(self, d: int, scale: float) -> None:
        super().__init__()
        self.key = nn.Linear(d, d)
        self.scale = scale

    def forward(self, query: Tensor, values: Tensor, pad: Tensor) -> Tensor:
        keys = torch.tanh(self.key(values))  # SDUMC Eq. 1
        scores = torch.matmul(query, keys.transpose(1, 2)) / self.scale  # (B, n_q, T)
        scores = scores.masked_fill(pad[:, None, :], float("-inf"))
        return torch.softmax(scores, dim=-1) @ values  # SDUMC Eq. 2


class AFG(nn.Module):
    """Attention-guided Feature Gathering: the three modality representations concatenated -> MLP
    -> three attention weights (softmax). ``forward``: (..., 3, D) -> (..., 3) weights."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3 * d, d), nn.ReLU(), nn.Linear(d, 3))

    def forward(self, stacked: Tensor) -> Tensor:
        return torch.softmax(self.mlp(stacked.flatten(-2)), dim=-1)


def multi_view_query(r: Tensor, weights: Tensor) -> Tensor:
    """Q_multv (B, 7, D): for each of the 7 combinations of :data:`COMBINATIONS`, the sum of the
    used modalities' R_m weighted by AFG's weights (an unused modality's weight set to 0, the others
    kept, not renormalised). r: (B, 3, D), weights (B, 3)."""
    w = COMBINATIONS.to(r)[None] * weights[:, None, :]  # (B, 7, 3)
    return w @ r


class MIA(nn.Module):
    """Modality Imagination Autoencoder (residual): H_t = f(W1 [R_v; R_a; R̂_t] + b1) (SDUMC Eq. 5),
    R̂_t <- R̂_t + f(W2 H_t + b2) (Eq. 6); f = tanh. Works on (..., D)."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.encode = nn.Linear(3 * d, hidden)
        self.decode = nn.Linear(hidden, d)

    def forward(self, r_text: Tensor, r_audio: Tensor, r_vision: Tensor) -> Tensor:
        h = torch.tanh(self.encode(torch.cat([r_vision, r_audio, r_text], dim=-1)))  # SDUMC Eq. 5
        return r_text + torch.tanh(self.decode(h))  # SDUMC Eq. 6


class TextSimulator(nn.Module):
    """The learned stand-in for LLM_g (SDUMC Eq. 4): a small transformer encoder over the audio frames,
    projected to the text feature size. (B, T_a, d_a) -> (B, T_a, d_t), valid where the audio is."""

    def __init__(self, d_audio: int, d_text: int, c: SDUMCConfig) -> None:
        super().__init__()
        self.inp = nn.Linear(d_audio, c.sim_dim)
        layer = nn.TransformerEncoderLayer(c.sim_dim, c.sim_heads, 2 * c.sim_dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.sim_layers, enable_nested_tensor=False)
        self.out = nn.Linear(c.sim_dim, d_text)

    def forward(self, audio: Tensor, lengths: Tensor) -> Tensor:
        pad = ~valid_mask(lengths, audio.shape[1])
        h = self.encoder(self.inp(audio), src_key_padding_mask=pad)
        return self.out(h) * (~pad)[..., None]


@dataclass
class Inputs:
    """One flow's inputs after the modality MLPs: E_m (B, T_m, D) and padding masks (B, T_m)."""

    e: dict[str, Tensor]
    pad: dict[str, Tensor]


# ----------------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------------


class SDUMC(MSAModel):
    """One UMCA network, two flows: complete (v, a, t) and text-missing (v, a, simulated t -> MIA).

    Training batches carry two views (:meth:`training_views`): the batch under the run's protocol and
    the same batch with the text removed. At inference the flow follows ``config.text_present``.
    """

    display_name = "SDUMC"
    n_views = 2

    def __init__(self, dims: dict[str, int], config: SDUMCConfig | None = None, n_classes: int | None = None) -> None:
        super().__init__()
        if n_classes is not None:
            raise ValueError("SDUMC regresses sentiment valence (its Rank-N-Contrast loss needs continuous labels); "
                             f"it does not train on classification data ({n_classes} classes)")
        self.config = c = config or SDUMCConfig()
        self.dims = dict(dims)
        d = c.d
        scale = c.attn_scale or d ** 0.5
        self.inputs = nn.ModuleDict({m: nn.Sequential(nn.Linear(dims[m], d), nn.ReLU(), nn.Linear(d, d))
                                     for m in MODALITIES})
        self.queries = nn.Parameter(torch.randn(len(MODALITIES), 1, d))  # Q_m, Gaussian-initialised
        self.stage1 = nn.ModuleDict({m: CrossAttention(d, scale) for m in MODALITIES})
        self.stage2 = nn.ModuleDict({m: CrossAttention(d, scale) for m in MODALITIES})
        self.afg1, self.afg2 = AFG(d), AFG(d)
        n_views = len(COMBINATIONS)
        self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(n_views * d, d), nn.ReLU(), nn.Linear(d, 1))
        self.mia1 = MIA(d, c.mia_hidden) if c.use_mia else None
        self.mia2 = MIA(d, c.mia_hidden) if c.use_mia else None
        self.simulator = TextSimulator(dims["audio"], dims["text"], c) if c.text_sim == "learned" else None
        self.rnc_proj = nn.Linear(n_views * d, c.rnc_dim) if c.use_rnc and c.rnc_dim else None

    def training_views(self, protocol) -> list:
        """The two flows: the batch under ``protocol``, and the same batch with the text removed (a
        per-batch protocol draws each flow's mask independently)."""
        return [MaskView(protocol), TextRemoved(MaskView(protocol))]

    # -- flows --------------------------------------------------------------------------------

    def encode(self, features: dict[str, Tensor], lengths: dict[str, Tensor], text: tuple[Tensor, Tensor] | None
               ) -> Inputs:
        """E_m for audio, vision and ``text`` = (features, lengths) (the simulated text in the
        text-missing flow; None: no text at all)."""
        e, pad = {}, {}
        sources = {"audio": (features["audio"], lengths["audio"]), "vision": (features["vision"], lengths["vision"])}
        if text is not None:
            sources["text"] = text
        for m, (x, lens) in sources.items():
            lens = clamp_lengths(lens, x.shape[1]).to(x.device)
            e[m], pad[m] = self.inputs[m](x), ~valid_mask(lens, x.shape[1])
        return Inputs(e, pad)

    def flow(self, x: Inputs, missing: bool) -> dict[str, Tensor]:
        """UMCA on one flow; ``missing``: the text-missing flow (MIA on, when present). Returns R
        (B, 3, D), Rseq (B, 7, 3, D), r (B, 7·D) and the prediction (B,)."""
        some = next(iter(x.e.values()))
        b = some.shape[0]

        def attend(units, queries):  # queries: modality -> (n_q, D) or (B, n_q, D)
            out = []
            for m in MODALITIES:
                if m in x.e:
                    out.append(units[m](queries[m], x.e[m], x.pad[m]))
                else:  # no simulated text ("w/o LLM_g"): imagination starts from zeros
                    out.append(some.new_zeros(b, queries[m].shape[-2], some.shape[-1]))
            return torch.stack(out, dim=-2)  # (B, n_q, 3, D)

        r1 = attend(self.stage1, dict(zip(MODALITIES, self.queries))).squeeze(1)  # Q_m per modality: (B, 3, D)
        if missing and self.mia1 is not None:  # MIA-1 (SDUMC Eq. 5-6) on R̂_t
            r1 = torch.stack([self.mia1(r1[:, 0], r1[:, 1], r1[:, 2]), r1[:, 1], r1[:, 2]], dim=1)
        q = multi_view_query(r1, self.afg1(r1))  # Q_multv (B, 7, D)
        r2 = attend(self.stage2, dict.fromkeys(MODALITIES, q))  # R_m^seq (B, 7, 3, D)
        if missing and self.mia2 is not None:  # MIA-2 on R̂_t^seq
            r2 = torch.stack([self.mia2(r2[..., 0, :], r2[..., 1, :], r2[..., 2, :]), r2[..., 1, :], r2[..., 2, :]],
                             dim=-2)
        gathered = (self.afg2(r2)[..., None] * r2).sum(-2)  # AFG over R_m^seq: (B, 7, D)
        r = gathered.flatten(1)
        return {"R": r1, "Rseq": r2, "r": r, "out": self.head(r).squeeze(-1)}

    def simulated_text(self, batch: Batch) -> tuple[Tensor, Tensor] | None:
        """LLM_g's stand-in for ``batch`` (SDUMC Eq. 4): (features, lengths), or None for "none"."""
        c = self.config
        if c.text_sim == "learned":
            return self.simulator(batch.features["audio"], batch.lengths["audio"]), batch.lengths["audio"]
        if c.text_sim == "none":
            return None
        extras = batch.extras or {}
        if c.text_sim_key not in extras:
            raise ValueError(f"SDUMC text_sim='precomputed' reads the data's extra features {c.text_sim_key!r}, but the "
                             f"batch has {sorted(extras) or 'none'}: load the data with "
                             f"extra_keys=({c.text_sim_key!r},)")
        sim = extras[c.text_sim_key]
        if sim.shape[-1] != self.dims["text"]:
            raise ValueError(f"SDUMC: the simulated text features {c.text_sim_key!r} have width {sim.shape[-1]}, the "
                             f"text features {self.dims['text']}: the simulated text must live in the text space")
        lengths = (batch.extra_lengths or {}).get(c.text_sim_key)
        return sim, lengths if lengths is not None else sim.new_full((sim.shape[0],), sim.shape[1], dtype=torch.long)

    def complete_flow(self, batch: Batch) -> dict[str, Tensor]:
        return self.flow(self.encode(batch.features, batch.lengths, (batch.features["text"], batch.lengths["text"])),
                         missing=False)

    def missing_flow(self, batch: Batch) -> dict[str, Tensor]:
        return self.flow(self.encode(batch.features, batch.lengths, self.simulated_text(batch)), missing=True)

    # -- forward ------------------------------------------------------------------------------

    def forward(self, batch: Batch) -> ModelOutput:
        if self.training and batch.views is not None:
            return self.training_forward(batch.views[0], batch.views[1])
        present = self.config.text_present
        if present is None:  # per sample: a sample whose text has no present frame uses the missing flow
            has_text = batch.keep["text"].any(dim=1)
            if has_text.all() or not has_text.any():  # one flow serves the whole batch
                present = bool(has_text.all())
        if present is not None:
            out = self.complete_flow(batch) if present else self.missing_flow(batch)
            return ModelOutput(prediction=out["out"], representation=out["r"])
        full, miss = self.complete_flow(batch), self.missing_flow(batch)
        pick = has_text[:, None]
        return ModelOutput(prediction=torch.where(has_text, full["out"], miss["out"]),
                           representation=torch.where(pick, full["r"], miss["r"]))

    def training_forward(self, full_batch: Batch, miss_batch: Batch) -> ModelOutput:
        c = self.config
        sim = self.simulated_text(miss_batch)
        full = self.complete_flow(full_batch)
        miss = self.flow(self.encode(miss_batch.features, miss_batch.lengths, sim), missing=True)
        out = ModelOutput(prediction=full["out"], representation=full["r"],
                          representations={"missing": miss["r"]})
        y = full_batch.labels
        out.losses["task_missing"] = F.mse_loss(miss["out"], y)  # SDUMC Eq. 8 on the text-missing flow
        if c.use_mkd:  # SDUMC Eq. 9: the real text representation detached (gradient: text-missing flow only)
            out.losses["mkd1"] = rmse(full["R"][:, 0].detach(), miss["R"][:, 0])
            out.losses["mkd2"] = rmse(full["Rseq"][..., 0, :].detach(), miss["Rseq"][..., 0, :])
        if c.use_rs:  # SDUMC Eq. 10
            out.losses["rs"] = rmse(full["r"], miss["r"])
        if c.use_rnc:  # SDUMC Eq. 11-12 over the 2N final representations
            reps = torch.cat([full["r"], miss["r"]])
            if self.rnc_proj is not None:
                reps = self.rnc_proj(reps)
            out.losses["rnc"] = rank_n_contrast(reps, torch.cat([y, y]), c.rnc_temperature)
        if self.simulator is not None:  # the stand-in learns the text space from the complete input
            real = (full_batch.complete or full_batch.features)["text"]
            out.losses["text_sim"] = F.mse_loss(masked_mean(sim[0], clamp_lengths(sim[1], sim[0].shape[1])),
                                                masked_mean(real, clamp_lengths(full_batch.lengths["text"],
                                                                                real.shape[1])))
        return out


@dataclass
class TextRemoved:
    """A training view: ``first``'s view of the batch with the text removed entirely (zeroed, no frame
    kept; token ids dropped) — SDUMC's text-missing flow."""

    first: MaskView

    def __call__(self, batch: Batch, generator: torch.Generator) -> Batch:
        view = self.first(batch, generator)
        return replace(view, features={**view.features, "text": torch.zeros_like(view.features["text"])},
                       keep={**view.keep, "text": torch.zeros_like(view.keep["text"])}, text_ids=None, views=None)

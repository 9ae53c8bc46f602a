"""Missing-modality protocols: one module, vectorised, deterministic by seed.

Every protocol returns the masked inputs *and* the keep masks (True = a valid frame is present),
so reconstruction losses can use them. Padding (frames at or beyond a sample's length) is never
counted, masked or changed. Missing audio/vision/text frames become zero vectors; when a model
consumes BERT token ids (``text_bert``), missing text tokens become [UNK] (id 100), and the
[CLS]/[SEP] positions (first and last valid token) are always kept.

Protocol specs (strings, used in configs, result keys and table headers):

``complete``                 nothing missing.
``frame:P``                  intra-modality: every valid frame of every modality kept iff U(0,1) > P.
                             ``fixed`` variant (default): one mask per split drawn at load time from a
                             per-modality seed and kept for every epoch (EMT-DLFR / TFR-Net code);
``frame:P:resample``         a fresh mask for every training batch (UMDF, MITR student).
``modality:la``              inter-modality: only the listed modalities (l, a, v) are available,
                             the others are zeroed entirely (padding included: the whole
                             modality is absent). ``modality:lav`` is complete.
``modality:l+frame:0.5``     both at once: only the listed modalities, and within them each valid
                             frame dropped with probability 0.5 (UMDF Fig. 6: language only, p = 0.5).
``erasure:R``                LNLN/DAR evaluation: one fixed erasure rate R with a seeded mask.
``erasure:R:random``         LNLN/DAR training: each sample and modality gets its own rate
                             r ~ U(0, R), and for half of the samples (independently per modality)
                             r = 0; fresh draws every batch.
``mixed`` / ``mixed:P``      UMDF training: each sample independently gets either intra-modality
                             missingness with r ~ U(0, P) (default P = 0.9) or one of the seven
                             modality subsets (the complete case included), with probability 1/2 each.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from .data.container import MODALITIES, SHORT_NAMES, MSASplit
from .models.base import Batch

UNK_ID = 100
SUBSETS: tuple[str, ...] = ("l", "a", "v", "la", "lv", "av", "lav")
FRAME_RATES: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))

VALID_FORMS = ("valid forms: complete, frame:P, frame:P:resample, modality:<subset of l,a,v>[+frame:P], "
               "erasure:R, erasure:R:random, mixed, mixed:P")

Kind = Literal["complete", "frame", "modality", "erasure", "mixed"]


@dataclass(frozen=True)
class Protocol:
    kind: Kind
    rate: float = 0.0
    subset: str = "lav"
    random: bool = False  # erasure: per-sample random rates (training form)
    resample: bool = False  # frame: fresh mask every batch

    @property
    def spec(self) -> str:
        """Canonical spec string (inverse of :func:`parse_protocol`)."""
        if self.kind == "complete":
            return "complete"
        if self.kind == "modality":
            return f"modality:{self.subset}" + (f"+frame:{self.rate:g}" if self.rate else "")
        if self.kind == "mixed":
            return f"mixed:{self.rate:g}"
        suffix = ":resample" if self.resample else (":random" if self.random else "")
        return f"{self.kind}:{self.rate:g}{suffix}"

    @property
    def per_batch(self) -> bool:
        """True if training draws a fresh mask every batch (else one fixed mask per split)."""
        return self.resample or self.random or self.kind == "mixed"

    @property
    def label(self) -> str:
        """Human label for tables: {l,a} for subsets, the spec otherwise."""
        if self.kind == "modality":
            return "{" + ",".join(self.subset) + "}" + (f", p={self.rate:g}" if self.rate else "")
        return self.spec


def parse_protocol(spec: str) -> Protocol:
    """Parse a protocol spec string; unknown forms raise ValueError listing the valid ones."""
    if isinstance(spec, Protocol):
        return spec
    s = str(spec).strip().lower().replace(" ", "")
    parts = s.split(":")
    try:
        if s == "complete":
            return Protocol("complete")
        if parts[0] == "modality" and len(parts) in (2, 3):
            rate = 0.0
            if len(parts) == 3:  # modality:<subset>+frame:<p>
                head, _, kind = parts[1].partition("+")
                if kind != "frame":
                    raise ValueError
                rate = float(parts[2])
                _check_rate(rate, spec)
                parts[1] = head
            letters = parts[1].strip("{}").replace(",", "")
            if not letters or set(letters) - set("lav") or len(set(letters)) != len(letters):
                raise ValueError
            subset = "".join(c for c in "lav" if c in letters)
            return Protocol("modality", rate=rate, subset=subset)
        if parts[0] == "mixed" and len(parts) <= 2:
            rate = float(parts[1]) if len(parts) == 2 else 0.9
            _check_rate(rate, spec)
            return Protocol("mixed", rate=rate)
        if parts[0] in ("frame", "erasure") and len(parts) in (2, 3):
            rate = float(parts[1])
            _check_rate(rate, spec)
            flag = parts[2] if len(parts) == 3 else ""
            if parts[0] == "frame" and flag in ("", "fixed", "resample"):
                return Protocol("frame", rate=rate, resample=flag == "resample")
            if parts[0] == "erasure" and flag in ("", "random"):
                return Protocol("erasure", rate=rate, random=flag == "random")
    except RateError:
        raise
    except ValueError:  # malformed number or subset: fall through to the one generic message
        pass
    raise ValueError(f"unknown missing-data protocol {spec!r}; {VALID_FORMS}")


class RateError(ValueError):
    """A well-formed protocol whose rate lies outside [0, 1]."""


def _check_rate(rate: float, spec: str) -> None:
    if not (0.0 <= rate <= 1.0):
        raise RateError(f"protocol {spec!r}: rate must lie in [0, 1], got {rate}; {VALID_FORMS}")


def stable_seed(*parts: object) -> int:
    """A seed derived from arbitrary parts, stable across processes (unlike ``hash``)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


# --------------------------------------------------------------------------------------------
# Core: per-sample rates -> keep masks
# --------------------------------------------------------------------------------------------

def valid_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(N, T) bool, True inside each sample's length."""
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


def special_token_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(N, T) bool, True at the first and last valid position ([CLS] and [SEP])."""
    pos = torch.arange(t, device=lengths.device)[None, :]
    return (lengths[:, None] > 0) & ((pos == 0) | (pos == lengths[:, None] - 1))


def draw_keep(valid: torch.Tensor, rates: torch.Tensor, generator: torch.Generator,
              protect: torch.Tensor | None = None) -> torch.Tensor:
    """Keep each valid frame iff U(0,1) > its sample's rate; ``protect`` frames are always kept."""
    u = torch.rand(valid.shape, generator=generator, device=valid.device)
    keep = valid & (u > rates[:, None])
    if protect is not None:
        keep |= valid & protect
    return keep


def _sample_rates(protocol: Protocol, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-sample, per-modality rates for rate-based protocols."""
    if protocol.kind == "erasure" and protocol.random:
        rates = {}
        for m in MODALITIES:
            r = torch.rand(n, generator=generator) * protocol.rate
            zero = torch.rand(n, generator=generator) < 0.5  # half the samples keep this modality intact
            rates[m] = torch.where(zero, torch.zeros_like(r), r)
        return rates
    return {m: torch.full((n,), float(protocol.rate)) for m in MODALITIES}


def protocol_masks(
    protocol: Protocol, lengths: dict[str, torch.Tensor], seq_lens: dict[str, int],
    generators: dict[str, torch.Generator], text_special_tokens: bool = False,
) -> dict[str, torch.Tensor]:
    """Keep masks (N, T_m) for every modality under ``protocol`` (one generator per modality)."""
    n = int(lengths["text"].shape[0])
    valid = {m: valid_mask(lengths[m], seq_lens[m]) for m in MODALITIES}
    if protocol.kind == "complete":
        return valid
    protect = {m: None for m in MODALITIES}
    if text_special_tokens:
        protect["text"] = special_token_mask(lengths["text"], seq_lens["text"])
    if protocol.kind == "modality":
        present = {SHORT_NAMES[c] for c in protocol.subset}
        rate = torch.full((n,), float(protocol.rate))
        return {m: (draw_keep(valid[m], rate, generators[m], protect[m]) if protocol.rate else valid[m])
                if m in present else torch.zeros_like(valid[m]) for m in MODALITIES}
    if protocol.kind == "mixed":
        g = generators["text"]
        use_frames = torch.rand(n, generator=g) < 0.5
        frame_rate = torch.rand(n, generator=g) * protocol.rate
        subset_idx = torch.randint(len(SUBSETS), (n,), generator=g)
        keep = {}
        for m in MODALITIES:
            frame_keep = draw_keep(valid[m], frame_rate, generators[m], protect[m])
            letter = next(k for k, v in SHORT_NAMES.items() if v == m)
            has_m = torch.tensor([letter in s for s in SUBSETS])[subset_idx]
            keep[m] = torch.where(use_frames[:, None], frame_keep, valid[m] & has_m[:, None])
        return keep
    rates = _sample_rates(protocol, n, generators["text"])
    return {m: draw_keep(valid[m], rates[m], generators[m], protect[m]) for m in MODALITIES}


def apply_keep(x: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Zero valid-but-dropped frames; padding is left exactly as it was."""
    dropped = valid & ~keep
    return x.masked_fill(dropped[..., None], 0.0)


def mask_text_ids(ids: torch.Tensor, keep: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Replace dropped text tokens by [UNK]; [CLS]/[SEP] always stay, so the ids stay valid BERT
    input even when the whole text modality is missing (``ids`` is (N, T) token ids)."""
    t = ids.shape[1]
    dropped = valid_mask(lengths, t) & ~keep & ~special_token_mask(lengths, t)
    return ids.masked_fill(dropped, UNK_ID)


def modality_generators(seed: int, *scope: object) -> dict[str, torch.Generator]:
    """One seeded generator per modality (the EMT-DLFR per-modality seeds)."""
    return {m: torch.Generator().manual_seed(stable_seed(seed, *scope, m)) for m in MODALITIES}


# --------------------------------------------------------------------------------------------
# Whole splits (fixed masks, evaluation) and mini-batches (per-batch training masks)
# --------------------------------------------------------------------------------------------

def mask_split(split: MSASplit, protocol: Protocol | str, seed: int = 0,
               text_special_tokens: bool = False) -> MSASplit:
    """A masked copy of ``split`` (keep masks set), deterministic in (protocol, seed, split name).

    This is the ``fixed`` variant: evaluation masks, and training masks drawn once at load time.
    """
    protocol = parse_protocol(protocol)
    lengths = {m: torch.from_numpy(split.lengths[m]) for m in MODALITIES}
    seq_lens = {m: split.features(m).shape[1] for m in MODALITIES}
    gens = modality_generators(seed, protocol.spec, split.name)
    keep = protocol_masks(protocol, lengths, seq_lens, gens, text_special_tokens)
    feats = {}
    for m in MODALITIES:
        x = torch.from_numpy(split.features(m))
        feats[m] = apply_keep(x, keep[m], valid_mask(lengths[m], seq_lens[m]))
        if protocol.kind == "modality" and _letter(m) not in protocol.subset:
            feats[m] = torch.zeros_like(x)
    text_bert = split.text_bert
    if text_bert is not None:
        text_bert = text_bert.copy()
        text_bert[:, 0, :] = mask_text_ids(torch.from_numpy(text_bert[:, 0, :]), keep["text"],
                                           lengths["text"]).numpy()
    return replace(split, text=feats["text"].numpy(), audio=feats["audio"].numpy(),
                   vision=feats["vision"].numpy(), keep={m: keep[m].numpy() for m in MODALITIES},
                   text_bert=text_bert)


def _letter(modality: str) -> str:
    return {v: k for k, v in SHORT_NAMES.items()}[modality]


def mask_batch(batch: Batch, protocol: Protocol | str, generator: torch.Generator,
               text_special_tokens: bool = False) -> Batch:
    """A masked copy of ``batch`` (fresh draws from ``generator``); ``complete`` holds the originals."""
    protocol = parse_protocol(protocol)
    source = batch.complete if batch.complete is not None else batch.features
    seq_lens = {m: source[m].shape[1] for m in MODALITIES}
    lengths = {m: batch.lengths[m].cpu() for m in MODALITIES}
    keep = protocol_masks(protocol, lengths, seq_lens, {m: generator for m in MODALITIES}, text_special_tokens)
    device = source["text"].device
    keep = {m: k.to(device) for m, k in keep.items()}
    feats = {}
    for m in MODALITIES:
        feats[m] = apply_keep(source[m], keep[m], valid_mask(batch.lengths[m], seq_lens[m]))
        if protocol.kind == "modality" and _letter(m) not in protocol.subset:
            feats[m] = torch.zeros_like(source[m])
    text_ids = batch.text_ids
    if text_ids is not None:
        text_ids = text_ids.clone()
        text_ids[:, 0, :] = mask_text_ids(text_ids[:, 0, :], keep["text"], batch.lengths["text"])
    return replace(batch, features=feats, keep=keep, text_ids=text_ids, complete=source, views=None)


def observed_rate(keep: np.ndarray | torch.Tensor, lengths: np.ndarray | torch.Tensor) -> float:
    """Fraction of valid frames dropped (padding not counted)."""
    keep = torch.as_tensor(keep)
    lengths = torch.as_tensor(lengths)
    valid = valid_mask(lengths, keep.shape[1])
    return float(1.0 - keep[valid].float().mean()) if valid.any() else float("nan")

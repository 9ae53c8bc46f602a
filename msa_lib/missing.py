"""Missing-modality protocols: one module, vectorised, deterministic by seed.

Every protocol returns the masked inputs *and* the keep masks (True = a valid frame is present),
so reconstruction losses can use them. Padding (frames at or beyond a sample's length) is never
counted as present or missing; a dropped frame becomes a zero vector, and a modality a protocol
removes entirely (``modality:...``) is zeroed whole, its padding included. Token ids
(``text_bert``) follow the text mask: a dropped token becomes [UNK] (id 100).

Extras (``MSASplit.extras`` / ``Batch.extras``, e.g. precomputed simulated text features) are
derived inputs, not a modality: no protocol masks them, and the masked copies carry them unchanged.

[CLS]/[SEP] (the first and last valid text position) are protected only for models that consume
token ids (``MSAModel.uses_token_ids``, passed here as ``protect_special_tokens``): a BERT model
needs them to read its input at all. A model that reads text *features* gets no protection: the
[CLS] feature vector summarises the whole sentence, and keeping it at ``frame:1.0`` would let the
text modality survive its own removal.

Protocol specs (strings, used in configs, result keys and table headers):

``complete``                 nothing missing.
``frame:P``                  intra-modality: every valid frame of every modality kept iff U(0,1) > P.
                             ``fixed`` variant (default): one mask per split drawn at load time from a
                             per-modality seed and kept for every epoch (EMT-DLFR / TFR-Net code);
``frame:P:resample``         a fresh mask for every training batch (UMDF; MITR-DNet's train-once row).
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
``mixed:P:combined``         as ``mixed``, with a third draw: one of the seven subsets *and*, within
                             it, frames dropped with r ~ U(0, P) (probability 1/3 each), so training
                             also sees conditions like Fig. 6's ``modality:l+frame:0.5``.

:func:`protocol_summary` measures a protocol's draws on a split (share of complete views, of views
without text, mean share of valid frames dropped).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Callable, Literal

import numpy as np
import torch

from .core import Batch, valid_mask
from .data.container import MODALITIES, SHORT_NAMES, MSASplit

UNK_ID = 100
SUBSETS: tuple[str, ...] = ("l", "a", "v", "la", "lv", "av", "lav")
FRAME_RATES: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
LETTER: dict[str, str] = {m: c for c, m in SHORT_NAMES.items()}

VALID_FORMS = ("valid forms: complete, frame:P, frame:P:resample, modality:<subset of l,a,v>[+frame:P], "
               "erasure:R, erasure:R:random, mixed, mixed:P, mixed:P:combined")

Kind = Literal["complete", "frame", "modality", "erasure", "mixed"]


@dataclass(frozen=True)
class Protocol:
    kind: Kind
    rate: float = 0.0
    subset: str = "lav"
    random: bool = False  # erasure: per-sample random rates (training form)
    resample: bool = False  # frame: fresh mask every batch
    combined: bool = False  # mixed: a third draw, a subset with frame dropping inside it

    @property
    def spec(self) -> str:
        """Canonical spec string (inverse of :func:`parse_protocol`)."""
        return KINDS[self.kind].spec(self)

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

    def absent(self, modality: str) -> bool:
        """True if the protocol removes ``modality`` entirely (padding included)."""
        return self.kind == "modality" and LETTER[modality] not in self.subset


class RateError(ValueError):
    """A well-formed protocol whose rate lies outside [0, 1]."""


def _rate(text: str, spec: str) -> float:
    rate = float(text)
    if not (0.0 <= rate <= 1.0):
        raise RateError(f"protocol {spec!r}: rate must lie in [0, 1], got {rate}; {VALID_FORMS}")
    return rate


def stable_seed(*parts: object) -> int:
    """A seed derived from arbitrary parts, stable across processes (unlike ``hash``)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


# --------------------------------------------------------------------------------------------
# Frame-level draws shared by the kinds
# --------------------------------------------------------------------------------------------

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


Masks = dict[str, torch.Tensor]
#: (protocol, valid masks, generators per modality, protected frames per modality) -> keep masks
MaskFn = Callable[[Protocol, Masks, dict[str, torch.Generator], dict[str, "torch.Tensor | None"]], Masks]


# --------------------------------------------------------------------------------------------
# The kinds: each is one entry (parse, canonical spec, masks)
# --------------------------------------------------------------------------------------------

def _parse_complete(parts: list[str], spec: str) -> Protocol:
    if parts != ["complete"]:
        raise ValueError
    return Protocol("complete")


def _masks_complete(p: Protocol, valid: Masks, gens, protect) -> Masks:
    return valid


def _parse_frame(parts: list[str], spec: str) -> Protocol:
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("fixed", "resample")):
        raise ValueError
    return Protocol("frame", rate=_rate(parts[1], spec), resample=len(parts) == 3 and parts[2] == "resample")


def _spec_rate(p: Protocol) -> str:
    suffix = ":resample" if p.resample else (":random" if p.random else "")
    return f"{p.kind}:{p.rate:g}{suffix}"


def _masks_fixed_rate(p: Protocol, valid: Masks, gens, protect) -> Masks:
    n = next(iter(valid.values())).shape[0]
    rate = torch.full((n,), float(p.rate))
    return {m: draw_keep(valid[m], rate, gens[m], protect[m]) for m in MODALITIES}


def _parse_modality(parts: list[str], spec: str) -> Protocol:
    if len(parts) not in (2, 3):
        raise ValueError
    rate, letters = 0.0, parts[1]
    if len(parts) == 3:  # modality:<subset>+frame:<p>
        letters, _, kind = parts[1].partition("+")
        if kind != "frame":
            raise ValueError
        rate = _rate(parts[2], spec)
    letters = letters.strip("{}").replace(",", "")
    if not letters or set(letters) - set("lav") or len(set(letters)) != len(letters):
        raise ValueError
    return Protocol("modality", rate=rate, subset="".join(c for c in "lav" if c in letters))


def _spec_modality(p: Protocol) -> str:
    return f"modality:{p.subset}" + (f"+frame:{p.rate:g}" if p.rate else "")


def _masks_modality(p: Protocol, valid: Masks, gens, protect) -> Masks:
    n = next(iter(valid.values())).shape[0]
    rate = torch.full((n,), float(p.rate))
    return {m: torch.zeros_like(valid[m]) if p.absent(m)
            else (draw_keep(valid[m], rate, gens[m], protect[m]) if p.rate else valid[m]) for m in MODALITIES}


def _parse_erasure(parts: list[str], spec: str) -> Protocol:
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "random"):
        raise ValueError
    return Protocol("erasure", rate=_rate(parts[1], spec), random=len(parts) == 3)


def _masks_erasure(p: Protocol, valid: Masks, gens, protect) -> Masks:
    if not p.random:
        return _masks_fixed_rate(p, valid, gens, protect)
    n = next(iter(valid.values())).shape[0]
    g, rates = gens["text"], {}
    for m in MODALITIES:
        r = torch.rand(n, generator=g) * p.rate
        zero = torch.rand(n, generator=g) < 0.5  # half the samples keep this modality intact
        rates[m] = torch.where(zero, torch.zeros_like(r), r)
    return {m: draw_keep(valid[m], rates[m], gens[m], protect[m]) for m in MODALITIES}


def _parse_mixed(parts: list[str], spec: str) -> Protocol:
    if len(parts) > 3 or (len(parts) == 3 and parts[2] != "combined"):
        raise ValueError
    return Protocol("mixed", rate=_rate(parts[1], spec) if len(parts) >= 2 else 0.9, combined=len(parts) == 3)


def _spec_mixed(p: Protocol) -> str:
    return f"mixed:{p.rate:g}" + (":combined" if p.combined else "")


def _masks_mixed(p: Protocol, valid: Masks, gens, protect) -> Masks:
    n = next(iter(valid.values())).shape[0]
    g = gens["text"]
    # draw 0: frames only; 1: a subset only; 2 (combined): a subset with frames dropped inside it
    draw = torch.randint(3, (n,), generator=g) if p.combined else (torch.rand(n, generator=g) >= 0.5).long()
    frame_rate = torch.rand(n, generator=g) * p.rate
    subset_idx = torch.randint(len(SUBSETS), (n,), generator=g)
    keep = {}
    for m in MODALITIES:
        frame_keep = draw_keep(valid[m], frame_rate, gens[m], protect[m])
        has_m = torch.tensor([LETTER[m] in s for s in SUBSETS])[subset_idx][:, None]
        frames = (draw == 0) | (draw == 2)
        keep[m] = torch.where(frames[:, None], frame_keep, valid[m]) & (has_m | (draw == 0)[:, None])
    return keep


@dataclass(frozen=True)
class KindEntry:
    parse: Callable[[list[str], str], Protocol]
    spec: Callable[[Protocol], str]
    masks: MaskFn


#: The one table of protocol kinds.
KINDS: dict[str, KindEntry] = {
    "complete": KindEntry(_parse_complete, lambda p: "complete", _masks_complete),
    "frame": KindEntry(_parse_frame, _spec_rate, _masks_fixed_rate),
    "modality": KindEntry(_parse_modality, _spec_modality, _masks_modality),
    "erasure": KindEntry(_parse_erasure, _spec_rate, _masks_erasure),
    "mixed": KindEntry(_parse_mixed, _spec_mixed, _masks_mixed),
}


def parse_protocol(spec: str | Protocol) -> Protocol:
    """Parse a protocol spec string; unknown forms raise ValueError listing the valid ones."""
    if isinstance(spec, Protocol):
        return spec
    s = str(spec).strip().lower().replace(" ", "")
    parts = s.split(":")
    if parts[0] in KINDS:
        try:
            return KINDS[parts[0]].parse(parts, str(spec))
        except RateError:
            raise
        except ValueError:  # malformed number or subset: fall through to the one generic message
            pass
    raise ValueError(f"unknown missing-data protocol {spec!r}; {VALID_FORMS}")


def protocol_masks(
    protocol: Protocol, lengths: dict[str, torch.Tensor], seq_lens: dict[str, int],
    generators: dict[str, torch.Generator], protect_special_tokens: bool = False,
) -> Masks:
    """Keep masks (N, T_m) for every modality under ``protocol`` (one generator per modality)."""
    valid = {m: valid_mask(lengths[m], seq_lens[m]) for m in MODALITIES}
    protect: dict[str, torch.Tensor | None] = {m: None for m in MODALITIES}
    if protect_special_tokens:
        protect["text"] = special_token_mask(lengths["text"], seq_lens["text"])
    return KINDS[protocol.kind].masks(protocol, valid, generators, protect)


def mask_text_ids(ids: torch.Tensor, keep: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Replace dropped text tokens by [UNK]; [CLS]/[SEP] always stay, so the ids stay valid BERT
    input even when the whole text modality is missing (``ids`` is (N, T) token ids). For a model
    that does not protect them the keep mask is False there, and [UNK] would be as good as any id:
    such a model does not read the ids."""
    t = ids.shape[1]
    dropped = valid_mask(lengths, t) & ~keep & ~special_token_mask(lengths, t)
    return ids.masked_fill(dropped, UNK_ID)


def modality_generators(seed: int, *scope: object) -> dict[str, torch.Generator]:
    """One seeded generator per modality (the EMT-DLFR per-modality seeds)."""
    return {m: torch.Generator().manual_seed(stable_seed(seed, *scope, m)) for m in MODALITIES}


# --------------------------------------------------------------------------------------------
# Whole splits (fixed masks, evaluation) and mini-batches (per-batch training masks)
# --------------------------------------------------------------------------------------------

def _apply(protocol: Protocol, features: dict[str, torch.Tensor], lengths: dict[str, torch.Tensor],
           generators: dict[str, torch.Generator], text_ids: torch.Tensor | None,
           protect_special_tokens: bool) -> tuple[Masks, Masks, torch.Tensor | None]:
    """The one masking loop: keep masks, masked features (dropped valid frames zeroed, padding left
    as it was; an absent modality zeroed whole) and text ids with [UNK] at dropped tokens."""
    seq_lens = {m: features[m].shape[1] for m in MODALITIES}
    cpu_lengths = {m: lengths[m].cpu() for m in MODALITIES}
    keep = protocol_masks(protocol, cpu_lengths, seq_lens, generators, protect_special_tokens)
    device = features["text"].device
    keep = {m: k.to(device) for m, k in keep.items()}
    out = {}
    for m in MODALITIES:
        if protocol.absent(m):
            out[m] = torch.zeros_like(features[m])
        else:
            dropped = valid_mask(lengths[m].to(device), seq_lens[m]) & ~keep[m]
            out[m] = features[m].masked_fill(dropped[..., None], 0.0)
    if text_ids is not None:
        text_ids = text_ids.clone()
        text_ids[:, 0, :] = mask_text_ids(text_ids[:, 0, :], keep["text"], lengths["text"].to(text_ids.device))
    return keep, out, text_ids


def mask_split(split: MSASplit, protocol: Protocol | str, seed: int = 0,
               protect_special_tokens: bool = False) -> MSASplit:
    """A masked copy of ``split`` (keep masks set), deterministic in (protocol, seed, split name).

    This is the ``fixed`` variant: evaluation masks, and training masks drawn once at load time.
    ``extras`` and ``extra_lengths`` are kept unchanged (protocols do not mask them).
    """
    protocol = parse_protocol(protocol)
    features = {m: torch.from_numpy(split.features(m)) for m in MODALITIES}
    lengths = {m: torch.from_numpy(split.lengths[m]) for m in MODALITIES}
    ids = None if split.text_bert is None else torch.from_numpy(split.text_bert)
    gens = modality_generators(seed, protocol.spec, split.name)
    keep, feats, ids = _apply(protocol, features, lengths, gens, ids, protect_special_tokens)
    return replace(split, text=feats["text"].numpy(), audio=feats["audio"].numpy(),
                   vision=feats["vision"].numpy(), keep={m: keep[m].numpy() for m in MODALITIES},
                   text_bert=None if ids is None else ids.numpy())


def mask_batch(batch: Batch, protocol: Protocol | str, generator: torch.Generator,
               protect_special_tokens: bool = False) -> Batch:
    """A masked copy of ``batch`` (fresh draws from ``generator``); ``complete`` holds the originals.
    ``extras`` and ``extra_lengths`` are kept unchanged (protocols do not mask them)."""
    protocol = parse_protocol(protocol)
    source = batch.complete if batch.complete is not None else batch.features
    keep, feats, ids = _apply(protocol, source, batch.lengths, {m: generator for m in MODALITIES},
                              batch.text_ids, protect_special_tokens)
    return replace(batch, features=feats, keep=keep, text_ids=ids, complete=source, views=None)


def observed_rate(keep: np.ndarray | torch.Tensor, lengths: np.ndarray | torch.Tensor) -> float:
    """Fraction of valid frames dropped (padding not counted)."""
    keep = torch.as_tensor(keep)
    lengths = torch.as_tensor(lengths)
    valid = valid_mask(lengths, keep.shape[1])
    return float(1.0 - keep[valid].float().mean()) if valid.any() else float("nan")


def protocol_summary(split: MSASplit, protocol: Protocol | str, seed: int = 0, draws: int = 4) -> dict[str, float]:
    """What a protocol's draws look like on ``split`` (``draws`` seeded passes over every sample):
    the share of views with every valid frame of every modality present, the share with no text
    frame left, and the mean share of valid frames dropped (padding not counted)."""
    protocol = parse_protocol(protocol)
    lengths = {m: torch.from_numpy(split.lengths[m]) for m in MODALITIES}
    seq_lens = {m: split.features(m).shape[1] for m in MODALITIES}
    complete, no_text, dropped, total = 0.0, 0.0, 0.0, 0.0
    for d in range(draws):
        keep = protocol_masks(protocol, lengths, seq_lens, modality_generators(seed, "summary", protocol.spec, d))
        valid = {m: valid_mask(lengths[m], seq_lens[m]) for m in MODALITIES}
        complete += float(torch.stack([(keep[m] == valid[m]).all(1) for m in MODALITIES]).all(0).float().mean())
        no_text += float((~keep["text"].any(1)).float().mean())
        dropped += sum(float((valid[m] & ~keep[m]).sum()) for m in MODALITIES)
        total += sum(float(valid[m].sum()) for m in MODALITIES)
    return {"P(view complete)": complete / draws, "P(no text)": no_text / draws, "mean drop rate": dropped / total}

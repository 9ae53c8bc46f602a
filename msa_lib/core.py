"""The bottom of msa_lib: the batch type every model consumes, the valid-frame helpers every
module shares, and dataclass configs from dicts. Imports nothing else from msa_lib.

Conventions: per modality, features are (B, T_m, d_m), post-padded (zeros after each sample's
valid length), with ``lengths`` (B,) the number of valid frames.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields

import torch


@dataclass
class Batch:
    """A mini-batch of (possibly masked) inputs.

    features: modality -> (B, T_m, d_m) float, zeros at dropped frames / missing modalities.
    lengths:  modality -> (B,) long, valid lengths (padding is never masked or counted).
    keep:     modality -> (B, T_m) bool, True where a valid frame is present.
    complete: modality -> (B, T_m, d_m), the unmasked inputs (teachers, reconstruction losses).
    views:    the training views of the same samples a multi-view model asked for
              (``MSAModel.training_views``); ``None`` at inference.
    extras:   name -> (B, T_x, d_x) float, further per-sample feature sequences from the data
              file (``MSASplit.extras``, e.g. precomputed simulated text features), post-padded;
              derived inputs, never masked by a missing-data protocol. ``None`` when the data has none.
    extra_lengths: name -> (B,) long, their valid lengths (not clamped).
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
    extras: dict[str, torch.Tensor] | None = None
    extra_lengths: dict[str, torch.Tensor] | None = None

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


def clamp_lengths(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """Lengths as long, clamped to [1, T]: a sample whose modality is empty keeps its first
    (all-zero) frame, so no attention row sees only masked keys and no mean divides by 0."""
    return lengths.to(torch.long).clamp(1, t)


def valid_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True on the frames inside each sample's length."""
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


def padding_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(B, T) bool, True on PADDING (attention ``key_padding_mask`` convention), lengths clamped
    to [1, T] (see :func:`clamp_lengths`)."""
    return ~valid_mask(clamp_lengths(lengths, t), t)


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, D) -> (B, D): mean over each sample's valid frames (padding excluded; a length of 0
    gives the zero vector)."""
    valid = valid_mask(lengths.to(x.device), x.shape[1])
    return (x * valid[..., None]).sum(1) / lengths.to(x.device).clamp(min=1)[:, None].to(x.dtype)


def last_valid(seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B,) -> (B, D): the element at position ``length - 1`` (lengths clamped to
    [1, T]): the last valid element of a post-padded sequence, the last element of a full one."""
    b, t, dim = seq.shape
    idx = (clamp_lengths(lengths, t) - 1).to(seq.device)
    return seq.gather(1, idx.view(b, 1, 1).expand(b, 1, dim)).squeeze(1)


def config_from_dict(cls, values: dict | None, what: str):
    """Build dataclass ``cls`` from a dict, refusing unknown keys with one clear error."""
    values = dict(values or {})
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {what} parameter(s) {unknown}; valid: {sorted(names)}")
    return cls(**values)


def quiet(progress: bool) -> bool:
    """``disable`` for a tqdm bar: off when ``progress`` is False or ``TQDM_DISABLE`` is set (the
    book build and nbval set it, so stored notebooks carry no progress noise)."""
    return not progress or os.environ.get("TQDM_DISABLE", "") not in ("", "0")

"""Where a pickle's padding is: detected per split and modality, converted to post-padding.

Inside the library every modality is POST-padded (a sample's valid frames first, zeros after) with
per-sample ``lengths``. MMSA pickles are post-padded; MulT-derived pickles are PRE-padded (zeros
first). :func:`to_post_padding` finds the side of each split and modality and shifts every
sample's valid frames to the front. Sides are ``"start"`` (pre-padded), ``"end"`` (post-padded)
and ``"none"`` (every sample uses all T frames).

* Without length information, per sample: ``lead`` / ``trail`` = all-zero rows at the start / end;
  an all-zero sample has length 0 (the modality is absent there). Some lead and no trail →
  ``"start"``; some trail and no lead → ``"end"``; neither → ``"none"``; both → ambiguous: an error
  that says how to resolve it with the loader's ``padding`` argument.
* Aligned splits (the three modalities share T) without lengths share their padding: the side is
  detected per modality and, when the three agree, one lead/trail comes from the union of the
  modalities' nonzero rows (a genuine zero vision frame at a sentence's edge is not padding while
  text is present there). When the sides differ, each modality is converted by itself.
* With lengths (MMSA ``*_lengths``, or the BERT attention mask ``text_bert[:, 1, :]`` for text
  and for aligned audio/vision) the lengths are the truth: the side is the placement the zeros
  fit (rows at positions >= length all zero → ``"end"``; rows before T - length all zero →
  ``"start"``). The mask itself may be pre-padded (its ones at the end); ``text_bert``'s three rows
  are then shifted too. Text features beside a mask follow the mask when their zeros do not tell
  (BERT outputs at ``[PAD]`` are not zero).

A ``padding`` argument (``"start"`` / ``"end"`` / ``"none"``, or a dict per modality) overrides
detection, for files with genuine zero frames at both ends.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Union

import numpy as np

from .container import MODALITIES, DataFormatError, MSASplit, where

__all__ = ["SIDES", "PaddingOption", "Converted", "padding_option", "post_padded_sides", "shift_to_front",
           "to_post_padding"]

SIDES: tuple[str, str, str] = ("start", "end", "none")
PaddingOption = Union[str, Mapping[str, str], None]
_HOW = "pass padding='start', 'end' or 'none' (or a dict per modality, e.g. padding={{'{m}': 'start'}}) to the loader"


class Converted(NamedTuple):
    """A split's arrays after :func:`to_post_padding`."""

    feats: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    text_bert: np.ndarray | None
    sides: dict[str, str]


def padding_option(padding: PaddingOption) -> dict[str, str | None]:
    """The loaders' ``padding`` argument as modality → side (None: detect).

    Raises:
        ValueError: an unknown side or modality (the message lists the valid ones).
    """
    if padding is None:
        return {m: None for m in MODALITIES}
    if isinstance(padding, str):
        sides: dict[str, str | None] = {m: padding for m in MODALITIES}
    elif isinstance(padding, Mapping):
        unknown = sorted(set(map(str, padding)) - set(MODALITIES))
        if unknown:
            raise ValueError(f"padding names unknown modalities {unknown}; valid: {list(MODALITIES)}")
        sides = {m: padding.get(m) for m in MODALITIES}
    else:
        raise ValueError(f"padding must be one of {list(SIDES)} or a dict modality → side, got {padding!r}")
    bad = [s for s in sides.values() if s is not None and s not in SIDES]
    if bad:
        raise ValueError(f"padding side {bad[0]!r} is unknown; valid sides: {list(SIDES)}")
    return sides


def post_padded_sides(split: MSASplit) -> dict[str, str]:
    """Sides of a split the library padded itself: ``"end"`` where a sample is shorter than T, else ``"none"``."""
    return {m: "end" if (split.lengths[m] < split.features(m).shape[1]).any() else "none" for m in MODALITIES}


def shift_to_front(x: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Shift sample i of ``x`` (N, T, ...) left by ``offset[i]`` along axis 1, filling the end with zeros."""
    if not offset.any():
        return x
    t = x.shape[1]
    idx = np.arange(t)[None, :] + offset[:, None]
    out = np.take_along_axis(x, np.minimum(idx, t - 1).reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)
    out[idx >= t] = 0
    return out


def _edges(nz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leading / trailing all-zero rows per sample (0 for all-zero samples), and which samples are all zero."""
    empty = ~nz.any(axis=1)
    lead = np.where(empty, 0, nz.argmax(axis=1))
    trail = np.where(empty, 0, nz[:, ::-1].argmax(axis=1))
    return lead, trail, empty


def _side_from_zeros(nz: np.ndarray, src: str, split: str, m: str, shape: tuple[int, ...]) -> str:
    lead, trail, _ = _edges(nz)
    n_lead, n_trail = int((lead > 0).sum()), int((trail > 0).sum())
    if n_lead and n_trail:
        raise DataFormatError(
            f"{where(src, split, m)}: cannot tell where the padding is: {n_lead} samples start with all-zero frames "
            f"and {n_trail} end with them (shape {shape}, no lengths in the file); " + _HOW.format(m=m)
        )
    return "start" if n_lead else "end" if n_trail else "none"


def _window_from_zeros(nz: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(offset of the first valid frame, length) per sample for ``side``; all-zero samples get length 0."""
    lead, trail, empty = _edges(nz)
    t = nz.shape[1]
    offset = lead if side == "start" else np.zeros_like(lead)
    length = {"start": t - lead, "end": t - trail, "none": np.full_like(lead, t)}[side]
    return np.where(empty, 0, offset), np.where(empty, 0, length)


def _mask_window(mask: np.ndarray, src: str, split: str) -> tuple[str, np.ndarray]:
    """Side and lengths of a 0/1 attention mask (N, T): ones first (``"end"``) or ones last (``"start"``)."""
    t = mask.shape[1]
    lens = mask.sum(axis=1).astype(np.int64)
    pos = np.arange(t)[None, :]
    prefix = (mask == (pos < lens[:, None])).all(axis=1)
    suffix = (mask == (pos >= (t - lens)[:, None])).all(axis=1)
    key = "text_bert"
    if not (prefix | suffix).all():
        i = int(np.argmax(~(prefix | suffix)))
        raise DataFormatError(
            f"{where(src, split, key)}: attention mask text_bert[{i}, 1, :] = {mask[i].tolist()} is not one block of "
            f"ones at the start or at the end (shape {mask.shape})"
        )
    pre, post = suffix & ~prefix, prefix & ~suffix
    if pre.any() and post.any():
        raise DataFormatError(
            f"{where(src, split, key)}: attention masks disagree on the padding side: {int(pre.sum())} samples are "
            f"padded at the start (e.g. sample {int(np.argmax(pre))}), {int(post.sum())} at the end "
            f"(e.g. sample {int(np.argmax(post))})"
        )
    return ("start" if pre.any() else "end" if post.any() else "none"), lens


def _side_from_lengths(nz: np.ndarray, lens: np.ndarray, tie: str, fallback: str | None, src: str, split: str,
                       m: str, key: str, shape: tuple[int, ...]) -> str:
    """The placement of ``lens`` valid frames that the zeros fit; ``tie`` when both fit, ``fallback`` when neither."""
    t = nz.shape[1]
    if (lens == t).all():
        return "none"
    pos = np.arange(t)[None, :]
    after = (nz & (pos >= lens[:, None])).any(axis=1)
    before = (nz & (pos < (t - lens)[:, None])).any(axis=1)
    if not after.any():
        return tie if not before.any() else "end"
    if not before.any():
        return "start"
    if fallback is not None:
        return fallback
    i, j = int(np.argmax(after)), int(np.argmax(before))
    raise DataFormatError(
        f"{where(src, split, m)}: the lengths in '{key}' fit neither end padding (sample {i} of length {lens[i]} has "
        f"nonzero frames after it) nor start padding (sample {j} of length {lens[j]} has nonzero frames before "
        f"position {t - lens[j]}) (shape {shape}); " + _HOW.format(m=m)
    )


def to_post_padding(
    feats: Mapping[str, np.ndarray],
    lengths: Mapping[str, tuple[np.ndarray, str]],
    padding: Mapping[str, str | None],
    src: str,
    split: str,
    text_bert: np.ndarray | None = None,
) -> Converted:
    """Detect each modality's padding side (see the module doc) and convert the split to post-padding.

    Args:
        feats: modality → (N, T_m, d_m) float32 features (non-finite values already replaced).
        lengths: modality → (lengths (N,), key they were read from), for the modalities whose file
            gives them; the others are measured from the zeros (or from ``text_bert``'s mask).
        padding: modality → forced side or None (detect), from :func:`padding_option`.
        text_bert: (N, 3, T_text) ids / attention mask / segment ids, shifted like the mask says.

    Raises:
        DataFormatError: ambiguous zeros, lengths that fit neither side, or a malformed mask;
            the message names file, split, modality (key) and shape, and how to resolve it.
    """
    feats = dict(feats)
    known = dict(lengths)
    tie: dict[str, str] = {}
    fallback: dict[str, str | None] = {}
    aligned = len({feats[m].shape[1] for m in MODALITIES}) == 1
    if text_bert is not None:
        mask_side, mask_lens = _mask_window(text_bert[:, 1, :], src, split)
        if mask_side == "start":
            off = text_bert.shape[2] - mask_lens
            text_bert = np.ascontiguousarray(shift_to_front(text_bert.transpose(0, 2, 1), off).transpose(0, 2, 1))
        shared = ["text"] + [m for m in ("audio", "vision") if aligned and m not in known]
        for m in shared:
            known[m] = (mask_lens, "text_bert")
            tie[m] = "end" if mask_side == "none" else mask_side
        fallback["text"] = tie["text"]
    nz = {m: (feats[m] != 0).any(axis=2) for m in MODALITIES}
    windows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sides: dict[str, str] = {}
    if aligned and not known:  # shared, word-aligned padding
        for m in MODALITIES:
            sides[m] = padding[m] or _side_from_zeros(nz[m], src, split, m, feats[m].shape)
        if len(set(sides.values())) == 1:
            offset, length = _window_from_zeros(np.logical_or.reduce([nz[m] for m in MODALITIES]), sides["text"])
            windows = {m: (offset, np.where(nz[m].any(axis=1), length, 0)) for m in MODALITIES}
    for m in MODALITIES:
        if m in windows:
            continue
        shape = feats[m].shape
        if m in known:
            lens, key = known[m]
            side = padding[m] or _side_from_lengths(nz[m], lens, tie.get(m, "end"), fallback.get(m), src, split, m,
                                                    key, shape)
            if side == "none" and (lens < shape[1]).any():
                raise DataFormatError(f"{where(src, split, m)}: padding 'none' given, but '{key}' says "
                                      f"{int((lens < shape[1]).sum())} samples are shorter than T={shape[1]}")
            windows[m] = ((shape[1] - lens) if side == "start" else np.zeros_like(lens), lens)
        else:
            side = sides.get(m) or padding[m] or _side_from_zeros(nz[m], src, split, m, shape)
            windows[m] = _window_from_zeros(nz[m], side)
        sides[m] = side
    out = {m: shift_to_front(feats[m], windows[m][0]) for m in MODALITIES}
    return Converted(out, {m: windows[m][1].astype(np.int64) for m in MODALITIES}, text_bert, sides)

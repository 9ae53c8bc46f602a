"""Loader for MMSA-style pickles (``aligned_50.pkl``, ``unaligned_50.pkl``, ``unaligned_39.pkl``).

Layout (per split ``train`` / ``valid`` / ``test``, a dict)::

    text                    (N, T_t, 768)  BERT features
    text_bert               (N, 3, T_t)    input ids / attention mask / segment ids   [optional]
    audio, vision           (N, T_m, d_m)  zero-padded
    audio_lengths, ...      (N,)           unaligned files only (list of ints or array)
    regression_labels       (N,)
    classification_labels   (N,)                                                      [ignored]
    id, raw_text            (N,)           strings                                    [optional]
    regression_labels_T/A/V (N,)           CH-SIMS unimodal labels

Lengths come from the file where it has them: text from the attention mask, audio/vision from
``*_lengths``; aligned audio/vision without length keys share the mask's lengths (their frames are
aligned to the word tokens). A length outside ``[0, T]`` is an error, never clipped. Where the
padding is (start or end) is detected, and the arrays converted to post-padding, by
:mod:`msa_lib.data.padding`; modalities without lengths are measured from their all-zero frames.

Extras: ``extra_keys`` names further per-split keys to read as (N, T_x, d_x) feature sequences
(e.g. ``sim_text``: simulated text features precomputed offline), each with optional
``<key>_lengths`` (N,) (default: T_x for every sample). They are taken as post-padded, as the file
stores them: no padding is detected or converted for them. NaN/inf in them is replaced by 0 like
in the modalities (refused with ``strict``).

The helpers here (``_features``, ``_labels``, ``read_extras``, ...) are shared with the MulT
loader (``mult.py``).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .container import (DataFormatError, MODALITIES, MSADataset, MSASplit, extra_key_tuple, feature_names,
                        sanitize_features, where)
from .padding import PaddingOption, padding_option, to_post_padding
from .safe_pickle import safe_load

__all__ = ["load_mmsa_pickle", "mmsa_dataset", "SPLITS"]

SPLITS: tuple[str, str, str] = ("train", "valid", "test")
_REQUIRED: tuple[str, ...] = ("text", "audio", "vision", "regression_labels")
_SIMS_KEYS: dict[str, str] = {"text": "regression_labels_T", "audio": "regression_labels_A", "vision": "regression_labels_V"}


# ----------------------------------------------------------------------------------------------
# helpers shared with the other pickle loader (mult.py imports them)
# ----------------------------------------------------------------------------------------------
def _as_array(obj: Any, src: str, split: str, key: str) -> np.ndarray:
    """``np.asarray(obj)`` with a located error for ragged/unreadable values."""
    try:
        return np.asarray(obj)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{where(src, split, key)}: cannot read as an array ({exc})") from exc


def _split_dict(data: Any, src: str, split: str, required: tuple[str, ...]) -> Mapping[str, Any]:
    """The split's dict, after checking that every ``required`` key is present."""
    if not isinstance(data, Mapping):
        raise DataFormatError(f"{where(src, split, split)}: expected a dict of arrays, got {type(data).__name__}")
    present = sorted(map(str, data.keys()))
    for key in required:
        if key not in data:
            raise DataFormatError(f"{where(src, split, key)}: missing (keys present: {present})")
    return data


def top_level(obj: Any, src: str) -> Mapping[str, Any]:
    """The unpickled object, after checking it is a dict with the three splits."""
    if not isinstance(obj, Mapping):
        raise DataFormatError(f"{src}: expected a dict with splits {list(SPLITS)}, got {type(obj).__name__}")
    present = sorted(map(str, obj.keys()))
    for split in SPLITS:
        if split not in obj:
            raise DataFormatError(f"{where(src, split, split)}: split missing (top-level keys present: {present})")
    return obj


def _features(obj: Any, src: str, split: str, key: str, n: int | None, strict: bool) -> tuple[np.ndarray, int]:
    """A (N, T, d) float32 feature array with non-finite values zeroed, and how many were
    (see :func:`~msa_lib.data.container.sanitize_features`)."""
    arr = _as_array(obj, src, split, key)
    if arr.ndim != 3:
        raise DataFormatError(f"{where(src, split, key)}: expected a 3-D array (N, T, d), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DataFormatError(
            f"{where(src, split, key)}: has {arr.shape[0]} samples but 'text' has {n} (shape {arr.shape})"
        )
    return sanitize_features(arr, src, split, key, strict)


def read_features(d: Mapping[str, Any], src: str, split: str,
                  strict: bool) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The split's text / audio / vision arrays (one N) and the nonzero counts of replaced values."""
    feats: dict[str, np.ndarray] = {}
    replaced: dict[str, int] = {}
    for m in MODALITIES:
        feats[m], count = _features(d[m], src, split, m, feats["text"].shape[0] if feats else None, strict)
        if count:
            replaced[m] = count
    return feats, replaced


def read_extras(d: Mapping[str, Any], src: str, split: str, extra_keys: tuple[str, ...], n: int,
                strict: bool) -> tuple[dict[str, np.ndarray] | None, dict[str, np.ndarray] | None, dict[str, int]]:
    """The split's extras named by ``extra_keys``: (N, T_x, d_x) float32 arrays taken as post-padded
    as stored (NaN/inf zeroed, or refused with ``strict``), their lengths from ``<key>_lengths`` when
    present (else T_x for every sample), and the nonzero counts of replaced values. ``(None, None, {})``
    when no key is asked for.

    Raises:
        DataFormatError: a requested key is absent from the split (the message lists the keys
            present), or an extra / its lengths has the wrong shape, N or values.
    """
    if not extra_keys:
        return None, None, {}
    extras: dict[str, np.ndarray] = {}
    lengths: dict[str, np.ndarray] = {}
    replaced: dict[str, int] = {}
    for key in extra_keys:
        if key not in d:
            raise DataFormatError(f"{src or '<memory>'}: split '{split}' has no key '{key}' (asked for by extra_keys; "
                                  f"keys present: {sorted(map(str, d.keys()))})")
        extras[key], count = _features(d[key], src, split, key, n, strict)
        if count:
            replaced[key] = count
        len_key = f"{key}_lengths"
        lengths[key] = (_lengths(d[len_key], src, split, len_key, n, extras[key].shape) if d.get(len_key) is not None
                        else np.full(n, extras[key].shape[1], dtype=np.int64))
    return extras, lengths, replaced


def _labels(obj: Any, src: str, split: str, key: str, n: int) -> np.ndarray:
    """(N,) float32 regression labels; (N, 1) and (N, 1, 1) are accepted; NaN/inf is an error."""
    arr = _as_array(obj, src, split, key)
    if arr.ndim in (2, 3) and arr.shape[1:] in ((1,), (1, 1)):
        arr = arr.reshape(len(arr))
    if arr.shape != (n,):
        raise DataFormatError(f"{where(src, split, key)}: expected shape ({n},), got shape {arr.shape}")
    try:
        arr = arr.astype(np.float32)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{where(src, split, key)}: labels are not numeric ({exc})") from exc
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataFormatError(
            f"{where(src, split, key)}: {int(bad.sum())} labels are NaN or inf (first at index {int(np.argmax(bad))})"
        )
    return arr


def _lengths(obj: Any, src: str, split: str, key: str, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """(N,) int64 lengths, each in [0, T] where T = ``shape[1]``; never clipped."""
    arr = _as_array(obj, src, split, key)
    if arr.shape != (n,):
        raise DataFormatError(f"{where(src, split, key)}: expected shape ({n},), got shape {arr.shape}")
    if arr.dtype.kind not in "iuf" and arr.size:
        raise DataFormatError(f"{where(src, split, key)}: lengths must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and (~np.isfinite(arr) | (arr != np.round(arr))).any():
        raise DataFormatError(f"{where(src, split, key)}: lengths must be whole numbers")
    lens = arr.astype(np.int64)
    t = shape[1]
    bad = (lens < 0) | (lens > t)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(
            f"{where(src, split, key)}: {int(bad.sum())} lengths outside [0, {t}] for features of shape {shape} "
            f"(e.g. sample {i} has length {int(lens[i])})"
        )
    return lens


def _strings(obj: Any, src: str, split: str, key: str, n: int, join_rows: bool = False) -> list[str]:
    """``id`` / ``raw_text`` (array of str/object/bytes or list) as ``list[str]``; with ``join_rows``
    an (N, k) array gives one string per row, its parts joined by ``_`` (MulT ids: video, start, end)."""
    arr = _as_array(obj, src, split, key)
    if arr.ndim == 2 and arr.shape[0] == n and (arr.shape[1] == 1 or join_rows):
        return ["_".join(_string(x) for x in row) for row in arr.tolist()]
    if arr.shape != (n,):
        raise DataFormatError(f"{where(src, split, key)}: expected {n} strings, got shape {arr.shape}")
    return [_string(x) for x in arr.tolist()]


def _string(x: Any) -> str:
    return x.decode("utf-8", errors="replace") if isinstance(x, bytes) else str(x)


def _text_bert(obj: Any, src: str, split: str, text_shape: tuple[int, ...]) -> np.ndarray:
    """(N, 3, T) int64 token ids / attention mask / segment ids (N, T as ``text``); the mask must be 0/1."""
    key = "text_bert"
    arr = _as_array(obj, src, split, key)
    n, t = text_shape[:2]
    if arr.shape != (n, 3, t):
        raise DataFormatError(
            f"{where(src, split, key)}: expected shape ({n}, 3, {t}) to match 'text' {text_shape}, "
            f"got shape {arr.shape}"
        )
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind != "f" or not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise DataFormatError(f"{where(src, split, key)}: token ids/mask must be whole numbers (dtype {arr.dtype})")
    out = arr.astype(np.int64)
    mask = out[:, 1, :]
    if not np.isin(mask, (0, 1)).all():
        raise DataFormatError(f"{where(src, split, key)}: attention mask text_bert[:, 1, :] must be 0/1")
    return out


def default_name(path: str | os.PathLike[str]) -> str:
    """Dataset name from its path: the parent folder lowercased (skipping MMSA's ``Processed``), else the stem."""
    p = Path(path)
    parent = p.parent
    if parent.name.lower() == "processed":
        parent = parent.parent
    return parent.name.lower() if parent.name else p.stem


# ----------------------------------------------------------------------------------------------
def _load_split(data: Any, src: str, split: str, padding: Mapping[str, str | None], strict: bool,
                extra_keys: tuple[str, ...] = ()) -> tuple[MSASplit, bool, bool, dict[str, str], dict[str, int]]:
    """One MMSA split → (split, has_sims_labels, has_text_bert, padding sides, replaced counts)."""
    d = _split_dict(data, src, split, _REQUIRED)
    feats, replaced = read_features(d, src, split, strict)
    n = feats["text"].shape[0]
    extras, extra_lengths, extra_replaced = read_extras(d, src, split, extra_keys, n, strict)
    replaced.update(extra_replaced)
    labels = _labels(d["regression_labels"], src, split, "regression_labels", n)
    text_bert = _text_bert(d["text_bert"], src, split, feats["text"].shape) if d.get("text_bert") is not None else None
    lengths = {}
    for m in ("audio", "vision"):
        key = f"{m}_lengths"
        if d.get(key) is not None:
            lengths[m] = (_lengths(d[key], src, split, key, n, feats[m].shape), key)
    conv = to_post_padding(feats, lengths, padding, src, split, text_bert)

    has_sims = "regression_labels_T" in d
    unimodal = None
    if has_sims:
        _split_dict(d, src, split, tuple(_SIMS_KEYS.values()))
        unimodal = {m: _labels(d[k], src, split, k, n) for m, k in _SIMS_KEYS.items()}

    ids = _strings(d["id"], src, split, "id", n) if d.get("id") is not None else [f"{split}_{i}" for i in range(n)]
    raw_text = _strings(d["raw_text"], src, split, "raw_text", n) if d.get("raw_text") is not None else None

    out = MSASplit(
        text=conv.feats["text"],
        audio=conv.feats["audio"],
        vision=conv.feats["vision"],
        lengths=conv.lengths,
        labels=labels,
        ids=ids,
        raw_text=raw_text,
        unimodal_labels=unimodal,
        text_bert=conv.text_bert,
        extras=extras,
        extra_lengths=extra_lengths,
        name=split,
        source=src,
    )
    return out, has_sims, text_bert is not None, conv.sides, replaced


def load_mmsa_pickle(path: str | os.PathLike[str], name: str | None = None, padding: PaddingOption = None,
                     strict: bool = False, extra_keys: tuple[str, ...] | list[str] = ()) -> MSADataset:
    """Load an MMSA pickle (MOSI/MOSEI ``aligned_50.pkl`` / ``unaligned_50.pkl``, CH-SIMS ``unaligned_39.pkl``).

    Args:
        path: the ``.pkl`` file; it is read with :func:`~msa_lib.data.safe_pickle.safe_load`.
        name: dataset name; default: parent folder lowercased (``.../MOSI/aligned_50.pkl`` → ``"mosi"``;
            an MMSA ``Processed`` folder is skipped), else the file stem.
        padding: ``"start"`` / ``"end"`` / ``"none"`` or a dict per modality: overrides the
            detected padding side (:mod:`msa_lib.data.padding`); None detects it.
        strict: refuse NaN/inf features instead of replacing them by 0.
        extra_keys: further keys of every split to read into ``MSASplit.extras`` (with optional
            ``<key>_lengths``); taken as post-padded as stored (see the module doc).

    Returns:
        An :class:`MSADataset` with ``kind="sims"`` when ``regression_labels_T`` is present
        (with ``unimodal_labels``) and ``"mosi"`` otherwise, post-padded arrays, and ``padding``,
        ``replaced``, ``feature_names`` (text ``"BERT 768-d"`` when ``text_bert`` is present or the
        text is 768-d; audio/vision by their dims) and ``file_format="MMSA pickle"``. ``classification_labels`` is not
        stored: it is derived from the regression labels.

    Raises:
        DataFormatError: missing split/key (an ``extra_keys`` name included), wrong shape, NaN
            labels, lengths outside ``[0, T]``, padding that cannot be placed, NaN/inf with
            ``strict``, or an unreadable/unsafe pickle; the message names file, split, key and shape.
        ValueError: an unknown ``padding`` value or malformed ``extra_keys``.
    """
    padding_option(padding)  # a bad argument fails before the file is read
    extra_keys = extra_key_tuple(extra_keys)
    src = os.fspath(path)
    return mmsa_dataset(top_level(safe_load(src), src), src, name, padding, strict, extra_keys)


def mmsa_dataset(top: Mapping[str, Any], src: str, name: str | None = None, padding: PaddingOption = None,
                 strict: bool = False, extra_keys: tuple[str, ...] | list[str] = ()) -> MSADataset:
    """:func:`load_mmsa_pickle` on an already unpickled object (``top``: checked by :func:`top_level`)."""
    pad = padding_option(padding)
    extra_keys = extra_key_tuple(extra_keys)
    splits: dict[str, MSASplit] = {}
    sims_flags: dict[str, bool] = {}
    bert_flags: dict[str, bool] = {}
    sides: dict[str, dict[str, str]] = {}
    replaced: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        splits[split], sims_flags[split], bert_flags[split], sides[split], counts = _load_split(
            top[split], src, split, pad, strict, extra_keys)
        if counts:
            replaced[split] = counts
    if len(set(sims_flags.values())) != 1:
        have = [s for s, f in sims_flags.items() if f]
        lack = [s for s, f in sims_flags.items() if not f]
        raise DataFormatError(
            f"{where(src, lack[0], 'regression_labels_T')}: missing, but splits {have} have CH-SIMS unimodal labels"
        )
    if len(set(bert_flags.values())) != 1:
        lack = [s for s, f in bert_flags.items() if not f]
        raise DataFormatError(f"{where(src, lack[0], 'text_bert')}: missing, but other splits have it")
    seq = {m: {splits[s].features(m).shape[1] for s in SPLITS} for m in MODALITIES}
    for m, ts in seq.items():
        if len(ts) != 1:
            warnings.warn(f"{src}: '{m}' sequence length differs across splits {sorted(ts)}", stacklevel=2)
    kind = "sims" if sims_flags["train"] else "mosi"
    dims = {m: splits["train"].features(m).shape[2] for m in MODALITIES}
    bert = bert_flags["train"] or dims["text"] == 768
    return MSADataset(
        name=name if name is not None else default_name(src),
        kind=kind,
        splits=splits,
        source=src,
        padding=sides,
        replaced=replaced,
        feature_names=feature_names(dims, {"text": "BERT"} if bert else None),
        file_format="MMSA pickle",
    )

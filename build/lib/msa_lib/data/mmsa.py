"""Loader for MMSA-style pickles (``aligned_50.pkl``, ``unaligned_50.pkl``, ``unaligned_39.pkl``).

Layout (per split ``train`` / ``valid`` / ``test``, a dict)::

    text                    (N, T_t, 768)  BERT features
    text_bert               (N, 3, T_t)    input ids / attention mask / segment ids   [optional]
    audio, vision           (N, T_m, d_m)
    audio_lengths, ...      (N,)           unaligned files only (list of ints or array)
    regression_labels       (N,)
    classification_labels   (N,)                                                      [ignored]
    id, raw_text            (N,)           strings                                    [optional]
    regression_labels_T/A/V (N,)           CH-SIMS unimodal labels

Every length is read from the file: text from the attention mask, audio/vision from
``*_lengths``; aligned files without length keys reuse the text length (their frames are aligned
to the word tokens). A length outside ``[0, T]`` is an error, never clipped.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .container import DataFormatError, MODALITIES, MSADataset, MSASplit, sanitize_features, where
from .safe_pickle import safe_load

__all__ = ["load_mmsa_pickle", "SPLITS"]

SPLITS: tuple[str, str, str] = ("train", "valid", "test")
_REQUIRED: tuple[str, ...] = ("text", "audio", "vision", "regression_labels")
_SIMS_KEYS: dict[str, str] = {"text": "regression_labels_T", "audio": "regression_labels_A", "vision": "regression_labels_V"}


# ----------------------------------------------------------------------------------------------
# helpers shared with the other pickle loader (iemocap.py imports them)
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


def _top_level(obj: Any, src: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise DataFormatError(f"{src}: expected a dict with splits {list(SPLITS)}, got {type(obj).__name__}")
    present = sorted(map(str, obj.keys()))
    for split in SPLITS:
        if split not in obj:
            raise DataFormatError(f"{where(src, split, split)}: split missing (top-level keys present: {present})")
    return obj


def _features(obj: Any, src: str, split: str, key: str, n: int | None) -> np.ndarray:
    """A (N, T, d) float32 feature array with non-finite values zeroed (one warning with the count)."""
    arr = _as_array(obj, src, split, key)
    if arr.ndim != 3:
        raise DataFormatError(f"{where(src, split, key)}: expected a 3-D array (N, T, d), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DataFormatError(
            f"{where(src, split, key)}: has {arr.shape[0]} samples but 'text' has {n} (shape {arr.shape})"
        )
    return sanitize_features(arr, src, split, key)


def _labels(obj: Any, src: str, split: str, key: str, n: int) -> np.ndarray:
    """(N,) float32 regression labels; (N, 1) is accepted; NaN/inf is an error."""
    arr = _as_array(obj, src, split, key)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
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


def _strings(obj: Any, src: str, split: str, key: str, n: int) -> list[str]:
    """``id`` / ``raw_text`` (array of str/object/bytes or list) as ``list[str]``."""
    arr = _as_array(obj, src, split, key)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise DataFormatError(f"{where(src, split, key)}: expected {n} strings, got shape {arr.shape}")
    return [x.decode("utf-8", errors="replace") if isinstance(x, bytes) else str(x) for x in arr.tolist()]


def _text_bert(obj: Any, src: str, split: str, n: int) -> np.ndarray:
    """(N, 3, T) int64 token ids / attention mask / segment ids; the mask must be 0/1."""
    key = "text_bert"
    arr = _as_array(obj, src, split, key)
    if arr.ndim != 3 or arr.shape[:2] != (n, 3):
        raise DataFormatError(f"{where(src, split, key)}: expected shape ({n}, 3, T), got shape {arr.shape}")
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
def _load_split(data: Any, src: str, split: str) -> tuple[MSASplit, bool, bool, bool]:
    """One MMSA split → (split, has_sims_labels, has_length_keys, has_text_bert)."""
    d = _split_dict(data, src, split, _REQUIRED)
    text = _features(d["text"], src, split, "text", None)
    n = text.shape[0]
    feats = {"text": text}
    for m in ("audio", "vision"):
        feats[m] = _features(d[m], src, split, m, n)
    labels = _labels(d["regression_labels"], src, split, "regression_labels", n)

    text_bert = None
    if d.get("text_bert") is not None:
        text_bert = _text_bert(d["text_bert"], src, split, n)
        text_len = _lengths(text_bert[:, 1, :].sum(axis=1), src, split, "text_bert", n, text.shape)
    else:
        text_len = np.full(n, text.shape[1], dtype=np.int64)

    lengths = {"text": text_len}
    length_keys = False
    for m in ("audio", "vision"):
        key = f"{m}_lengths"
        shape = feats[m].shape
        if d.get(key) is not None:
            length_keys = True
            lengths[m] = _lengths(d[key], src, split, key, n, shape)
        elif text_bert is not None and shape[1] == text.shape[1]:
            lengths[m] = text_len.copy()  # aligned to the word tokens
        else:
            if shape[1] != text.shape[1]:
                warnings.warn(
                    f"{where(src, split, key)}: missing for unaligned features of shape {shape}; "
                    f"assuming every sample uses all {shape[1]} frames",
                    stacklevel=3,
                )
            lengths[m] = np.full(n, shape[1], dtype=np.int64)

    has_sims = "regression_labels_T" in d
    unimodal = None
    if has_sims:
        _split_dict(d, src, split, tuple(_SIMS_KEYS.values()))
        unimodal = {m: _labels(d[k], src, split, k, n) for m, k in _SIMS_KEYS.items()}

    ids = _strings(d["id"], src, split, "id", n) if d.get("id") is not None else [f"{split}_{i}" for i in range(n)]
    raw_text = _strings(d["raw_text"], src, split, "raw_text", n) if d.get("raw_text") is not None else None

    out = MSASplit(
        text=feats["text"],
        audio=feats["audio"],
        vision=feats["vision"],
        lengths=lengths,
        labels=labels,
        ids=ids,
        raw_text=raw_text,
        unimodal_labels=unimodal,
        text_bert=text_bert,
        name=split,
        source=src,
    )
    return out, has_sims, length_keys, text_bert is not None


def load_mmsa_pickle(path: str | os.PathLike[str], name: str | None = None) -> MSADataset:
    """Load an MMSA pickle (MOSI/MOSEI ``aligned_50.pkl`` / ``unaligned_50.pkl``, CH-SIMS ``unaligned_39.pkl``).

    Args:
        path: the ``.pkl`` file; it is read with :func:`~msa_lib.data.safe_pickle.safe_load`.
        name: dataset name; default: parent folder lowercased (``.../MOSI/aligned_50.pkl`` → ``"mosi"``;
            an MMSA ``Processed`` folder is skipped), else the file stem.

    Returns:
        An :class:`MSADataset` with ``kind="sims"`` when ``regression_labels_T`` is present
        (with ``unimodal_labels``) and ``"mosi"`` otherwise; ``aligned`` when the three sequence
        lengths are equal and no ``*_lengths`` keys exist; ``text_special_tokens`` when
        ``text_bert`` is present. ``classification_labels`` is not stored: it is derived from the
        regression labels.

    Raises:
        DataFormatError: missing split/key, wrong shape, NaN labels, lengths outside ``[0, T]``,
            or an unreadable/unsafe pickle; the message names file, split, key and shape.
    """
    src = os.fspath(path)
    top = _top_level(safe_load(src), src)
    splits: dict[str, MSASplit] = {}
    sims_flags: dict[str, bool] = {}
    any_length_keys = False
    bert_flags: dict[str, bool] = {}
    for split in SPLITS:
        splits[split], sims_flags[split], has_len, bert_flags[split] = _load_split(top[split], src, split)
        any_length_keys |= has_len
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
    aligned = not any_length_keys and all(
        len({splits[s].features(m).shape[1] for m in MODALITIES}) == 1 for s in SPLITS
    )
    kind = "sims" if sims_flags["train"] else "mosi"
    return MSADataset(
        name=name if name is not None else default_name(src),
        kind=kind,
        splits=splits,
        aligned=aligned,
        source=src,
        text_special_tokens=bert_flags["train"],
    )

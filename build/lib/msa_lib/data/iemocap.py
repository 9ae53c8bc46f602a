"""Loader for the MulT-style IEMOCAP pickle (``iemocap_data.pkl`` / ``iemocap_data_noalign.pkl``).

Layout (per split ``train`` / ``valid`` / ``test``, a dict)::

    text    (N, T, 300)  GloVe
    audio   (N, T, 74)   COVAREP
    vision  (N, T, 35)   FACET
    labels  (N, 4, 2)    one-hot over {not, is} for happy / sad / angry / neutral

There are no length keys: every sample uses all T frames.
"""
from __future__ import annotations

import os

import numpy as np

from .container import IEMOCAP_EMOTIONS, MODALITIES, DataFormatError, MSADataset, MSASplit, where
from .mmsa import SPLITS, _as_array, _features, _split_dict, _top_level
from .safe_pickle import safe_load

__all__ = ["load_mult_iemocap"]


def _class_labels(obj: object, src: str, split: str, n: int) -> np.ndarray:
    """(N, 4, 2) one-hot labels → (N, 4) int64, 1 where the emotion is present."""
    key = "labels"
    arr = _as_array(obj, src, split, key)
    n_emo = len(IEMOCAP_EMOTIONS)
    if arr.ndim != 3 or arr.shape[0] != n or arr.shape[1] != n_emo or arr.shape[2] != 2:
        raise DataFormatError(
            f"{where(src, split, key)}: expected shape ({n}, {n_emo}, 2) (one-hot not/is per emotion "
            f"{IEMOCAP_EMOTIONS}), got shape {arr.shape}"
        )
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{where(src, split, key)}: labels are not numeric ({exc})") from exc
    if not np.isfinite(arr).all():
        raise DataFormatError(f"{where(src, split, key)}: contains NaN or inf (shape {arr.shape})")
    one_hot = np.isin(arr, (0.0, 1.0)).all(axis=-1) & (arr.sum(axis=-1) == 1)
    if not one_hot.all():
        i, j = np.argwhere(~one_hot)[0]
        raise DataFormatError(
            f"{where(src, split, key)}: labels[{i}, {j}] = {arr[i, j].tolist()} is not one-hot over (not, is) "
            f"(shape {arr.shape})"
        )
    return arr.argmax(axis=-1).astype(np.int64)


def _load_split(data: object, src: str, split: str) -> MSASplit:
    d = _split_dict(data, src, split, ("text", "audio", "vision", "labels"))
    text = _features(d["text"], src, split, "text", None)
    n = text.shape[0]
    feats = {"text": text}
    for m in ("audio", "vision"):
        feats[m] = _features(d[m], src, split, m, n)
    return MSASplit(
        text=feats["text"],
        audio=feats["audio"],
        vision=feats["vision"],
        lengths={m: np.full(n, feats[m].shape[1], dtype=np.int64) for m in MODALITIES},
        labels=None,
        ids=[f"{split}_{i}" for i in range(n)],
        class_labels=_class_labels(d["labels"], src, split, n),
        name=split,
        source=src,
    )


def load_mult_iemocap(path: str | os.PathLike[str], name: str = "iemocap") -> MSADataset:
    """Load MulT's IEMOCAP pickle as a 4-emotion classification dataset.

    Args:
        path: the ``.pkl`` file; read with :func:`~msa_lib.data.safe_pickle.safe_load` (latin-1).
        name: dataset name.

    Returns:
        An :class:`MSADataset` with ``kind="iemocap"``, ``class_names=IEMOCAP_EMOTIONS``, per split
        ``class_labels`` (N, 4) int64 (argmax of the one-hot axis: 1 = emotion present),
        ``labels=None``, full-length sequences, ids ``f"{split}_{i}"``. ``aligned`` is True when
        the three modalities share one sequence length (the aligned MulT file).

    Raises:
        DataFormatError: missing split/key, wrong shapes (labels not (N, 4, 2)), non one-hot labels,
            or an unreadable/unsafe pickle; the message names file, split, key and shape.
    """
    src = os.fspath(path)
    top = _top_level(safe_load(src), src)
    splits = {s: _load_split(top[s], src, s) for s in SPLITS}
    aligned = all(len({splits[s].features(m).shape[1] for m in MODALITIES}) == 1 for s in SPLITS)
    return MSADataset(
        name=name,
        kind="iemocap",
        splits=splits,
        aligned=aligned,
        source=src,
        class_names=IEMOCAP_EMOTIONS,
    )

"""Loader for MulT's pickles (yaohungt/Multimodal-Transformer): MOSI, MOSEI and IEMOCAP.

Files: ``mosi_data.pkl`` / ``mosei_senti_data.pkl`` / ``iemocap_data.pkl`` and their ``*_noalign``
variants. Layout (per split ``train`` / ``valid`` / ``test``, a dict)::

    text    (N, T_t, 300)  GloVe
    audio   (N, T_a, d_a)  COVAREP   (MOSI releases: 5-d, MOSEI / IEMOCAP: 74-d)
    vision  (N, T_v, d_v)  Facet     (MOSI releases: 20-d, MOSEI / IEMOCAP: 35-d)
    labels  (N, 1, 1)      sentiment in [-3, 3]        MOSI / MOSEI → kind "mosi"
            (N, 4, 2)      one-hot (not, is) for happy / sad / angry / neutral → kind "iemocap"
    id      (N,) or (N, k) strings (e.g. video id, start, end: a row is joined by "_")   [optional]

The label shape of the train split decides the task; dims are read from the file. There are no
length keys and the sequences are PRE-padded: lengths and the padding side are measured from the
all-zero frames by :mod:`msa_lib.data.padding` (aligned files share one padding across modalities),
and the arrays converted to post-padding.

Extras (``extra_keys``, e.g. ``sim_text`` with optional ``sim_text_lengths``) are read as in the
MMSA loader (:func:`.mmsa.read_extras`): (N, T_x, d_x) taken as POST-padded as the file stores
them, whatever the modalities' padding; no padding is detected or converted for them.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .container import (IEMOCAP_EMOTIONS, MODALITIES, DataFormatError, MSADataset, MSASplit, extra_key_tuple,
                        feature_names, where)
from .mmsa import SPLITS, _as_array, _labels, _split_dict, _strings, read_extras, read_features, top_level
from .padding import PaddingOption, padding_option, to_post_padding
from .safe_pickle import safe_load

__all__ = ["load_mult_pickle", "mult_dataset", "mult_name"]

FAMILIES: dict[str, str] = {"text": "GloVe", "audio": "COVAREP", "vision": "Facet"}
_REGRESSION_SHAPES: tuple[tuple[int, ...], ...] = ((), (1,), (1, 1))


def mult_name(path: str | os.PathLike[str]) -> str:
    """Dataset name from MulT's file name: ``mosei_senti_data.pkl`` → ``"mosei"``, ``mosi_data.pkl`` →
    ``"mosi"``, ``iemocap_data.pkl`` → ``"iemocap"``; else the file stem."""
    stem = Path(path).stem
    found = re.search(r"mosei|mosi|iemocap", stem.lower())
    return found.group(0) if found else stem


def _kind(obj: Any, src: str) -> str:
    """``"iemocap"`` or ``"mosi"`` from the train split's label shape."""
    shape = _as_array(obj, src, "train", "labels").shape
    if shape[1:] == (len(IEMOCAP_EMOTIONS), 2):
        return "iemocap"
    if shape[1:] in _REGRESSION_SHAPES and len(shape) >= 1:
        return "mosi"
    raise DataFormatError(
        f"{where(src, 'train', 'labels')}: expected shape (N, {len(IEMOCAP_EMOTIONS)}, 2) (IEMOCAP emotions) or "
        f"(N, 1, 1) / (N, 1) / (N,) (sentiment), got shape {shape}"
    )


def _class_labels(obj: object, src: str, split: str, n: int) -> np.ndarray:
    """(N, 4, 2) one-hot labels → (N, 4) int64, 1 where the emotion is present."""
    key = "labels"
    arr = _as_array(obj, src, split, key)
    n_emo = len(IEMOCAP_EMOTIONS)
    if arr.shape != (n, n_emo, 2):
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


def _load_split(data: object, src: str, split: str, kind: str, padding: Mapping[str, str | None],
                strict: bool, extra_keys: tuple[str, ...] = ()) -> tuple[MSASplit, dict[str, str], dict[str, int]]:
    """One MulT split → (split, padding sides, replaced counts)."""
    d = _split_dict(data, src, split, ("text", "audio", "vision", "labels"))
    feats, replaced = read_features(d, src, split, strict)
    n = feats["text"].shape[0]
    extras, extra_lengths, extra_replaced = read_extras(d, src, split, extra_keys, n, strict)
    replaced.update(extra_replaced)
    conv = to_post_padding(feats, {}, padding, src, split)
    if kind == "iemocap":
        labels, class_labels = None, _class_labels(d["labels"], src, split, n)
    else:
        labels, class_labels = _labels(d["labels"], src, split, "labels", n), None
    ids = (_strings(d["id"], src, split, "id", n, join_rows=True) if d.get("id") is not None
           else [f"{split}_{i}" for i in range(n)])
    out = MSASplit(
        text=conv.feats["text"], audio=conv.feats["audio"], vision=conv.feats["vision"], lengths=conv.lengths,
        labels=labels, ids=ids, class_labels=class_labels, extras=extras, extra_lengths=extra_lengths,
        name=split, source=src,
    )
    return out, conv.sides, replaced


def load_mult_pickle(path: str | os.PathLike[str], name: str | None = None, padding: PaddingOption = None,
                     strict: bool = False, extra_keys: tuple[str, ...] | list[str] = ()) -> MSADataset:
    """Load a MulT pickle: MOSI / MOSEI sentiment regression or IEMOCAP 4-emotion classification.

    Args:
        path: the ``.pkl`` file; read with :func:`~msa_lib.data.safe_pickle.safe_load` (latin-1).
        name: dataset name; default :func:`mult_name` of the file name.
        padding: ``"start"`` / ``"end"`` / ``"none"`` or a dict per modality: overrides the
            detected padding side (:mod:`msa_lib.data.padding`); None detects it.
        strict: refuse NaN/inf features instead of replacing them by 0.
        extra_keys: further keys of every split to read into ``MSASplit.extras`` (with optional
            ``<key>_lengths``); taken as post-padded as stored (see the module doc).

    Returns:
        An :class:`MSADataset`, post-padded. Labels (N, 4, 2): ``kind="iemocap"``,
        ``class_names=IEMOCAP_EMOTIONS``, per split ``class_labels`` (N, 4) int64 (1 = emotion
        present) and ``labels=None``. Labels (N, 1, 1) / (N, 1) / (N,): ``kind="mosi"`` with (N,)
        float ``labels``. ``ids`` from ``id`` (rows joined by ``_``), else ``f"{split}_{i}"``;
        ``feature_names`` GloVe / COVAREP / Facet with the file's dims, ``file_format="MulT pickle"``.

    Raises:
        DataFormatError: missing split/key (an ``extra_keys`` name included), wrong shapes, non
            one-hot or NaN labels, ambiguous padding, NaN/inf with ``strict``, or an
            unreadable/unsafe pickle; the message names file, split, key and shape.
        ValueError: an unknown ``padding`` value or malformed ``extra_keys``.
    """
    padding_option(padding)  # a bad argument fails before the file is read
    extra_keys = extra_key_tuple(extra_keys)
    src = os.fspath(path)
    return mult_dataset(top_level(safe_load(src), src), src, name, padding, strict, extra_keys)


def mult_dataset(top: Mapping[str, Any], src: str, name: str | None = None, padding: PaddingOption = None,
                 strict: bool = False, extra_keys: tuple[str, ...] | list[str] = ()) -> MSADataset:
    """:func:`load_mult_pickle` on an already unpickled object (``top``: checked by :func:`~.mmsa.top_level`)."""
    pad = padding_option(padding)
    extra_keys = extra_key_tuple(extra_keys)
    kind = _kind(_split_dict(top["train"], src, "train", ("labels",))["labels"], src)
    splits: dict[str, MSASplit] = {}
    sides: dict[str, dict[str, str]] = {}
    replaced: dict[str, dict[str, int]] = {}
    for s in SPLITS:
        splits[s], sides[s], counts = _load_split(top[s], src, s, kind, pad, strict, extra_keys)
        if counts:
            replaced[s] = counts
    dims = {m: splits["train"].features(m).shape[2] for m in MODALITIES}
    return MSADataset(
        name=name if name is not None else mult_name(src),
        kind=kind,  # type: ignore[arg-type]
        splits=splits,
        source=src,
        class_names=IEMOCAP_EMOTIONS if kind == "iemocap" else None,
        padding=sides,
        replaced=replaced,
        feature_names=feature_names(dims, FAMILIES),
        file_format="MulT pickle",
    )

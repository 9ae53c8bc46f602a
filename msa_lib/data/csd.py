"""CMU-MultimodalSDK computational sequences (``.csd``, HDF5) → :class:`MSADataset`.

A ``.csd`` file holds one root group named after the sequence (e.g. ``CMU_MOSI_COVAREP``)::

    <root>/data/<segment_id>/features    (T, d)
    <root>/data/<segment_id>/intervals   (T, 2)   start/end times in seconds
    <root>/metadata/...                  JSON strings (ignored here)

:func:`read_csd` reads and checks one file; :func:`load_csd_dataset` joins a text, audio,
vision and labels sequence by segment id, pads every sequence at the end, and splits by video
(segment ``"vid[3]"`` belongs to video ``"vid"``) so that no video leaks across splits.
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Iterable, Mapping, Union

import h5py
import numpy as np

from .container import MODALITIES, DataFormatError, MSADataset, MSASplit, feature_names, sanitize_features, where
from .padding import post_padded_sides

__all__ = ["read_csd", "load_csd_dataset", "video_of", "CsdData"]

CsdData = dict[str, tuple[np.ndarray, np.ndarray]]
CsdSource = Union[str, "os.PathLike[str]", Mapping[str, tuple[np.ndarray, np.ndarray]]]

_SEGMENT_RE = re.compile(r"^(.*)\[(\d+)\]$")
_STANDARD_SPLITS: tuple[str, str, str] = ("train", "valid", "test")


def video_of(segment_id: str) -> str:
    """Video id of a segment: ``"vid[3]"`` → ``"vid"``; an id without ``[k]`` is its own video."""
    m = _SEGMENT_RE.match(segment_id)
    return m.group(1) if m else segment_id


def _check_sequence(data: Mapping[str, tuple[np.ndarray, np.ndarray]], src: str, prefix: str) -> CsdData:
    """Check (T, d) features / (T, 2) intervals per segment and one feature dim across segments."""
    out: CsdData = {}
    first: tuple[str, tuple[int, ...]] | None = None
    for seg in sorted(data):
        try:
            feats, intervals = data[seg]
        except (TypeError, ValueError) as exc:
            raise DataFormatError(f"{where(src, '', prefix + seg)}: expected (features, intervals) ({exc})") from exc
        feats, intervals = np.asarray(feats), np.asarray(intervals)
        fkey, ikey = f"{prefix}{seg}/features", f"{prefix}{seg}/intervals"
        if feats.ndim != 2:
            raise DataFormatError(f"{where(src, '', fkey)}: expected a 2-D array (T, d), got shape {feats.shape}")
        if intervals.ndim != 2 or intervals.shape[1] != 2:
            raise DataFormatError(f"{where(src, '', ikey)}: expected shape (T, 2), got shape {intervals.shape}")
        if feats.shape[0] != intervals.shape[0]:
            raise DataFormatError(
                f"{where(src, '', fkey)}: segment '{seg}' has {feats.shape[0]} feature rows (shape {feats.shape}) "
                f"but {intervals.shape[0]} intervals (shape {intervals.shape})"
            )
        if first is None:
            first = (seg, feats.shape)
        elif feats.shape[1] != first[1][1]:
            raise DataFormatError(
                f"{where(src, '', fkey)}: segment '{seg}' has feature dim {feats.shape[1]} (shape {feats.shape}) "
                f"but segment '{first[0]}' has {first[1][1]} (shape {first[1]})"
            )
        out[seg] = (feats, intervals)
    return out


def read_csd(path: str | os.PathLike[str]) -> CsdData:
    """Read one computational sequence: segment id → ``(features (T, d), intervals (T, 2))``.

    Raises:
        DataFormatError: not an HDF5 file or corrupt; no root group (or several); no ``data``
            group; a segment without ``features``/``intervals``; features and intervals of
            different lengths; feature dims that differ between segments. The message names the
            file, the HDF5 key and the shapes.
        FileNotFoundError: ``path`` does not exist.
    """
    return _read(path)[1]


def _read(path: str | os.PathLike[str]) -> tuple[str, CsdData]:
    """:func:`read_csd`, plus the sequence's root group name (e.g. ``CMU_MOSI_COVAREP``)."""
    src = os.fspath(path)
    if not os.path.exists(src):
        raise FileNotFoundError(f"{src}: no such computational sequence file")
    try:
        fh = h5py.File(src, "r")
    except OSError as exc:
        raise DataFormatError(f"{src}: not a readable HDF5 computational sequence (.csd): {exc}") from exc
    try:
        with fh:
            groups = [k for k in fh.keys() if isinstance(fh.get(k), h5py.Group)]
            if not groups:
                raise DataFormatError(
                    f"{where(src, '', '/')}: no root group named after the sequence (top-level keys: {sorted(fh.keys())})"
                )
            if len(groups) > 1:
                raise DataFormatError(f"{where(src, '', '/')}: expected one root group, found {sorted(groups)}")
            root = fh[groups[0]]
            data = root.get("data")
            if not isinstance(data, h5py.Group):
                raise DataFormatError(
                    f"{where(src, '', groups[0] + '/data')}: missing (root group keys: {sorted(root.keys())})"
                )
            raw: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for seg, node in data.items():
                base = f"{groups[0]}/data/{seg}"
                if not isinstance(node, h5py.Group):
                    raise DataFormatError(f"{where(src, '', base)}: expected a group with 'features' and 'intervals'")
                for key in ("features", "intervals"):
                    if not isinstance(node.get(key), h5py.Dataset):
                        raise DataFormatError(f"{where(src, '', base + '/' + key)}: missing (have {sorted(node.keys())})")
                raw[seg] = (node["features"][()], node["intervals"][()])
    except DataFormatError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as exc:  # corrupt chunks, broken links
        raise DataFormatError(f"{src}: corrupt HDF5 computational sequence: {type(exc).__name__}: {exc}") from exc
    return groups[0], _check_sequence(raw, src, f"{groups[0]}/data/")


def _resolve(obj: CsdSource, role: str) -> tuple[CsdData, str, str]:
    """The sequence, its source for messages, and its root name ("" for an in-memory dict)."""
    if isinstance(obj, Mapping):
        src = f"<{role} sequence>"
        return _check_sequence(obj, src, ""), src, ""
    root, data = _read(obj)
    return data, os.fspath(obj), root


def _assign_splits(
    segments: list[str], splits: Mapping[str, Iterable[str]] | None
) -> tuple[dict[str, list[str]], str]:
    """Split name → sorted segment ids, split at video level; plus a note on how it was made."""
    videos = sorted({video_of(s) for s in segments})
    if splits is None:
        warnings.warn(
            "load_csd_dataset: no splits given; pass the dataset's standard folds (e.g. the SDK's "
            "standard_train_fold / standard_valid_fold / standard_test_fold) for comparable results. "
            "Using a seeded (seed 0) random 70/10/20 video-level split instead.",
            stacklevel=3,
        )
        n = len(videos)
        if n < 3:
            raise DataFormatError(f"cannot make train/valid/test splits from {n} video(s) {videos}")
        n_valid = max(1, round(0.1 * n))
        n_test = max(1, round(0.2 * n))
        n_train = n - n_valid - n_test
        if n_train < 1:
            n_train, n_valid, n_test = 1, 1, n - 2
        order = [videos[i] for i in np.random.default_rng(0).permutation(n)]
        video_split = {v: "train" for v in order[:n_train]}
        video_split.update({v: "valid" for v in order[n_train : n_train + n_valid]})
        video_split.update({v: "test" for v in order[n_train + n_valid :]})
        names: list[str] = list(_STANDARD_SPLITS)
        note = "random video-level 70/10/20 split, seed 0 (no standard folds given)"
    else:
        if not isinstance(splits, Mapping):
            raise TypeError(f"splits must map split name -> list of video ids, got {type(splits).__name__}")
        missing = [s for s in _STANDARD_SPLITS if s not in splits]
        if missing:
            raise ValueError(f"splits must name {list(_STANDARD_SPLITS)}; missing {missing} (have {sorted(splits)})")
        video_split = {}
        for split, vids in splits.items():
            if isinstance(vids, str):
                raise TypeError(f"splits['{split}'] must be a list of video ids, got the string {vids!r}")
            for v in vids:
                if video_split.get(v, split) != split:
                    raise ValueError(f"video '{v}' is listed in both splits '{video_split[v]}' and '{split}'")
                video_split[v] = split
        names = list(splits)
        note = "given folds"
    out: dict[str, list[str]] = {s: [] for s in names}
    unassigned = 0
    for seg in sorted(segments):
        split = video_split.get(video_of(seg))
        if split is None:
            unassigned += 1
        else:
            out[split].append(seg)
    if unassigned:
        warnings.warn(
            f"load_csd_dataset: {unassigned} segments belong to videos listed in no split and were left out",
            stacklevel=3,
        )
    for split, segs in out.items():
        if not segs:
            raise ValueError(f"split '{split}' has no segments: none of its videos are in all four sequences")
    return out, note


def _pad(
    data: CsdData, segs: list[str], t: int, src: str, split: str, key: str, strict: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """Stack segments into (N, t, d) float32, zero-padded at the end / truncated to t; lengths (≤ t);
    the count of NaN/inf replaced (:func:`~msa_lib.data.container.sanitize_features`)."""
    d = next(iter(data.values()))[0].shape[1]
    out = np.zeros((len(segs), t, d), dtype=np.float32)
    lens = np.zeros(len(segs), dtype=np.int64)
    for i, seg in enumerate(segs):
        feats = data[seg][0]
        try:
            feats = np.asarray(feats, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise DataFormatError(
                f"{where(src, split, seg + '/features')}: cannot read as float features, dtype {np.asarray(feats).dtype} ({exc})"
            ) from exc
        k = min(feats.shape[0], t)
        out[i, :k] = feats[:k]
        lens[i] = k
    out, n_bad = sanitize_features(out, src, split, key, strict)
    return out, lens, n_bad


def load_csd_dataset(
    text: CsdSource,
    audio: CsdSource,
    vision: CsdSource,
    labels: CsdSource,
    splits: Mapping[str, Iterable[str]] | None = None,
    name: str = "mosi",
    kind: str = "mosi",
    max_len: int | Mapping[str, int] | None = None,
    strict: bool = False,
) -> MSADataset:
    """Join four computational sequences (paths to ``.csd`` files or :func:`read_csd` dicts) into a dataset.

    Segments are the intersection of the four sequences' ids (one warning with the number dropped).
    Each segment's regression label is the mean of column 0 of its labels features ((1, 1) or
    (T, k); for MOSEI's (1, 7) labels column 0 is sentiment). Features are zero-padded at the end
    to the longest segment of that modality over all splits, or padded/truncated to ``max_len``
    (an int or a per-modality dict); ``lengths`` record the valid frames.

    Args:
        splits: split name → list of *video* ids; must include ``train``/``valid``/``test``. When
            ``None``, a warning is emitted and a seeded (seed 0) random 70/10/20 video-level split
            is used (recorded in ``notes["splits"]``).
        kind: ``"mosi"`` or ``"sims"`` (only the metric family; labels are read the same way).
        strict: refuse NaN/inf features instead of replacing them by 0.

    Returns:
        An :class:`MSADataset`; per split ``ids`` are the segment ids in sorted order; ``aligned``
        when every segment has the same length in all three modalities and T is shared;
        ``padding`` ``"end"`` (or ``"none"``), ``replaced`` counts, ``file_format="CMU-SDK .csd"``,
        ``feature_names`` the sequences' root names with their dims (e.g. ``"CMU_MOSI_COVAREP 5-d"``).

    Raises:
        DataFormatError: unreadable/malformed sequence, no common segment, empty/NaN labels,
            NaN/inf features with ``strict``.
        ValueError: bad ``splits`` / ``kind`` / ``max_len`` arguments.
    """
    if kind not in ("mosi", "sims"):
        raise ValueError(f"kind must be 'mosi' or 'sims' for CSD regression data, got {kind!r}")
    seqs: dict[str, CsdData] = {}
    srcs: dict[str, str] = {}
    roots: dict[str, str] = {}
    for role, obj in (("text", text), ("audio", audio), ("vision", vision), ("labels", labels)):
        seqs[role], srcs[role], roots[role] = _resolve(obj, role)
        if not seqs[role]:
            raise DataFormatError(f"{where(srcs[role], '', 'data')}: the {role} sequence has no segments")

    ids = [set(s) for s in seqs.values()]
    common = set.intersection(*ids)
    union = set.union(*ids)
    if not common:
        raise DataFormatError(f"no segment id is shared by all four sequences ({', '.join(srcs.values())})")
    if len(union) > len(common):
        missing = ", ".join(f"{r}: {len(union - set(s))}" for r, s in seqs.items())
        warnings.warn(
            f"load_csd_dataset: dropped {len(union) - len(common)} of {len(union)} segments missing from at least "
            f"one sequence (missing per sequence: {missing})",
            stacklevel=2,
        )

    raw_len = {m: {seg: int(seqs[m][seg][0].shape[0]) for seg in common} for m in MODALITIES}
    if max_len is None:
        t = {m: max(raw_len[m].values()) for m in MODALITIES}
    else:
        lim = dict(max_len) if isinstance(max_len, Mapping) else {m: max_len for m in MODALITIES}
        if set(lim) != set(MODALITIES) or any(not isinstance(v, (int, np.integer)) or v < 1 for v in lim.values()):
            raise ValueError(f"max_len must be a positive int or a dict over {MODALITIES}, got {max_len!r}")
        t = {m: int(lim[m]) for m in MODALITIES}
        cut = {m: sum(v > t[m] for v in raw_len[m].values()) for m in MODALITIES}
        if any(cut.values()):
            warnings.warn(
                "load_csd_dataset: truncated segments longer than max_len (kept the first frames): "
                + ", ".join(f"{m}: {c} > {t[m]}" for m, c in cut.items() if c),
                stacklevel=2,
            )

    by_split, note = _assign_splits(sorted(common), splits)
    source = "; ".join(f"{r}={s}" for r, s in srcs.items())
    out: dict[str, MSASplit] = {}
    replaced: dict[str, dict[str, int]] = {}
    for split, segs in by_split.items():
        feats, lens, counts = {}, {}, {}
        for m in MODALITIES:
            feats[m], lens[m], counts[m] = _pad(seqs[m], segs, t[m], srcs[m], split, m, strict)
        if any(counts.values()):
            replaced[split] = {m: c for m, c in counts.items() if c}
        y = np.zeros(len(segs), dtype=np.float32)
        for i, seg in enumerate(segs):
            lab = seqs["labels"][seg][0]
            key = f"{seg}/features"
            if lab.shape[0] == 0 or lab.shape[1] == 0:
                raise DataFormatError(f"{where(srcs['labels'], split, key)}: empty labels, shape {lab.shape}")
            try:
                value = float(np.mean(np.asarray(lab[:, 0], dtype=np.float64)))
            except (TypeError, ValueError) as exc:
                raise DataFormatError(f"{where(srcs['labels'], split, key)}: labels not numeric ({exc})") from exc
            if not np.isfinite(value):
                raise DataFormatError(f"{where(srcs['labels'], split, key)}: label is NaN or inf (shape {lab.shape})")
            y[i] = value
        out[split] = MSASplit(
            text=feats["text"],
            audio=feats["audio"],
            vision=feats["vision"],
            lengths=lens,
            labels=y,
            ids=list(segs),
            name=split,
            source=source,
        )

    dims = {m: next(iter(seqs[m].values()))[0].shape[1] for m in MODALITIES}
    return MSADataset(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        splits=out,
        source=source,
        notes={"splits": note},
        padding={s: post_padded_sides(sp) for s, sp in out.items()},
        replaced=replaced,
        feature_names=feature_names(dims, roots),
        file_format="CMU-SDK .csd",
    )

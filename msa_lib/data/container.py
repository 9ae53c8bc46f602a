"""One container type for a dataset split, shared by every loader and every model.

Arrays follow the MMSA convention: per modality a float32 array (N, T_m, d_m), padded at the
end, with per-sample valid lengths. Validation happens once, here, so that a malformed file
fails with one message naming the file, split, key and shape.

A split may also carry *extras*: named per-sample feature sequences a model reads besides the
three modalities (e.g. simulated text features precomputed offline, stored under a key the user
names and asked for with ``load_dataset(..., extra_keys=("sim_text",))``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal, Mapping

import numpy as np

MODALITIES: tuple[str, str, str] = ("text", "audio", "vision")
SHORT_NAMES: dict[str, str] = {"l": "text", "a": "audio", "v": "vision"}
IEMOCAP_EMOTIONS: tuple[str, ...] = ("happy", "sad", "angry", "neutral")


class DataFormatError(ValueError):
    """A data file does not have the layout its loader expects."""


def where(source: str, split: str, key: str) -> str:
    """Location prefix used in every data error: ``file [split] key 'x'``."""
    return f"{source or '<memory>'} [{split or '?'}] key '{key}'"


def sanitize_features(arr: np.ndarray, source: str, split: str, key: str,
                      strict: bool = False) -> tuple[np.ndarray, int]:
    """Cast a feature array (N, ...) to float32 and replace NaN/inf by 0 (MMSA's convention for
    COVAREP's -inf), warning once with the count. Returns the array and the number replaced.

    Raises:
        DataFormatError: the array is not numeric, or ``strict`` and it holds NaN/inf (the message
            names the count and the first sample that holds one).
    """
    try:
        out = np.asarray(arr, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{where(source, split, key)}: cannot read as float features ({exc})") from exc
    bad = ~np.isfinite(out)
    n_bad = int(bad.sum())
    if n_bad:
        first = int(np.argmax(bad.reshape(len(bad), -1).any(axis=1))) if bad.ndim > 1 else int(np.argmax(bad))
        if strict:
            raise DataFormatError(
                f"{where(source, split, key)}: {n_bad} non-finite values (NaN/inf), the first in sample {first} "
                f"(shape {out.shape}); strict loading refuses them (strict=False replaces them by 0)"
            )
        warnings.warn(
            f"{where(source, split, key)}: replaced {n_bad} non-finite values (NaN/inf) by 0",
            stacklevel=2,
        )
        out = np.where(bad, np.float32(0.0), out)
    return out, n_bad


def extra_key_tuple(extra_keys: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``extra_keys`` as a tuple of non-empty key names (order kept, duplicates dropped).

    Raises:
        ValueError: a bare string (``"sim_text"`` instead of ``("sim_text",)``) or a name that is
            not a non-empty string.
    """
    if isinstance(extra_keys, (str, bytes)):
        raise ValueError(f"extra_keys must be a tuple or list of key names, got the string {extra_keys!r} "
                         f"(write ({extra_keys!r},))")
    keys = tuple(dict.fromkeys(extra_keys or ()))
    bad = [k for k in keys if not isinstance(k, str) or not k]
    if bad:
        raise ValueError(f"extra_keys must be non-empty strings, got {bad!r} in {list(keys)!r}")
    return keys


def feature_names(dims: Mapping[str, int], families: Mapping[str, str] | None = None) -> dict[str, str]:
    """Per modality ``"<family> <d>-d"`` (e.g. ``"GloVe 300-d"``), or ``"<d>-d"`` where no family is known."""
    families = families or {}
    return {m: f"{families[m]} {dims[m]}-d" if families.get(m) else f"{dims[m]}-d" for m in MODALITIES}


@dataclass
class MSASplit:
    """One split (train, valid or test) of a multimodal sentiment dataset.

    ``labels`` are regression labels (N,) and may be ``None`` only for classification data,
    whose ``class_labels`` are (N, C) integers (IEMOCAP: one 0/1 column per emotion).
    ``keep`` masks are absent on raw data and set by :mod:`msa_lib.missing` on masked copies:
    (N, T_m) bool, True where a valid frame is present, False where it was dropped and on padding.

    ``extras`` (optional): name -> (N, T_x, d_x) float32 per-sample feature sequences a model
    reads besides the modalities (e.g. precomputed simulated text features), post-padded as the
    file stores them, with ``extra_lengths`` name -> (N,) int64 valid lengths in [0, T_x]
    (validation fills in T_x for every sample where a name has no lengths). They are derived
    inputs, not a modality: missing-data protocols never mask them.
    """

    text: np.ndarray
    audio: np.ndarray
    vision: np.ndarray
    lengths: dict[str, np.ndarray]
    labels: np.ndarray | None
    ids: list[str]
    raw_text: list[str] | None = None
    unimodal_labels: dict[str, np.ndarray] | None = None
    class_labels: np.ndarray | None = None
    text_bert: np.ndarray | None = None
    keep: dict[str, np.ndarray] | None = None
    extras: dict[str, np.ndarray] | None = None
    extra_lengths: dict[str, np.ndarray] | None = None
    name: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def __len__(self) -> int:
        return int(self.text.shape[0])

    def features(self, modality: str) -> np.ndarray:
        return getattr(self, modality)

    def valid_mask(self, modality: str) -> np.ndarray:
        """(N, T_m) bool, True on frames inside the sample's length."""
        t = self.features(modality).shape[1]
        return np.arange(t)[None, :] < self.lengths[modality][:, None]

    def validate(self) -> None:
        src, split = self.source, self.name
        n = None
        for m in MODALITIES:
            arr = self.features(m)
            if not isinstance(arr, np.ndarray) or arr.ndim != 3:
                shape = getattr(arr, "shape", type(arr).__name__)
                raise DataFormatError(f"{where(src, split, m)}: expected a 3-D array (N, T, d), got shape {shape}")
            if arr.dtype != np.float32:
                raise DataFormatError(f"{where(src, split, m)}: expected float32 features, got {arr.dtype}")
            if not np.isfinite(arr).all():
                raise DataFormatError(f"{where(src, split, m)}: contains NaN or inf")
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise DataFormatError(
                    f"{where(src, split, m)}: has {arr.shape[0]} samples but 'text' has {n} (shape {arr.shape})"
                )
            if m not in self.lengths:
                raise DataFormatError(f"{where(src, split, m + '_lengths')}: missing")
            lens = np.asarray(self.lengths[m])
            if lens.shape != (n,):
                raise DataFormatError(f"{where(src, split, m + '_lengths')}: expected shape ({n},), got {lens.shape}")
            if (lens < 0).any() or (lens > arr.shape[1]).any():
                raise DataFormatError(
                    f"{where(src, split, m + '_lengths')}: lengths must lie in [0, {arr.shape[1]}] "
                    f"(sequence axis of shape {arr.shape}), got range [{lens.min()}, {lens.max()}]"
                )
            self.lengths[m] = lens.astype(np.int64)
        if self.labels is None and self.class_labels is None:
            raise DataFormatError(f"{where(src, split, 'labels')}: neither regression nor class labels present")
        if self.labels is not None:
            if self.labels.shape != (n,):
                raise DataFormatError(f"{where(src, split, 'labels')}: expected shape ({n},), got {self.labels.shape}")
            if not np.isfinite(self.labels).all():
                raise DataFormatError(f"{where(src, split, 'labels')}: contains NaN or inf")
        if self.class_labels is not None and (
            self.class_labels.ndim != 2 or self.class_labels.shape[0] != n or self.class_labels.dtype.kind not in "iu"
        ):
            raise DataFormatError(
                f"{where(src, split, 'class_labels')}: expected integer (N={n}, C) labels, got shape "
                f"{self.class_labels.shape} dtype {self.class_labels.dtype}"
            )
        for m, lab in (self.unimodal_labels or {}).items():
            if lab.shape != (n,) or not np.isfinite(lab).all():
                raise DataFormatError(
                    f"{where(src, split, 'labels_' + m)}: expected ({n},) finite values, got shape {lab.shape}"
                )
        t_text = self.text.shape[1]
        if self.text_bert is not None and self.text_bert.shape != (n, 3, t_text):
            raise DataFormatError(
                f"{where(src, split, 'text_bert')}: expected shape ({n}, 3, {t_text}) to match 'text' "
                f"{self.text.shape}, got {self.text_bert.shape}"
            )
        self._validate_extras(n)
        if len(self.ids) != n:
            raise DataFormatError(f"{where(src, split, 'id')}: expected {n} ids, got {len(self.ids)}")
        if self.raw_text is not None and len(self.raw_text) != n:
            raise DataFormatError(f"{where(src, split, 'raw_text')}: expected {n} entries, got {len(self.raw_text)}")

    def _validate_extras(self, n: int) -> None:
        """Each extra: 3-D float32, finite, ``n`` samples; its lengths (N,) in [0, T_x], cast to
        int64, T_x for every sample where none are given. Lengths without an extra are an error."""
        src, split = self.source, self.name
        if self.extras is None:
            if self.extra_lengths:
                raise DataFormatError(f"{where(src, split, sorted(self.extra_lengths)[0] + '_lengths')}: "
                                      f"lengths given but the split has no extras")
            return
        lengths = dict(self.extra_lengths or {})
        orphans = sorted(set(lengths) - set(self.extras))
        if orphans:
            raise DataFormatError(f"{where(src, split, orphans[0] + '_lengths')}: lengths given but there is no "
                                  f"extra '{orphans[0]}' (extras: {sorted(self.extras)})")
        for key, arr in self.extras.items():
            if not isinstance(arr, np.ndarray) or arr.ndim != 3:
                shape = getattr(arr, "shape", type(arr).__name__)
                raise DataFormatError(f"{where(src, split, key)}: expected a 3-D array (N, T, d), got shape {shape}")
            if arr.dtype != np.float32:
                raise DataFormatError(f"{where(src, split, key)}: expected float32 features, got {arr.dtype} "
                                      f"(shape {arr.shape})")
            if not np.isfinite(arr).all():
                raise DataFormatError(f"{where(src, split, key)}: contains NaN or inf (shape {arr.shape})")
            if arr.shape[0] != n:
                raise DataFormatError(
                    f"{where(src, split, key)}: has {arr.shape[0]} samples but 'text' has {n} (shape {arr.shape})"
                )
            t = arr.shape[1]
            lens = np.full(n, t, dtype=np.int64) if lengths.get(key) is None else np.asarray(lengths[key])
            if lens.shape != (n,) or lens.dtype.kind not in "iu":
                raise DataFormatError(f"{where(src, split, key + '_lengths')}: expected integer shape ({n},), got "
                                      f"shape {lens.shape} dtype {lens.dtype}")
            if n and ((lens < 0).any() or (lens > t).any()):
                raise DataFormatError(
                    f"{where(src, split, key + '_lengths')}: lengths must lie in [0, {t}] "
                    f"(sequence axis of shape {arr.shape}), got range [{lens.min()}, {lens.max()}]"
                )
            lengths[key] = lens.astype(np.int64)
        self.extra_lengths = lengths


@dataclass
class MSADataset:
    """A dataset: its splits plus what metrics and models need to know about it.

    ``kind`` picks the metric family: ``"mosi"`` (MOSI/MOSEI, labels in [-3, 3]), ``"sims"``
    (CH-SIMS, [-1, 1]) or ``"iemocap"`` (4 binary emotions, classification).

    What the loader found, recorded for the run's report:

    * ``padding``: split → modality → the side the file padded on (``"start"``, ``"end"`` or
      ``"none"``); the arrays here are always post-padded (see :mod:`msa_lib.data.padding`).
    * ``replaced``: split → modality → how many NaN/inf values were replaced by 0 (nonzero
      counts only; empty when nothing was replaced).
    * ``file_format`` (``"MMSA pickle"``, ``"MulT pickle"``, ``"CMU-SDK .csd"``, ``"synthetic"``) and
      ``feature_names``: modality → e.g. ``"GloVe 300-d"``; :meth:`describe_features` renders both.

    ``aligned`` is computed from the arrays (:attr:`aligned`), never declared by a loader.
    """

    name: str
    kind: Literal["mosi", "sims", "iemocap"]
    splits: dict[str, MSASplit]
    source: str
    class_names: tuple[str, ...] | None = None
    notes: dict[str, str] = field(default_factory=dict)
    padding: dict[str, dict[str, str]] = field(default_factory=dict)
    replaced: dict[str, dict[str, int]] = field(default_factory=dict)
    feature_names: dict[str, str] = field(default_factory=dict)
    file_format: str = ""

    def __post_init__(self) -> None:
        for s in ("train", "valid", "test"):
            if s not in self.splits:
                raise DataFormatError(f"{where(self.source, s, s)}: split missing (have {sorted(self.splits)})")

    @property
    def aligned(self) -> bool:
        """One sequence length T per split across the three modalities and, per sample, equal
        lengths across the modalities present (length > 0: a modality of length 0 is absent)."""
        for sp in self.splits.values():
            if len({sp.features(m).shape[1] for m in MODALITIES}) != 1:
                return False
            lens = np.stack([sp.lengths[m] for m in MODALITIES])
            present = lens > 0
            high = np.where(present, lens, 0).max(axis=0)
            low = np.where(present, lens, high).min(axis=0)
            if (high != low).any():
                return False
        return True

    @property
    def task(self) -> Literal["regression", "classification"]:
        return "classification" if self.kind == "iemocap" else "regression"

    @property
    def dims(self) -> dict[str, int]:
        return {m: int(self.splits["train"].features(m).shape[2]) for m in MODALITIES}

    @property
    def seq_lens(self) -> dict[str, int]:
        return {m: int(self.splits["train"].features(m).shape[1]) for m in MODALITIES}

    @property
    def is_synthetic(self) -> bool:
        return self.source.startswith("synthetic")

    def describe_features(self) -> str:
        """One line: the file format and each modality's features, e.g.
        ``"MulT pickle: text GloVe 300-d, audio COVAREP 5-d, vision Facet 20-d"``."""
        names = {**feature_names(self.dims), **self.feature_names}
        return f"{self.file_format or 'arrays'}: " + ", ".join(f"{m} {names[m]}" for m in MODALITIES)

    def __getitem__(self, split: str) -> MSASplit:
        return self.splits[split]

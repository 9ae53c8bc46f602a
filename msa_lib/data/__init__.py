"""Data formats researchers hold, and the embedded synthetic default.

``load_dataset`` is the single entry point notebooks and the CLI use:

* no ``data_path`` → the embedded synthetic preset named by ``dataset`` (``synthetic:mosi``,
  ``synthetic:mosei``, ``synthetic:sims``, ``synthetic:iemocap``), scaled by ``size``;
* ``*.pkl`` → an MMSA pickle (``aligned_50.pkl``, ``unaligned_50.pkl``, ``unaligned_39.pkl``), or a
  MulT-style IEMOCAP pickle when the file name contains "iemocap";
* ``*.json`` → a manifest naming four CMU-SDK ``.csd`` files (``text``, ``audio``, ``vision``,
  ``labels``; paths relative to the manifest), optional ``splits`` (split → video ids),
  ``name``, ``kind`` and ``max_len``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .container import IEMOCAP_EMOTIONS, MODALITIES, DataFormatError, MSADataset, MSASplit
from .csd import load_csd_dataset, read_csd
from .iemocap import load_mult_iemocap
from .mmsa import load_mmsa_pickle
from .safe_pickle import UnsafePickleError, safe_load
from .synthetic import PRESETS, make_synthetic

CSD_MANIFEST_KEYS = {"text", "audio", "vision", "labels", "splits", "name", "kind", "max_len"}


def load_csd_manifest(path: str | Path) -> MSADataset:
    """Load four CMU-SDK computational sequences named by a JSON manifest."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"{path}: cannot read CSD manifest ({exc})") from exc
    unknown = set(manifest) - CSD_MANIFEST_KEYS
    missing = {"text", "audio", "vision", "labels"} - set(manifest)
    if unknown or missing:
        raise DataFormatError(f"{path}: manifest keys missing {sorted(missing)} / unknown {sorted(unknown)}; "
                              f"valid keys: {sorted(CSD_MANIFEST_KEYS)}")
    files = {k: str(path.parent / manifest[k]) for k in ("text", "audio", "vision", "labels")}
    options = {k: manifest[k] for k in ("splits", "name", "kind", "max_len") if k in manifest}
    return load_csd_dataset(**files, **options)


def load_dataset(dataset: str = "synthetic:mosi", data_path: str | None = None, size: float = 1.0,
                 seed: int = 0, max_len: int | None = None, eval_samples: int | None = None) -> MSADataset:
    """The dataset a notebook or CLI run uses: real data from ``data_path`` or the synthetic default."""
    if data_path:
        path = Path(data_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"data_path {path} does not exist")
        if path.suffix == ".json":
            return load_csd_manifest(path)
        if path.suffix == ".pkl":
            return load_mult_iemocap(path) if "iemocap" in path.name.lower() else load_mmsa_pickle(path)
        raise DataFormatError(f"{path}: unknown data format; expected an MMSA / MulT .pkl or a CSD .json manifest")
    prefix, _, preset = str(dataset).partition(":")
    if prefix != "synthetic" or preset not in PRESETS:
        raise ValueError(f"dataset {dataset!r} needs a data_path; without one use one of "
                         f"{['synthetic:' + p for p in PRESETS]}")
    return make_synthetic(preset, size=size, seed=seed, max_len=max_len, eval_samples=eval_samples)


__all__ = [
    "DataFormatError", "IEMOCAP_EMOTIONS", "MODALITIES", "MSADataset", "MSASplit", "PRESETS", "UnsafePickleError",
    "load_csd_dataset", "load_csd_manifest", "load_dataset", "load_mmsa_pickle", "load_mult_iemocap",
    "make_synthetic", "read_csd", "safe_load",
]

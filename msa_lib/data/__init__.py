"""Data formats researchers hold, and the embedded synthetic default.

``load_dataset`` is the single entry point notebooks and the CLI use:

* no ``data_path`` → the embedded synthetic preset named by ``dataset`` (``synthetic:mosi``,
  ``synthetic:mosei``, ``synthetic:sims``, ``synthetic:iemocap``), scaled by ``size``;
* ``*.pkl`` → :func:`load_pickle`: the pickle's content picks the loader (keys of its train split):
  ``regression_labels`` → an MMSA pickle (``aligned_50.pkl``, ``unaligned_50.pkl``,
  ``unaligned_39.pkl``; :mod:`.mmsa`), ``labels`` → a MulT pickle (``mosi_data.pkl``,
  ``mosei_senti_data.pkl``, ``iemocap_data.pkl``, ...; :mod:`.mult`);
* ``*.json`` → a manifest naming four CMU-SDK ``.csd`` files (``text``, ``audio``, ``vision``,
  ``labels``; paths relative to the manifest), optional ``splits`` (split → video ids),
  ``name``, ``kind`` and ``max_len``.

The suffix → format rule is :func:`.identity.data_format` (run identities use it too). Every
loaded dataset is post-padded and records ``padding``, ``replaced``, ``feature_names`` and
``file_format`` (:meth:`MSADataset.describe_features` renders the last two as one line).

``extra_keys`` (pickles only) names further per-split keys read into ``MSASplit.extras`` (e.g.
``sim_text``: simulated text features precomputed offline); CSD manifests, the synthetic presets
and fetched datasets cannot carry them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .container import IEMOCAP_EMOTIONS, MODALITIES, DataFormatError, MSADataset, MSASplit, extra_key_tuple, where
from .csd import load_csd_dataset, read_csd
from .identity import DATA_FORMATS, data_format
from .mmsa import _split_dict, load_mmsa_pickle, mmsa_dataset, top_level
from .mult import load_mult_pickle, mult_dataset
from .padding import SIDES, PaddingOption, padding_option
from . import mosi_utterance
from .safe_pickle import UnsafePickleError, safe_load
from .synthetic import PRESETS, make_synthetic

CSD_MANIFEST_KEYS = {"text", "audio", "vision", "labels", "splits", "name", "kind", "max_len"}


@dataclass(frozen=True)
class FetchedDataset:
    """A public dataset fetched by name: its loader (fetches into the cache when missing), the
    paper-settings row chapters use for it, and why it cannot be had right now ("" if it can)."""

    load: Callable[[], MSADataset]
    settings_row: str
    unavailable: Callable[[], str]


#: Public datasets fetched by name (pooch, SHA-256 checked).
FETCHED: dict[str, FetchedDataset] = {
    mosi_utterance.NAME: FetchedDataset(mosi_utterance.load_mosi_utterance, mosi_utterance.SETTINGS_ROW,
                                        mosi_utterance.unavailable)}


def load_csd_manifest(path: str | Path, strict: bool = False) -> MSADataset:
    """Load four CMU-SDK computational sequences named by a JSON manifest (``strict``: refuse NaN/inf)."""
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
    return load_csd_dataset(**files, **options, strict=strict)


def load_pickle(path: str | os.PathLike[str], name: str | None = None, padding: PaddingOption = None,
                strict: bool = False, extra_keys: tuple[str, ...] | list[str] = ()) -> MSADataset:
    """Load an MMSA or a MulT pickle, chosen by its content: the train split's keys hold
    ``regression_labels`` (MMSA) or ``labels`` (MulT). The file is unpickled once, safely.

    ``name`` / ``padding`` / ``strict`` / ``extra_keys`` as in :func:`.mmsa.load_mmsa_pickle` and
    :func:`.mult.load_mult_pickle` (each loader's default name). ``extra_keys`` names further
    per-split keys read into ``MSASplit.extras`` (with optional ``<key>_lengths``), taken as
    post-padded as the file stores them (no padding detection for them).
    """
    padding_option(padding)  # a bad argument fails before the file is read
    extra_keys = extra_key_tuple(extra_keys)
    src = os.fspath(path)
    top = top_level(safe_load(src), src)
    keys = sorted(map(str, _split_dict(top["train"], src, "train", ())))
    if "regression_labels" in keys:
        return mmsa_dataset(top, src, name, padding, strict, extra_keys)
    if "labels" in keys:
        return mult_dataset(top, src, name, padding, strict, extra_keys)
    raise DataFormatError(
        f"{where(src, 'train', 'regression_labels')}: missing, and so is 'labels': the train split holds neither "
        f"MMSA's 'regression_labels' nor MulT's 'labels' (keys present: {keys})"
    )


def load_dataset(dataset: str = "synthetic:mosi", data_path: str | None = None, size: float = 1.0,
                 seed: int = 0, max_len: int | None = None, eval_samples: int | None = None,
                 padding: PaddingOption = None, strict: bool = False,
                 extra_keys: tuple[str, ...] | list[str] = ()) -> MSADataset:
    """The dataset a notebook or CLI run uses: real data from ``data_path`` or the synthetic default.

    Args:
        dataset: without ``data_path``, the synthetic preset (``synthetic:mosi``, ...) or a public
            dataset fetched by name (:data:`FETCHED`: ``mosi-utterance``).
        data_path: a ``.pkl`` (MMSA or MulT, told apart by content: :func:`load_pickle`) or a
            ``.json`` CSD manifest (:func:`load_csd_manifest`).
        size, seed, max_len, eval_samples: the synthetic draw (:func:`.synthetic.make_synthetic`).
        padding: for a pickle, override the detected padding side (``"start"``, ``"end"``,
            ``"none"`` or a dict per modality; :mod:`.padding`); None detects it.
        strict: refuse NaN/inf features in a file instead of replacing them by 0 (the count
            replaced is recorded in ``MSADataset.replaced``).
        extra_keys: for a pickle, further keys of every split to read into ``MSASplit.extras``
            (e.g. ``("sim_text",)``, with optional ``sim_text_lengths``), taken as post-padded as
            the file stores them (:func:`load_pickle`).

    Raises:
        FileNotFoundError: ``data_path`` does not exist.
        DataFormatError: the file is malformed (the message names file, split, key and shape),
            or a split lacks a key named in ``extra_keys``.
        ValueError: an unknown synthetic preset or ``padding`` value, ``padding`` for data
            that is not a pickle, or ``extra_keys`` for data that cannot carry extras (a CSD
            manifest, a synthetic preset, a fetched dataset).
    """
    if padding is not None:
        padding_option(padding)
    extra_keys = extra_key_tuple(extra_keys)
    if data_path:
        path = Path(data_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"data_path {path} does not exist")
        fmt = data_format(path)
        if fmt == "pkl":
            return load_pickle(path, padding=padding, strict=strict, extra_keys=extra_keys)
        if padding is not None:
            raise ValueError(f"padding={padding!r} applies to pickles only; {path} is a {fmt} "
                             f"(the CSD loader pads itself)")
        if fmt == "csd-manifest":
            if extra_keys:
                raise ValueError(f"extra_keys={list(extra_keys)} applies to MMSA / MulT pickles only; {path} is a CSD "
                                 f"manifest, which cannot carry extras")
            return load_csd_manifest(path, strict=strict)
        raise DataFormatError(f"{path}: unknown data format; expected one of {sorted(DATA_FORMATS)} "
                              f"(an MMSA / MulT .pkl or a CSD .json manifest)")
    if padding is not None:
        raise ValueError(f"padding={padding!r} applies to data files; the synthetic data is post-padded already")
    if extra_keys:
        raise ValueError(f"extra_keys={list(extra_keys)} applies to MMSA / MulT pickles only; dataset {dataset!r} "
                         f"({'fetched by name' if dataset in FETCHED else 'synthetic'}) cannot carry extras: "
                         f"give a data_path to a pickle that stores them")
    if dataset in FETCHED:
        return FETCHED[dataset].load()
    prefix, _, preset = str(dataset).partition(":")
    if prefix != "synthetic" or preset not in PRESETS:
        raise ValueError(f"dataset {dataset!r} needs a data_path; without one use one of "
                         f"{['synthetic:' + p for p in PRESETS] + sorted(FETCHED)}")
    return make_synthetic(preset, size=size, seed=seed, max_len=max_len, eval_samples=eval_samples)


__all__ = [
    "DataFormatError", "FETCHED", "FetchedDataset", "IEMOCAP_EMOTIONS", "MODALITIES", "MSADataset", "MSASplit", "PRESETS", "SIDES",
    "UnsafePickleError", "load_csd_dataset", "load_csd_manifest", "load_dataset", "load_mmsa_pickle",
    "load_mult_pickle", "load_pickle", "make_synthetic", "read_csd", "safe_load",
]

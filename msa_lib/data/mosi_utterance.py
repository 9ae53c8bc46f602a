"""CMU-MOSI utterance-level features (Poria et al., ACL 2017) joined to MOSI's continuous scores.

``dataset="mosi-utterance"``: the one real public MOSI release small enough to fetch on the fly.
Text 100-d (CNN), audio 73-d (openSMILE), video 100-d (3D-CNN), one vector per segment (sequence
length 1); 2199 segments of 93 videos; Poria et al.'s speaker-independent train/test split; labels
are the continuous MOSI opinion scores in [-3, 3] (Zadeh et al. 2016).

Files come from two public GitHub repositories at pinned commits (:data:`REGISTRY`), checked by
SHA-256 and cached by pooch: in ``$MSA_BOOK_DATA`` when set, else pooch's OS cache folder
(``msa-book/mosi-utterance``). A cached file with the wrong hash is refused (delete it to fetch it
again); nothing is ever unpickled.

Splits: Poria's train split as published (62 videos, 1447 segments). Validation and test both come
from Poria's *test* videos (31): every third video in sorted-id order, starting with the first, is
validation (11 videos, 265 segments), the rest test (20 videos, 487 segments). A validation split carved from train would be leaky: the feature
extractors were trained on the train labels, so it scores near-perfectly and early stopping on it
picks nonsense.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .container import DataFormatError, MSADataset, MSASplit

__all__ = ["NAME", "REGISTRY", "SETTINGS_ROW", "cache_dir", "fetch", "from_files", "load_mosi_utterance", "split_videos",
           "unavailable"]

NAME = "mosi-utterance"
#: The paper-settings row chapters use for this dataset when the ``settings`` parameter is empty.
SETTINGS_ROW = "mosi"
_POR = ("https://raw.githubusercontent.com/declare-lab/contextual-utterance-level-multimodal-sentiment-analysis/"
        "3874cf25a7fbda75df27ee65b297afa781d7f32c/")
_ASA = "https://raw.githubusercontent.com/ASA-MOSI/Audio-Sentiment-Analysis/c482dd2d939b1a7835d90e4a88ef7cbc4e73f76d/"
#: file name -> (URL at a pinned commit, SHA-256).
REGISTRY: dict[str, tuple[str, str]] = {
    "transcripts.csv": (_POR + "data/transcripts.csv",
                        "e7689e6d70720addd2a6b316419d245a68839c32b014ff426c406063ee777466"),
    "text_train.csv": (_POR + "data/text_train.csv", "73770b6302ad0f7a51f4eddcae6788efde4d0b6802e09f78249d5b538d1c1d67"),
    "text_test.csv": (_POR + "data/text_test.csv", "f3b735070bf07ceff7a6ef6c8f4c32757e988de484e35bd6d38b2aecef851a59"),
    "text_train0.csv": (_POR + "data/text/text_train0.csv",
                        "cc327045db6cc361a08b4037b97bb24de4ddb5efb381468c4835cc4a60674668"),
    "text_test0.csv": (_POR + "data/text/text_test0.csv",
                       "a343e22272919d1384c2075dbcdd5fef5aa9f9366b0552a83f7c3147b64b047a"),
    "audio_train0.csv": (_POR + "data/audio/audio_train0.csv",
                         "5435398a54664e7b00304587dc59ae84a438852be033c2a2fba779588624a2a1"),
    "audio_test0.csv": (_POR + "data/audio/audio_test0.csv",
                        "ddd17eeefd3d951d51d4e2ef8a0d132652d8161e1886f71eb7262b7a14bffff6"),
    "video_train0.csv": (_POR + "data/video/video_train0.csv",
                         "b6efc0413132d627efd06f67f1706830e775e90af9a75696f535c48dbc73f12f"),
    "video_test0.csv": (_POR + "data/video/video_test0.csv",
                        "cab836253d81100f59d533fa2ff65cd53c486be3ec9fd82203c5e25a7a77265f"),
    "OpinionLevelSentiment.csv": (_ASA + "OpinionLevelSentiment.csv",
                                  "5af5525f6c2c70a24c2fb8bda6c67dee37183f6f588955e753f0bd4fd6f9523a"),
}
#: modality -> (file prefix, feature family); the library's "vision" is Poria's "video".
_MODALITIES: dict[str, tuple[str, str]] = {"text": ("text", "CNN"), "audio": ("audio", "openSMILE"),
                                           "vision": ("video", "3D-CNN")}


def cache_dir() -> Path:
    """Where the files are cached: ``$MSA_BOOK_DATA`` when set, else pooch's OS cache folder."""
    import pooch

    env = os.environ.get("MSA_BOOK_DATA")
    return Path(env).expanduser() if env else Path(pooch.os_cache("msa-book")) / NAME


def fetch(folder: str | os.PathLike | None = None) -> dict[str, Path]:
    """Every file of :data:`REGISTRY` in ``folder`` (default :func:`cache_dir`), downloaded by pooch
    when missing and checked by SHA-256. A present file with the wrong hash is an error (never
    silently replaced); a missing file that cannot be downloaded is an error naming it and the URL."""
    import pooch

    folder = Path(folder) if folder is not None else cache_dir()
    paths = {}
    for name, (url, sha256) in REGISTRY.items():
        path = folder / name
        if path.exists():
            found = pooch.file_hash(str(path))
            if found != sha256:
                raise DataFormatError(f"{path}: SHA-256 {found} does not match the registry's {sha256} "
                                      f"(a corrupted or different file); delete it to download {url} again")
        else:
            try:
                pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=name, path=folder, progressbar=False)
            except Exception as exc:  # network errors differ by downloader: one message for all
                raise DataFormatError(f"{path}: missing and could not be downloaded from {url} ({exc}); "
                                      f"set MSA_BOOK_DATA to a folder holding the files") from exc
        paths[name] = path
    return paths


def unavailable(folder: str | os.PathLike | None = None) -> str:
    """Why the files cannot be had ("" when every file is cached with its hash or was downloaded
    now): the reason a build renders the real-data pages from their stored outputs."""
    try:
        fetch(folder)
    except DataFormatError as exc:
        return str(exc)
    return ""


def _csv(path: Path) -> np.ndarray:
    import pandas as pd

    try:
        return pd.read_csv(path, header=None).to_numpy()
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{path}: cannot read as CSV ({exc})") from exc


def split_videos(test_videos: list[str]) -> tuple[list[str], list[str]]:
    """Poria's test videos -> (validation, test): every third video in sorted-id order, starting
    with the first, is validation."""
    ordered = sorted(set(test_videos))
    return [v for i, v in enumerate(ordered) if i % 3 == 0], [v for i, v in enumerate(ordered) if i % 3 != 0]


def _scores(path: Path) -> dict[str, float]:
    table = _csv(path)
    if table.ndim != 2 or table.shape[1] != 5:
        raise DataFormatError(f"{path}: expected 5 columns (start, end, video id, segment index, score), "
                              f"got shape {table.shape}")
    return {f"{vid}_{int(idx)}": float(score) for vid, idx, score in zip(table[:, 2], table[:, 3], table[:, 4])}


def _poria_split(paths: dict[str, Path], part: str, segments: np.ndarray, binary: np.ndarray,
                 scores: dict[str, float]) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """One of Poria's splits: (segment ids, modality -> (N, d) features, scores), every check done."""
    index_file = paths[f"text_{part}.csv"]
    rows = _csv(index_file)[:, 0].astype(np.int64)
    if (rows < 0).any() or (rows >= len(segments)).any():
        raise DataFormatError(f"{index_file}: row indices outside the {len(segments)} rows of transcripts.csv")
    ids = [str(s) for s in segments[rows]]
    missing = [s for s in ids if s not in scores]
    if missing:
        raise DataFormatError(f"{paths['OpinionLevelSentiment.csv']}: no score for {len(missing)} segments of the "
                              f"{part} split, e.g. {missing[:3]}")
    score = np.array([scores[s] for s in ids], dtype=np.float32)
    feats = {}
    for m, (prefix, _) in _MODALITIES.items():
        path = paths[f"{prefix}_{part}0.csv"]
        table = _csv(path).astype(np.float64)
        if table.shape[0] != len(ids):
            raise DataFormatError(f"{path}: {table.shape[0]} rows, but {index_file.name} lists {len(ids)}")
        bad = ~np.isfinite(table)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataFormatError(f"{path}: {int(bad.sum())} non-finite values (first at row {r}, column {c})")
        label = table[:, -1].astype(np.int64)
        wrong = np.nonzero((label != binary[rows]) | (label != (score >= 0)))[0]
        if len(wrong):
            i = int(wrong[0])
            raise DataFormatError(f"{path}: row {i} (segment {ids[i]}) has binary label {label[i]} but its score is "
                                  f"{score[i]:g} (label must equal score >= 0); {len(wrong)} such rows")
        feats[m] = table[:, :-1].astype(np.float32)
    return ids, feats, score


def load_mosi_utterance(folder: str | os.PathLike | None = None) -> MSADataset:
    """The dataset (fetched into ``folder`` / :func:`cache_dir` when missing): :func:`from_files`."""
    return from_files(fetch(folder))


def from_files(paths: dict[str, Path]) -> MSADataset:
    """The files of :data:`REGISTRY` (name -> path) as an :class:`MSADataset`: (N, 1, d) sequences of
    length 1, labels the continuous scores, splits as in the module docstring. Every binary label
    must equal ``score >= 0``, every segment must have a score, every value must be finite."""
    transcripts = _csv(paths["transcripts.csv"])
    if transcripts.ndim != 2 or transcripts.shape[1] != 4:
        raise DataFormatError(f"{paths['transcripts.csv']}: expected 4 columns (segment id, transcript, video number, "
                              f"binary label), got shape {transcripts.shape}")
    segments, binary = transcripts[:, 0].astype(str), transcripts[:, 3].astype(np.int64)
    scores = _scores(paths["OpinionLevelSentiment.csv"])
    train = _poria_split(paths, "train", segments, binary, scores)
    test = _poria_split(paths, "test", segments, binary, scores)
    video = lambda segment: segment.rsplit("_", 1)[0]  # noqa: E731
    valid_videos, _ = split_videos([video(s) for s in test[0]])
    in_valid = np.array([video(s) in set(valid_videos) for s in test[0]])
    parts = {"train": (train, np.ones(len(train[0]), dtype=bool)), "valid": (test, in_valid), "test": (test, ~in_valid)}
    splits = {}
    for name, ((ids, feats, score), pick) in parts.items():
        n = int(pick.sum())
        splits[name] = MSASplit(
            **{m: feats[m][pick][:, None, :] for m in _MODALITIES},
            lengths={m: np.ones(n, dtype=np.int64) for m in _MODALITIES},
            labels=score[pick], ids=[s for s, keep in zip(ids, pick) if keep], name=name, source=NAME)
    dims = {m: splits["train"].features(m).shape[2] for m in _MODALITIES}
    return MSADataset(name=NAME, kind="mosi", splits=splits, source=NAME,
                      padding={s: {m: "none" for m in _MODALITIES} for s in splits},
                      feature_names={m: f"{family} {dims[m]}-d" for m, (_, family) in _MODALITIES.items()},
                      file_format="Poria et al. 2017 utterance features (CSV)")

"""CMU-MOSI utterance features (Poria et al. 2017) + MOSI scores: registry, conversion, splits, errors.

Uses the cached copy in ``$MSA_BOOK_DATA`` or ``../shared/data/mosi-utterance`` beside the checkout
(the Makefile sets the first when the second exists; CI has it); never the network.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from msa_lib.data import DataFormatError, load_dataset
from msa_lib.data import mosi_utterance as mu

CACHE = Path(os.environ.get("MSA_BOOK_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "mosi-utterance")
pytestmark = pytest.mark.skipif(not CACHE.exists(), reason=f"no cached copy at {CACHE}")


@pytest.fixture(scope="module")
def data():
    return mu.load_mosi_utterance(CACHE)


def copy(tmp_path: Path) -> dict[str, Path]:
    for name in mu.REGISTRY:
        shutil.copy2(CACHE / name, tmp_path / name)
    return {name: tmp_path / name for name in mu.REGISTRY}


def video(segment: str) -> str:
    return segment.rsplit("_", 1)[0]


def test_sizes_features_and_speaker_independent_splits(data) -> None:
    assert {s: len(data[s]) for s in ("train", "valid", "test")} == {"train": 1447, "valid": 265, "test": 487}
    assert data.dims == {"text": 100, "audio": 73, "vision": 100} and data.seq_lens == {m: 1 for m in data.dims}
    videos = {s: {video(i) for i in data[s].ids} for s in ("train", "valid", "test")}
    assert (len(videos["train"]), len(videos["valid"]) + len(videos["test"])) == (62, 31)
    assert not videos["valid"] & videos["test"]
    assert not videos["train"] & (videos["valid"] | videos["test"])
    assert data.aligned and "openSMILE 73-d" in data.describe_features()


def test_labels_are_the_joined_scores_and_agree_with_the_binary_labels(data) -> None:
    scores = pd.read_csv(CACHE / "OpinionLevelSentiment.csv", header=None)
    by_id = {f"{v}_{i}": s for v, i, s in zip(scores[2], scores[3], scores[4])}
    transcripts = pd.read_csv(CACHE / "transcripts.csv", header=None)
    binary = dict(zip(transcripts[0], transcripts[3]))
    for s in ("train", "valid", "test"):
        split = data[s]
        np.testing.assert_allclose(split.labels, [by_id[i] for i in split.ids], rtol=0, atol=1e-6)
        assert all(int(binary[i]) == int(label >= 0) for i, label in zip(split.ids, split.labels))


def test_load_dataset_by_name_uses_msa_book_data(monkeypatch) -> None:
    monkeypatch.setenv("MSA_BOOK_DATA", str(CACHE))
    assert mu.cache_dir() == CACHE
    assert len(load_dataset("mosi-utterance")["test"]) == 487


def test_a_corrupted_copy_is_refused_by_hash(tmp_path: Path) -> None:
    paths = copy(tmp_path)
    raw = bytearray(paths["audio_test0.csv"].read_bytes())
    raw[100] = ord("9") if raw[100] != ord("9") else ord("8")
    paths["audio_test0.csv"].write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match=r"audio_test0\.csv: SHA-256 .* does not match"):
        mu.fetch(tmp_path)


def test_offline_without_the_files_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    def offline(url, **kwargs):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr("pooch.retrieve", offline)
    with pytest.raises(DataFormatError, match=r"missing and could not be downloaded from https://.*MSA_BOOK_DATA"):
        mu.fetch(tmp_path)


def _rewrite(path: Path, edit) -> None:
    table = pd.read_csv(path, header=None)
    edit(table)
    table.to_csv(path, header=False, index=False)


def test_a_label_disagreeing_with_its_score_is_an_error(tmp_path: Path) -> None:
    paths = copy(tmp_path)
    _rewrite(paths["video_train0.csv"], lambda t: t.iloc.__setitem__((3, t.shape[1] - 1), 1 - t.iloc[3, -1]))
    with pytest.raises(DataFormatError, match=r"video_train0\.csv: row 3 .* \(label must equal score >= 0\)"):
        mu.from_files(paths)


def test_a_segment_without_score_and_a_non_finite_value_are_errors(tmp_path: Path) -> None:
    paths = copy(tmp_path)
    _rewrite(paths["OpinionLevelSentiment.csv"], lambda t: t.drop(index=5, inplace=True))
    with pytest.raises(DataFormatError, match=r"OpinionLevelSentiment\.csv: no score for 1 segments"):
        mu.from_files(paths)
    paths = copy(tmp_path)
    _rewrite(paths["text_test0.csv"], lambda t: t.iloc.__setitem__((0, 2), np.nan))
    with pytest.raises(DataFormatError, match=r"text_test0\.csv: 1 non-finite values \(first at row 0, column 2\)"):
        mu.from_files(paths)


def test_runs_on_it_are_keyed_by_the_registry_hashes(monkeypatch) -> None:
    from msa_lib.data.identity import data_identity
    from msa_lib.experiments import data_options, get_profile

    assert data_options("mosi-utterance", None, get_profile("book")) == {}  # always used whole
    before = data_identity("mosi-utterance", {})
    assert before["fetched"] == "mosi-utterance"
    url, sha = mu.REGISTRY["text_test.csv"]
    monkeypatch.setitem(mu.REGISTRY, "text_test.csv", (url, "0" * 64))
    assert data_identity("mosi-utterance", {}) != before  # other files, another key

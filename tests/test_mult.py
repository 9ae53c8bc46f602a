"""MulT pickles (MOSI / MOSEI / IEMOCAP) and content-based loader choice for ``.pkl`` files."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

import msa_lib.data as data_pkg
from msa_lib.data import DataFormatError, IEMOCAP_EMOTIONS, load_dataset, load_mult_pickle, load_pickle
from msa_lib.data.identity import data_identity

SPLITS = ("train", "valid", "test")
N = {"train": 5, "valid": 3, "test": 4}
T = 4


def dump(obj: object, path: Path, protocol: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return path


def mult_data(dims=(300, 5, 20), label_shape=(1, 1), seed: int = 0, ids: bool = True) -> dict:
    """MulT's layout: pre-padded (N, T, d) GloVe / COVAREP / Facet, labels (N, 1, 1), ids (N, 3) strings."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in SPLITS:
        n = N[s]
        lens = rng.integers(1, T + 1, size=n)
        pre = np.arange(T)[None, :] >= (T - lens)[:, None]
        split = {m: (rng.uniform(0.5, 1.5, size=(n, T, d)) * pre[..., None]).astype(np.float32)
                 for m, d in zip(("text", "audio", "vision"), dims)}
        split["labels"] = rng.uniform(-3, 3, size=(n, *label_shape)).astype(np.float32)
        if ids:
            split["id"] = np.array([[f"vid{s}{i}", f"{i}.5", f"{i + 1}.25"] for i in range(n)])
        out[s] = split
    return out


def mmsa_like(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {s: {"text": rng.normal(size=(N[s], T, 6)).astype(np.float32),
                "audio": rng.normal(size=(N[s], T, 5)).astype(np.float32),
                "vision": rng.normal(size=(N[s], T, 4)).astype(np.float32),
                "regression_labels": rng.uniform(-3, 3, N[s]).astype(np.float32)} for s in SPLITS}


@pytest.mark.parametrize("file, dims, name", [
    ("mosi_data.pkl", (300, 5, 20), "mosi"),
    ("mosei_senti_data.pkl", (300, 74, 35), "mosei"),
    ("mosei_senti_data_noalign.pkl", (300, 74, 35), "mosei"),
    ("my_sentiment.pkl", (300, 7, 9), "my_sentiment"),
])
def test_mult_mosi_mosei_load_as_regression(tmp_path: Path, file: str, dims: tuple, name: str) -> None:
    raw = mult_data(dims)
    ds = load_dataset("mosi", data_path=str(dump(raw, tmp_path / file)))
    assert (ds.name, ds.kind, ds.task, ds.class_names) == (name, "mosi", "regression", None)
    assert ds.dims == dict(zip(("text", "audio", "vision"), dims))  # read from the file, never assumed
    assert ds.file_format == "MulT pickle"
    assert ds.feature_names == {"text": "GloVe 300-d", "audio": f"COVAREP {dims[1]}-d", "vision": f"Facet {dims[2]}-d"}
    assert ds.describe_features() == (f"MulT pickle: text GloVe 300-d, audio COVAREP {dims[1]}-d, "
                                      f"vision Facet {dims[2]}-d")
    for s in SPLITS:
        sp = ds[s]
        np.testing.assert_array_equal(sp.labels, raw[s]["labels"].reshape(-1))
        assert sp.labels.dtype == np.float32 and sp.class_labels is None
        assert sp.ids == [f"vid{s}{i}_{i}.5_{i + 1}.25" for i in range(N[s])]  # a row's parts joined
        assert ds.padding[s]["text"] in ("start", "none")


@pytest.mark.parametrize("label_shape", [(1, 1), (1,), ()])
def test_mult_regression_label_shapes(tmp_path: Path, label_shape: tuple) -> None:
    raw = mult_data(label_shape=label_shape, ids=False)
    ds = load_mult_pickle(dump(raw, tmp_path / "mosi_data.pkl"), name="m")
    assert ds.name == "m" and ds["valid"].labels.shape == (N["valid"],)
    assert ds["test"].ids == [f"test_{i}" for i in range(N["test"])]


def test_mult_bad_label_shape_names_the_accepted_shapes(tmp_path: Path) -> None:
    raw = mult_data(label_shape=(3,))
    path = dump(raw, tmp_path / "mosi_data.pkl")
    with pytest.raises(DataFormatError, match=re.escape(
            f"{path} [train] key 'labels': expected shape (N, 4, 2) (IEMOCAP emotions) or (N, 1, 1) / (N, 1) / (N,) "
            f"(sentiment), got shape (5, 3)")):
        load_pickle(path)
    raw = mult_data()
    raw["test"]["labels"] = raw["test"]["labels"][:, :, 0].repeat(2, axis=1)  # (4, 2) in one split only
    path = dump(raw, tmp_path / "mosi_data.pkl")
    message = f"{path} [test] key 'labels': expected shape (4,), got shape (4, 2)"
    with pytest.raises(DataFormatError, match=re.escape(message)):
        load_pickle(path)


def test_mult_nan_label(tmp_path: Path) -> None:
    raw = mult_data()
    raw["valid"]["labels"][1, 0, 0] = np.nan
    path = dump(raw, tmp_path / "mosei_senti_data.pkl")
    with pytest.raises(DataFormatError, match=re.escape(f"{path} [valid] key 'labels': 1 labels are NaN")):
        load_pickle(path)


def test_mult_iemocap_by_label_shape(tmp_path: Path) -> None:
    raw = mult_data(dims=(300, 74, 35), ids=False)
    for s in SPLITS:
        labels = np.zeros((N[s], 4, 2), dtype=np.float32)
        labels[:, :, 1] = 1
        raw[s]["labels"] = labels
    ds = load_dataset(data_path=str(dump(raw, tmp_path / "iemocap_data.pkl")))
    assert (ds.name, ds.kind, ds.class_names, ds.task) == ("iemocap", "iemocap", IEMOCAP_EMOTIONS, "classification")
    assert (ds["train"].class_labels == 1).all() and ds["train"].labels is None
    assert ds.describe_features() == "MulT pickle: text GloVe 300-d, audio COVAREP 74-d, vision Facet 35-d"


def test_load_dataset_picks_the_loader_by_content_not_name(tmp_path: Path) -> None:
    mult = load_dataset(data_path=str(dump(mult_data(), tmp_path / "MOSI" / "aligned_50.pkl")))
    assert mult.file_format == "MulT pickle" and mult.name == "aligned_50"
    mmsa = load_dataset(data_path=str(dump(mmsa_like(), tmp_path / "IEMOCAP" / "iemocap_data.pkl")))
    assert (mmsa.file_format, mmsa.kind, mmsa.name) == ("MMSA pickle", "mosi", "iemocap")
    # the run identity does not depend on which loader the content picks
    assert data_identity("x", {"data_path": str(tmp_path / "IEMOCAP" / "iemocap_data.pkl")})["format"] == "pkl"
    neither = {s: {"text": np.zeros((2, 2, 2), dtype=np.float32), "y": np.zeros(2)} for s in SPLITS}
    path = dump(neither, tmp_path / "other.pkl")
    message = f"{path} [train] key 'regression_labels': missing, and so is 'labels'"
    with pytest.raises(DataFormatError, match=re.escape(message) + r".*keys present: \['text', 'y'\]"):
        load_dataset(data_path=str(path))


def test_load_dataset_unpickles_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = data_pkg.safe_load

    def counting(path, *args, **kwargs):
        calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data_pkg, "safe_load", counting)
    for raw, name in ((mult_data(), "mosi_data.pkl"), (mmsa_like(), "aligned_50.pkl")):
        calls.clear()
        load_dataset(data_path=str(dump(raw, tmp_path / name)))
        assert len(calls) == 1

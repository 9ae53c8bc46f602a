"""Extras: named per-sample feature sequences a data file carries besides the three modalities
(e.g. SDUMC's ``text_sim="precomputed"`` features under ``sim_text``), from the pickle through
``MSASplit``, ``SplitTensors``, ``Batch`` and the missing-data protocols to the run identity."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from msa_lib.core import Batch
from msa_lib.data import load_dataset, load_pickle
from msa_lib.data.container import DataFormatError, MSASplit
from msa_lib.experiments import data_options, get_profile, run_chapter
from msa_lib.missing import mask_batch, mask_split
from msa_lib.results import RunSpec
from msa_lib.train import SplitTensors
from test_loaders import N, SPLITS, dump, iemocap_data, mmsa_data  # the MMSA / MulT pickle writers

T_X, D_X = 4, 3  # the extra's own sequence length and width (text is T = 6, 8-d)


def with_sim_text(data: dict, seed: int = 1, lengths_in: tuple[str, ...] = ("train",)) -> dict:
    """``data`` with a float64 ``sim_text`` (N, T_X, D_X) per split; ``sim_text_lengths`` in the
    splits named by ``lengths_in`` (the others default to T_X)."""
    rng = np.random.default_rng(seed)
    for s in SPLITS:
        data[s]["sim_text"] = rng.normal(size=(N[s], T_X, D_X))
        if s in lengths_in:
            data[s]["sim_text_lengths"] = rng.integers(0, T_X + 1, size=N[s])
    return data


@pytest.fixture
def mmsa_file(tmp_path: Path) -> tuple[Path, dict]:
    data = with_sim_text(mmsa_data())
    return dump(data, tmp_path / "mosi" / "aligned_50.pkl"), data


# ----------------------------------------------------------------------------------------------
# loaders
# ----------------------------------------------------------------------------------------------
def test_mmsa_extras_round_trip_with_file_and_default_lengths(mmsa_file) -> None:
    path, data = mmsa_file
    ds = load_dataset("mosi", data_path=str(path), extra_keys=("sim_text",))
    for s in SPLITS:
        sp = ds[s]
        assert sorted(sp.extras) == ["sim_text"] and sorted(sp.extra_lengths) == ["sim_text"]
        x = sp.extras["sim_text"]
        assert x.dtype == np.float32 and x.shape == (N[s], T_X, D_X)
        np.testing.assert_array_equal(x, data[s]["sim_text"].astype(np.float32))  # as stored: no padding moved
        lens = sp.extra_lengths["sim_text"]
        assert lens.dtype == np.int64 and lens.shape == (N[s],)
        expected = data[s]["sim_text_lengths"] if s == "train" else np.full(N[s], T_X)
        np.testing.assert_array_equal(lens, expected)
    assert ds.replaced == {}


def test_extras_are_read_only_when_asked_for(mmsa_file) -> None:
    path, _ = mmsa_file
    ds = load_dataset("mosi", data_path=str(path))
    assert all(ds[s].extras is None and ds[s].extra_lengths is None for s in SPLITS)


def test_mult_pickle_carries_extras_as_stored(tmp_path: Path) -> None:
    data, _ = iemocap_data()
    data = with_sim_text(data, lengths_in=())
    data["valid"]["sim_text"][:, :2] = 0.0  # leading zeros stay where they are: extras are never re-padded
    path = dump(data, tmp_path / "iemocap_data.pkl", protocol=2)
    ds = load_pickle(path, extra_keys=["sim_text"])
    assert ds.file_format == "MulT pickle"
    for s in SPLITS:
        np.testing.assert_array_equal(ds[s].extras["sim_text"], data[s]["sim_text"].astype(np.float32))
        np.testing.assert_array_equal(ds[s].extra_lengths["sim_text"], np.full(N[s], T_X))


def test_nan_in_an_extra_is_zeroed_and_counted_unless_strict(tmp_path: Path) -> None:
    data = with_sim_text(mmsa_data())
    data["valid"]["sim_text"][1, 2, 0] = np.nan
    path = dump(data, tmp_path / "aligned_50.pkl")
    with pytest.warns(UserWarning, match=r"\[valid\] key 'sim_text'"):
        ds = load_dataset("mosi", data_path=str(path), extra_keys=("sim_text",))
    assert ds["valid"].extras["sim_text"][1, 2, 0] == 0.0
    assert ds.replaced == {"valid": {"sim_text": 1}}
    with pytest.raises(DataFormatError, match=r"\[valid\] key 'sim_text': 1 non-finite.*sample 1.*strict") as err:
        load_dataset("mosi", data_path=str(path), extra_keys=("sim_text",), strict=True)
    assert str(path) in str(err.value)


def test_missing_extra_key_names_file_split_key_and_keys_present(tmp_path: Path) -> None:
    data = mmsa_data()
    path = dump(data, tmp_path / "aligned_50.pkl")
    with pytest.raises(DataFormatError) as err:
        load_dataset("mosi", data_path=str(path), extra_keys=("sim_text",))
    present = sorted(data["train"])
    assert str(err.value) == (f"{path}: split 'train' has no key 'sim_text' (asked for by extra_keys; "
                              f"keys present: {present})")


def test_extra_missing_from_one_split_names_that_split(tmp_path: Path) -> None:
    data = with_sim_text(mmsa_data())
    del data["test"]["sim_text"]
    path = dump(data, tmp_path / "aligned_50.pkl")
    with pytest.raises(DataFormatError, match=r"split 'test' has no key 'sim_text'"):
        load_dataset("mosi", data_path=str(path), extra_keys=("sim_text",))


def test_extra_with_wrong_sample_count(tmp_path: Path) -> None:
    data = with_sim_text(mmsa_data())
    data["valid"]["sim_text"] = data["valid"]["sim_text"][:2]
    path = dump(data, tmp_path / "aligned_50.pkl")
    with pytest.raises(DataFormatError, match=rf"\[valid\] key 'sim_text': has 2 samples but 'text' has {N['valid']} "
                                              rf"\(shape \(2, {T_X}, {D_X}\)\)"):
        load_dataset("mosi", data_path=str(path), extra_keys=("sim_text",))


def test_two_dimensional_extra(tmp_path: Path) -> None:
    data = with_sim_text(mmsa_data())
    data["train"]["sim_text"] = data["train"]["sim_text"][:, 0, :]
    path = dump(data, tmp_path / "aligned_50.pkl")
    with pytest.raises(DataFormatError, match=rf"\[train\] key 'sim_text': expected a 3-D array \(N, T, d\), "
                                              rf"got shape \({N['train']}, {D_X}\)"):
        load_dataset("mosi", data_path=str(path), extra_keys=("sim_text",))


def test_extra_lengths_beyond_its_sequence(tmp_path: Path) -> None:
    data = with_sim_text(mmsa_data())
    data["train"]["sim_text_lengths"][0] = T_X + 1
    path = dump(data, tmp_path / "aligned_50.pkl")
    with pytest.raises(DataFormatError, match=rf"\[train\] key 'sim_text_lengths': 1 lengths outside \[0, {T_X}\]"):
        load_dataset("mosi", data_path=str(path), extra_keys=("sim_text",))


def test_split_validation_checks_extras() -> None:
    rng = np.random.default_rng(0)
    n, t = 3, 5
    base = dict(text=rng.normal(size=(n, t, 2)).astype(np.float32), audio=np.ones((n, t, 2), np.float32),
                vision=np.ones((n, t, 2), np.float32), lengths={m: np.full(n, t) for m in ("text", "audio", "vision")},
                labels=np.zeros(n, np.float32), ids=[str(i) for i in range(n)], name="train", source="f.pkl")
    ok = MSASplit(**base, extras={"sim_text": np.ones((n, 4, 2), np.float32)})
    np.testing.assert_array_equal(ok.extra_lengths["sim_text"], [4, 4, 4])  # default: T_x for every sample
    bad = {
        "expected float32 features, got float64": dict(extras={"sim_text": np.ones((n, 4, 2))}),
        "contains NaN or inf": dict(extras={"sim_text": np.full((n, 4, 2), np.inf, np.float32)}),
        "has 2 samples but 'text' has 3": dict(extras={"sim_text": np.ones((2, 4, 2), np.float32)}),
        "expected a 3-D array": dict(extras={"sim_text": np.ones((n, 4), np.float32)}),
        r"_lengths': lengths must lie in \[0, 4\]": dict(extras={"sim_text": np.ones((n, 4, 2), np.float32)},
                                                                extra_lengths={"sim_text": np.array([1, 5, 2])}),
        r"_lengths': expected integer shape \(3,\)": dict(
            extras={"sim_text": np.ones((n, 4, 2), np.float32)}, extra_lengths={"sim_text": np.array([1, 2])}),
    }
    for message, kw in bad.items():
        with pytest.raises(DataFormatError, match=r"f\.pkl \[train\] key 'sim_text.*" + message):
            MSASplit(**base, **kw)


def test_extra_keys_only_for_pickles(tmp_path: Path) -> None:
    for dataset in ("synthetic:mosi", "mosi-utterance"):  # refused before anything is drawn or fetched
        with pytest.raises(ValueError, match=rf"extra_keys=\['sim_text'\].*dataset '{dataset}'.*cannot carry extras"):
            load_dataset(dataset, extra_keys=("sim_text",))
    manifest = tmp_path / "data.json"
    manifest.write_text(json.dumps({"text": "t.csd", "audio": "a.csd", "vision": "v.csd", "labels": "y.csd"}))
    with pytest.raises(ValueError, match=r"CSD manifest, which cannot carry extras"):
        load_dataset("mine", data_path=str(manifest), extra_keys=("sim_text",))
    with pytest.raises(ValueError, match=r"tuple or list of key names, got the string 'sim_text'"):
        load_dataset("synthetic:mosi", extra_keys="sim_text")  # type: ignore[arg-type]
    assert load_dataset("synthetic:mosi", size=0.05, extra_keys=())["train"].extras is None


# ----------------------------------------------------------------------------------------------
# tensors, batches and protocols
# ----------------------------------------------------------------------------------------------
def test_split_tensors_batch_and_batch_to_carry_extras(mmsa_file) -> None:
    path, _ = mmsa_file
    sp = load_dataset("mosi", data_path=str(path), extra_keys=("sim_text",))["train"]
    idx = torch.tensor([3, 0, 4])
    batch = SplitTensors(sp).batch(idx)
    assert batch.extras["sim_text"].shape == (3, T_X, D_X) and batch.extras["sim_text"].dtype == torch.float32
    np.testing.assert_array_equal(batch.extras["sim_text"].numpy(), sp.extras["sim_text"][[3, 0, 4]])
    np.testing.assert_array_equal(batch.extra_lengths["sim_text"].numpy(), sp.extra_lengths["sim_text"][[3, 0, 4]])
    moved = batch.to("meta")
    assert moved.extras["sim_text"].device.type == "meta" and moved.extra_lengths["sim_text"].device.type == "meta"
    assert moved.extras["sim_text"].shape == (3, T_X, D_X)
    assert SplitTensors(load_dataset("mosi", data_path=str(path))["train"]).batch(idx).extras is None


def test_mask_split_keeps_extras_while_text_is_masked(mmsa_file) -> None:
    path, _ = mmsa_file
    sp = load_dataset("mosi", data_path=str(path), extra_keys=("sim_text",))["train"]
    masked = mask_split(sp, "modality:av")
    assert not masked.text.any() and not masked.keep["text"].any()  # the text modality is gone ...
    np.testing.assert_array_equal(masked.extras["sim_text"], sp.extras["sim_text"])  # ... its extra is not
    np.testing.assert_array_equal(masked.extra_lengths["sim_text"], sp.extra_lengths["sim_text"])
    assert sp.extras["sim_text"].any()
    frame = mask_split(sp, "frame:1.0")
    np.testing.assert_array_equal(frame.extras["sim_text"], sp.extras["sim_text"])


def test_mask_batch_keeps_extras(mmsa_file) -> None:
    path, _ = mmsa_file
    sp = load_dataset("mosi", data_path=str(path), extra_keys=("sim_text",))["train"]
    batch = SplitTensors(sp).batch(torch.arange(N["train"]))
    masked = mask_batch(batch, "modality:av", torch.Generator().manual_seed(0))
    assert isinstance(masked, Batch) and not masked.features["text"].any()
    assert torch.equal(masked.extras["sim_text"], batch.extras["sim_text"])
    assert torch.equal(masked.extra_lengths["sim_text"], batch.extra_lengths["sim_text"])
    assert masked.extras["sim_text"].abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# run identity
# ----------------------------------------------------------------------------------------------
def test_data_options_with_extra_keys_change_the_run_key(mmsa_file, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSA_LIB_CACHE", str(tmp_path / "cache"))
    path, _ = mmsa_file
    prof = get_profile("smoke")
    plain = data_options("mosi", str(path), prof)
    extra = data_options("mosi", str(path), prof, extra_keys=("sim_text", "b_feats", "sim_text"))
    assert "extra_keys" not in plain and extra == {**plain, "extra_keys": ["b_feats", "sim_text"]}
    assert data_options("mosi", str(path), prof, extra_keys=["b_feats", "sim_text"]) == extra  # order-free
    assert "extra_keys" not in data_options("synthetic:mosi", None, prof)
    key = lambda opts: RunSpec(model="tfn", dataset="mosi", seed=1, data_options=opts).key  # noqa: E731
    assert key(plain) != key(extra)
    single = data_options("mosi", str(path), prof, extra_keys=("sim_text",))
    assert key(single) not in (key(plain), key(extra))
    ds = load_dataset("mosi", **single)  # load_dataset accepts what data_options returns
    assert sorted(ds["test"].extras) == ["sim_text"]


def test_run_chapter_loads_the_extras(mmsa_file, tmp_path: Path) -> None:
    path, _ = mmsa_file
    seen = {}

    def make_specs(name, data_path, prof, seeds, choice, data):
        seen["data"] = data
        return []

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_chapter("extras", make_specs, dataset="mosi", data_path=str(path), results_dir=str(tmp_path / "runs"),
                    settings="mosi", extra_keys=("sim_text",), progress=False)
    assert sorted(seen["data"]["valid"].extras) == ["sim_text"]

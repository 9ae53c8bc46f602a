"""Padding is detected, not assumed: left-, right- and un-padded files in every pickle format.

Real frames carry distinctive nonzero values (sample, frame and modality can be read off them), so
the tests can tell that after loading every sample's valid frames come first, ``lengths`` are
right, ``last_valid`` returns the true last frame and ``padding_mask`` marks exactly the padding.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from msa_lib.core import last_valid, padding_mask
from msa_lib.data import DataFormatError, load_dataset, load_mmsa_pickle, load_pickle
from msa_lib.data.container import MODALITIES

SPLITS = ("train", "valid", "test")
SIDES = ("start", "end", "none")
DIMS = {"text": 3, "audio": 2, "vision": 4}
OFFSET = {"text": 0.1, "audio": 0.2, "vision": 0.3}
N = 4


def dump(obj: object, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)
    return path


def real(m: str, split: str, lengths: np.ndarray) -> list[np.ndarray]:
    """Each sample's real frames: value 1000 * split + 100 * sample + 10 * frame + feature + modality offset."""
    s = SPLITS.index(split) + 1
    return [(1000 * s + 100 * i + 10 * np.arange(k)[:, None] + np.arange(DIMS[m])[None, :] + OFFSET[m]
             ).astype(np.float32) for i, k in enumerate(lengths)]


def place(frames: list[np.ndarray], t: int, side: str, fill: float = 0.0) -> np.ndarray:
    """(N, t, d): each sample's frames at the start (side "end": padded after) or at the end (side "start")."""
    out = np.full((len(frames), t, frames[0].shape[1]), fill, dtype=np.float32)
    for i, f in enumerate(frames):
        if side == "start":
            out[i, t - len(f):] = f
        else:
            out[i, : len(f)] = f
    return out


def lengths_for(side: str, t: int, shift: int = 0) -> np.ndarray:
    """Per-sample lengths: all t when unpadded, else a mix of padded (2 .. t-1) and full samples."""
    if side == "none":
        return np.full(N, t)
    return np.array([t, 2, 3, t - 1])[(np.arange(N) + shift) % N]


def check(ds, truth: dict[str, dict[str, list[np.ndarray]]], side: str) -> None:
    """Post-padded with the true lengths; ``last_valid`` / ``padding_mask`` see exactly the real frames."""
    for s in SPLITS:
        sp = ds[s]
        for m in MODALITIES:
            frames = truth[s][m]
            lens = np.array([len(f) for f in frames])
            x = sp.features(m)
            t = x.shape[1]
            np.testing.assert_array_equal(sp.lengths[m], lens, err_msg=f"{s} {m}")
            for i, f in enumerate(frames):
                np.testing.assert_array_equal(x[i, : len(f)], f, err_msg=f"{s} {m} sample {i}")
            last = last_valid(torch.from_numpy(x), torch.from_numpy(sp.lengths[m])).numpy()
            np.testing.assert_array_equal(last, np.stack([f[-1] for f in frames]))
            pad = padding_mask(torch.from_numpy(sp.lengths[m]), t).numpy()
            np.testing.assert_array_equal(pad, np.arange(t)[None, :] >= lens[:, None])
            assert ds.padding[s][m] == side, (s, m, ds.padding[s])


# ----------------------------------------------------------------------------------------------
# MMSA
# ----------------------------------------------------------------------------------------------
def bert_rows(text_len: np.ndarray, t: int, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, t) ids / mask / segments placed on ``side``, and the real ids per sample (N, max len)."""
    ids = [np.r_[101, 2000 + 10 * i + np.arange(k - 2), 102] for i, k in enumerate(text_len)]
    rows = np.zeros((len(text_len), 3, t), dtype=np.int64)
    for i, (k, row) in enumerate(zip(text_len, ids)):
        sl = slice(t - k, t) if side == "start" else slice(0, k)
        rows[i, 0, sl], rows[i, 1, sl] = row, 1
    return rows, ids


@pytest.mark.parametrize("side", SIDES)
def test_mmsa_aligned_with_text_bert(tmp_path: Path, side: str) -> None:
    t = 6
    data, truth, ids = {}, {}, {}
    for s in SPLITS:
        lens = lengths_for(side, t)
        truth[s] = {m: real(m, s, lens) for m in MODALITIES}
        rows, ids[s] = bert_rows(lens, t, side)
        data[s] = {
            "text": place(truth[s]["text"], t, side, fill=-7.0),  # BERT outputs at [PAD] are not zero
            "audio": place(truth[s]["audio"], t, side),
            "vision": place(truth[s]["vision"], t, side),
            "text_bert": rows,
            "regression_labels": np.linspace(-3, 3, N).astype(np.float32),
        }
    ds = load_mmsa_pickle(dump(data, tmp_path / "MOSI" / "aligned_50.pkl"))
    check(ds, truth, side)
    assert ds.aligned
    for s in SPLITS:  # ids / mask / segments shifted like the features
        tb = ds[s].text_bert
        for i, row in enumerate(ids[s]):
            k = len(row)
            np.testing.assert_array_equal(tb[i, 0, :k], row)
            assert (tb[i, 1, :k] == 1).all() and (tb[i, 1, k:] == 0).all() and (tb[i, 0, k:] == 0).all()


@pytest.mark.parametrize("side", SIDES)
def test_mmsa_unaligned_with_length_keys(tmp_path: Path, side: str) -> None:
    t = {"text": 6, "audio": 9, "vision": 7}
    data, truth = {}, {}
    for s in SPLITS:
        lens = {m: lengths_for(side, t[m], shift=j) for j, m in enumerate(MODALITIES)}
        truth[s] = {m: real(m, s, lens[m]) for m in MODALITIES}
        data[s] = {m: place(truth[s][m], t[m], side) for m in MODALITIES}
        data[s].update(text_bert=bert_rows(lens["text"], t["text"], side)[0],
                       audio_lengths=[int(k) for k in lens["audio"]], vision_lengths=lens["vision"],
                       regression_labels=np.zeros(N, dtype=np.float32))
    ds = load_dataset(data_path=str(dump(data, tmp_path / "MOSEI" / "unaligned_50.pkl")))
    check(ds, truth, side)
    assert not ds.aligned


def test_mmsa_lengths_that_fit_no_side(tmp_path: Path) -> None:
    t = 5
    data = {}
    for s in SPLITS:
        lens = np.array([2, 3, 5, 4])
        data[s] = {m: np.ones((N, t, d), dtype=np.float32) for m, d in DIMS.items()}  # nonzero everywhere
        data[s].update(audio_lengths=lens, regression_labels=np.zeros(N, dtype=np.float32))
        data[s]["vision"] = place(real("vision", s, np.full(N, t)), t, "none")
    path = dump(data, tmp_path / "x" / "unaligned.pkl")
    with pytest.raises(DataFormatError, match=re.escape(f"{path} [train] key 'audio': the lengths in 'audio_lengths' "
                                                        "fit neither end padding (sample 0 of length 2")) as err:
        load_mmsa_pickle(path)
    assert "padding=" in str(err.value) and "shape (4, 5, 2)" in str(err.value)


def test_mmsa_attention_mask_that_is_not_one_block(tmp_path: Path) -> None:
    t = 5
    data = {}
    lens = np.array([5, 3, 4, 2])
    for s in SPLITS:
        rows, _ = bert_rows(lens, t, "end")
        if s == "valid":
            rows[2, 1] = [1, 0, 1, 1, 0]
        data[s] = {m: place(real(m, s, lens), t, "end") for m in MODALITIES}
        data[s].update(text_bert=rows, regression_labels=np.zeros(N, dtype=np.float32))
    path = dump(data, tmp_path / "m" / "aligned_50.pkl")
    with pytest.raises(DataFormatError, match=re.escape(f"{path} [valid] key 'text_bert': attention mask "
                                                        "text_bert[2, 1, :] = [1, 0, 1, 1, 0] is not one block")):
        load_mmsa_pickle(path)


# ----------------------------------------------------------------------------------------------
# MulT
# ----------------------------------------------------------------------------------------------
def mult_file(tmp_path: Path, name: str, side: str, t: dict[str, int], iemocap: bool = False) -> tuple[Path, dict]:
    aligned = len(set(t.values())) == 1
    data, truth = {}, {}
    for s in SPLITS:
        lens = {m: lengths_for(side, t[m], shift=0 if aligned else j) for j, m in enumerate(MODALITIES)}
        truth[s] = {m: real(m, s, lens[m]) for m in MODALITIES}
        data[s] = {m: place(truth[s][m], t[m], side) for m in MODALITIES}
        if iemocap:
            labels = np.zeros((N, 4, 2), dtype=np.float32)
            labels[:, :, 0] = 1
        else:
            labels = np.linspace(-3, 3, N, dtype=np.float32).reshape(N, 1, 1)
        data[s]["labels"] = labels
    return dump(data, tmp_path / name), truth


@pytest.mark.parametrize("side", SIDES)
def test_mult_mosi(tmp_path: Path, side: str) -> None:
    path, truth = mult_file(tmp_path, "mosi_data.pkl", side, {m: 5 for m in MODALITIES})
    ds = load_dataset(data_path=str(path))
    check(ds, truth, side)
    assert ds.aligned and ds.kind == "mosi"


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("side", SIDES)
def test_mult_iemocap(tmp_path: Path, side: str, aligned: bool) -> None:
    t = {m: 5 for m in MODALITIES} if aligned else {"text": 5, "audio": 8, "vision": 7}
    path, truth = mult_file(tmp_path, "iemocap_data.pkl", side, t, iemocap=True)
    ds = load_pickle(path)
    check(ds, truth, side)
    assert ds.aligned is aligned and ds.kind == "iemocap"


def _aligned_with_zero_vision_frame(tmp_path: Path, side: str) -> tuple[Path, dict]:
    """Pre-/post-padded aligned file where sample 1's vision is zero at its sentence's first/last word."""
    path, truth = mult_file(tmp_path, f"mosei_{side}.pkl", side, {m: 5 for m in MODALITIES})
    data = pickle.loads(path.read_bytes())
    k = len(truth["train"]["vision"][1])  # 2 frames: rows 3, 4 (start) or 0, 1 (end)
    row = (5 - k) if side == "start" else k - 1  # first real frame when pre-padded, last when post-padded
    data["train"]["vision"][1, row] = 0.0
    truth["train"]["vision"][1][0 if side == "start" else -1] = 0.0
    return dump(data, path), truth


@pytest.mark.parametrize("side", ["start", "end"])
def test_aligned_genuine_zero_vision_frame_is_not_padding(tmp_path: Path, side: str) -> None:
    path, truth = _aligned_with_zero_vision_frame(tmp_path, side)
    ds = load_pickle(path)
    sp = ds["train"]
    np.testing.assert_array_equal(sp.lengths["vision"], sp.lengths["text"])  # not shifted against text
    np.testing.assert_array_equal(sp.vision[1, :2], truth["train"]["vision"][1])
    assert ds.aligned and ds.padding["train"]["vision"] == side


def test_ambiguous_padding_is_an_error_that_says_how_to_resolve(tmp_path: Path) -> None:
    path, _ = mult_file(tmp_path, "mosi_data.pkl", "start", {m: 5 for m in MODALITIES})
    data = pickle.loads(path.read_bytes())
    audio = data["valid"]["audio"]
    audio[1] = np.roll(audio[1], -3, axis=0)  # sample 1 (2 real frames) now padded at the end
    dump(data, path)
    with pytest.raises(DataFormatError) as err:
        load_pickle(path)
    msg = str(err.value)
    assert msg.startswith(f"{path} [valid] key 'audio': cannot tell where the padding is: ")
    assert "2 samples start with all-zero frames and 1 end with them (shape (4, 5, 2)" in msg
    assert "padding='start'" in msg and "padding={'audio': 'start'}" in msg


def test_padding_argument_resolves_zero_frames_at_both_ends(tmp_path: Path) -> None:
    t = {"text": 5, "audio": 8, "vision": 7}
    path, truth = mult_file(tmp_path, "iemocap_data_noalign.pkl", "start", t, iemocap=True)
    data = pickle.loads(path.read_bytes())
    assert len(truth["test"]["vision"][2]) == 7
    data["test"]["vision"][2, -1] = 0.0  # a full-length sample whose last vision frame is a genuine zero
    dump(data, path)
    with pytest.raises(DataFormatError, match=re.escape(f"{path} [test] key 'vision': cannot tell")):
        load_dataset(data_path=str(path))
    for padding in ("start", {"vision": "start"}):
        ds = load_dataset(data_path=str(path), padding=padding)
        assert ds["test"].lengths["vision"][2] == 7  # the zero frame is kept as a real frame
        assert ds.padding["test"]["vision"] == "start"
        for i, f in enumerate(truth["train"]["vision"]):  # the pre-padded samples still convert
            np.testing.assert_array_equal(ds["train"].vision[i, : len(f)], f)


def test_all_zero_sample_has_length_zero(tmp_path: Path) -> None:
    path, _ = mult_file(tmp_path, "mosi_data.pkl", "start", {m: 5 for m in MODALITIES})
    data = pickle.loads(path.read_bytes())
    data["train"]["vision"][2] = 0.0  # the face was never seen: vision absent in sample 2
    ds = load_pickle(dump(data, path))
    assert ds["train"].lengths["vision"][2] == 0 and ds["train"].lengths["text"][2] == 3
    assert ds.aligned  # an absent modality does not break the alignment of the others


@pytest.mark.parametrize("padding, message", [
    ("left", "padding side 'left' is unknown; valid sides: ['start', 'end', 'none']"),
    ({"video": "start"}, "padding names unknown modalities ['video']; valid: ['text', 'audio', 'vision']"),
    ({"audio": "front"}, "padding side 'front' is unknown; valid sides: ['start', 'end', 'none']"),
])
def test_unknown_padding_value(tmp_path: Path, padding, message: str) -> None:
    path, _ = mult_file(tmp_path, "mosi_data.pkl", "end", {m: 5 for m in MODALITIES})
    with pytest.raises(ValueError, match=re.escape(message)):
        load_dataset(data_path=str(path), padding=padding)
    with pytest.raises(ValueError, match="applies to data files"):
        load_dataset("synthetic:mosi", padding="start")

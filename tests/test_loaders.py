"""Round-trip and failure tests for the dataset loaders (tiny files written in the real layouts)."""
from __future__ import annotations

import json
import os
import pickle
import re
import struct
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from msa_lib.data import load_dataset, make_synthetic
from msa_lib.data.container import IEMOCAP_EMOTIONS, DataFormatError
from msa_lib.data.identity import data_identity
from msa_lib.data.csd import load_csd_dataset, read_csd, video_of
from msa_lib.data.mult import load_mult_pickle
from msa_lib.data.mmsa import load_mmsa_pickle
from msa_lib.data.safe_pickle import UnsafePickleError, safe_load

SPLITS = ("train", "valid", "test")
N = {"train": 5, "valid": 3, "test": 4}
D_TEXT, D_AUDIO, D_VISION = 8, 5, 4  # stand-ins for 768 / 5 / 20


# ----------------------------------------------------------------------------------------------
# writers for the real layouts
# ----------------------------------------------------------------------------------------------
def _text_bert(rng: np.random.Generator, lens: np.ndarray, t: int) -> np.ndarray:
    """(N, 3, T) float64 like MMSA: token ids, attention mask (1 on the first len positions), segment ids."""
    n = len(lens)
    tb = np.zeros((n, 3, t), dtype=np.float64)
    for i, k in enumerate(lens):
        tb[i, 0, :k] = rng.integers(1000, 3000, size=k)
        tb[i, 0, 0], tb[i, 0, k - 1] = 101, 102  # [CLS] ... [SEP]
        tb[i, 1, :k] = 1
    return tb


def mmsa_split(
    rng: np.random.Generator,
    n: int,
    t: tuple[int, int, int],
    split: str,
    *,
    bert: bool = True,
    length_keys: bool = False,
    sims: bool = False,
) -> dict:
    tt, ta, tv = t
    d: dict = {
        "raw_text": np.array([f"{split} sentence {i}" for i in range(n)]),  # numpy str array
        "audio": rng.normal(size=(n, ta, D_AUDIO)).astype(np.float32),
        "vision": rng.normal(size=(n, tv, D_VISION)).astype(np.float32),
        "id": np.array([f"vid{split}{i // 2}${i % 2}" for i in range(n)], dtype=object),
        "text": rng.normal(size=(n, tt, D_TEXT)).astype(np.float32),
        "regression_labels": rng.uniform(-1 if sims else -3, 1 if sims else 3, size=n).astype(np.float32),
    }
    d["classification_labels"] = np.sign(d["regression_labels"]) + 1
    lens = {"audio": np.full(n, ta), "vision": np.full(n, tv)}
    if bert:
        text_len = rng.integers(2, tt + 1, size=n)
        d["text_bert"] = _text_bert(rng, text_len, tt)
        if ta == tv == tt:  # aligned: audio/vision frames follow the word tokens
            lens = {"audio": text_len, "vision": text_len}
    if length_keys:
        lens = {"audio": rng.integers(1, ta + 1, size=n), "vision": rng.integers(0, tv + 1, size=n)}
        d["audio_lengths"] = [int(x) for x in lens["audio"]]  # list of python ints
        d["vision_lengths"] = lens["vision"]  # numpy array
    for m in ("audio", "vision"):  # MMSA zero-pads audio/vision at the end (BERT text features are not zero there)
        d[m] *= np.arange(d[m].shape[1])[None, :, None] < lens[m][:, None, None]
    if sims:
        for k in "TAV":
            d[f"regression_labels_{k}"] = rng.uniform(-1, 1, size=n).astype(np.float32)
    return d


def mmsa_data(seed: int = 0, t=(6, 6, 6), **kw) -> dict:
    rng = np.random.default_rng(seed)
    return {s: mmsa_split(rng, N[s], t, s, **kw) for s in SPLITS}


def dump(obj: object, path: Path, protocol: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return path


def numpy1_pickle(obj: object, protocol: int) -> bytes:
    """Pickle ``obj`` as numpy 1.x would: globals from ``numpy.core.multiarray`` instead of ``numpy._core``."""
    data = pickle.dumps(obj, protocol=protocol)
    if protocol <= 3:  # GLOBAL opcode: b"c<module>\n<name>\n"
        out = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    else:  # SHORT_BINUNICODE module name (length-prefixed) inside one FRAME whose size must be fixed
        assert data[2:3] == pickle.FRAME and struct.unpack("<Q", data[3:11])[0] == len(data) - 11
        body = data[11:].replace(b"\x8c\x16numpy._core.multiarray", b"\x8c\x15numpy.core.multiarray")
        out = data[:3] + struct.pack("<Q", len(body)) + body
    assert b"numpy._core" not in out and b"numpy.core.multiarray" in out
    return out


# ----------------------------------------------------------------------------------------------
# MMSA pickles
# ----------------------------------------------------------------------------------------------
def test_mmsa_aligned_roundtrip(tmp_path: Path) -> None:
    data = mmsa_data()
    path = dump(data, tmp_path / "MOSI" / "aligned_50.pkl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file loads without any warning
        ds = load_mmsa_pickle(path)
    assert (ds.name, ds.kind, ds.aligned) == ("mosi", "mosi", True)
    assert ds.padding == {s: {"text": "end", "audio": "end", "vision": "end"} for s in SPLITS}
    assert ds.replaced == {} and ds.file_format == "MMSA pickle"
    assert ds.describe_features() == f"MMSA pickle: text BERT {D_TEXT}-d, audio {D_AUDIO}-d, vision {D_VISION}-d"
    assert ds.source == str(path) and ds.task == "regression"
    assert ds.dims == {"text": D_TEXT, "audio": D_AUDIO, "vision": D_VISION}
    assert ds.seq_lens == {"text": 6, "audio": 6, "vision": 6}
    for s in SPLITS:
        sp, raw = ds[s], data[s]
        assert len(sp) == N[s] and sp.name == s
        for m in ("text", "audio", "vision"):
            np.testing.assert_array_equal(sp.features(m), raw[m])
        text_len = raw["text_bert"][:, 1, :].sum(axis=1).astype(int)
        assert len(set(text_len.tolist())) > 1 or s == "valid"  # the mask gives varied lengths
        for m in ("text", "audio", "vision"):  # aligned: audio/vision follow the word tokens
            np.testing.assert_array_equal(sp.lengths[m], text_len)
            assert sp.lengths[m].dtype == np.int64
        np.testing.assert_array_equal(sp.labels, raw["regression_labels"])
        np.testing.assert_array_equal(sp.text_bert, raw["text_bert"].astype(np.int64))
        assert sp.ids == [str(x) for x in raw["id"]] and all(type(x) is str for x in sp.ids)
        assert sp.raw_text == [str(x) for x in raw["raw_text"]] and all(type(x) is str for x in sp.raw_text)
        assert sp.unimodal_labels is None


def test_mmsa_name_argument_and_stem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = dump(mmsa_data(), tmp_path / "aligned_50.pkl")
    assert load_mmsa_pickle(path, name="mine").name == "mine"
    monkeypatch.chdir(tmp_path)
    assert load_mmsa_pickle("aligned_50.pkl").name == "aligned_50"  # no parent folder → stem


def test_mmsa_unaligned_with_length_lists(tmp_path: Path) -> None:
    data = mmsa_data(seed=1, t=(6, 9, 7), length_keys=True)
    assert isinstance(data["train"]["audio_lengths"], list)
    path = dump(data, tmp_path / "MOSEI" / "unaligned_50.pkl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_mmsa_pickle(path)
    assert (ds.name, ds.kind, ds.aligned) == ("mosei", "mosi", False)
    # equal sequence lengths, but *_lengths that differ from the text lengths: unaligned
    same_t = dump(mmsa_data(seed=1, t=(6, 6, 6), length_keys=True), tmp_path / "MOSI" / "unaligned_50.pkl")
    assert load_mmsa_pickle(same_t).aligned is False
    assert ds.seq_lens == {"text": 6, "audio": 9, "vision": 7}
    for s in SPLITS:
        sp, raw = ds[s], data[s]
        np.testing.assert_array_equal(sp.lengths["text"], raw["text_bert"][:, 1].sum(1))
        np.testing.assert_array_equal(sp.lengths["audio"], np.array(raw["audio_lengths"]))
        np.testing.assert_array_equal(sp.lengths["vision"], raw["vision_lengths"])
        np.testing.assert_array_equal(sp.audio, raw["audio"])
        np.testing.assert_array_equal(sp.vision, raw["vision"])


def test_mmsa_aligned_without_text_bert_uses_full_length(tmp_path: Path) -> None:
    path = dump(mmsa_data(t=(5, 5, 5), bert=False), tmp_path / "MOSI" / "aligned_50.pkl")
    ds = load_mmsa_pickle(path)
    assert ds.aligned
    assert ds.feature_names == {"text": f"{D_TEXT}-d", "audio": f"{D_AUDIO}-d", "vision": f"{D_VISION}-d"}
    assert ds.padding["train"] == {"text": "none", "audio": "none", "vision": "none"}
    for m in ("text", "audio", "vision"):
        assert (ds["train"].lengths[m] == 5).all()
    assert ds["train"].text_bert is None


def test_sims_unaligned_39(tmp_path: Path) -> None:
    data = mmsa_data(seed=2, t=(7, 8, 3), length_keys=True, sims=True)
    path = dump(data, tmp_path / "SIMS" / "Processed" / "unaligned_39.pkl")
    ds = load_mmsa_pickle(path)
    assert (ds.name, ds.kind, ds.aligned) == ("sims", "sims", False)
    for s in SPLITS:
        sp, raw = ds[s], data[s]
        assert set(sp.unimodal_labels) == {"text", "audio", "vision"}
        for m, k in (("text", "T"), ("audio", "A"), ("vision", "V")):
            np.testing.assert_array_equal(sp.unimodal_labels[m], raw[f"regression_labels_{k}"])
        assert np.abs(sp.labels).max() <= 1
        np.testing.assert_array_equal(sp.labels, raw["regression_labels"])


def test_sims_missing_one_unimodal_label(tmp_path: Path) -> None:
    data = mmsa_data(sims=True)
    del data["test"]["regression_labels_A"]
    path = dump(data, tmp_path / "SIMS" / "unaligned_39.pkl")
    with pytest.raises(DataFormatError, match=r"\[test\] key 'regression_labels_A': missing"):
        load_mmsa_pickle(path)


@pytest.mark.parametrize("protocol", [2, 4])
def test_numpy1_era_pickle_loads(tmp_path: Path, protocol: int) -> None:
    data = mmsa_data(seed=3)
    path = tmp_path / "MOSI" / "aligned_50.pkl"
    path.parent.mkdir()
    path.write_bytes(numpy1_pickle(data, protocol))
    ds = load_mmsa_pickle(path)
    np.testing.assert_array_equal(ds["test"].audio, data["test"]["audio"])
    assert ds["valid"].ids == [str(x) for x in data["valid"]["id"]]
    # numpy 1 scalars too
    scal = tmp_path / "scalar.pkl"
    scal.write_bytes(numpy1_pickle({"x": np.float32(1.5), "y": np.int64(7)}, protocol))
    out = safe_load(scal)
    assert out == {"x": np.float32(1.5), "y": np.int64(7)} and isinstance(out["x"], np.float32)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_safe_load_accepts_numpy_and_containers(tmp_path: Path, protocol: int) -> None:
    from collections import OrderedDict

    obj = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i64": np.arange(3, dtype=np.int64),
        "str": np.array(["a", "bc"]),
        "obj": np.array(["x", "yy"], dtype=object),
        "dtype": np.dtype("float32"),
        "misc": [(1, 2.5), {3}, frozenset({4}), bytearray(b"z"), 1j, slice(1, 2), OrderedDict(a=1)],
    }
    out = safe_load(dump(obj, tmp_path / "ok.pkl", protocol))
    for k in ("f32", "i64", "str", "obj"):
        np.testing.assert_array_equal(out[k], obj[k])
        assert out[k].dtype == obj[k].dtype
    assert out["dtype"] == obj["dtype"] and out["misc"] == obj["misc"]


def _system_payload(marker: Path) -> bytes:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps({"train": Evil()}, protocol=2)


def _eval_payload(marker: Path) -> bytes:
    class Evil:
        def __reduce__(self):
            return (eval, (f"__import__('os').system('touch {marker}')",))

    return pickle.dumps([np.zeros(2), Evil()], protocol=4)


@pytest.mark.parametrize(
    "make, refused",
    [(_system_payload, r"it references (posix|nt)\.system, which is not a numpy array or builtin container"),
     (_eval_payload, r"it references builtins\.eval")],
)
def test_hostile_pickle_is_refused_and_not_executed(tmp_path: Path, make, refused: str) -> None:
    # the payload is live: plain pickle executes it
    probe = tmp_path / "probe"
    pickle.loads(make(probe))
    assert probe.exists()

    marker = tmp_path / "pwned"
    path = tmp_path / "MOSI" / "aligned_50.pkl"
    path.parent.mkdir()
    path.write_bytes(make(marker))
    with pytest.raises(UnsafePickleError, match=re.escape(f"refusing to load {path}: ") + refused):
        safe_load(path)
    with pytest.raises(UnsafePickleError):
        load_mmsa_pickle(path)
    assert not marker.exists()
    assert issubclass(UnsafePickleError, DataFormatError)


def test_codecs_encode_only_latin1(tmp_path: Path) -> None:
    # a protocol-2 numpy pickle uses _codecs.encode(..., 'latin1'); any other codec is refused
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(UnsafePickleError, match="rot13"):
        safe_load(path)


def test_truncated_pickle(tmp_path: Path) -> None:
    full = pickle.dumps(mmsa_data(), protocol=4)
    path = tmp_path / "MOSI" / "aligned_50.pkl"
    path.parent.mkdir()
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataFormatError, match=re.escape(str(path)) + ".*truncated or corrupt"):
        load_mmsa_pickle(path)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(DataFormatError, match=re.escape(str(empty))):
        safe_load(empty)


def test_missing_key_names_key_split_and_present_keys(tmp_path: Path) -> None:
    data = mmsa_data()
    del data["valid"]["vision"]
    path = dump(data, tmp_path / "MOSI" / "aligned_50.pkl")
    with pytest.raises(
        DataFormatError, match=re.escape(f"{path} [valid] key 'vision': missing (keys present: ['audio', ")
    ):
        load_mmsa_pickle(path)


def test_missing_split(tmp_path: Path) -> None:
    data = mmsa_data()
    del data["test"]
    path = dump(data, tmp_path / "MOSI" / "aligned_50.pkl")
    with pytest.raises(DataFormatError, match=re.escape(f"{path} [test]") + ".*split missing.*'train', 'valid'"):
        load_mmsa_pickle(path)


def test_two_dimensional_audio(tmp_path: Path) -> None:
    data = mmsa_data()
    data["train"]["audio"] = data["train"]["audio"][:, :, 0]  # (5, 6)
    path = dump(data, tmp_path / "MOSI" / "aligned_50.pkl")
    with pytest.raises(
        DataFormatError, match=re.escape(f"{path} [train] key 'audio': expected a 3-D array (N, T, d), got shape (5, 6)")
    ):
        load_mmsa_pickle(path)


def test_sample_count_mismatch(tmp_path: Path) -> None:
    data = mmsa_data()
    data["test"]["vision"] = data["test"]["vision"][:3]  # 3 rows, text has 4
    path = dump(data, tmp_path / "MOSI" / "aligned_50.pkl")
    with pytest.raises(
        DataFormatError, match=re.escape(f"{path} [test] key 'vision': has 3 samples but 'text' has 4 (shape (3, 6, 4))")
    ):
        load_mmsa_pickle(path)
    data = mmsa_data()
    data["valid"]["regression_labels"] = data["valid"]["regression_labels"][:2]
    path = dump(data, tmp_path / "MOSI" / "aligned_50.pkl")
    with pytest.raises(DataFormatError, match=re.escape("[valid] key 'regression_labels': expected shape (3,), got shape (2,)")):
        load_mmsa_pickle(path)


def test_length_beyond_sequence_is_an_error_not_clipped(tmp_path: Path) -> None:
    data = mmsa_data(t=(6, 9, 7), length_keys=True)
    data["train"]["vision_lengths"][2] = 8  # T_v = 7
    path = dump(data, tmp_path / "MOSI" / "unaligned_50.pkl")
    with pytest.raises(
        DataFormatError,
        match=re.escape(f"{path} [train] key 'vision_lengths': 1 lengths outside [0, 7] for features of shape (5, 7, 4)"),
    ):
        load_mmsa_pickle(path)


def test_nan_regression_label(tmp_path: Path) -> None:
    data = mmsa_data()
    data["test"]["regression_labels"][1] = np.nan
    path = dump(data, tmp_path / "MOSI" / "aligned_50.pkl")
    with pytest.raises(DataFormatError, match=re.escape(f"{path} [test] key 'regression_labels': 1 labels are NaN")):
        load_mmsa_pickle(path)


def test_negative_infinity_in_audio_is_zeroed_with_one_warning(tmp_path: Path) -> None:
    data = mmsa_data()
    audio = data["train"]["audio"]
    audio[0, 1, 2] = audio[3, 0, 0] = audio[4, 5, 4] = -np.inf
    path = dump(data, tmp_path / "MOSEI" / "aligned_50.pkl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_mmsa_pickle(path)
    assert len(caught) == 1, [str(w.message) for w in caught]
    msg = str(caught[0].message)
    assert "replaced 3 non-finite values" in msg and f"{path} [train] key 'audio'" in msg
    out = ds["train"].audio
    bad = ~np.isfinite(audio)
    assert (out[bad] == 0).all() and np.isfinite(out).all()
    np.testing.assert_array_equal(out[~bad], audio[~bad])


def test_aligned_is_computed_from_the_arrays(tmp_path: Path) -> None:
    # one T per split and *_lengths equal to the text lengths: aligned, whatever keys the file carries
    data = mmsa_data(seed=4, t=(6, 6, 6))
    for s in SPLITS:
        text_len = data[s]["text_bert"][:, 1].sum(1).astype(int)
        data[s]["audio_lengths"] = [int(x) for x in text_len]
        data[s]["vision_lengths"] = text_len.copy()
    path = dump(data, tmp_path / "MOSI" / "unaligned_50.pkl")
    assert load_dataset(data_path=str(path)).aligned is True
    data["valid"]["vision_lengths"][0] -= 1  # one sample's vision is a frame shorter: not aligned
    data["valid"]["vision"][0, data["valid"]["vision_lengths"][0]] = 0.0
    assert load_dataset(data_path=str(dump(data, path))).aligned is False


def _plant_non_finite(data: dict) -> None:
    data["train"]["audio"][3, 0, 1] = -np.inf  # sample 3 holds the first one
    data["train"]["audio"][4, 1, 0] = np.nan
    data["train"]["audio"][4, 1, 2] = np.inf
    data["test"]["vision"][1, 0, :2] = np.nan


def test_replaced_values_are_counted(tmp_path: Path) -> None:
    data = mmsa_data()
    _plant_non_finite(data)
    path = dump(data, tmp_path / "MOSEI" / "aligned_50.pkl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(data_path=str(path))
    assert sorted(str(w.message).split(": ", 1)[1] for w in caught) == [
        "replaced 2 non-finite values (NaN/inf) by 0", "replaced 3 non-finite values (NaN/inf) by 0"]
    assert ds.replaced == {"train": {"audio": 3}, "test": {"vision": 2}}
    assert load_dataset(data_path=str(dump(mmsa_data(), tmp_path / "clean.pkl"))).replaced == {}


def test_strict_refuses_non_finite_features(tmp_path: Path) -> None:
    data = mmsa_data()
    _plant_non_finite(data)
    path = dump(data, tmp_path / "MOSEI" / "aligned_50.pkl")
    with pytest.raises(DataFormatError, match=re.escape(
            f"{path} [train] key 'audio': 3 non-finite values (NaN/inf), the first in sample 3 (shape (5, 6, 5)); "
            "strict loading refuses them")):
        load_dataset(data_path=str(path), strict=True)
    mult, _ = iemocap_data()
    mult["valid"]["vision"][2, 1, 0] = -np.inf
    path = dump(mult, tmp_path / "iemocap_data.pkl")
    with pytest.raises(DataFormatError, match=re.escape(f"{path} [valid] key 'vision': 1 non-finite values (NaN/inf), "
                                                        "the first in sample 2")):
        load_mult_pickle(path, strict=True)
    with pytest.warns(UserWarning, match="replaced 1 non-finite"):
        assert load_mult_pickle(path).replaced == {"valid": {"vision": 1}}


def test_data_identity_format_does_not_open_the_file(tmp_path: Path) -> None:
    for name, fmt in (("iemocap_data.pkl", "pkl"), ("aligned_50.pkl", "pkl"), ("m.json", "csd-manifest")):
        path = tmp_path / name
        path.write_bytes(b"not even a pickle")
        assert data_identity("x", {"data_path": str(path)})["format"] == fmt


def test_synthetic_records_its_features_and_padding() -> None:
    ds = make_synthetic("mosi", size=0.01)
    assert ds.describe_features() == "synthetic: text 768-d, audio 5-d, vision 20-d"
    assert ds.padding["train"] == {"text": "end", "audio": "end", "vision": "end"} and ds.replaced == {}
    assert make_synthetic("sims", size=0.01, max_len=8).aligned is False


# ----------------------------------------------------------------------------------------------
# MulT IEMOCAP (MOSI / MOSEI and padding: tests/test_mult.py, tests/test_padding.py)
# ----------------------------------------------------------------------------------------------
def iemocap_data(seed: int = 0, t: int = 5) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    data, classes = {}, {}
    for s in SPLITS:
        n = N[s]
        cls = rng.integers(0, 2, size=(n, 4))
        labels = np.zeros((n, 4, 2), dtype=np.float32)
        labels[np.arange(n)[:, None], np.arange(4)[None, :], cls] = 1.0
        data[s] = {
            "text": rng.normal(size=(n, t, 6)).astype(np.float32),
            "audio": rng.normal(size=(n, t, 7)).astype(np.float32),
            "vision": rng.normal(size=(n, t, 3)).astype(np.float32),
            "labels": labels,
        }
        classes[s] = cls
    return data, classes


def test_mult_iemocap_roundtrip(tmp_path: Path) -> None:
    data, classes = iemocap_data()
    path = dump(data, tmp_path / "iemocap_data.pkl", protocol=2)
    ds = load_mult_pickle(path)
    assert (ds.name, ds.kind, ds.aligned, ds.class_names, ds.task) == (
        "iemocap", "iemocap", True, IEMOCAP_EMOTIONS, "classification"
    )
    for s in SPLITS:
        sp = ds[s]
        assert sp.labels is None
        assert sp.class_labels.dtype == np.int64 and sp.class_labels.shape == (N[s], 4)
        np.testing.assert_array_equal(sp.class_labels, classes[s])
        assert sp.ids == [f"{s}_{i}" for i in range(N[s])]
        for m in ("text", "audio", "vision"):
            np.testing.assert_array_equal(sp.features(m), data[s][m])
            assert (sp.lengths[m] == 5).all()


@pytest.mark.parametrize("shape", [(3, 4, 3), (3, 5, 2), (3, 8)])
def test_mult_iemocap_bad_label_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    data, _ = iemocap_data()
    data["valid"]["labels"] = np.zeros(shape, dtype=np.float32)
    path = dump(data, tmp_path / "iemocap_data.pkl")
    with pytest.raises(DataFormatError, match=re.escape(f"{path} [valid] key 'labels'") + ".*" + re.escape(f"got shape {shape}")):
        load_mult_pickle(path)


def test_mult_iemocap_not_one_hot(tmp_path: Path) -> None:
    data, _ = iemocap_data()
    data["test"]["labels"][2, 1] = [1.0, 1.0]
    path = dump(data, tmp_path / "iemocap_data.pkl")
    with pytest.raises(DataFormatError, match=re.escape("[test] key 'labels': labels[2, 1] = [1.0, 1.0] is not one-hot")):
        load_mult_pickle(path)


def test_mult_iemocap_missing_key(tmp_path: Path) -> None:
    data, _ = iemocap_data()
    del data["train"]["labels"]
    path = dump(data, tmp_path / "iemocap_data.pkl")
    with pytest.raises(DataFormatError, match=re.escape(f"{path} [train] key 'labels': missing")):
        load_mult_pickle(path)


# ----------------------------------------------------------------------------------------------
# CMU-MultimodalSDK .csd
# ----------------------------------------------------------------------------------------------
def write_csd(path: Path, root: str, data: dict[str, np.ndarray]) -> Path:
    """Write a computational sequence in the SDK layout (root/data/<seg>/{features,intervals}, root/metadata)."""
    with h5py.File(path, "w") as fh:
        g = fh.create_group(root)
        dg = g.create_group("data")
        for seg, feats in data.items():
            sg = dg.create_group(seg)
            sg.create_dataset("features", data=feats)
            t = feats.shape[0]
            sg.create_dataset("intervals", data=np.stack([np.arange(t), np.arange(t) + 1], axis=1).astype(np.float64) * 0.1)
        mg = g.create_group("metadata")
        for key, value in {"root name": root, "dimension names": None, "computational sequence version": "1.0"}.items():
            ds = mg.create_dataset(key, (1,), dtype=h5py.special_dtype(vlen=str))
            ds[0] = json.dumps(value)
    return path


# segment -> (text len, audio len, vision len, labels rows)
SEGMENTS = {
    "vidA[0]": (3, 4, 2, 1),
    "vidA[1]": (5, 5, 5, 3),
    "vidA[10]": (1, 2, 3, 1),
    "vidB[0]": (4, 1, 4, 1),
    "vidC[0]": (2, 3, 3, 1),
    "vidC[1]": (2, 2, 2, 1),
    "vidE": (3, 3, 1, 1),
}
DROPPED = "vidD[0]"  # present in text/audio/labels, absent from vision
NO_LABEL = "vidA[2]"  # present in text/audio/vision, absent from labels


def csd_files(tmp_path: Path, rng=None, dims=(6, 5, 4)) -> tuple[dict[str, Path], dict[str, dict[str, np.ndarray]]]:
    rng = rng or np.random.default_rng(0)
    raw: dict[str, dict[str, np.ndarray]] = {"text": {}, "audio": {}, "vision": {}, "labels": {}}
    for seg, lens in {**SEGMENTS, DROPPED: (2, 2, 2, 1), NO_LABEL: (2, 2, 2, 1)}.items():
        for (m, d), t in zip(zip(("text", "audio", "vision"), dims), lens[:3]):
            if not (m == "vision" and seg == DROPPED):
                raw[m][seg] = rng.normal(size=(t, d)).astype(np.float32)
        if seg != NO_LABEL:
            raw["labels"][seg] = rng.uniform(-3, 3, size=(lens[3], 1)).astype(np.float32)
    roots = {"text": "CMU_MOSI_TimestampedWordVectors", "audio": "CMU_MOSI_COVAREP",
             "vision": "CMU_MOSI_Visual_Facet_41", "labels": "CMU_MOSI_Opinion_Labels"}
    paths = {m: write_csd(tmp_path / f"{roots[m]}.csd", roots[m], raw[m]) for m in raw}
    return paths, raw


FOLDS = {"train": ["vidA", "vidB"], "valid": ["vidC"], "test": ["vidE", "vidD"]}


def test_csd_roundtrip_join_pad_split(tmp_path: Path) -> None:
    paths, raw = csd_files(tmp_path)
    seq = read_csd(paths["audio"])
    assert set(seq) == set(SEGMENTS) | {DROPPED, NO_LABEL}
    np.testing.assert_array_equal(seq["vidA[1]"][0], raw["audio"]["vidA[1]"])
    assert seq["vidA[1]"][1].shape == (5, 2)

    with pytest.warns(UserWarning, match=r"dropped 2 of 9 segments .*text: 0, audio: 0, vision: 1, labels: 1") as rec:
        ds = load_csd_dataset(paths["text"], paths["audio"], paths["vision"], paths["labels"], splits=FOLDS)
    assert len(rec) == 1
    assert (ds.name, ds.kind, ds.aligned, ds.task) == ("mosi", "mosi", False, "regression")
    assert ds["train"].ids == ["vidA[0]", "vidA[10]", "vidA[1]", "vidB[0]"]  # plain sorted() order
    assert ds["valid"].ids == ["vidC[0]", "vidC[1]"]
    assert ds["test"].ids == ["vidE"]
    assert ds.seq_lens == {"text": 5, "audio": 5, "vision": 5}  # longest kept segment per modality
    assert ds.dims == {"text": 6, "audio": 5, "vision": 4}
    for s in SPLITS:
        sp = ds[s]
        assert {video_of(i) for i in sp.ids} <= set(FOLDS[s])
        for i, seg in enumerate(sp.ids):
            for j, m in enumerate(("text", "audio", "vision")):
                t = SEGMENTS[seg][j]
                assert sp.lengths[m][i] == t
                np.testing.assert_array_equal(sp.features(m)[i, :t], raw[m][seg])
                assert (sp.features(m)[i, t:] == 0).all()  # padded at the end
            assert sp.labels[i] == pytest.approx(float(raw["labels"][seg][:, 0].mean()))
    assert ds["train"].labels[ds["train"].ids.index("vidA[1]")] == pytest.approx(float(raw["labels"]["vidA[1]"].mean()))  # (3, 1) labels → mean
    assert ds.describe_features() == ("CMU-SDK .csd: text CMU_MOSI_TimestampedWordVectors 6-d, "
                                      "audio CMU_MOSI_COVAREP 5-d, vision CMU_MOSI_Visual_Facet_41 4-d")
    assert ds.padding["train"] == {"text": "end", "audio": "end", "vision": "end"} and ds.replaced == {}


def test_csd_aligned_and_max_len(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    raw = {m: {} for m in ("text", "audio", "vision", "labels")}
    for v in range(6):
        for k in range(2):
            seg, t = f"v{v}[{k}]", 2 + (v + k) % 4
            for m, d in (("text", 3), ("audio", 2), ("vision", 2)):
                raw[m][seg] = rng.normal(size=(t, d)).astype(np.float32)
            raw["labels"][seg] = np.array([[v - 2.5]], dtype=np.float32)
    paths = {m: write_csd(tmp_path / f"{m}.csd", f"SEQ_{m}", raw[m]) for m in raw}
    folds = {"train": ["v0", "v1", "v2", "v3"], "valid": ["v4"], "test": ["v5"]}
    ds = load_csd_dataset(paths["text"], paths["audio"], paths["vision"], paths["labels"], splits=folds, kind="sims", name="x")
    assert ds.aligned and (ds.kind, ds.name) == ("sims", "x")
    padded = load_csd_dataset(
        paths["text"], paths["audio"], paths["vision"], paths["labels"], splits=folds,
        max_len={"text": 5, "audio": 6, "vision": 5},
    )
    assert padded.seq_lens == {"text": 5, "audio": 6, "vision": 5}
    assert not padded.aligned  # same per-segment lengths, but the padded sequences differ in length
    with pytest.warns(UserWarning, match="truncated"):
        cut = load_csd_dataset(paths["text"], paths["audio"], paths["vision"], paths["labels"], splits=folds, max_len=3)
    assert cut.seq_lens == {"text": 3, "audio": 3, "vision": 3}
    sp = cut["train"]
    i = sp.ids.index("v2[0]")  # raw length 4 → truncated to 3
    assert sp.lengths["text"][i] == 3
    np.testing.assert_array_equal(sp.text[i], raw["text"]["v2[0]"][:3])


def test_csd_default_split_is_seeded_and_video_level(tmp_path: Path) -> None:
    paths, _ = csd_files(tmp_path)
    args = (paths["text"], paths["audio"], paths["vision"], paths["labels"])
    runs = []
    for _ in range(2):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            runs.append(load_csd_dataset(*args))
        messages = [str(w.message) for w in rec]
        assert sum("standard folds" in m and "seed 0" in m for m in messages) == 1, messages
        assert sum("dropped 2" in m for m in messages) == 1, messages
    a, b = runs
    assert all(a[s].ids == b[s].ids for s in SPLITS)
    assert "seed 0" in a.notes["splits"]
    videos = {s: {video_of(i) for i in a[s].ids} for s in SPLITS}
    assert not (videos["train"] & videos["valid"] or videos["train"] & videos["test"] or videos["valid"] & videos["test"])
    assert sorted(i for s in SPLITS for i in a[s].ids) == sorted(SEGMENTS)


def test_csd_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "CMU_MOSI_COVAREP.csd"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataFormatError, match=re.escape(str(bad)) + ".*not a readable HDF5"):
        read_csd(bad)
    (tmp_path / "ok").mkdir()
    paths, _ = csd_files(tmp_path / "ok")
    with pytest.raises(DataFormatError, match=re.escape(str(bad))):
        load_csd_dataset(paths["text"], bad, paths["vision"], paths["labels"], splits=FOLDS)


def test_csd_structural_errors(tmp_path: Path) -> None:
    no_root = tmp_path / "no_root.csd"
    with h5py.File(no_root, "w") as fh:
        fh.create_dataset("x", data=np.zeros(3))
    with pytest.raises(DataFormatError, match=re.escape(str(no_root)) + ".*no root group"):
        read_csd(no_root)

    no_data = tmp_path / "no_data.csd"
    with h5py.File(no_data, "w") as fh:
        fh.create_group("SEQ").create_group("metadata")
    with pytest.raises(DataFormatError, match=re.escape(f"{no_data} [?] key 'SEQ/data': missing")):
        read_csd(no_data)

    mismatch = tmp_path / "mismatch.csd"
    with h5py.File(mismatch, "w") as fh:
        sg = fh.create_group("SEQ/data/v[0]")
        sg.create_dataset("features", data=np.zeros((4, 3)))
        sg.create_dataset("intervals", data=np.zeros((5, 2)))
    with pytest.raises(DataFormatError, match=r"segment 'v\[0\]' has 4 feature rows \(shape \(4, 3\)\) but 5 intervals"):
        read_csd(mismatch)

    dims = write_csd(tmp_path / "dims.csd", "SEQ", {"a[0]": np.zeros((2, 3)), "b[0]": np.zeros((2, 4))})
    with pytest.raises(DataFormatError, match=re.escape("segment 'b[0]' has feature dim 4 (shape (2, 4)) but segment 'a[0]' has 3")):
        read_csd(dims)


def test_csd_non_finite_features_zeroed(tmp_path: Path) -> None:
    paths, raw = csd_files(tmp_path)
    audio = dict(raw["audio"])
    audio["vidB[0]"] = np.full_like(audio["vidB[0]"], -np.inf)  # (1, 5): 5 values
    cov = write_csd(tmp_path / "covarep_inf.csd", "CMU_MOSI_COVAREP", audio)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_csd_dataset(paths["text"], cov, paths["vision"], paths["labels"], splits=FOLDS)
    inf_warnings = [str(w.message) for w in caught if "non-finite" in str(w.message)]
    assert inf_warnings == [f"{cov} [train] key 'audio': replaced 5 non-finite values (NaN/inf) by 0"]
    i = ds["train"].ids.index("vidB[0]")
    assert (ds["train"].audio[i] == 0).all()
    assert ds.replaced == {"train": {"audio": 5}}
    message = re.escape(f"{cov} [train] key 'audio': 5 non-finite values (NaN/inf), the first in sample {i}")
    with pytest.raises(DataFormatError, match=message), pytest.warns(UserWarning, match="dropped"):
        load_csd_dataset(paths["text"], cov, paths["vision"], paths["labels"], splits=FOLDS, strict=True)

"""Tests for msa_lib.results (store v2), msa_lib.data.identity and msa_lib.runs.

Run keys (what determines the weights, and nothing else), data identity by content, atomic
writes (a crash leaves the complete file or nothing), stored weights, HDF5 arrays, evaluating a
stored run without retraining, resuming an interrupted grid, old layouts refused, and the
tidy / summary helpers.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest

from msa_lib.data.identity import GENERATOR_VERSION
import torch

import msa_lib.data.identity as identity
import msa_lib.experiments as exp
import msa_lib.runs as runs
from msa_lib.data.container import MODALITIES, MSADataset, MSASplit
from msa_lib.data.identity import data_identity
from msa_lib.metrics import compute_metrics
from msa_lib.models import build_model
from msa_lib.results import (LAYOUT_TEXT, ResultsLayoutError, ResultsStore, RunSpec, atomic_path, summarize,
                             summary_table, tidy)
from msa_lib.train import Trainer, evaluate

DIMS = {"text": 6, "audio": 3, "vision": 4}
T = 5
SMALL_TFN = {"text_hidden": 4, "audio_hidden": 2, "vision_hidden": 3, "text_out": 4, "post_fusion_dim": 5}
TRAIN = {"epochs": 2, "batch_size": 8}
REPO = pathlib.Path(__file__).resolve().parents[1]
OLD = 1_000_000_000 * 1_000_000_000  # an mtime (ns) long past: 2001-09-09


@pytest.fixture(autouse=True)
def hash_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own persistent hash cache (never ~/.cache) and an empty in-process one."""
    folder = tmp_path_factory.mktemp("hash-cache")
    monkeypatch.setenv("MSA_LIB_CACHE", str(folder))
    monkeypatch.setattr(identity, "_memory", {})
    return folder / "file-hashes.json"


def tiny_split(n: int, name: str, rng: np.random.Generator) -> MSASplit:
    lengths = rng.integers(2, T + 1, size=n)
    valid = np.arange(T)[None, :] < lengths[:, None]
    feats = {m: (rng.normal(size=(n, T, d)) * valid[..., None]).astype(np.float32) for m, d in DIMS.items()}
    labels = np.clip(np.round(rng.normal(size=n) * 7.5) * 0.2, -3, 3).astype(np.float32)
    return MSASplit(text=feats["text"], audio=feats["audio"], vision=feats["vision"],
                    lengths={m: lengths.copy() for m in MODALITIES}, labels=labels,
                    ids=[f"{name}_{i}" for i in range(n)], name=name, source="tiny")


def tiny_dataset(seed: int = 0) -> MSADataset:
    rng = np.random.default_rng(seed)
    splits = {name: tiny_split(n, name, rng) for name, n in (("train", 12), ("valid", 8), ("test", 9))}
    return MSADataset(name="tiny", kind="mosi", splits=splits, source="tiny")


def spec(**kw) -> RunSpec:
    base = dict(model="tfn", dataset="mosi", seed=0, model_config=SMALL_TFN, train_config=TRAIN)
    return RunSpec(**{**base, **kw})


def all_files(root: pathlib.Path) -> list[str]:
    """Every file under root, hidden ones included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def run_files(s: RunSpec, *evals: str, outputs: tuple[str, ...] = ()) -> list[str]:
    """The files a stored run has: run.json, weights.pt, one JSON per evaluation, one HDF5 per output."""
    d = f"{s.model}/{s.key}"
    return sorted([f"{d}/run.json", f"{d}/weights.pt"] + [f"{d}/eval/{e}.json" for e in evals]
                  + [f"{d}/outputs/{o}.h5" for o in outputs])


def fake_weights() -> dict:
    return {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([0.5, -1.0])}


RECORD = {"valid": {"MAE": 0.5}, "best_epoch": 1, "history": [{"epoch": 0}, {"epoch": 1}], "train_seconds": 0.1,
          "data_source": "tiny", "n_samples": {"train": 12}, "torch": torch.__version__}


@pytest.fixture
def count_fits(monkeypatch):
    """Counts Trainer.fit calls (the trainings), still training for real."""
    calls: list[int] = []
    real_fit = Trainer.fit

    def fit(self):
        calls.append(self.seed)
        return real_fit(self)

    monkeypatch.setattr(Trainer, "fit", fit)
    return calls


@pytest.fixture
def count_evals(monkeypatch):
    """The protocols msa_lib.runs evaluates (in order)."""
    calls: list[str] = []
    real = runs.evaluate

    def counting(model, dataset, protocol, *a, **k):
        calls.append(protocol)
        return real(model, dataset, protocol, *a, **k)

    monkeypatch.setattr(runs, "evaluate", counting)
    return calls


# ---------------------------------------------------------------------------------------------
# RunSpec: keys
# ---------------------------------------------------------------------------------------------

def test_key_is_stable_for_equal_specs():
    a, b = spec(), spec()
    assert a.key == b.key and len(a.key) == 16 and len(a.config_key) == 16
    int(a.key, 16)  # hexadecimal
    # dict order does not matter
    assert spec(model_config={"a": 1, "b": 2}).key == spec(model_config={"b": 2, "a": 1}).key
    # the key depends on the content only: a spec rebuilt from its dict has the same key
    assert spec().key == RunSpec(**spec().to_dict() | {"eval_protocols": ("complete",)}).key
    assert RunSpec.from_dict(spec(init_from="0123456789abcdef").to_dict()) == spec(init_from="0123456789abcdef")
    # a fixed spec has a fixed key across processes and versions (the synthetic data identity)
    assert data_identity("synthetic:mosi", {}) == {"synthetic": "synthetic:mosi", "size": 1.0, "seed": 0,
                                                   "generator": GENERATOR_VERSION}
    assert spec(data_options={"size": 1, "seed": 0}).key == spec().key  # load_dataset's defaults


def test_specs_are_hashable_and_equal_by_content():
    a, b = spec(train_protocol="modality:{l,a}"), spec(train_protocol="modality:la")
    assert a == b and hash(a) == hash(b)
    assert len({a, b, spec(seed=1)}) == 2
    assert {a: 1}[b] == 1


@pytest.mark.parametrize("change", [
    {"seed": 1},
    {"model": "umdf"},
    {"dataset": "sims"},  # synthetic data: the preset name is the data
    {"train_protocol": "frame:0.5"},
    {"model_config": {**SMALL_TFN, "dropout": 0.1}},
    {"train_config": {**TRAIN, "lr": 0.01}},
    {"train_config": {**TRAIN, "mask_seed": 1}},
    {"data_options": {"size": 0.5}},
    {"data_options": {"seed": 3}},
    {"init_from": "0123456789abcdef"},
])
def test_key_differs_when_a_weight_setting_differs(change):
    assert spec(**change).key != spec().key


@pytest.mark.parametrize("change", [
    {"label": "TFN (renamed)"},
    {"eval_protocols": ("complete", "frame:0.5")},
    {"eval_protocols": ("frame:0.5", "complete")},
    {"eval_protocols": ("complete", "frame:0.5"), "save_outputs": ("frame:0.5",)},
    {"design": "per_rate"},
    {"train_config": {**TRAIN, "progress": False, "device": "cpu"}},
])
def test_key_ignores_what_does_not_change_the_weights(change):
    assert spec(**change).key == spec().key
    assert spec(**change).config_key == spec().config_key
    assert spec(**change) != spec()  # still different specs


def test_config_key_groups_seeds_only():
    assert spec(seed=1).config_key == spec(seed=2).config_key == spec().config_key
    assert spec(seed=1).key != spec(seed=2).key
    assert spec(model_config={**SMALL_TFN, "dropout": 0.1}).config_key != spec().config_key
    assert spec(train_protocol="frame:0.5").config_key != spec().config_key
    assert spec().config_key != spec().key


def test_real_data_is_identified_by_content_not_path_or_name(tmp_path):
    a, b = tmp_path / "a" / "aligned_50.pkl", tmp_path / "b" / "copy.pkl"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(b"same bytes")
    sa = spec(dataset="mosi", data_options={"data_path": str(a)})
    sb = spec(dataset="MOSI (my copy)", data_options={"data_path": str(b)})
    assert sa.key == sb.key  # neither the path string nor the display name is part of the key
    assert data_identity("mosi", {"data_path": str(a)}) == {"sha256": hashlib.sha256(b"same bytes").hexdigest(),
                                                            "bytes": 10, "format": "pkl"}
    # the suffix names the format (a pickle's content picks its reader); other bytes, another key
    c = tmp_path / "iemocap_data.pkl"
    c.write_bytes(b"other bytes")
    assert data_identity("iemocap", {"data_path": str(c)})["format"] == "pkl"
    assert spec(data_options={"data_path": str(c)}).key != sa.key
    # size / seed options mean nothing for a file (load_dataset ignores them)
    assert spec(data_options={"data_path": str(a), "seed": 4}).key == sa.key
    assert sa.key != spec().key  # and the file is not the synthetic preset


def test_overwritten_data_file_gives_a_new_key(tmp_path):
    f = tmp_path / "data.pkl"
    f.write_bytes(b"version 1")
    s = spec(data_options={"data_path": str(f)})
    k1 = s.key
    mtime = f.stat().st_mtime_ns
    f.write_bytes(b"version 2")  # same size, same path, within one timestamp tick: the same mtime
    os.utime(f, ns=(mtime, mtime))
    k2 = s.key
    assert k2 != k1  # a recently modified file is never served from the hash cache
    # an old file (its hash cached in memory and on disk) overwritten later: a new key as well
    os.utime(f, ns=(OLD, OLD))
    k3 = s.key
    assert k3 == k2 and s.key == k3  # cached
    f.write_bytes(b"version 3")
    assert s.key not in (k1, k2, k3)


def test_csd_manifest_identity_covers_the_files_it_names(tmp_path):
    for name in ("t.csd", "a.csd", "v.csd", "y.csd"):
        (tmp_path / name).write_bytes(name.encode())
    manifest = tmp_path / "mosi.json"
    manifest.write_text(json.dumps({"text": "t.csd", "audio": "a.csd", "vision": "v.csd", "labels": "y.csd"}))
    ident = data_identity("mosi", {"data_path": str(manifest)})
    assert ident["format"] == "csd-manifest" and sorted(ident["files"]) == ["audio", "labels", "text", "vision"]
    assert ident["files"]["labels"] == {"sha256": hashlib.sha256(b"y.csd").hexdigest(), "bytes": 5}
    assert ident["sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    s = spec(data_options={"data_path": str(manifest)})
    before = s.key
    (tmp_path / "y.csd").write_bytes(b"Y.CSD")  # new labels, same size, manifest untouched
    assert s.key != before
    (tmp_path / "v.csd").unlink()
    with pytest.raises(FileNotFoundError, match=r"manifest entry 'vision' names .*v\.csd"):
        s.key


def test_missing_data_file_names_the_path(tmp_path):
    s = spec(data_options={"data_path": str(tmp_path / "nowhere.pkl")})
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pkl"):
        s.key


def test_hash_cache_persists_and_survives_corruption(tmp_path, hash_cache, monkeypatch):
    f = tmp_path / "big.pkl"
    f.write_bytes(b"x" * 1000)
    os.utime(f, ns=(OLD, OLD))
    first = data_identity("mosi", {"data_path": str(f)})
    entries = json.loads(hash_cache.read_text())
    assert entries == {str(f.resolve()): {"sha256": first["sha256"], "bytes": 1000, "mtime_ns": OLD}}

    def no_hashing(path):
        raise AssertionError(f"hashed {path} again")

    # a new process (empty memory) reads the persistent cache instead of hashing
    monkeypatch.setattr(identity, "_memory", {})
    monkeypatch.setattr(identity, "_sha256", no_hashing)
    assert data_identity("mosi", {"data_path": str(f)}) == first
    # a corrupt cache file is ignored (the file is hashed) and rewritten
    monkeypatch.undo()
    monkeypatch.setenv("MSA_LIB_CACHE", str(hash_cache.parent))
    monkeypatch.setattr(identity, "_memory", {})
    hash_cache.write_text("{not json")
    assert data_identity("mosi", {"data_path": str(f)}) == first
    assert json.loads(hash_cache.read_text())[str(f.resolve())]["sha256"] == first["sha256"]
    assert [p.name for p in hash_cache.parent.iterdir()] == ["file-hashes.json"]  # no temporary left


# ---------------------------------------------------------------------------------------------
# RunSpec: protocols and checks
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    ("modality:{l,a}", "modality:la"),
    ("modality:al", "modality:la"),
    ("MODALITY:{ a, l }", "modality:la"),
    ("frame:0.50", "frame:0.5"),
    ("frame:0.5:fixed", "frame:0.5"),
    ("modality:lav", "modality:vla"),
])
def test_protocol_spellings_are_canonicalised(a, b):
    sa = spec(train_protocol=a, eval_protocols=(a, "complete"), save_outputs=(a,))
    sb = spec(train_protocol=b, eval_protocols=(b, "complete"), save_outputs=(b,))
    assert sa.key == sb.key and sa == sb
    assert sa.train_protocol == sb.train_protocol == sa.eval_protocols[0] == sa.save_outputs[0]


def test_canonical_names():
    s = spec(train_protocol="modality:{l,a}", eval_protocols=["frame:0.50", "mixed"])
    assert s.train_protocol == "modality:la"
    assert s.eval_protocols == ("frame:0.5", "mixed:0.9")
    d = s.to_dict()
    assert d["eval_protocols"] == ["frame:0.5", "mixed:0.9"] and d["init_from"] is None
    assert json.loads(json.dumps(d)) == d


def test_invalid_specs_raise():
    with pytest.raises(ValueError, match="design must be 'train_once' or 'per_rate', got 'sometimes'"):
        spec(design="sometimes")
    with pytest.raises(ValueError, match=r"save_outputs \['frame:0.5'\] are not among eval_protocols"):
        spec(eval_protocols=("complete",), save_outputs=("frame:0.5",))
    with pytest.raises(ValueError, match="unknown missing-data protocol 'frame:half'"):
        spec(train_protocol="frame:half")
    with pytest.raises(ValueError, match="unknown missing-data protocol"):
        spec(eval_protocols=("complete", "modality:lx"))
    with pytest.raises(ValueError, match=r"init_from must be the key of a stored run \(16 hex digits\), got 'x'"):
        spec(init_from="x")
    with pytest.raises(ValueError, match=r"unknown RunSpec field\(s\) \['colour'\]"):
        RunSpec.from_dict({**spec().to_dict(), "colour": "red"})


def test_import_results_loads_neither_torch_nor_models():
    code = ("import sys, msa_lib.results, msa_lib.data.identity; "
            "print(sorted(m for m in ('torch', 'msa_lib.models', 'msa_lib.missing', 'msa_lib.train') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# ---------------------------------------------------------------------------------------------
# ResultsStore
# ---------------------------------------------------------------------------------------------

def test_save_run_eval_load_round_trip(tmp_path):
    store = ResultsStore(tmp_path / "res")
    assert (tmp_path / "res" / "LAYOUT").read_text().strip() == LAYOUT_TEXT == "msa_lib results v2"
    s = spec(eval_protocols=("complete", "frame:0.5"))
    assert not store.has_run(s) and not store.is_complete(s)
    assert store.missing_evals(s) == ["complete", "frame:0.5"]
    record = {**RECORD, "best_epoch": np.int64(3), "history": [{"epoch": 0, "train/total": np.float32(0.5)}],
              "arr": np.arange(3)}
    path = store.save_run(s, record, fake_weights())
    assert path == tmp_path / "res" / "tfn" / s.key == store.run_dir(s.key) == store.run_dir(s)
    assert store.has_run(s) and not store.is_complete(s)
    assert store.missing_evals(s) == ["complete", "frame:0.5"]
    store.save_eval(s, "complete", {"MAE": 0.75, "Corr": float("nan")})
    assert store.missing_evals(s) == ["frame:0.5"]
    with pytest.raises(KeyError, match=r"not evaluated under \['frame:0.5'\]"):
        store.load(s)
    store.save_eval(s, "frame:0.50", {"MAE": np.float32(1.5)})  # spelling canonicalised
    assert store.missing_evals(s) == [] and store.is_complete(s)
    assert all_files(tmp_path / "res") == ["LAYOUT"] + run_files(s, "complete", "frame_0.5")

    loaded = store.load(s)
    assert loaded["key"] == s.key and loaded["config_key"] == s.config_key and loaded["spec"] == s.to_dict()
    assert loaded["metrics"]["complete"]["MAE"] == 0.75 and np.isnan(loaded["metrics"]["complete"]["Corr"])
    assert loaded["metrics"]["frame:0.5"] == {"MAE": 1.5}
    assert loaded["best_epoch"] == 3 and loaded["history"] == [{"epoch": 0, "train/total": 0.5}]
    assert loaded["arr"] == [0, 1, 2] and loaded["valid"] == {"MAE": 0.5}
    assert loaded["data"] == {"synthetic": "mosi", "size": 1.0, "seed": 0, "generator": GENERATOR_VERSION}
    assert json.dumps(store.records(), default=str) == json.dumps([loaded], default=str)  # NaN != NaN
    assert store.records("tfn")[0]["key"] == s.key and store.records("umdf") == []

    weights = store.load_weights(s.key)
    assert sorted(weights) == ["b", "w"] and all(torch.equal(weights[k], fake_weights()[k]) for k in weights)
    assert torch.equal(torch.load(path / "weights.pt", weights_only=True)["w"], fake_weights()["w"])

    with pytest.raises(TypeError, match="not JSON-serialisable: object"):
        store.save_run(spec(seed=5), {"bad": object()}, fake_weights())
    assert not store.has_run(spec(seed=5)) and not (tmp_path / "res" / "tfn" / spec(seed=5).key).exists()
    with pytest.raises(ValueError, match="save evaluation metrics with save_eval"):
        store.save_run(spec(seed=5), {"metrics": {}}, fake_weights())
    with pytest.raises(KeyError, match=f"run {spec(seed=6).key} .* is not in results store"):
        store.save_eval(spec(seed=6), "complete", {"MAE": 1.0})


def test_renamed_label_and_new_protocols_share_the_stored_run(tmp_path):
    store = ResultsStore(tmp_path)
    s = spec(label="TFN", eval_protocols=("complete",))
    store.save_run(s, RECORD, fake_weights())
    store.save_eval(s, "complete", {"MAE": 1.0})
    renamed = spec(label="TFN (complete-trained)")
    assert store.is_complete(renamed)
    assert store.load(renamed)["spec"]["label"] == "TFN (complete-trained)"  # the requesting spec
    assert store.records()[0]["spec"]["label"] == "TFN"  # as stored
    more = spec(label="TFN", eval_protocols=("complete", "modality:l"), save_outputs=("complete",))
    assert store.has_run(more) and store.missing_evals(more) == ["complete", "modality:l"]
    store.save_eval(more, "modality:l", {"MAE": 2.0})
    assert store.missing_evals(more) == ["complete"]  # evaluated, but its outputs are not saved
    store.save_arrays(more, "complete", {"prediction": np.zeros(3)})
    assert store.is_complete(more)
    # records carry every stored evaluation, load only those the spec asks for
    assert store.records()[0]["metrics"] == {"complete": {"MAE": 1.0}, "modality:l": {"MAE": 2.0}}
    assert store.load(s)["metrics"] == {"complete": {"MAE": 1.0}}


def test_unknown_key_raises_key_error_naming_key_and_store(tmp_path):
    store = ResultsStore(tmp_path)
    with pytest.raises(KeyError, match=f"no run with key 'ffffffffffffffff' in results store {tmp_path}"):
        store.load_weights("ffffffffffffffff")
    with pytest.raises(KeyError, match=f"no run with key '{spec().key}'"):
        store.load_weights(spec())
    with pytest.raises(KeyError, match="is not in results store"):
        store.load(spec())


def test_old_layout_is_refused_with_one_clear_message(tmp_path):
    old = tmp_path / "old"
    (old / "tfn").mkdir(parents=True)
    (old / "tfn" / "0123456789abcdef.json").write_text("{}")
    with pytest.raises(ResultsLayoutError) as err:
        ResultsStore(old)
    assert isinstance(err.value, ValueError)
    msg = str(err.value)
    assert "written by an older msa_lib" in msg and str(old) in msg
    assert "not mixed" in msg and "delete the folder, or pick another results folder" in msg
    assert not (old / "LAYOUT").exists()  # nothing written into it
    # figures / tables alone are not results: such a folder becomes a v2 store
    other = tmp_path / "other"
    (other / "tables").mkdir(parents=True)
    (other / "tables" / "t.json").write_text("{}")
    ResultsStore(other)
    assert (other / "LAYOUT").read_text().strip() == LAYOUT_TEXT
    (other / "LAYOUT").write_text("msa_lib results v3\n")
    with pytest.raises(ResultsLayoutError, match="has layout 'msa_lib results v3'"):
        ResultsStore(other)


def test_crash_mid_write_leaves_no_run(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    s = spec()
    real_write = pathlib.Path.write_text

    def crash(self, text, *a, **k):
        real_write(self, text[: len(text) // 2])  # half the file reaches the disk, then the kill
        raise KeyboardInterrupt

    monkeypatch.setattr(pathlib.Path, "write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save_run(s, RECORD, fake_weights())
    monkeypatch.undo()
    assert not store.has_run(s) and store.records() == []
    # the weights were complete before run.json; no half JSON and no stray temporary file
    assert all_files(tmp_path) == ["LAYOUT", f"tfn/{s.key}/weights.pt"]
    with pytest.raises(KeyError):
        store.load_weights(s.key)  # weights without run.json are not a run


def test_crash_while_overwriting_keeps_the_old_file(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    s = spec()
    store.save_run(s, RECORD, fake_weights())
    store.save_eval(s, "complete", {"MAE": 1.0})
    before = store.eval_path(s, "complete").read_bytes()
    real_dumps = json.dumps

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", boom)
    with pytest.raises(OSError, match="disk full"):
        store.save_eval(s, "complete", {"MAE": 2.0})
    monkeypatch.setattr(json, "dumps", real_dumps)
    assert store.eval_path(s, "complete").read_bytes() == before
    assert all_files(tmp_path) == ["LAYOUT"] + run_files(s, "complete")
    assert store.load(s)["metrics"] == {"complete": {"MAE": 1.0}}


def test_atomic_path_renames_only_on_success(tmp_path):
    target = tmp_path / "sub" / "x.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert target.read_text() == "done" and all_files(tmp_path) == ["sub/x.txt"]


def test_arrays_round_trip(tmp_path):
    store = ResultsStore(tmp_path)
    s = spec(eval_protocols=("complete", "modality:{l,a}"))
    rng = np.random.default_rng(0)
    arrays = {"prediction": rng.normal(size=(7, 4, 2)).astype(np.float32),
              "representation": rng.normal(size=(7, 5)).astype(np.float32),
              "target": rng.integers(0, 2, size=(7, 4))}
    path = store.save_arrays(s, "modality:al", arrays)
    assert path == tmp_path / "tfn" / s.key / "outputs" / "modality_la.h5"
    loaded = store.load_arrays(s, "modality:{l,a}")
    assert sorted(loaded) == sorted(arrays)
    for k, v in arrays.items():
        assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k], v)
    with h5py.File(path, "r") as f:
        assert f.attrs["run_key"] == s.key and f.attrs["protocol"] == "modality:la"
    assert not store.has_run(s)  # arrays alone do not mark a run as finished
    assert store.records() == []
    with pytest.raises(KeyError, match="no stored outputs for protocol 'complete'"):
        store.load_arrays(s, "complete")


def test_crash_while_writing_arrays_leaves_nothing(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)

    def boom(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(h5py.File, "create_dataset", boom, raising=False)
    with pytest.raises(KeyboardInterrupt):
        store.save_arrays(spec(), "complete", {"prediction": np.zeros(3)})
    assert all_files(tmp_path) == ["LAYOUT"]


# ---------------------------------------------------------------------------------------------
# specs, run_one, run_grid
# ---------------------------------------------------------------------------------------------

def test_per_rate_specs():
    specs = exp.per_rate_specs("tfn", "mosi", rates=(0.0, 0.25, 0.5), seeds=(0, 1), model_config=SMALL_TFN)
    assert len(specs) == 6
    assert [(s.train_protocol, s.seed) for s in specs] == [
        ("frame:0", 0), ("frame:0", 1), ("frame:0.25", 0), ("frame:0.25", 1), ("frame:0.5", 0), ("frame:0.5", 1)]
    for s in specs:
        assert s.design == "per_rate" and s.eval_protocols == (s.train_protocol,)
        assert s.model == "tfn" and s.dataset == "mosi" and s.model_config == SMALL_TFN
    assert len({s.key for s in specs}) == 6


def test_train_once_specs():
    evals = exp.frame_protocols((0.0, 0.5)) + exp.subset_protocols()
    specs = exp.train_once_specs("tfn", "sims", seeds=(0, 1, 2), train_protocol="mixed", eval_protocols=evals,
                                 train_config=TRAIN)
    assert [s.seed for s in specs] == [0, 1, 2]
    for s in specs:
        assert s.design == "train_once" and s.train_protocol == "mixed:0.9" and s.dataset == "sims"
        assert s.eval_protocols == ("frame:0", "frame:0.5", "modality:l", "modality:a", "modality:v",
                                    "modality:la", "modality:lv", "modality:av", "modality:lav")
        assert s.train_config == TRAIN
    assert len({s.key for s in specs}) == 3


def test_run_one_saves_weights_and_outputs(tmp_path):
    ds = tiny_dataset()
    store = ResultsStore(tmp_path)
    s = spec(eval_protocols=("complete", "frame:0.5"), save_outputs=("frame:0.5",))
    record = runs.run_one(s, ds, device="cpu", progress=False, store=store)
    n = len(ds["test"])
    assert store.is_complete(s)
    arrays = store.load_arrays(s, "frame:0.5")
    assert arrays["prediction"].shape == (n,)
    assert arrays["representation"].shape == (n, SMALL_TFN["post_fusion_dim"])
    assert np.array_equal(arrays["target"], ds["test"].labels)
    assert all_files(tmp_path) == ["LAYOUT"] + run_files(s, "complete", "frame_0.5", outputs=("frame_0.5",))
    # the stored predictions are the ones the metrics were computed from
    assert compute_metrics("mosi", arrays["prediction"], arrays["target"]) == record["metrics"]["frame:0.5"]
    assert set(record["metrics"]) == {"complete", "frame:0.5"}
    assert record["n_samples"] == {"train": 12, "valid": 8, "test": 9}
    assert len(record["history"]) == 2 and record["best_epoch"] in (0, 1)
    assert record["config_key"] == s.config_key and record["torch"] == torch.__version__
    loaded = store.load(s)
    assert json.dumps(loaded["metrics"]) == json.dumps(record["metrics"])
    assert loaded["history"] == record["history"] and loaded["valid"] == record["valid"]
    with pytest.raises(ValueError, match="init_from='0123456789abcdef' needs the results store"):
        runs.run_one(spec(init_from="0123456789abcdef"), ds, device="cpu", progress=False)


def test_stored_weights_reproduce_the_predictions(tmp_path):
    ds = tiny_dataset()
    store = ResultsStore(tmp_path)
    s = spec(eval_protocols=("frame:0.5",), save_outputs=("frame:0.5",))
    runs.run_one(s, ds, device="cpu", progress=False, store=store)
    stored = store.load_arrays(s, "frame:0.5")["prediction"]
    state = torch.load(store.run_dir(s.key) / "weights.pt", map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in store.load_weights(s).items()}

    def predictions(model):
        _, out = evaluate(model, ds, "frame:0.5", "test", mask_seed=0, device="cpu", return_outputs=True)
        return out["prediction"]

    torch.manual_seed(123)
    fresh = build_model("tfn", ds.dims, SMALL_TFN)
    assert not np.allclose(predictions(fresh), stored)  # an untrained model predicts otherwise
    fresh.load_state_dict(state)
    assert np.array_equal(predictions(fresh), stored)


def test_interrupted_grid_resumes_without_recomputing(tmp_path, monkeypatch):
    ds = tiny_dataset()
    store = ResultsStore(tmp_path)
    specs = exp.train_once_specs("tfn", "tiny", seeds=(0, 1, 2, 3), train_protocol="frame:0.3",
                                 eval_protocols=("complete", "frame:0.3"), model_config=SMALL_TFN,
                                 train_config=TRAIN)
    real_run_one = runs.run_one
    calls: list[str] = []
    loads: list[str] = []

    def loader(s):
        loads.append(s.key)
        return ds

    def crashing(s, *a, **k):
        calls.append(s.key)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_one(s, *a, **k)

    monkeypatch.setattr(runs, "run_one", crashing)
    with pytest.raises(KeyboardInterrupt):
        runs.run_grid(specs, store, device="cpu", progress=False, loader=loader)
    assert calls == [s.key for s in specs[:3]]
    assert [store.has_run(s) for s in specs] == [True, True, False, False]
    assert [store.is_complete(s) for s in specs] == [True, True, False, False]
    assert all_files(tmp_path) == sorted(["LAYOUT"] + [f for s in specs[:2]
                                                       for f in run_files(s, "complete", "frame_0.3")])
    before = {f: (tmp_path / f).read_bytes() for f in all_files(tmp_path)}

    def counting(s, *a, **k):
        calls.append(s.key)
        return real_run_one(s, *a, **k)

    calls.clear()
    loads.clear()
    monkeypatch.setattr(runs, "run_one", counting)
    records = runs.run_grid(specs, store, device="cpu", progress=False, loader=loader)
    assert calls == [s.key for s in specs[2:]]  # only the two unfinished runs were trained
    assert len(loads) == 1
    assert [r["key"] for r in records] == [s.key for s in specs]
    assert [r["spec"]["seed"] for r in records] == [0, 1, 2, 3]
    assert {f: (tmp_path / f).read_bytes() for f in before} == before  # finished runs untouched
    assert records[:2] == [store.load(s) for s in specs[:2]]
    assert all(list(r["metrics"]) == ["complete", "frame:0.3"] for r in records)
    assert len({json.dumps(r["metrics"]) for r in records}) == 4  # four different runs

    # a finished grid trains nothing and loads no data
    calls.clear()
    loads.clear()
    again = runs.run_grid(specs, store, device="cpu", progress=False, loader=loader)
    assert calls == [] and loads == []
    assert json.dumps(again) == json.dumps(records)


def test_renamed_label_and_added_protocol_do_not_retrain(tmp_path, count_fits, count_evals):
    ds = tiny_dataset()
    store = ResultsStore(tmp_path)
    base = [spec(seed=s, label="TFN", eval_protocols=("complete",)) for s in (0, 1)]
    first = runs.run_grid(base, store, device="cpu", progress=False, loader=lambda s: ds)
    assert count_fits == [0, 1] and count_evals == ["complete", "complete"]

    count_fits.clear(), count_evals.clear()
    renamed = [spec(seed=s, label="TFN (renamed)", eval_protocols=("complete",)) for s in (0, 1)]
    loads = []
    records = runs.run_grid(renamed, store, device="cpu", progress=False, loader=lambda s: loads.append(1) or ds)
    assert count_fits == [] and count_evals == [] and loads == []
    assert [r["spec"]["label"] for r in records] == ["TFN (renamed)"] * 2
    assert [r["metrics"] for r in records] == [r["metrics"] for r in first]

    more = [spec(seed=s, label="TFN", eval_protocols=("complete", "modality:l", "frame:0.5"),
                 save_outputs=("frame:0.5",)) for s in (0, 1)]
    records = runs.run_grid(more, store, device="cpu", progress=False, loader=lambda s: loads.append(1) or ds)
    assert count_fits == []  # never retrained
    assert count_evals == ["modality:l", "frame:0.5"] * 2  # only the new protocols evaluated
    assert loads == [1]  # the data loaded once for both runs
    assert [r["metrics"]["complete"] for r in records] == [r["metrics"]["complete"] for r in first]
    assert [list(r["metrics"]) for r in records] == [["complete", "modality:l", "frame:0.5"]] * 2
    assert store.load_arrays(more[1], "frame:0.5")["prediction"].shape == (9,)
    assert len(store.records()) == 2


def test_new_evaluation_from_stored_weights_matches_training_time_evaluation(tmp_path, count_fits):
    ds = tiny_dataset()
    a, b = ResultsStore(tmp_path / "a"), ResultsStore(tmp_path / "b")
    both = spec(eval_protocols=("complete", "frame:0.5"))
    runs.run_grid([both], a, device="cpu", progress=False, loader=lambda s: ds)  # evaluated right after training
    runs.run_grid([spec()], b, device="cpu", progress=False, loader=lambda s: ds)
    runs.run_grid([both], b, device="cpu", progress=False, loader=lambda s: ds)  # frame:0.5 from stored weights
    assert count_fits == [0, 0]
    assert b.load(both)["metrics"] == a.load(both)["metrics"]


def test_interrupted_evaluation_resumes_without_retraining(tmp_path, monkeypatch, count_fits, count_evals):
    ds = tiny_dataset()
    store = ResultsStore(tmp_path)
    s = spec(eval_protocols=("complete", "frame:0.5", "modality:l"))
    real_save_eval = ResultsStore.save_eval

    def crash_on_second(self, sp, protocol, metrics):
        if protocol == "frame:0.5":
            raise KeyboardInterrupt
        return real_save_eval(self, sp, protocol, metrics)

    monkeypatch.setattr(ResultsStore, "save_eval", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        runs.run_grid([s], store, device="cpu", progress=False, loader=lambda sp: ds)
    monkeypatch.setattr(ResultsStore, "save_eval", real_save_eval)
    assert store.has_run(s) and store.missing_evals(s) == ["frame:0.5", "modality:l"]
    count_fits.clear(), count_evals.clear()
    [record] = runs.run_grid([s], store, device="cpu", progress=False, loader=lambda sp: ds)
    assert count_fits == [] and count_evals == ["frame:0.5", "modality:l"]
    assert list(record["metrics"]) == ["complete", "frame:0.5", "modality:l"]


def test_init_from_starts_from_the_stored_weights(tmp_path, monkeypatch):
    ds = tiny_dataset()
    store = ResultsStore(tmp_path)
    parent = spec(seed=0)
    runs.run_grid([parent], store, device="cpu", progress=False, loader=lambda s: ds)
    parent_weights = store.load_weights(parent.key)

    starts: list[dict] = []
    real_fit = Trainer.fit

    def capturing(self):
        starts.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return real_fit(self)

    monkeypatch.setattr(Trainer, "fit", capturing)
    child = spec(seed=5, init_from=parent.key, train_protocol="frame:0.5")
    scratch = spec(seed=5, train_protocol="frame:0.5")
    assert child.key != scratch.key and child.config_key != scratch.config_key
    runs.run_grid([child, scratch], store, device="cpu", progress=False, loader=lambda s: ds)
    assert len(starts) == 2
    assert sorted(starts[0]) == sorted(parent_weights)
    assert all(torch.equal(starts[0][k], parent_weights[k]) for k in parent_weights)
    assert not all(torch.equal(starts[1][k], parent_weights[k]) for k in parent_weights)  # seed-5 initialisation
    assert store.load(child)["spec"]["init_from"] == parent.key
    with pytest.raises(KeyError, match="no run with key 'ffffffffffffffff'"):
        runs.run_grid([spec(init_from="f" * 16)], store, device="cpu", progress=False, loader=lambda s: ds)


def test_overwritten_data_file_never_returns_the_stale_result(tmp_path, count_fits):
    data = tmp_path / "data.pkl"
    store = ResultsStore(tmp_path / "res")

    def loader(s):  # the file holds the seed of the tiny dataset it stands for
        return tiny_dataset(int(pathlib.Path(s.data_options["data_path"]).read_text()))

    s = spec(dataset="tiny", data_options={"data_path": str(data)})
    data.write_text("1")
    [old] = runs.run_grid([s], store, device="cpu", progress=False, loader=loader)
    data.write_text("2")  # other content at the same path
    [new] = runs.run_grid([s], store, device="cpu", progress=False, loader=loader)
    assert count_fits == [0, 0]  # retrained on the new data
    assert new["key"] != old["key"] and new["data"]["sha256"] != old["data"]["sha256"]
    assert new["metrics"] != old["metrics"]
    expected = runs.run_one(s, tiny_dataset(2), device="cpu", progress=False)
    assert new["metrics"] == expected["metrics"]
    assert len(store.records()) == 2


def test_load_for_spec_uses_data_options():
    ds = runs.load_for_spec(spec(dataset="synthetic:mosi", data_options={"size": 0.02, "seed": 1}))
    again = runs.load_for_spec(spec(dataset="synthetic:mosi", data_options={"size": 0.02, "seed": 1}))
    other = runs.load_for_spec(spec(dataset="synthetic:mosi", data_options={"size": 0.02, "seed": 2}))
    assert len(ds["train"]) == len(again["train"]) > 0
    assert np.array_equal(ds["train"].labels, again["train"].labels)
    assert not np.array_equal(ds["train"].labels, other["train"].labels)


# ---------------------------------------------------------------------------------------------
# tidy / summarize / summary_table
# ---------------------------------------------------------------------------------------------

def _record(seed: int, mae: float, acc: float, variant: str | None = None, protocol: str = "complete",
            **kw) -> dict:
    s = spec(seed=seed, eval_protocols=(protocol,), label=variant or "", **kw)
    return {"spec": s.to_dict(), "config_key": s.config_key, "metrics": {protocol: {"MAE": mae, "Acc-2": acc}}}


def test_tidy():
    records = [_record(0, 1.0, 0.8), {**_record(1, 2.0, 0.9), "metrics": {"complete": {"MAE": 2.0, "Acc-2": 0.9},
                                                                          "frame:0.5": {"MAE": 3.0}}}]
    df = tidy(records)
    assert len(df) == 2 + 3
    assert list(df.columns) == ["model", "variant", "dataset", "design", "train_protocol", "protocol", "seed",
                                "metric", "value", "config_key", "key"]
    row = df[(df.seed == 1) & (df.protocol == "frame:0.5")]
    assert row[["metric", "value"]].values.tolist() == [["MAE", 3.0]]
    assert set(df["variant"]) == {"tfn"} and set(df["design"]) == {"train_once"}
    assert set(df["config_key"]) == {spec().config_key}
    assert tidy([_record(0, 1.0, 0.8, variant="tfn-noaux")])["variant"].tolist() == ["tfn-noaux"] * 2
    # a record without a stored config_key gets it from its spec
    bare = {k: v for k, v in _record(0, 1.0, 0.8, train_protocol="frame:0.5").items() if k != "config_key"}
    assert tidy([bare])["config_key"].tolist() == [spec(train_protocol="frame:0.5").config_key] * 2
    assert list(tidy([]).columns) == list(df.columns)


def test_summarize_mean_std_over_seeds():
    records = [_record(s, mae, acc) for s, mae, acc in ((0, 1.0, 0.80), (1, 2.0, 0.82), (2, 3.0, 0.84))]
    records.append(_record(0, 5.0, 0.5, variant="other"))
    summary = summarize(tidy(records))
    assert list(summary.columns) == ["variant", "design", "protocol", "metric", "mean", "std", "n_seeds"]
    by = summary.set_index(["variant", "metric"])
    assert by.loc[("tfn", "MAE"), "mean"] == pytest.approx(2.0)
    assert by.loc[("tfn", "MAE"), "std"] == pytest.approx(1.0)  # sample std (ddof = 1)
    assert by.loc[("tfn", "MAE"), "n_seeds"] == 3
    assert by.loc[("tfn", "Acc-2"), "mean"] == pytest.approx(0.82)
    assert by.loc[("tfn", "Acc-2"), "std"] == pytest.approx(0.02)
    assert by.loc[("other", "MAE"), "std"] == 0.0 and by.loc[("other", "MAE"), "n_seeds"] == 1
    per_protocol = summarize(tidy(records), by=("protocol", "metric"))
    assert len(per_protocol) == 2 and per_protocol.set_index("metric").loc["MAE", "n_seeds"] == 4


def test_summary_table_keeps_configurations_apart():
    wide = {**SMALL_TFN, "post_fusion_dim": 7}
    # same label, same model, same protocols: only the model config differs
    records = [_record(0, 1.0, 0.8, variant="TFN"), _record(1, 3.0, 0.6, variant="TFN"),
               _record(0, 10.0, 0.1, variant="TFN", model_config=wide),
               _record(1, 20.0, 0.3, variant="TFN", model_config=wide)]
    records.append(records[0])  # one run listed twice (e.g. by two designs) counts once
    table = summary_table(records)
    assert list(table.columns) == ["model", "label", "dataset", "train_protocol", "config_key", "protocol", "metric",
                                   "mean", "std", "n_seeds"]
    assert len(table) == 4  # 2 configurations × 1 protocol × 2 metrics, not 2 averaged rows
    mae = table[table.metric == "MAE"].set_index("config_key")
    assert mae.loc[spec().config_key, "mean"] == pytest.approx(2.0)
    assert mae.loc[spec(model_config=wide).config_key, "mean"] == pytest.approx(15.0)
    assert mae.loc[spec().config_key, "std"] == pytest.approx(np.std([1.0, 3.0], ddof=1))
    assert mae["n_seeds"].tolist() == [2, 2] and set(mae["label"]) == {"TFN"}
    assert summary_table([]).empty and list(summary_table([]).columns) == list(table.columns)


def test_summary_table_of_a_real_store(tmp_path):
    ds = tiny_dataset()
    store = ResultsStore(tmp_path)
    wide = {**SMALL_TFN, "post_fusion_dim": 7}
    one = {"epochs": 1, "batch_size": 8}
    specs = [spec(seed=s, label="TFN", model_config=cfg, train_config=one, eval_protocols=("complete", "frame:0.5"))
             for cfg in (SMALL_TFN, wide) for s in (0, 1)]
    runs.run_grid(specs, store, device="cpu", progress=False, loader=lambda s: ds)
    records = store.records()
    assert len(records) == 4
    table = summary_table(records)
    n_metrics = len(records[0]["metrics"]["complete"])
    assert len(table) == 2 * 2 * n_metrics  # configurations × protocols × metrics
    assert set(table["n_seeds"]) == {2} and set(table["label"]) == {"TFN"}
    assert set(table["config_key"]) == {specs[0].config_key, specs[2].config_key}
    row = table[(table.config_key == specs[2].config_key) & (table.protocol == "frame:0.5")
                & (table.metric == "MAE")].iloc[0]
    maes = [store.load(s)["metrics"]["frame:0.5"]["MAE"] for s in specs[2:]]
    assert row["mean"] == pytest.approx(np.mean(maes)) and row["std"] == pytest.approx(np.std(maes, ddof=1))
    assert row["model"] == "tfn" and row["dataset"] == "mosi" and row["train_protocol"] == "complete"


def test_a_new_synthetic_generator_never_reuses_stored_runs(monkeypatch):
    from msa_lib.data import identity

    before = RunSpec(model="tfn", dataset="synthetic:mosi", seed=1, data_options={"size": 0.1, "seed": 0}).key
    monkeypatch.setattr(identity, "GENERATOR_VERSION", identity.GENERATOR_VERSION + "-changed")
    assert RunSpec(model="tfn", dataset="synthetic:mosi", seed=1, data_options={"size": 0.1, "seed": 0}).key != before

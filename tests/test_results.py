"""Tests for msa_lib.results and the grid machinery in msa_lib.experiments.

Run specs and their keys, atomic writes (a crash leaves the complete file or nothing), HDF5
arrays, resuming an interrupted grid, and the tidy / summary / table helpers.
"""
from __future__ import annotations

import json
import pathlib

import h5py
import numpy as np
import pandas as pd
import pytest

import msa_lib.experiments as exp
from msa_lib.data.container import MODALITIES, MSADataset, MSASplit
from msa_lib.metrics import compute_metrics
from msa_lib.results import ResultsStore, RunSpec, atomic_path, summarize, tidy

DIMS = {"text": 6, "audio": 3, "vision": 4}
T = 5
SMALL_TFN = {"text_hidden": 4, "audio_hidden": 2, "vision_hidden": 3, "text_out": 4, "post_fusion_dim": 5}
TRAIN = {"epochs": 2, "batch_size": 8}


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
    return MSADataset(name="tiny", kind="mosi", splits=splits, aligned=True, source="tiny")


def spec(**kw) -> RunSpec:
    base = dict(model="tfn", dataset="mosi", seed=0, model_config=SMALL_TFN, train_config=TRAIN)
    return RunSpec(**{**base, **kw})


def all_files(root: pathlib.Path) -> list[str]:
    """Every file under root, hidden ones included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# RunSpec
# ---------------------------------------------------------------------------------------------

def test_key_is_stable_for_equal_specs():
    a, b = spec(), spec()
    assert a.key == b.key and len(a.key) == 16
    int(a.key, 16)  # hexadecimal
    # dict order does not matter
    assert spec(model_config={"a": 1, "b": 2}).key == spec(model_config={"b": 2, "a": 1}).key
    # the key depends on the content only: a fixed spec has a fixed key across processes
    assert spec().key == RunSpec(**spec().to_dict() | {"eval_protocols": ("complete",)}).key


def test_specs_are_hashable_and_equal_by_content():
    a, b = spec(train_protocol="modality:{l,a}"), spec(train_protocol="modality:la")
    assert a == b and hash(a) == hash(b)
    assert len({a, b, spec(seed=1)}) == 2
    assert {a: 1}[b] == 1


@pytest.mark.parametrize("change", [
    {"seed": 1},
    {"model": "umdf"},
    {"dataset": "sims"},
    {"train_protocol": "frame:0.5"},
    {"eval_protocols": ("complete", "frame:0.5")},
    {"eval_protocols": ("frame:0.5", "complete")},
    {"model_config": {**SMALL_TFN, "dropout": 0.1}},
    {"train_config": {**TRAIN, "lr": 0.01}},
    {"data_options": {"size": 0.5}},
    {"design": "per_rate"},
    {"save_outputs": ("complete",)},
])
def test_key_differs_when_any_field_differs(change):
    assert spec(**change).key != spec().key


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
    assert sa.key == sb.key
    assert sa.train_protocol == sb.train_protocol == sa.eval_protocols[0] == sa.save_outputs[0]


def test_canonical_names():
    s = spec(train_protocol="modality:{l,a}", eval_protocols=["frame:0.50", "mixed"])
    assert s.train_protocol == "modality:la"
    assert s.eval_protocols == ("frame:0.5", "mixed:0.9")
    d = s.to_dict()
    assert d["eval_protocols"] == ["frame:0.5", "mixed:0.9"]
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


# ---------------------------------------------------------------------------------------------
# ResultsStore
# ---------------------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    store = ResultsStore(tmp_path / "res")
    s = spec()
    assert not store.has(s)
    record = {"metrics": {"complete": {"MAE": 0.75, "Corr": float("nan")}}, "best_epoch": np.int64(3),
              "history": [{"epoch": 0, "train/total": np.float32(0.5)}], "arr": np.arange(3)}
    path = store.save(s, record)
    assert path == tmp_path / "res" / "tfn" / f"{s.key}.json"
    assert store.has(s)
    loaded = store.load(s)
    assert loaded["key"] == s.key and loaded["spec"] == s.to_dict()
    assert loaded["metrics"]["complete"]["MAE"] == 0.75 and np.isnan(loaded["metrics"]["complete"]["Corr"])
    assert loaded["best_epoch"] == 3 and loaded["history"] == [{"epoch": 0, "train/total": 0.5}]
    assert loaded["arr"] == [0, 1, 2]
    assert store.records() == [loaded] and store.records("tfn") == [loaded] and store.records("lnln") == []
    with pytest.raises(TypeError, match="not JSON-serialisable: object"):
        store.save(spec(seed=5), {"bad": object()})
    assert not store.has(spec(seed=5))


def test_crash_mid_write_leaves_nothing(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    s = spec()
    real_write = pathlib.Path.write_text

    def crash(self, text, *a, **k):
        real_write(self, text[: len(text) // 2])  # half the file reaches the disk, then the kill
        raise KeyboardInterrupt

    monkeypatch.setattr(pathlib.Path, "write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save(s, {"metrics": {"complete": {"MAE": 1.0}}})
    assert not store.has(s)
    assert all_files(tmp_path) == []  # no JSON and no stray temporary file
    assert store.records() == []


def test_crash_while_overwriting_keeps_the_old_file(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    s = spec()
    store.save(s, {"metrics": {"complete": {"MAE": 1.0}}})
    before = store.path(s).read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", boom)
    with pytest.raises(OSError, match="disk full"):
        store.save(s, {"metrics": {"complete": {"MAE": 2.0}}})
    monkeypatch.undo()
    assert store.path(s).read_bytes() == before
    assert all_files(tmp_path) == [f"tfn/{s.key}.json"]


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
    path = store.save_arrays(s, "modality:la", arrays)
    assert path.name == f"{s.key}.modality_la.h5"
    loaded = store.load_arrays(s, "modality:la")
    assert sorted(loaded) == sorted(arrays)
    for k, v in arrays.items():
        assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k], v)
    with h5py.File(path, "r") as f:
        assert f.attrs["run_key"] == s.key and f.attrs["protocol"] == "modality:la"
    assert not store.has(s)  # arrays alone do not mark a run as finished
    assert store.records() == []


def test_crash_while_writing_arrays_leaves_nothing(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)

    def boom(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(h5py.File, "create_dataset", boom, raising=False)
    with pytest.raises(KeyboardInterrupt):
        store.save_arrays(spec(), "complete", {"prediction": np.zeros(3)})
    assert all_files(tmp_path) == []


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


def test_run_one_saves_outputs(tmp_path):
    ds = tiny_dataset()
    store = ResultsStore(tmp_path)
    s = spec(eval_protocols=("complete", "frame:0.5"), save_outputs=("frame:0.5",))
    record = exp.run_one(s, ds, device="cpu", progress=False, store=store)
    n = len(ds["test"])
    assert store.has(s)
    arrays = store.load_arrays(s, "frame:0.5")
    assert arrays["prediction"].shape == (n,)
    assert arrays["representation"].shape == (n, SMALL_TFN["post_fusion_dim"])
    assert np.array_equal(arrays["target"], ds["test"].labels)
    assert not store.path(s, ".complete.h5").exists()
    assert sorted(p.name for p in (tmp_path / "tfn").iterdir()) == sorted([f"{s.key}.json",
                                                                          f"{s.key}.frame_0.5.h5"])
    # the stored predictions are the ones the metrics were computed from
    assert compute_metrics("mosi", arrays["prediction"], arrays["target"]) == record["metrics"]["frame:0.5"]
    assert set(record["metrics"]) == {"complete", "frame:0.5"}
    assert record["n_samples"] == {"train": 12, "valid": 8, "test": 9}
    assert len(record["history"]) == 2 and record["best_epoch"] in (0, 1)
    assert json.dumps(store.load(s)["metrics"]) == json.dumps(record["metrics"])


def test_interrupted_grid_resumes_without_recomputing(tmp_path, monkeypatch):
    ds = tiny_dataset()
    store = ResultsStore(tmp_path)
    specs = exp.train_once_specs("tfn", "tiny", seeds=(0, 1, 2, 3), train_protocol="frame:0.3",
                                 eval_protocols=("complete", "frame:0.3"), model_config=SMALL_TFN,
                                 train_config=TRAIN)
    real_run_one = exp.run_one
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

    monkeypatch.setattr(exp, "run_one", crashing)
    with pytest.raises(KeyboardInterrupt):
        exp.run_grid(specs, store, device="cpu", progress=False, loader=loader)
    assert calls == [s.key for s in specs[:3]]
    assert [store.has(s) for s in specs] == [True, True, False, False]
    assert len(list(tmp_path.rglob("*.json"))) == 2 and all_files(tmp_path) == sorted(
        f"tfn/{s.key}.json" for s in specs[:2])
    before = [store.path(s).read_bytes() for s in specs[:2]]

    def counting(s, *a, **k):
        calls.append(s.key)
        return real_run_one(s, *a, **k)

    calls.clear()
    loads.clear()
    monkeypatch.setattr(exp, "run_one", counting)
    records = exp.run_grid(specs, store, device="cpu", progress=False, loader=loader)
    assert calls == [s.key for s in specs[2:]]  # only the two unfinished runs were trained
    assert len(loads) == 1
    assert [r["key"] for r in records] == [s.key for s in specs]
    assert [r["spec"]["seed"] for r in records] == [0, 1, 2, 3]
    assert [store.path(s).read_bytes() for s in specs[:2]] == before
    assert records[:2] == [json.loads(b) for b in before]
    assert all(set(r["metrics"]) == {"complete", "frame:0.3"} for r in records)

    # a finished grid trains nothing and loads no data
    calls.clear()
    loads.clear()
    again = exp.run_grid(specs, store, device="cpu", progress=False, loader=loader)
    assert calls == [] and loads == []
    assert json.dumps(again) == json.dumps(records)


# ---------------------------------------------------------------------------------------------
# tidy / summarize
# ---------------------------------------------------------------------------------------------

def _record(seed: int, mae: float, acc: float, variant: str | None = None, protocol: str = "complete") -> dict:
    s = spec(seed=seed, eval_protocols=(protocol,), label=variant or "").to_dict()
    return {"spec": s, "metrics": {protocol: {"MAE": mae, "Acc-2": acc}}}


def test_tidy():
    records = [_record(0, 1.0, 0.8), {**_record(1, 2.0, 0.9), "metrics": {"complete": {"MAE": 2.0, "Acc-2": 0.9},
                                                                          "frame:0.5": {"MAE": 3.0}}}]
    df = tidy(records)
    assert len(df) == 2 + 3
    assert list(df.columns) == ["model", "variant", "dataset", "design", "train_protocol", "protocol", "seed",
                                "metric", "value"]
    row = df[(df.seed == 1) & (df.protocol == "frame:0.5")]
    assert row[["metric", "value"]].values.tolist() == [["MAE", 3.0]]
    assert set(df["variant"]) == {"tfn"} and set(df["design"]) == {"train_once"}
    assert tidy([_record(0, 1.0, 0.8, variant="tfn-noaux")])["variant"].tolist() == ["tfn-noaux"] * 2


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

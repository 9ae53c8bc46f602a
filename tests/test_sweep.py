"""Sweeps on Ray (``run_grid(engine="ray")``, ``python -m msa_lib sweep``) against the local engine.

A local Ray instance with 2 CPUs is started once for the module (as on a 2-core CI machine).
"""
from __future__ import annotations

import json
import os
import pathlib
import signal
import threading
import time

import pytest
import ray
import torch

from msa_lib import runs, sweeps
from msa_lib.__main__ import main
from msa_lib.data import FETCHED, load_dataset
from msa_lib.results import ResultsStore, RunSpec
from msa_lib.runs import RayEngine, SweepFailed

SMALL_TFN = {"text_hidden": 4, "audio_hidden": 2, "vision_hidden": 3, "text_out": 4, "post_fusion_dim": 5}
DATA = {"size": 0.03, "seed": 0}
#: fields of a run record that measure the machine, not the run
TIMING = ("train_seconds",)


@pytest.fixture(scope="module")
def local_ray():
    runs.init_ray(RayEngine(num_cpus=2))
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic:mosi", **DATA)


def spec(seed: int, protocol: str = "frame:0.3", epochs: int = 2, **kw) -> RunSpec:
    base = dict(model="tfn", dataset="synthetic:mosi", seed=seed, train_protocol=protocol,
                eval_protocols=("complete", protocol), model_config=SMALL_TFN,
                train_config={"epochs": epochs, "batch_size": 16, "patience": None}, data_options=DATA)
    return RunSpec(**{**base, **kw})


def grid() -> list[RunSpec]:
    """Six independent runs and one that starts from the first one's weights."""
    specs = [spec(seed, protocol) for seed in (0, 1, 2) for protocol in ("complete", "frame:0.5")]
    return specs + [spec(0, "frame:0.7", init_from=specs[0].key)]


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def files(root: pathlib.Path) -> dict[str, int]:
    """Every file under root with its modification time (ns)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def one_thread_locally(specs: list[RunSpec], root: pathlib.Path, data) -> list[dict]:
    """The local engine's records with torch on one thread, as in a Ray task with one CPU (float32
    sums are blocked by thread count: other counts differ in the last bits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return runs.run_grid(specs, ResultsStore(root), device="cpu", progress=False, loader=lambda s: data)
    finally:
        torch.set_num_threads(threads)


def test_ray_grid_equals_local_and_resubmission_runs_nothing(local_ray, data, tmp_path):
    specs = grid()
    local = one_thread_locally(specs, tmp_path / "local", data)
    loads = []
    store = ResultsStore(tmp_path / "ray")
    records = runs.run_grid(specs, store, device="cpu", progress=False, engine="ray",
                            loader=lambda s: loads.append(s.key) or data)
    assert len(loads) == 1  # one dataset, loaded once for the whole grid
    assert all(store.is_complete(s) for s in specs)
    assert json.dumps(without_timing(records)) == json.dumps(without_timing(local))
    assert len({json.dumps(r["metrics"]) for r in records}) == len(specs)  # seven different runs
    assert records[-1]["spec"]["init_from"] == specs[0].key
    assert {r["threads"] for r in records} == {1}  # torch's threads = the task's CPUs

    before = files(store.root)
    loads.clear()
    again = runs.run_grid(specs, store, device="cpu", progress=False, engine="ray",
                          loader=lambda s: loads.append(s.key) or data)
    assert loads == [] and files(store.root) == before  # nothing loaded, trained or written
    assert json.dumps(again) == json.dumps(records)


def _task_pids(name: str = "msa_run") -> list[int]:
    """PIDs of Ray workers executing a task called ``name`` (Ray titles them ``ray::<name>``)."""
    pids = []
    for d in pathlib.Path("/proc").iterdir():
        try:
            if d.name.isdigit() and (d / "cmdline").read_bytes().startswith(f"ray::{name}".encode()):
                pids.append(int(d.name))
        except OSError:
            continue
    return pids


def test_killed_worker_is_retried_and_leaves_a_complete_store(local_ray, data, tmp_path):
    long = spec(5, "frame:0.3", epochs=60)
    store = ResultsStore(tmp_path / "ray")
    result: dict = {}

    def sweep():
        try:
            result["records"] = runs.run_grid([long], store, device="cpu", progress=False,
                                              engine=RayEngine(retries=2), loader=lambda s: data)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=sweep)
    thread.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        pids = _task_pids()
        if pids and not store.has_run(long):
            time.sleep(0.3)  # well inside training, not in the worker's start-up
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.05)
    thread.join(timeout=300)
    assert killed is not None, "no worker running the task was found to kill"
    assert "error" not in result, result.get("error")
    assert store.is_complete(long)
    assert not [f for f in files(store.root) if f.endswith(".tmp")]  # no half-written file
    [reference] = one_thread_locally([long], tmp_path / "local", data)
    assert without_timing(result["records"]) == without_timing([reference])  # the retry ran the whole run


def test_failed_run_is_reported_and_the_others_finish(local_ray, data, tmp_path, capsys):
    good = [spec(seed) for seed in (0, 1)]
    bad = spec(3, model_config={**SMALL_TFN, "no_such_field": 1})
    store = ResultsStore(tmp_path)
    with pytest.raises(SweepFailed) as info:
        runs.run_grid([good[0], bad, good[1]], store, device="cpu", progress=False, engine="ray",
                      keep_going=True, loader=lambda s: data)
    assert [s.key for s, _ in info.value.failures] == [bad.key]
    assert "no_such_field" in str(info.value) and bad.key in str(info.value)
    assert all(store.is_complete(s) for s in good) and not store.has_run(bad)
    err = capsys.readouterr().err
    assert f"FAILED run {bad.key} (tfn on synthetic:mosi, seed 3" in err and "no_such_field" in err
    # without keep_going the run's own error is raised
    with pytest.raises(ValueError, match="no_such_field"):
        runs.run_grid([bad], store, device="cpu", progress=False, engine="ray", loader=lambda s: data)


def test_a_run_whose_start_failed_is_not_run(local_ray, data, tmp_path):
    bad = spec(3, model_config={**SMALL_TFN, "no_such_field": 1})
    child = spec(3, "frame:0.5", init_from=bad.key)
    with pytest.raises(SweepFailed) as info:
        runs.run_grid([child, bad], ResultsStore(tmp_path), device="cpu", progress=False, engine="ray",
                      keep_going=True, loader=lambda s: data)
    assert {s.key: e for s, e in info.value.failures}[child.key].startswith("not run: the run it starts from")


def test_local_engine_keeps_going_too(data, tmp_path):
    bad = spec(3, model_config={**SMALL_TFN, "no_such_field": 1})
    store = ResultsStore(tmp_path)
    with pytest.raises(SweepFailed) as info:
        runs.run_grid([bad, spec(0)], store, device="cpu", progress=False, keep_going=True, loader=lambda s: data)
    assert [s.key for s, _ in info.value.failures] == [bad.key] and store.is_complete(spec(0))


def test_engine_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown engine 'dask'"):
        runs.run_grid([spec(0)], ResultsStore(tmp_path), engine="dask")
    with pytest.raises(ValueError, match="num_cpus=1 is fewer than cpus_per_run=2"):
        RayEngine(num_cpus=1, cpus_per_run=2)
    with pytest.raises(ValueError, match="cpus_per_run must be > 0"):
        RayEngine(cpus_per_run=0)


def test_stale_partial_files_are_cleared(tmp_path):
    store = ResultsStore(tmp_path)
    s = spec(0)
    d = tmp_path / s.model / s.key
    d.mkdir(parents=True)
    (d / ".weights.pt.abc.tmp").write_bytes(b"half")
    (d / "eval").mkdir()
    (d / "eval" / ".complete.json.x.tmp").write_text("{")
    (d / "keep.txt").write_text("not ours")
    assert sorted(p.name for p in store.clear_partial(s)) == [".complete.json.x.tmp", ".weights.pt.abc.tmp"]
    assert [p.name for p in d.rglob("*") if p.is_file()] == ["keep.txt"]


def test_sweep_cli_runs_a_chapter_and_says_what_it_did(local_ray, tmp_path, capsys):
    args = ["sweep", "--chapter", "baselines", "--dataset", "synthetic:mosi", "--profile", "smoke",
            "--results-dir", str(tmp_path), "--engine", "ray", "--no-progress"]
    assert main([*args, "--dry-run"]) == 0
    planned = capsys.readouterr().out
    assert "runs to train or evaluate" in planned and not list(tmp_path.glob("tfn/*"))
    n = int(planned.split("baselines on synthetic:mosi: ")[1].split(" runs")[0])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{n} of {n} runs finished" in out
    assert len(list(tmp_path.glob("tfn/*/run.json"))) == n
    assert main(args) == 0
    assert "0 runs to train or evaluate" in capsys.readouterr().out
    # a sweep whose runs fail says which, goes on with the others, and exits 1
    if not torch.cuda.is_available():
        failing = [*args[:args.index("--results-dir")], "--results-dir", str(tmp_path / "cuda"), "--engine", "local",
                   "--device", "cuda", "--no-progress"]
        assert main(failing) == 1
        captured = capsys.readouterr()
        assert f"0 of {n} runs finished; {n} failed" in captured.out
        assert "CUDA is not available on this machine" in captured.err and "FAILED run " in captured.err


# ---------------------------------------------------------------------------------------------
# a chapter's sweep = every run its pages build
# ---------------------------------------------------------------------------------------------

def page_calls():
    from msa_lib.chapters import baselines, dar, leaderboard, mitr, sdumc, umdf

    return {
        "baselines": [lambda **kw: baselines.run(sweeps.sweep_datasets("baselines"), **kw)],
        "umdf": [lambda **kw: umdf.run(sweeps.sweep_datasets("umdf"), **kw),
                 lambda **kw: umdf.run(sweeps.sweep_datasets("umdf"), variants=tuple(umdf.VARIANTS), with_tfn=False, **kw),
                 lambda **kw: umdf.run(sweeps.sweep_datasets("umdf"), variants=("UMDF", *umdf.READINGS,
                                                                                 *umdf.TRAINING_READINGS), **kw)],
        "mitr": [lambda **kw: mitr.run(sweeps.sweep_datasets("mitr"), **kw),
                 lambda **kw: mitr.ablation(sweeps.sweep_datasets("mitr"), **kw)],
        "sdumc": [lambda **kw: sdumc.run(sweeps.sweep_datasets("sdumc"), **kw),
                  lambda **kw: sdumc.comparison(sweeps.sweep_datasets("sdumc"), **kw)],
        "dar": [lambda **kw: dar.run(sweeps.sweep_datasets("dar"), **kw),
                lambda **kw: dar.comparison(sweeps.sweep_datasets("dar"), **kw)],
        "leaderboard": [lambda **kw: leaderboard.run(sweeps.sweep_datasets("leaderboard"), **kw)],
    }


@pytest.mark.parametrize("chapter", ["baselines", "umdf", "mitr", "sdumc", "dar", "leaderboard"])
def test_a_chapter_sweep_holds_every_run_its_pages_build(chapter, monkeypatch, tmp_path):
    if chapter == "leaderboard" and FETCHED["mosi-utterance"].unavailable():
        pytest.skip(FETCHED["mosi-utterance"].unavailable())
    asked: list[RunSpec] = []

    def record(specs, *args, **kw):  # instead of training: note what the page asked for
        asked.extend(specs)
        return []

    monkeypatch.setattr(runs, "run_grid", record)
    parts = sweeps.sweep_parts(chapter, profile="book")
    swept = {s.key for part in parts for s in part.specs}
    for call in page_calls()[chapter]:
        try:
            call(profile="book", results_dir=str(tmp_path))
        except (KeyError, IndexError, ValueError):  # the page's tables, built from no records
            pass
    assert {s.dataset for s in asked} == {p.dataset for p in parts}  # every dataset was asked for
    assert not {s.key for s in asked} - swept, "runs a page builds that the chapter's sweep lacks"


def test_sweep_parts_and_counts():
    assert sweeps.sweep_datasets("leaderboard") == "mosi-utterance"
    assert sweeps.sweep_datasets("dar") == "synthetic:mosi,synthetic:mosei"
    parts = sweeps.sweep_parts("dar", profile="smoke")
    assert [p.dataset for p in parts] == ["synthetic:mosi", "synthetic:mosei"] and all(p.data is None for p in parts)
    for p in parts:
        assert len({s.key for s in p.specs}) == len(p.specs)  # each run once
    counts = sweeps.run_counts(("smoke",)).set_index("chapter")["smoke"]
    assert counts["dar"] == sum(len(p.specs) for p in parts)
    assert counts["whole book (distinct runs)"] <= counts.drop("whole book (distinct runs)").sum()
    with pytest.raises(ValueError, match="unknown chapter 'lnln'"):
        sweeps.sweep_parts("lnln")


def fake_benchmark(speed: float) -> dict:
    rows = [{"model": m, "train_samples_per_s": {"median": speed}, "infer_samples_per_s": {"median": 10 * speed}}
            for m in ("tfn", "umdf", "mitr_dnet", "sdumc")]
    return {"machine": {"device": "cpu"}, "rows": rows}


def test_compute_estimate_scales_with_throughput_and_names_unmeasured_models():
    slow = sweeps.compute_estimate(fake_benchmark(100.0), "smoke", ("baselines", "dar")).set_index("chapter")
    fast = sweeps.compute_estimate(fake_benchmark(200.0), "smoke", ("baselines", "dar")).set_index("chapter")
    assert fast.loc["baselines", "hours"] == pytest.approx(slow.loc["baselines", "hours"] / 2)
    assert slow.loc["baselines", "not counted"] == "" and slow.loc["baselines", "hours"] > 0
    assert slow.loc["dar", "not counted"] == "dar"  # DAR's own runs have no throughput in this benchmark
    n_dar = sum(s.model == "dar" for p in sweeps.sweep_parts("dar", profile="smoke") for s in p.specs)
    total = sum(len(p.specs) for p in sweeps.sweep_parts("dar", profile="smoke"))
    assert slow.loc["dar", "runs"] == total - n_dar


def test_read_benchmark_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/throughput.py --json"):
        sweeps.read_benchmark(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match=r"lacks \['machine'\]"):
        sweeps.read_benchmark(tmp_path / "bad.json")


def test_stored_benchmark_covers_every_model():
    """The scale page estimates hours from benchmarks/throughput-cpu.json: a newly registered model
    needs a new measurement (python benchmarks/throughput.py --json benchmarks/throughput-cpu.json)."""
    from msa_lib.models import MODELS

    bench = sweeps.read_benchmark(pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "throughput-cpu.json")
    table = sweeps.throughput_table(bench)
    assert set(MODELS) <= set(table.index)
    assert "interleaved rounds" in sweeps.benchmark_source(bench)

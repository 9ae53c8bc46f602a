"""Whole chapters as sweeps: every run of a chapter's pages (``sweep_specs`` of its module) on its
paper datasets, the run counts per profile, and the compute they need from measured throughput.

``python -m msa_lib sweep`` runs what :func:`sweep_parts` lists (:func:`msa_lib.runs.run_grid`,
locally or on Ray); the "Running the papers at scale" page shows :func:`run_counts` and
:func:`compute_estimate`. Validation sweeps (λ, learning rate, loss weights) are not part of a
chapter's sweep: their notebooks run them on the data they are chosen on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .chapters import CHAPTERS, get_chapter
from .data import FETCHED, PRESETS, MSADataset, load_dataset
from .data.synthetic import split_sizes
from .experiments import data_options, dataset_paths, get_profile, settings_choices
from .results import RunSpec
from .train import TrainConfig

__all__ = ["SweepPart", "benchmark_source", "compute_estimate", "cost_table", "read_benchmark", "run_counts", "sweep_command",
           "sweep_datasets", "sweep_parts", "throughput_table"]


def sweep_datasets(chapter: str) -> str:
    """The datasets a chapter's sweep runs by default (comma-separated): the leaderboard's real
    dataset, else the synthetic preset of each of the chapter's paper-settings rows."""
    module = get_chapter(chapter)
    if hasattr(module, "DATASET"):
        return module.DATASET
    return ",".join(f"synthetic:{row}" for row in module.SETTINGS if row in PRESETS)


def sweep_command(chapter: str, profile: str = "paper") -> str:
    """The command that runs ``chapter``'s sweep on a Ray cluster, one GPU per run."""
    return (f"python -m msa_lib sweep --chapter {chapter} --profile {profile} --engine ray --address auto "
            f"--gpus-per-run 1 --results-dir /shared/msa-results")


@dataclass
class SweepPart:
    """The runs of one chapter on one dataset. ``data`` is the loaded dataset when it had to be
    read to build the specs (a file: its kind), else None (loaded when a run needs it)."""

    chapter: str
    dataset: str
    data_path: str | None
    specs: list[RunSpec]
    data: MSADataset | None = field(default=None, repr=False)


def _synthetic_preset(name: str, path: str | None) -> str | None:
    preset = name.partition(":")[2]
    return preset if path is None and name.startswith("synthetic:") and preset in PRESETS else None


def sweep_parts(chapter: str, dataset: str = "", data_path: str = "", profile: str = "smoke", seeds: str = "",
                settings: str = "") -> list[SweepPart]:
    """Every run of ``chapter``'s pages on each dataset of a comma-separated list (default:
    :func:`sweep_datasets`) at ``profile``, each run once. Synthetic presets and fetched datasets
    are not loaded to list them."""
    module = get_chapter(chapter)
    prof = get_profile(profile)
    pairs = dataset_paths(dataset or sweep_datasets(chapter), data_path)
    out = []
    for (name, path), choice in zip(pairs, settings_choices(settings, len(pairs))):
        data = None
        if _synthetic_preset(name, path):
            kind = PRESETS[_synthetic_preset(name, path)].dataset_kind
        elif path is None and name in FETCHED:
            kind = FETCHED[name].settings_row
        else:
            data = load_dataset(name, **data_options(name, path, prof))
            kind = data.kind
        specs = module.sweep_specs(name, path, prof, seeds, choice, kind)
        out.append(SweepPart(chapter, name, path, list({s.key: s for s in specs}.values()), data))
    return out


def run_counts(profiles: tuple[str, ...] = ("smoke", "book", "paper")) -> pd.DataFrame:
    """Runs per chapter (on its :func:`sweep_datasets`) and profile, and the whole book's distinct
    runs (chapters share runs through the results store)."""
    rows, book = [], {p: set() for p in profiles}
    for name in CHAPTERS:
        row = {"chapter": name, "datasets": sweep_datasets(name).replace(",", ", ")}
        for profile in profiles:
            keys = {s.key for part in sweep_parts(name, profile=profile) for s in part.specs}
            row[profile] = len(keys)
            book[profile] |= keys
        rows.append(row)
    rows.append({"chapter": "whole book (distinct runs)", "datasets": "", **{p: len(k) for p, k in book.items()}})
    return pd.DataFrame(rows)


def read_benchmark(path: str | Path) -> dict:
    """A ``benchmarks/throughput.py --json`` file: ``{"machine": {...}, "settings": {...}, "rows": [...]}``,
    one row per model (or ``model:reading``) with samples/s as ``{"median", "min", "max", "rounds"}``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"benchmark file {path} does not exist; write one with "
                                f"python benchmarks/throughput.py --json {path}")
    doc = json.loads(path.read_text())
    missing = [k for k in ("machine", "rows") if k not in doc]
    if missing:
        raise ValueError(f"benchmark file {path} lacks {missing}; was it written by benchmarks/throughput.py --json?")
    return doc


def benchmark_source(benchmark: dict) -> str:
    """Where and when a benchmark was measured, in one sentence."""
    m, rows = benchmark["machine"], benchmark["rows"]
    devices = ", ".join(sorted({r["device"] for r in rows}))
    return (f"Measured {m['date'][:16].replace('T', ' ')} on {m['cpu_count']} {m['processor']} cores ({devices}, "
            f"{m['threads']} torch threads, torch {m['torch']}), {m.get('rounds', rows[0]['rounds'])} interleaved "
            f"rounds; median [min–max] over rounds.")


def _spread(stat: dict, digits: int = 0) -> str:
    return f"{stat['median']:,.{digits}f} [{stat['min']:,.{digits}f}–{stat['max']:,.{digits}f}]"


def throughput_table(benchmark: dict) -> pd.DataFrame:
    """Per model (and reading): training and inference samples/s of the current code, each with
    its ratio to the first implementation (the benchmark's reference path, timed in the same
    rounds), and fused Adam's ratio to the unfused one."""
    rows = [{"model": r["model"], "batch": r["batch_size"],
             "training samples/s": _spread(r["train_samples_per_s"]),
             "× first version": _spread(r["train_ratio_current_reference"], 2),
             "× fused Adam": _spread(r["train_ratio_fused_unfused"], 2),
             "inference samples/s": _spread(r["infer_samples_per_s"]),
             "× first version (inference)": _spread(r["infer_ratio_current_reference"], 2)}
            for r in benchmark["rows"]]
    return pd.DataFrame(rows).set_index("model")


def cost_table(benchmark: dict) -> pd.DataFrame:
    """Per model (and reading): parameters, FLOPs per training sample, the achieved training
    GFLOP/s and the peak memory of the benchmark process."""
    rows = [{"model": r["model"], "parameters": f"{r['parameters']:,}",
             "MFLOP per training sample": f"{r['train_flops_per_sample'] / 1e6:,.1f}",
             "training GFLOP/s": f"{r['train_gflops_per_s']:.1f}",
             "MFLOP per inference sample": f"{r['infer_flops_per_sample'] / 1e6:,.1f}",
             "peak RSS MB": f"{r['peak_rss_mb']:,.0f}"}
            for r in benchmark["rows"]]
    return pd.DataFrame(rows).set_index("model")


def _sizes(part: SweepPart, profile: str) -> dict[str, int]:
    preset = _synthetic_preset(part.dataset, part.data_path)
    if preset:
        opts = data_options(part.dataset, part.data_path, get_profile(profile))
        return split_sizes(preset, opts.get("size", 1.0), opts.get("eval_samples"))
    data = part.data if part.data is not None else load_dataset(part.dataset, **data_options(
        part.dataset, part.data_path, get_profile(profile)))
    return {k: len(v) for k, v in data.splits.items()}


def compute_estimate(benchmark: dict, profile: str = "paper", chapters: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Hours each chapter's sweep needs at ``profile`` on the benchmark's device, from its measured
    training and evaluation samples/s per model: every epoch run to its cap (an upper bound:
    early stopping ends runs sooner), one validation pass per epoch, one test pass per protocol.
    Split sizes are the profile's; the throughput is the benchmark's (MOSI-shaped data at each
    model's paper settings), so the estimate fits the paper profile best. ``not counted`` names the
    models without a benchmark row and data whose size is unknown here (their runs are left out)."""
    speed = {r["model"]: r for r in benchmark["rows"]}
    rows = []
    for name in chapters or tuple(CHAPTERS):
        seconds, runs, unmeasured = 0.0, 0, set()
        for part in sweep_parts(name, profile=profile):
            if part.data_path is None and part.dataset in FETCHED and FETCHED[part.dataset].unavailable():
                unmeasured.add(f"{part.dataset} (not available here)")  # its split sizes are unknown
                continue
            n = _sizes(part, profile)
            for spec in part.specs:
                if spec.model not in speed:
                    unmeasured.add(spec.model)
                    continue
                train = speed[spec.model]["train_samples_per_s"]["median"]
                evals = speed[spec.model]["infer_samples_per_s"]["median"]
                epochs = TrainConfig.from_dict(spec.train_config).epochs
                seconds += epochs * (n["train"] / train + n["valid"] / evals) + len(spec.eval_protocols) * n["test"] / evals
                runs += 1
        rows.append({"chapter": name, "runs": runs, "hours": seconds / 3600,
                     "not counted": ", ".join(sorted(unmeasured))})
    return pd.DataFrame(rows)

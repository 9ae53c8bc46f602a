"""Command line: chapters, single-model sweeps and summaries outside notebooks.

    python -m msa_lib run --chapter umdf --dataset synthetic:mosi,synthetic:mosei --profile book
    python -m msa_lib train --model tfn --dataset synthetic:mosi --protocol frame:0.3 --seeds 1,2,3
    python -m msa_lib train --model umdf --data-path ~/data/MOSI/aligned_50.pkl --settings mosi --protocol mixed \\
        --eval complete,frame:0.5,modality:{l,a}
    python -m msa_lib summary --results-dir results
    python -m msa_lib sweep --chapter mitr --profile paper --engine ray --address auto --gpus-per-run 1

``sweep`` runs every run of a chapter's pages (``--chapter all``: the whole book) on the paper's
datasets (or ``--dataset``), locally or as Ray tasks; a failed run is reported with its spec and
the others go on; the exit code is 0 only when every run finished.

``run`` builds exactly the runs the chapter's notebooks build (shared through the results store).
``train`` without ``--eval`` is the per-rate design (train and test under ``--protocol``); with
``--eval`` it is train once, test under every listed protocol; the model's paper settings for the
dataset come from its chapter. Finished runs in ``--results-dir`` are skipped, so an interrupted
sweep resumes where it stopped.

The protocol grammar is in ``PROTOCOLS`` below (``--help`` of every command prints it).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

from .data import FETCHED, PRESETS
from .experiments import PROFILES, data_options, get_profile, train_once_specs
from .missing import parse_protocol
from .results import ResultsStore, RunSpec, summary_table

SYNTHETIC = [f"synthetic:{p}" for p in PRESETS]
PROTOCOLS = """Protocols (--protocol, --eval):
  complete                  nothing missing
  frame:P[:resample]        every valid frame dropped with probability P (fixed mask per split;
                            :resample = a fresh mask every training batch)
  modality:<l,a,v subset>   only the listed modalities present, e.g. modality:{l,a} or modality:la
  modality:l+frame:P        a subset and frame dropping within it
  erasure:R[:random]        LNLN/DAR erasure at rate R (:random = per-sample rates in U(0, R))
  mixed[:P]                 UMDF training: frame- (rates U(0, P), P=0.9) or modality-level, per sample"""


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the protocol grammar's layout and shows every default."""


def _ints(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _protocols(text: str) -> list[str]:
    """Comma-separated protocols; commas inside braces (``modality:{l,a}``) do not split."""
    try:
        return [parse_protocol(s).spec for s in re.split(r",(?![^{]*})", text) if s.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .chapters import CHAPTERS
    from .models import MODELS

    profiles = "; ".join(f"{p.name}: {p.purpose}" for p in PROFILES.values())
    data_help = (f"a synthetic preset ({', '.join(SYNTHETIC)}), a public dataset fetched by name "
                 f"({', '.join(sorted(FETCHED))}), or a label for --data-path (default: the file's name)")
    p = argparse.ArgumentParser(prog="python -m msa_lib", description=__doc__, epilog=PROTOCOLS,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--data-path", default=None,
                       help="MMSA aligned_50/unaligned_50/unaligned_39 .pkl, MulT IEMOCAP .pkl, or a CSD .json "
                            "manifest (comma-separated, one per dataset, with `run`)")
        q.add_argument("--settings", default="",
                       help="which paper-settings row of the chapter to use for data that is not a synthetic "
                            "preset (e.g. mosi, mosei, iemocap)")
        q.add_argument("--seeds", type=_ints, default=None, help="comma-separated seeds (default: the profile's)")
        q.add_argument("--profile", default="book", choices=sorted(PROFILES), help=profiles)
        q.add_argument("--results-dir", default="results", help="finished runs are stored here and never recomputed")
        q.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
        q.add_argument("--no-progress", action="store_true", help="no progress bars")

    r = sub.add_parser("run", help="build and train a chapter's runs (the same runs as its notebooks)",
                       formatter_class=_Help, epilog=PROTOCOLS)
    r.add_argument("--chapter", required=True, choices=sorted(CHAPTERS),
                   help="; ".join(f"{k}: {c.TITLE}" for k, c in CHAPTERS.items()))
    r.add_argument("--dataset", default="synthetic:mosi", help="comma-separated; " + data_help)
    common(r)

    t = sub.add_parser("train", help="train (and evaluate) one model over seeds", formatter_class=_Help,
                       epilog=PROTOCOLS)
    t.add_argument("--model", required=True, help=f"one of {sorted(MODELS)}")
    t.add_argument("--dataset", default=None, help=data_help + "; default synthetic:mosi")
    common(t)
    t.add_argument("--protocol", type=lambda s: _protocols(s)[0], default="complete",
                   help="training protocol (see the grammar above)")
    t.add_argument("--eval", type=_protocols, default=None, help="comma-separated evaluation protocols")
    t.add_argument("--epochs", type=int, default=None, help="override the epochs of the paper setting / profile")
    t.add_argument("--model-config", type=_json, default={}, help="JSON object of model config fields (overrides)")
    t.add_argument("--train-config", type=_json, default={}, help="JSON object of TrainConfig fields (overrides)")

    w = sub.add_parser("sweep", help="run every run of a chapter (or of the whole book), locally or on Ray",
                       formatter_class=_Help, epilog=PROTOCOLS)
    w.add_argument("--chapter", required=True, choices=["all", *sorted(CHAPTERS)],
                   help="a chapter, or all: every chapter on its paper datasets")
    w.add_argument("--dataset", default="",
                   help="comma-separated; default: the chapter's paper datasets (synthetic presets; the "
                        "leaderboard's real one). " + data_help)
    common(w)
    w.add_argument("--engine", default="local", choices=["local", "ray"], help="local: one run after another here")
    w.add_argument("--address", default=None,
                   help="Ray: join this cluster (auto = the one `ray start` made on this node); default: start a "
                        "local Ray instance")
    w.add_argument("--num-cpus", type=int, default=None, help="Ray: CPUs of a local instance (default: all)")
    w.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray: CPUs per run (= torch threads in it)")
    w.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray: GPUs per run (a run sees only its own)")
    w.add_argument("--retries", type=int, default=3, help="Ray: times a run whose worker died is retried")
    w.add_argument("--dry-run", action="store_true", help="print how many runs each part has and stop")
    w.add_argument("--benchmark", default=None,
                   help="with --dry-run: a `benchmarks/throughput.py --json` file; prints the hours each chapter's "
                        "sweep needs on the device it measured")

    s = sub.add_parser("summary", help="mean ± std over seeds of every stored configuration")
    s.add_argument("--results-dir", default="results")
    s.add_argument("--model", default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, KeyError) as exc:  # bad input: one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _print(df: pd.DataFrame) -> None:
    with pd.option_context("display.width", None, "display.max_columns", None, "display.max_rows", None,
                           "display.max_colwidth", None):
        print(df.to_string(index=False))


def _run(args: argparse.Namespace) -> int:
    if args.command == "summary":
        records = ResultsStore(args.results_dir).records(args.model)
        if not records:
            print(f"no finished runs in {args.results_dir}")
            return 1
        _print(summary_table(records).round(4))
        return 0

    from .chapters import chapter_of_model, get_chapter

    if args.command == "sweep":
        return _sweep(args)
    profile = get_profile(args.profile)
    seeds = ",".join(map(str, args.seeds)) if args.seeds else ""
    if args.command == "run":
        result = get_chapter(args.chapter).run(args.dataset, args.data_path or "", profile.name, seeds, args.device,
                                               args.results_dir, args.settings)
        for item in result:
            print(f"{item.name}: {item.caption}")
            _print(_condense(item.results))
        return 0

    from .models import MODELS
    from .runs import run_grid

    if args.model not in MODELS:
        raise ValueError(f"unknown model {args.model!r}; available: {sorted(MODELS)}")
    if args.data_path and not Path(args.data_path).expanduser().exists():
        raise FileNotFoundError(f"--data-path {args.data_path} does not exist")
    dataset = args.dataset or (_label(args.data_path) if args.data_path else "synthetic:mosi")
    chapter = chapter_of_model(args.model)
    model_cfg, train_cfg = chapter.model_setup(args.model, args.settings or dataset, profile)
    if args.epochs:
        train_cfg["epochs"] = args.epochs
    common = dict(model_config={**model_cfg, **args.model_config}, train_config={**train_cfg, **args.train_config},
                  data_options=data_options(dataset, args.data_path, profile))
    seed_list = args.seeds or [int(s) for s in profile.seeds.split(",")]
    if args.eval:
        specs = train_once_specs(args.model, dataset, seed_list, args.protocol, args.eval, **common)
    else:
        specs = [RunSpec(model=args.model, dataset=dataset, seed=s, train_protocol=args.protocol,
                         eval_protocols=(args.protocol,), design="per_rate", **common) for s in seed_list]
    records = run_grid(specs, ResultsStore(args.results_dir), device=args.device, progress=not args.no_progress)
    _print(summary_table(records).round(4))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .chapters import CHAPTERS
    from .runs import RayEngine, SweepFailed, data_key, load_for_spec, run_grid
    from .sweeps import benchmark_source, compute_estimate, read_benchmark, sweep_parts

    if args.chapter == "all" and (args.dataset or args.data_path):
        raise ValueError("--chapter all runs every chapter on its own datasets; give --dataset with one chapter")
    engine = "local" if args.engine == "local" else RayEngine(args.address, args.num_cpus, args.cpus_per_run,
                                                              args.gpus_per_run, args.retries)
    seeds = ",".join(map(str, args.seeds)) if args.seeds else ""
    store = ResultsStore(args.results_dir)
    chapters = tuple(CHAPTERS) if args.chapter == "all" else (args.chapter,)
    parts = [part for name in chapters
             for part in sweep_parts(name, args.dataset, args.data_path or "", args.profile, seeds, args.settings)]
    for part in parts:
        todo = sum(not store.is_complete(s) for s in part.specs)
        print(f"{part.chapter} on {part.dataset}: {len(part.specs)} runs, {todo} runs to train or evaluate "
              f"({args.profile} profile, results in {store.root})", flush=True)
    if args.dry_run:
        if args.benchmark:
            bench = read_benchmark(args.benchmark)
            print(f"hours, an upper bound (every epoch to its cap), {args.profile} profile. {benchmark_source(bench)}")
            _print(compute_estimate(bench, args.profile, chapters).round(2))
        return 0

    # every part in one grid: Ray schedules the whole sweep at once, and runs chapters share are run once
    loaded = {data_key(s): part.data for part in parts if part.data is not None for s in part.specs}
    specs = [s for part in parts for s in part.specs]
    n_runs = len({s.key for s in specs})
    try:
        run_grid(specs, store, device=args.device, progress=not args.no_progress, engine=engine, keep_going=True,
                 loader=lambda spec: loaded[data_key(spec)] if data_key(spec) in loaded else load_for_spec(spec))
    except SweepFailed as exc:
        print(exc, file=sys.stderr)
        print(f"{n_runs - len(exc.failures)} of {n_runs} runs finished; {len(exc.failures)} failed (listed above)")
        return 1
    print(f"{n_runs} of {n_runs} runs finished")
    return 0


def _condense(results: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per (label, protocol, metric) of a chapter's tidy results."""
    g = results.groupby(["variant", "protocol", "metric"], sort=False)["value"]
    return g.agg(mean="mean", std="std", n_seeds="count").reset_index().round(4)


def _label(data_path: str) -> str:
    """A dataset label for a user's file: its name without the extension (never a preset name)."""
    return Path(data_path).expanduser().stem


if __name__ == "__main__":
    sys.exit(main())

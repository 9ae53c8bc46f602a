"""Command line for sweeps outside notebooks.

    python -m msa_lib train --model tfn --dataset synthetic:mosi --protocol frame:0.3 --seeds 1,2,3
    python -m msa_lib train --model tfn --protocol complete --eval frame:0,frame:0.5,modality:l
    python -m msa_lib summary --results-dir results

``train`` without ``--eval`` is the per-rate design (train and test under ``--protocol``); with
``--eval`` it is train once, test under every listed protocol. Finished runs in ``--results-dir``
are skipped, so an interrupted sweep resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

import pandas as pd

from .experiments import data_options, get_profile, train_once_specs
from .missing import parse_protocol
from .results import ResultsStore, RunSpec, summarize, tidy


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
    p = argparse.ArgumentParser(prog="python -m msa_lib", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (and evaluate) a grid of runs")
    t.add_argument("--model", required=True)
    t.add_argument("--dataset", default="synthetic:mosi", help="synthetic preset, or a label for --data-path")
    t.add_argument("--data-path", default=None, help="MMSA/MulT .pkl or CSD .json manifest")
    t.add_argument("--protocol", type=lambda s: _protocols(s)[0], default="complete", help="training protocol")
    t.add_argument("--eval", type=_protocols, default=None, help="comma-separated evaluation protocols")
    t.add_argument("--seeds", type=_ints, default=[1, 2, 3])
    t.add_argument("--profile", default="book", help="smoke | book | paper (epochs, synthetic size)")
    t.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    t.add_argument("--model-config", type=_json, default={}, help="JSON object of model config fields")
    t.add_argument("--train-config", type=_json, default={}, help="JSON object of TrainConfig fields")
    t.add_argument("--results-dir", default="results")
    t.add_argument("--device", default="auto")
    t.add_argument("--no-progress", action="store_true")
    s = sub.add_parser("summary", help="mean ± std over seeds of every stored run")
    s.add_argument("--results-dir", default="results")
    s.add_argument("--model", default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError) as exc:  # bad input: one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "summary":
        records = ResultsStore(args.results_dir).records(args.model)
        if not records:
            print(f"no finished runs in {args.results_dir}")
            return 1
        with pd.option_context("display.width", 200, "display.max_rows", 500):
            print(summarize(tidy(records), by=("model", "dataset", "design", "protocol", "metric")).round(4))
        return 0

    from .experiments import run_grid  # heavy imports only when training

    profile = get_profile(args.profile)
    train_cfg = {"epochs": args.epochs or profile.epochs_or(20), "patience": profile.patience, **args.train_config}
    common = dict(model_config=args.model_config, train_config=train_cfg,
                  data_options=data_options(args.dataset, args.data_path, profile))
    if args.eval:
        specs = train_once_specs(args.model, args.dataset, args.seeds, args.protocol, args.eval, **common)
    else:
        specs = [RunSpec(model=args.model, dataset=args.dataset, seed=s, train_protocol=args.protocol,
                         eval_protocols=(args.protocol,), design="per_rate", **common) for s in args.seeds]
    records = run_grid(specs, ResultsStore(args.results_dir), device=args.device, progress=not args.no_progress)
    table = summarize(tidy(records), by=("model", "design", "protocol", "metric"))
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

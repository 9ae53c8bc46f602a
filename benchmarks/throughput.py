"""Training throughput and peak memory per model on MOSI-shaped synthetic data (full split size).

    python benchmarks/throughput.py                # every model, the paper's MOSI batch size
    python benchmarks/throughput.py --dataset mosei --batch-size 32   # MOSEI-shaped (SDUMC's paper)
    python benchmarks/throughput.py --models tfn --batches 20
    python benchmarks/throughput.py --models mitr_dnet:teacher,mitr_dnet:student   # a chapter's readings

Each model runs in its own subprocess so peak RSS is per model. It times exactly the trainer's
step (:meth:`msa_lib.train.Trainer.train_step`, with the model's own views, optimizers and loss
weights) under the model's paper setting for the dataset from its chapter (MOSI's where a chapter
has none for it, e.g. MITR-DNet on MOSEI), and prints samples/s, peak memory and the throughput
ratio to TFN — the project's performance record (no timed tests).
``model:reading`` entries time a reading a chapter names in its ``BENCHMARKS`` (model-config
overrides; the last stage of that reading is timed), e.g. MITR-DNet's frozen teacher and student.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(entry: str, n_batches: int, device: str, batch_size: int | None, dataset: str = "mosi") -> dict:
    import torch

    from msa_lib.chapters import chapter_of_model
    from msa_lib.data import make_synthetic
    from msa_lib.experiments import get_profile
    from msa_lib.models import build_model
    from msa_lib.train import SplitTensors, TrainConfig, Trainer, seed_everything

    seed_everything(0)
    data = make_synthetic(dataset, size=1.0, seed=0)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model_name, _, reading = entry.partition(":")
    chapter = chapter_of_model(model_name)
    row = dataset if dataset in chapter.SETTINGS else "mosi"
    model_cfg, train_cfg = chapter.model_setup(model_name, row, get_profile("paper"))
    if reading:
        readings = getattr(chapter, "BENCHMARKS", {})
        if reading not in readings:
            raise ValueError(f"unknown reading {reading!r} of {model_name}; the {chapter.NAME} chapter names {sorted(readings)}")
        model_cfg = {**model_cfg, **readings[reading]}
    if batch_size:
        train_cfg["batch_size"] = batch_size
    model = build_model(model_name, data.dims, model_cfg)
    config = TrainConfig.from_dict({**train_cfg, "device": device, "progress": False})
    # the model's paper training distribution (its chapter's TRAIN_PROTOCOLS); complete data is
    # timed with a per-batch frame drop so two-view models see a masked view
    protocol = getattr(chapter, "TRAIN_PROTOCOLS", {}).get(model_name, "complete")
    protocol = "frame:0.3:resample" if protocol == "complete" else protocol
    trainer = Trainer(model, data, config, train_protocol=protocol, seed=0)
    trainer.start_stage(model.stages(config)[-1])
    trainer.train_mode()
    train = SplitTensors(data["train"])
    bs = config.batch_size
    order = torch.randperm(train.n, generator=torch.Generator().manual_seed(0))
    batches = [order[(i * bs) % (train.n - bs):][:bs] for i in range(n_batches + 2)]
    for idx in batches[:2]:  # warm-up
        trainer.train_step(train.batch(idx, train))
    t0 = time.perf_counter()
    for idx in batches[2:]:
        trainer.train_step(train.batch(idx, train))
    seconds = time.perf_counter() - t0
    return {"model": entry, "batch_size": bs, "samples_per_s": n_batches * bs / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "data_rss_mb": rss_data,
            "threads": torch.get_num_threads(), "device": str(trainer.device), "settings": row}


def main() -> int:
    from msa_lib.chapters import chapter_of_model
    from msa_lib.models import MODELS

    entries = [e for m in MODELS for e in [m, *(f"{m}:{r}" for r in getattr(chapter_of_model(m), "BENCHMARKS", {}))]]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(entries))
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=None, help="override the paper's batch size")
    p.add_argument("--dataset", default="mosi", help="synthetic preset whose shapes are timed (mosi, mosei, sims)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.batches, args.device, args.batch_size, args.dataset)))
        return 0
    rows = []
    for name in args.models.split(","):
        cmd = [sys.executable, __file__, "--child", name, "--batches", str(args.batches), "--device", args.device,
               "--dataset", args.dataset]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = next((r["samples_per_s"] for r in rows if r["model"] == "tfn"), None)
    print(f"{args.dataset.upper()}-shaped synthetic data (full size, paper settings from each chapter), {args.batches} timed "
          f"Trainer.train_step calls")
    print(f"{'model':18s} {'batch':>5s} {'samples/s':>10s} {'peak RSS MB':>12s} {'data RSS MB':>12s} {'vs TFN':>7s}")
    for r in rows:
        ratio = f"{r['samples_per_s'] / base:.2f}x" if base else "-"
        print(f"{r['model']:18s} {r['batch_size']:5d} {r['samples_per_s']:10.1f} {r['peak_rss_mb']:12.0f} "
              f"{r['data_rss_mb']:12.0f} {ratio:>7s}  ({r['device']}, {r['threads']} threads, {r['settings']} settings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

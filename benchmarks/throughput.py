"""Training throughput and peak memory per model on MOSI-shaped synthetic data (full split size).

    python benchmarks/throughput.py                # every model, its default batch size
    python benchmarks/throughput.py --models tfn --batches 20

Each model runs in its own subprocess so peak RSS is per model. Prints samples/s, peak memory
and the throughput ratio to TFN — the project's performance record (no timed tests).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

BATCH = {"tfn": 32, "umdf": 128}


def measure(model_name: str, batch_size: int, n_batches: int, device: str) -> dict:
    import torch

    from msa_lib.data import make_synthetic
    from msa_lib.missing import parse_protocol
    from msa_lib.models import build_model
    from msa_lib.train import SplitTensors, resolve_device, seed_everything, task_loss, training_views

    seed_everything(0)
    dev = resolve_device(device)
    data = make_synthetic("mosi", size=1.0, seed=0)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = build_model(model_name, data.dims).to(dev)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    train = SplitTensors(data["train"])
    gen = torch.Generator().manual_seed(0)
    protocol = parse_protocol("mixed" if model.n_views > 1 else "frame:0.3:resample")
    model.train()

    def step(idx):
        batch = training_views(train.batch(idx), protocol, model.n_views, gen).to(dev)
        out = model(batch)
        loss = task_loss(out.prediction, batch) + sum(out.losses.values())
        optim.zero_grad()
        loss.backward()
        optim.step()

    order = torch.randperm(train.n, generator=gen)
    batches = [order[(i * batch_size) % (train.n - batch_size):][:batch_size] for i in range(n_batches + 2)]
    for idx in batches[:2]:  # warm-up
        step(idx)
    t0 = time.perf_counter()
    for idx in batches[2:]:
        step(idx)
    seconds = time.perf_counter() - t0
    return {"model": model_name, "batch_size": batch_size, "samples_per_s": n_batches * batch_size / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "data_rss_mb": rss_data,
            "threads": torch.get_num_threads(), "device": str(dev)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(BATCH))
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=None)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.batch_size or BATCH[args.child], args.batches, args.device)))
        return 0
    rows = []
    for name in args.models.split(","):
        cmd = [sys.executable, __file__, "--child", name, "--batches", str(args.batches), "--device", args.device]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = next((r["samples_per_s"] for r in rows if r["model"] == "tfn"), None)
    print(f"MOSI-shaped synthetic data (1284 train samples, T=50, dims 768/5/20), {args.batches} timed batches")
    print(f"{'model':8s} {'batch':>5s} {'samples/s':>10s} {'peak RSS MB':>12s} {'data RSS MB':>12s} {'vs TFN':>7s}")
    for r in rows:
        ratio = f"{r['samples_per_s'] / base:.2f}x" if base else "-"
        print(f"{r['model']:8s} {r['batch_size']:5d} {r['samples_per_s']:10.1f} {r['peak_rss_mb']:12.0f} "
              f"{r['data_rss_mb']:12.0f} {ratio:>7s}  ({r['device']}, {r['threads']} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

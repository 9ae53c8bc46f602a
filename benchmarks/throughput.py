"""Training and inference throughput, peak memory and FLOPs per model on synthetic data (full split size).

    python benchmarks/throughput.py                # every model and reading, the paper's MOSI settings
    python benchmarks/throughput.py --models umdf --rounds 5 --batches 2
    python benchmarks/throughput.py --models tfn,dar --min-seconds 2   # longer timings of fast models
    python benchmarks/throughput.py --dataset mosei --batch-size 32   # MOSEI-shaped (SDUMC's paper)
    python benchmarks/throughput.py --models mitr_dnet:teacher,mitr_dnet:student   # a chapter's readings
    python benchmarks/throughput.py --json throughput.json   # also write every row, machine-readable

Entries are the registry's models and ``model:reading`` for each reading a chapter names in its
``BENCHMARKS`` (model-config overrides; the last stage of that reading is timed), e.g. MITR-DNet's
frozen teacher and student. Each entry runs in its own subprocess (peak RSS per entry) under the
model's paper setting for the dataset from its chapter (MOSI's where a chapter has none for it) and
its chapter's training protocol, and measures:

* training samples/s of exactly the trainer's step (:meth:`msa_lib.train.Trainer.train_step`, with the
  model's own views, optimizers and loss weights);
* inference samples/s: the model in eval mode under ``torch.no_grad()``, its forward on test-split
  batches at ``eval_batch_size``, as :func:`msa_lib.train.predict` runs it;
* peak RSS (after the current path's warm-up: data + one training step + one inference batch; the
  process peak over every path is in the JSON) and the parameter count;
* FLOPs per training sample (one ``train_step``) and per inference sample (one forward), counted by
  ``torch.utils.flop_counter.FlopCounterMode`` plus formulas registered here for the CPU attention
  kernels and oneDNN LSTM layers it does not count (matmuls, convolutions, attention and LSTMs;
  elementwise work is not counted), and the achieved GFLOP/s (FLOPs/sample x samples/s).

Three paths are timed in one process, in interleaved rounds (``--rounds`` rounds; each round runs
the training steps of the reference path, then of the current path, then of the current path with
``TrainConfig.fused_adam=True``, all on the same batches, then the inference batches of the
reference and the current path, each phase after one untimed batch). A timing covers ``--batches``
batches, or more for a model whose warm-up batch took less than ``--min-seconds`` (so a 30 ms TFN
step is not timed alone). The reference path is the first implementation of each step:
UMDF's attention through ``nn.MultiheadAttention`` (:func:`mha_attention_block_forward`, the former
``AttentionBlock.forward``, swapped in) and unfused Adam; for a model whose step did not change the
two paths run the same code and their ratio (~1.0) shows the noise. Throughputs are medians with
min-max over rounds; ratios are medians of the per-round ratios (the paths of a round run back to
back, so load from other processes affects both). No timed tests: this is the performance record.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from typing import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from msa_lib.models.umdf import AttentionBlock


def mha_attention_block_forward(self: AttentionBlock, source: Tensor, target: Tensor, source_pad: Tensor) -> Tensor:
    """UMDF's ``AttentionBlock.forward`` as first written (the reference path): nn.MultiheadAttention."""
    # UMDF Eq. 7: CA(X_s, X_t) = softmax(X_t W_Q W_K^T X_s^T / sqrt(d_k)) X_s W_V (multi-head)
    x_st, _ = self.attn(target, source, source, key_padding_mask=source_pad, need_weights=False)
    # UMDF Eq. 7 (forward computation): X_t = LN(X_t + X_{s->t})
    return self.norm(target + self.drop(x_st))


@contextmanager
def reference_path() -> Iterator[None]:
    """Run every step the speed work changed in its first implementation."""
    current = AttentionBlock.forward
    AttentionBlock.forward = mha_attention_block_forward
    try:
        yield
    finally:
        AttentionBlock.forward = current


# ----------------------------------------------------------------------------------------------
# FLOPs of the kernels torch.utils.flop_counter does not count
# ----------------------------------------------------------------------------------------------


def _cpu_attention_flops(query: tuple, key: tuple, value: tuple, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward_flops(grad_out: tuple, query: tuple, key: tuple, value: tuple, *args,
                                  out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


def _lstm_layer_flops(input: tuple, w_ih: tuple, w_hh: tuple) -> int:
    """One direction of one LSTM layer: the input and recurrent matmuls of every step, 2 FLOPs/MAC."""
    frames = input[0] * input[1]  # T x B, in either layout
    gates, n_in = w_ih
    return 2 * frames * gates * (n_in + w_hh[1])


def _lstm_forward_flops(input: tuple, w_ih: tuple, w_hh: tuple, *args, out_shape=None, **kwargs) -> int:
    return _lstm_layer_flops(input, w_ih, w_hh)


def _lstm_backward_flops(input: tuple, w_ih: tuple, w_hh: tuple, *args, out_shape=None, **kwargs) -> int:
    return 2 * _lstm_layer_flops(input, w_ih, w_hh)  # gradients of the inputs and of the weights


FLOP_FORMULAS: dict = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flops,
    torch.ops.aten.mkldnn_rnn_layer: _lstm_forward_flops,
    torch.ops.aten.mkldnn_rnn_layer_backward: _lstm_backward_flops,
}


def count_flops(run: Callable[[], object]) -> int:
    with FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as counter:
        run()
    return counter.get_total_flops()


# ----------------------------------------------------------------------------------------------
# one entry (child process)
# ----------------------------------------------------------------------------------------------


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "rounds": values}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(entry: str, n_batches: int, rounds: int, device: str, batch_size: int | None,
            dataset: str = "mosi", min_seconds: float = 0.0) -> dict:
    from msa_lib.chapters import chapter_of_model
    from msa_lib.data import make_synthetic
    from msa_lib.experiments import get_profile
    from msa_lib.models import build_model
    from msa_lib.train import SplitTensors, TrainConfig, Trainer, seed_everything

    seed_everything(0)
    data = make_synthetic(dataset, size=1.0, seed=0)
    rss_data = rss_mb()
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
    initial = build_model(model_name, data.dims, model_cfg)
    # the model's paper training distribution (its chapter's TRAIN_PROTOCOLS); complete data is
    # timed with a per-batch frame drop so two-view models see a masked view
    protocol = getattr(chapter, "TRAIN_PROTOCOLS", {}).get(model_name, "complete")
    protocol = "frame:0.3:resample" if protocol == "complete" else protocol

    def trainer(fused: bool) -> Trainer:
        model = copy.deepcopy(initial)  # every path starts from the same weights
        config = TrainConfig.from_dict({**train_cfg, "device": device, "progress": False, "fused_adam": fused})
        out = Trainer(model, data, config, train_protocol=protocol, seed=0)
        out.start_stage(model.stages(config)[-1])
        return out

    paths = {"reference": trainer(False), "current": trainer(False), "fused": trainer(True)}
    current = paths["current"]
    train, test = SplitTensors(data["train"]), SplitTensors(data["test"])
    bs = current.config.batch_size
    ebs = min(current.config.eval_batch_size, test.n)
    order = torch.randperm(train.n, generator=torch.Generator().manual_seed(0))

    def train_batches(n: int) -> list[Tensor]:
        return [order[(i * bs) % (train.n - bs):][:bs] for i in range(n)]

    def eval_batches_of(n: int) -> list[Tensor]:
        return [torch.arange(test.n)[(i * ebs) % (test.n - ebs + 1):][:ebs] for i in range(n)]

    def train_seconds(t: Trainer, idx_list: list[Tensor]) -> float:
        t.train_mode()
        start = time.perf_counter()
        for idx in idx_list:
            t.train_step(train.batch(idx, train))
        return time.perf_counter() - start

    def infer_seconds(t: Trainer, idx_list: list[Tensor]) -> float:
        t.model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            for idx in idx_list:
                t.model(test.batch(idx).to(t.device))
        return time.perf_counter() - start

    def run(path: str, timer: Callable[[Trainer, list[Tensor]], float], idx_list: list[Tensor]) -> float:
        if path == "reference":
            with reference_path():
                return timer(paths[path], idx_list)
        return timer(paths[path], idx_list)

    # warm-up: one step and one inference batch per path (the current path first: its peak RSS);
    # each timing then runs --batches batches, more if the current path's took under min_seconds
    step_s = run("current", train_seconds, train_batches(1))
    batch_s = run("current", infer_seconds, eval_batches_of(1))
    rss_current = rss_mb()
    for path in ("reference", "fused"):
        run(path, train_seconds, train_batches(1))
    run("reference", infer_seconds, eval_batches_of(1))
    batches = train_batches(max(n_batches, math.ceil(min_seconds / step_s)))
    eval_batches = eval_batches_of(max(n_batches, math.ceil(min_seconds / batch_s)))
    train_sps: dict[str, list[float]] = {p: [] for p in paths}
    infer_sps: dict[str, list[float]] = {"reference": [], "current": []}
    n_eval = sum(len(i) for i in eval_batches)
    for _ in range(rounds):
        # an untimed batch first: the first batch after switching between training and inference
        # runs slower (whatever path it belongs to), which would bias the ratios
        run("reference", train_seconds, batches[-1:])
        for path in paths:
            train_sps[path].append(len(batches) * bs / run(path, train_seconds, batches))
        run("reference", infer_seconds, eval_batches[-1:])
        for path in infer_sps:
            infer_sps[path].append(n_eval / run(path, infer_seconds, eval_batches))

    current.train_mode()
    train_flops = count_flops(lambda: current.train_step(train.batch(batches[0], train))) / bs
    current.model.eval()
    # counted with autograd on: the forward runs the same ops, and FlopCounterMode's module tracker
    # fails on parameter slices taken under no_grad (SDUMC's queries)
    infer_flops = count_flops(lambda: current.model(test.batch(eval_batches[0]).to(current.device))) / ebs

    def ratio(a: list[float], b: list[float]) -> dict:
        return spread([x / y for x, y in zip(a, b)])

    return {
        "model": entry, "settings": row, "dataset": dataset, "batch_size": bs, "eval_batch_size": ebs,
        "protocol": protocol, "train_batches": len(batches), "eval_batches": len(eval_batches), "rounds": rounds,
        "train_samples_per_s": spread(train_sps["current"]),
        "train_samples_per_s_reference": spread(train_sps["reference"]),
        "train_samples_per_s_fused_adam": spread(train_sps["fused"]),
        "train_ratio_current_reference": ratio(train_sps["current"], train_sps["reference"]),
        "train_ratio_fused_unfused": ratio(train_sps["fused"], train_sps["current"]),
        "infer_samples_per_s": spread(infer_sps["current"]),
        "infer_samples_per_s_reference": spread(infer_sps["reference"]),
        "infer_ratio_current_reference": ratio(infer_sps["current"], infer_sps["reference"]),
        "parameters": sum(p.numel() for p in initial.parameters()),
        "train_flops_per_sample": train_flops, "infer_flops_per_sample": infer_flops,
        "train_gflops_per_s": train_flops * statistics.median(train_sps["current"]) / 1e9,
        "infer_gflops_per_s": infer_flops * statistics.median(infer_sps["current"]) / 1e9,
        "peak_rss_mb": rss_current, "process_peak_rss_mb": rss_mb(), "data_rss_mb": rss_data,
        "threads": torch.get_num_threads(), "device": str(current.device),
    }


# ----------------------------------------------------------------------------------------------
# the table (parent process)
# ----------------------------------------------------------------------------------------------


def fmt(s: dict, digits: int = 1) -> str:
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def print_tables(rows: list[dict], args: argparse.Namespace) -> None:
    base = next((r["train_samples_per_s"]["median"] for r in rows if r["model"] == "tfn"), None)
    r0 = rows[0] if rows else {"threads": torch.get_num_threads(), "device": args.device}
    print(f"{args.dataset.upper()}-shaped synthetic data (full size, paper settings from each chapter), {args.rounds} "
          f"interleaved rounds, each timing >= {args.batches} batches and >= {args.min_seconds:g} s; {r0['device']}, "
          f"{r0['threads']} threads; median [min-max] over rounds")
    print("\nTraining (Trainer.train_step), samples/s: current, reference path (first implementation), "
          "current with fused Adam")
    print(f"{'model':19s} {'batch':>5s} {'steps':>5s} {'current':>23s} {'reference':>23s} {'cur/ref':>18s} "
          f"{'fused Adam':>23s} {'fused/unfused':>18s} {'vs TFN':>7s}")
    for r in rows:
        vs = f"{r['train_samples_per_s']['median'] / base:.2f}x" if base else "-"
        print(f"{r['model']:19s} {r['batch_size']:5d} {r['train_batches']:5d} {fmt(r['train_samples_per_s']):>23s} "
              f"{fmt(r['train_samples_per_s_reference']):>23s} {fmt(r['train_ratio_current_reference'], 2):>18s} "
              f"{fmt(r['train_samples_per_s_fused_adam']):>23s} {fmt(r['train_ratio_fused_unfused'], 2):>18s} {vs:>7s}")
    print("\nInference (eval, no_grad, test split at eval_batch_size), memory and FLOPs (current path)")
    print(f"{'model':19s} {'batch':>5s} {'n':>5s} {'infer samples/s':>23s} {'cur/ref':>18s} {'params':>10s} "
          f"{'peak RSS MB':>11s} {'data RSS MB':>11s} {'MFLOP/train':>11s} {'GFLOP/s':>8s} "
          f"{'MFLOP/infer':>11s} {'GFLOP/s':>8s}")
    for r in rows:
        print(f"{r['model']:19s} {r['eval_batch_size']:5d} {r['eval_batches']:5d} {fmt(r['infer_samples_per_s']):>23s} "
              f"{fmt(r['infer_ratio_current_reference'], 2):>18s} {r['parameters']:10d} {r['peak_rss_mb']:11.0f} "
              f"{r['data_rss_mb']:11.0f} {r['train_flops_per_sample'] / 1e6:11.1f} {r['train_gflops_per_s']:8.2f} "
              f"{r['infer_flops_per_sample'] / 1e6:11.1f} {r['infer_gflops_per_s']:8.2f}")


def machine() -> dict:
    return {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "date": datetime.now().isoformat(timespec="seconds")}


def main() -> int:
    from msa_lib.chapters import chapter_of_model
    from msa_lib.models import MODELS

    entries = [e for m in MODELS for e in [m, *(f"{m}:{r}" for r in getattr(chapter_of_model(m), "BENCHMARKS", {}))]]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(entries), help="comma-separated entries (default: all)")
    p.add_argument("--batches", type=int, default=1,
                   help="training steps (and inference batches) per path and round, at least")
    p.add_argument("--min-seconds", type=float, default=0.5,
                   help="more batches per timing for a model whose warm-up batch took less than this")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median, min-max over them)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=None, help="override the paper's batch size")
    p.add_argument("--dataset", default="mosi", help="synthetic preset whose shapes are timed (mosi, mosei, sims)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the rows and the machine as JSON")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.batches < 1 or args.rounds < 1:
        p.error("--batches and --rounds must be >= 1")
    if args.child:
        print(json.dumps(measure(args.child, args.batches, args.rounds, args.device, args.batch_size, args.dataset,
                                 args.min_seconds)))
        return 0
    rows = []
    for name in args.models.split(","):
        cmd = [sys.executable, __file__, "--child", name, "--batches", str(args.batches), "--rounds", str(args.rounds),
               "--min-seconds", str(args.min_seconds), "--device", args.device, "--dataset", args.dataset]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print_tables(rows, args)
    if args.json:
        with open(args.json, "w") as f:
            settings = {k: v for k, v in vars(args).items() if k != "child"}
            json.dump({"machine": machine(), "settings": settings, "rows": rows}, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0 if len(rows) == len(args.models.split(",")) else 1


if __name__ == "__main__":
    sys.exit(main())

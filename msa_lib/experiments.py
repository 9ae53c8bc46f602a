"""Runs and grids: train a model under one protocol, evaluate it under many, store the result.

Two evaluation designs, named in every table:

* ``per_rate``   — EMT-DLFR / TFR-Net / MITR: a model is trained *and* tested at each missing
                   rate (``frame:P`` fixed masks), usually with 3 seeds;
* ``train_once`` — LNLN / DAR / UMDF curves: one model per seed, tested at every rate / subset.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from tqdm import tqdm

from .data import PRESETS, MSADataset, load_dataset
from .missing import FRAME_RATES, SUBSETS
from .models import build_model
from .results import ResultsStore, RunSpec
from .train import Trainer, TrainConfig, evaluate, resolve_device


@dataclass(frozen=True)
class Profile:
    """How much compute a notebook spends: ``smoke`` (seconds, what nbval replays), ``book``
    (what ``make book`` renders), ``paper`` (full split sizes and the papers' epochs).

    ``train_samples`` sets the synthetic split sizes (the real ratios kept; real data is always
    used whole); ``epochs=None`` means the paper's own epoch count; ``seeds`` is the default seed
    list of a notebook whose ``seeds`` parameter is left empty.
    """

    name: str
    train_samples: int | None
    epochs: int | None
    patience: int
    seeds: str

    def size_for(self, dataset: str) -> float:
        """Synthetic size factor giving about ``train_samples`` training samples."""
        if self.train_samples is None:
            return 1.0
        preset = dataset.partition(":")[2]
        if preset not in PRESETS:
            raise ValueError(f"dataset {dataset!r} is not a synthetic preset; choose one of "
                             f"{['synthetic:' + p for p in PRESETS]}")
        return min(1.0, self.train_samples / PRESETS[preset].split_sizes[0])

    def epochs_or(self, paper_epochs: int) -> int:
        return paper_epochs if self.epochs is None else self.epochs


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", train_samples=48, epochs=2, patience=2, seeds="1,2"),
    "book": Profile("book", train_samples=320, epochs=10, patience=4, seeds="1,2"),
    "paper": Profile("paper", train_samples=None, epochs=None, patience=10, seeds="1,2,3,4,5"),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def frame_protocols(rates: Iterable[float] = FRAME_RATES) -> tuple[str, ...]:
    return tuple(f"frame:{r:g}" for r in rates)


def subset_protocols() -> tuple[str, ...]:
    return tuple(f"modality:{s}" for s in SUBSETS)


def per_rate_specs(model: str, dataset: str, rates: Iterable[float], seeds: Iterable[int], **common) -> list[RunSpec]:
    """Per-rate design: one run per (rate, seed), trained and tested at that rate (fixed masks)."""
    return [RunSpec(model=model, dataset=dataset, seed=s, train_protocol=f"frame:{r:g}",
                    eval_protocols=(f"frame:{r:g}",), design="per_rate", **common)
            for r in rates for s in seeds]


def train_once_specs(model: str, dataset: str, seeds: Iterable[int], train_protocol: str,
                     eval_protocols: Iterable[str], **common) -> list[RunSpec]:
    """Train-once design: one run per seed, tested under every protocol in ``eval_protocols``."""
    return [RunSpec(model=model, dataset=dataset, seed=s, train_protocol=train_protocol,
                    eval_protocols=tuple(eval_protocols), design="train_once", **common) for s in seeds]


#: Everything a UMDF chapter evaluates: complete, frame rates 0.0-1.0, the seven subsets, and the
#: Fig. 6 condition (language only, p = 0.5), whose representations are stored for t-SNE / UMAP.
UMDF_TSNE_PROTOCOL = "modality:l+frame:0.5"
UMDF_EVALS: tuple[str, ...] = ("complete",) + frame_protocols() + subset_protocols() + (UMDF_TSNE_PROTOCOL,)
#: Table 3 / Fig. 5 ablations as config switches.
UMDF_VARIANTS: dict[str, dict] = {
    "UMDF": {},
    "UMDF w/o L_fea": {"use_fea_distill": False},
    "UMDF w/o L_logits": {"use_logit_distill": False},
    "UMDF w/o MCIM": {"mcim": "self"},
    "UMDF w/o DFIM": {"dfim": False},
}


def umdf_specs(dataset: str, data_path: str | None, profile: Profile, seeds: Iterable[int],
               variants: Iterable[str] = ("UMDF",), with_tfn: bool = True) -> list[RunSpec]:
    """The UMDF chapter's runs on one dataset. Every UMDF notebook builds its specs here, so the
    same run (same key) is shared by the notebooks through the results store.

    UMDF variants train once on the ``mixed`` protocol (two heterogeneous missing versions per
    sample, drawn from frame- and modality-level missingness); TFN, the complete-modality contrast,
    trains on complete data. Both are tested under :data:`UMDF_EVALS`.
    """
    from .models.umdf import umdf_setup

    name = dataset.partition(":")[2] or dataset
    opts = data_options(dataset, data_path, profile)
    seeds = list(seeds)
    model_cfg, train_cfg = umdf_setup(name, profile.name, profile.epochs, profile.patience)
    specs = []
    for variant in variants:
        specs += train_once_specs("umdf", dataset, seeds, "mixed", UMDF_EVALS, label=variant,
                                  model_config={**model_cfg, **UMDF_VARIANTS[variant]}, train_config=train_cfg,
                                  data_options=opts, save_outputs=(UMDF_TSNE_PROTOCOL,))
    if with_tfn:
        specs += train_once_specs("tfn", dataset, seeds, "complete", UMDF_EVALS, label="TFN (complete-trained)",
                                  train_config={"epochs": profile.epochs_or(20), "patience": profile.patience},
                                  data_options=opts, save_outputs=(UMDF_TSNE_PROTOCOL,))
    return specs


def run_one(spec: RunSpec, dataset: MSADataset, device: str = "auto", progress: bool = True,
            store: ResultsStore | None = None) -> dict:
    """Train and evaluate one run; returns the record (and writes it when ``store`` is given)."""
    train_cfg = TrainConfig.from_dict({**spec.train_config, "device": device, "progress": progress})
    torch.manual_seed(spec.seed)  # model initialisation depends on the run's seed only
    model = build_model(spec.model, dataset.dims, spec.model_config,
                        n_classes=len(dataset.class_names) if dataset.task == "classification" else None)
    t0 = time.perf_counter()
    trainer = Trainer(model, dataset, train_cfg, train_protocol=spec.train_protocol, seed=spec.seed)
    history = trainer.fit()
    train_seconds = time.perf_counter() - t0
    dev = resolve_device(device)
    metrics = {}
    for protocol in spec.eval_protocols:
        m, outputs = evaluate(model, dataset, protocol, "test", mask_seed=train_cfg.mask_seed,
                              batch_size=train_cfg.eval_batch_size, device=dev, return_outputs=True)
        metrics[protocol] = m
        if store is not None and protocol in spec.save_outputs:
            split = dataset["test"]
            target = split.labels if split.labels is not None else split.class_labels
            store.save_arrays(spec, protocol, {**outputs, "target": target})
    record = {
        "metrics": metrics,
        "valid": trainer.best_valid,
        "best_epoch": trainer.best_epoch,
        "history": history,
        "train_seconds": round(train_seconds, 2),
        "data_source": dataset.source,
        "n_samples": {k: len(v) for k, v in dataset.splits.items()},
        "torch": torch.__version__,
    }
    if store is not None:
        store.save(spec, record)
    return record


def run_grid(specs: list[RunSpec], store: ResultsStore, device: str = "auto", progress: bool = True,
             loader: Callable[[RunSpec], MSADataset] | None = None) -> list[dict]:
    """Run every spec not already in ``store`` (finished runs are skipped, never recomputed)."""
    loader = loader or load_for_spec
    cache: dict[str, MSADataset] = {}
    records = []
    todo = [s for s in specs if not store.has(s)]
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="runs", disable=not progress)
    for spec in specs:
        if store.has(spec):
            records.append(store.load(spec))
            continue
        data_key = f"{spec.dataset}|{sorted(spec.data_options.items())}"
        if data_key not in cache:
            cache.clear()  # hold one dataset in memory at a time
            cache[data_key] = loader(spec)
        run_one(spec, cache[data_key], device=device, progress=progress, store=store)
        records.append(store.load(spec))
        bar.update(1)
    bar.close()
    return records


def load_for_spec(spec: RunSpec) -> MSADataset:
    """Load the dataset a spec names: ``data_options`` may hold ``data_path``, ``size`` and ``seed``."""
    return load_dataset(spec.dataset, **spec.data_options)


def data_options(dataset: str, data_path: str | None, profile: Profile, seed: int = 0) -> dict:
    """What identifies the data of a run: the file, or the synthetic preset's size and seed.
    ``load_dataset(dataset, **data_options(...))`` loads it."""
    if data_path:
        return {"data_path": str(data_path)}
    return {"size": round(profile.size_for(dataset), 6), "seed": seed}


__all__ = ["PROFILES", "Profile", "data_options", "frame_protocols", "get_profile", "load_for_spec",
           "per_rate_specs", "run_grid", "run_one", "subset_protocols", "train_once_specs"]

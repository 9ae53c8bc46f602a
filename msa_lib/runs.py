"""Train and evaluate runs into a :class:`~msa_lib.results.ResultsStore`.

:func:`run_grid` trains each spec whose weights are not stored yet, and evaluates each stored run
under the protocols it has not been evaluated under yet (from the stored weights: adding an
evaluation protocol never retrains). A grid killed at any point resumes where it stopped.
"""
from __future__ import annotations

import time
from typing import Callable

import torch
from tqdm import tqdm

from .core import quiet
from .data import MSADataset, load_dataset
from .models import MSAModel, build_model
from .results import ResultsStore, RunSpec
from .train import Trainer, TrainConfig, evaluate, resolve_device

__all__ = ["build_for_spec", "evaluate_run", "load_for_spec", "run_grid", "run_one", "split_metrics", "stored_model"]


def build_for_spec(spec: RunSpec, dataset: MSADataset) -> MSAModel:
    """A freshly initialised model of ``spec`` for ``dataset`` (initialisation seeded by the run's seed)."""
    torch.manual_seed(spec.seed)  # model initialisation depends on the run's seed only
    return build_model(spec.model, dataset.dims, spec.model_config,
                       n_classes=len(dataset.class_names) if dataset.task == "classification" else None)


def _train_config(spec: RunSpec, device: str, progress: bool) -> TrainConfig:
    return TrainConfig.from_dict({**spec.train_config, "device": device, "progress": progress})


def evaluate_run(spec: RunSpec, model: MSAModel, dataset: MSADataset, protocols: list[str] | tuple[str, ...],
                 device: str = "auto", store: ResultsStore | None = None) -> dict[str, dict]:
    """Metrics of a trained ``model`` on the test split under each protocol (fixed masks seeded by
    the train config's ``mask_seed``); with ``store``, each is saved, and the arrays of protocols in
    ``spec.save_outputs`` too."""
    cfg = _train_config(spec, device, False)
    dev = resolve_device(device)
    model.to(dev)
    metrics = {}
    for protocol in protocols:
        m, outputs = evaluate(model, dataset, protocol, "test", mask_seed=cfg.mask_seed,
                              batch_size=cfg.eval_batch_size, device=dev, return_outputs=True)
        metrics[protocol] = m
        if store is not None:
            if protocol in spec.save_outputs:  # arrays before the metrics: an eval file means both are there
                split = dataset["test"]
                target = split.labels if split.labels is not None else split.class_labels
                store.save_arrays(spec, protocol, {**outputs, "target": target})
            store.save_eval(spec, protocol, m)
    return metrics


def data_provenance(dataset: MSADataset) -> dict:
    """What the loader found, kept in every run's record: file format and features, the padding
    side per split and modality, and how many non-finite values it replaced by 0."""
    return {"format": dataset.file_format, "features": dataset.describe_features(),
            "padding": dataset.padding, "replaced": dataset.replaced}


def run_one(spec: RunSpec, dataset: MSADataset, device: str = "auto", progress: bool = True,
            store: ResultsStore | None = None) -> dict:
    """Train one run and evaluate it under every protocol of ``spec``; returns the record (training
    record + ``metrics``). With ``store``, the best weights and training record are saved
    (``save_run``), then each evaluation. ``spec.init_from`` (a stored run's key, needs ``store``)
    initialises the model with that run's weights before training."""
    train_cfg = _train_config(spec, device, progress)
    model = build_for_spec(spec, dataset)
    if spec.init_from is not None:
        if store is None:
            raise ValueError(f"spec.init_from={spec.init_from!r} needs the results store holding that run")
        model.load_state_dict(store.load_weights(spec.init_from))
    t0 = time.perf_counter()
    trainer = Trainer(model, dataset, train_cfg, train_protocol=spec.train_protocol, seed=spec.seed)
    history = trainer.fit()  # restores the best (validation-selected) weights
    train_seconds = time.perf_counter() - t0
    record = {
        "valid": trainer.best_valid,
        "best_epoch": trainer.best_epoch,
        "health": trainer.health,
        "history": history,
        "train_seconds": round(train_seconds, 2),
        "data_source": dataset.source,
        "provenance": data_provenance(dataset),
        "n_samples": {k: len(v) for k, v in dataset.splits.items()},
        "torch": torch.__version__,
        "config_key": spec.config_key,
    }
    if store is not None:
        store.save_run(spec, record, model.state_dict())
    metrics = evaluate_run(spec, model, dataset, spec.eval_protocols, device=device, store=store)
    return {**record, "metrics": metrics}


def run_grid(specs: list[RunSpec], store: ResultsStore, device: str = "auto", progress: bool = True,
             loader: Callable[[RunSpec], MSADataset] | None = None) -> list[dict]:
    """Train every spec whose run is not stored, evaluate every stored run under the protocols it
    lacks (from its stored weights, without retraining), and return ``store.load(spec)`` per spec.
    Complete runs are skipped and load no data."""
    loader = loader or load_for_spec
    cache: dict[str, MSADataset] = {}

    def data_for(spec: RunSpec) -> MSADataset:
        data_key = f"{spec.dataset}|{sorted(spec.data_options.items())}"
        if data_key not in cache:
            cache.clear()  # hold one dataset in memory at a time
            cache[data_key] = loader(spec)
        return cache[data_key]

    records = []
    n_done = sum(store.is_complete(s) for s in specs)
    bar = tqdm(total=len(specs), initial=n_done, desc="runs", disable=quiet(progress))
    for spec in specs:
        if store.is_complete(spec):
            records.append(store.load(spec))
            continue
        if not store.has_run(spec):
            run_one(spec, data_for(spec), device=device, progress=progress, store=store)
        missing = store.missing_evals(spec)
        if missing:
            dataset = data_for(spec)
            evaluate_run(spec, stored_model(spec, store, dataset, device), dataset, missing, device=device, store=store)
        records.append(store.load(spec))
        bar.update(1)
    bar.close()
    return records


def stored_model(spec: RunSpec, store: ResultsStore, dataset: MSADataset, device: str = "auto") -> MSAModel:
    """The stored (validation-selected) weights of ``spec`` in a fresh model, in its final stage."""
    model = build_for_spec(spec, dataset)
    model.load_state_dict(store.load_weights(spec))
    model.stage = model.stages(_train_config(spec, device, False))[-1].name  # as after training
    return model.to(resolve_device(device))


def split_metrics(spec: RunSpec, store: ResultsStore, dataset: MSADataset, protocols: tuple[str, ...] | list[str],
                  split: str = "valid", device: str = "auto") -> dict[str, dict]:
    """Metrics of a stored run on ``split`` (default the *validation* split, what a choice between
    readings is made on; ``train`` shows what a model fits) under each protocol, with fixed masks
    seeded as the test's. Not stored."""
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid' (test metrics are stored by run_grid), got {split!r}")
    cfg = _train_config(spec, device, False)
    model = stored_model(spec, store, dataset, device)
    return {p: evaluate(model, dataset, p, split, mask_seed=cfg.mask_seed, batch_size=cfg.eval_batch_size,
                        device=resolve_device(device)) for p in protocols}


def load_for_spec(spec: RunSpec) -> MSADataset:
    """Load the dataset a spec names: ``data_options`` may hold ``data_path``, ``size`` and ``seed``."""
    return load_dataset(spec.dataset, **spec.data_options)

"""Train and evaluate runs into a :class:`~msa_lib.results.ResultsStore`.

:func:`run_grid` trains each spec whose weights are not stored yet, and evaluates each stored run
under the protocols it has not been evaluated under yet (from the stored weights: adding an
evaluation protocol never retrains). A grid killed at any point resumes where it stopped.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from tqdm import tqdm

from .core import quiet
from .data import MSADataset, load_dataset
from .models import MSAModel, build_model
from .results import ResultsStore, RunSpec
from .train import Trainer, TrainConfig, evaluate, resolve_device

__all__ = ["RayEngine", "SweepFailed", "build_for_spec", "data_key", "describe_spec", "evaluate_run", "finish_run",
           "init_ray", "load_for_spec", "run_grid", "run_one", "split_metrics", "stored_model"]


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
        "threads": torch.get_num_threads(),  # CPU float32 sums, hence the trained weights, depend on it
        "config_key": spec.config_key,
    }
    if store is not None:
        store.save_run(spec, record, model.state_dict())
    metrics = evaluate_run(spec, model, dataset, spec.eval_protocols, device=device, store=store)
    return {**record, "metrics": metrics}


def finish_run(spec: RunSpec, store: ResultsStore, data: Callable[[], MSADataset], device: str = "auto",
               progress: bool = True) -> None:
    """Bring one spec to complete in ``store``: train it if its weights are not stored, then
    evaluate it under the protocols it lacks (from the stored weights). ``data`` is called only
    when something has to run. Files a killed attempt left half-written are removed first."""
    store.clear_partial(spec)
    if not store.has_run(spec):
        run_one(spec, data(), device=device, progress=progress, store=store)
    missing = store.missing_evals(spec)
    if missing:
        dataset = data()
        evaluate_run(spec, stored_model(spec, store, dataset, device), dataset, missing, device=device, store=store)


class SweepFailed(RuntimeError):
    """Some runs of a grid failed; ``failures`` holds (spec, error text) per failed run. Every
    other run finished and is in the store."""

    def __init__(self, failures: list[tuple[RunSpec, str]], n_runs: int) -> None:
        self.failures = failures
        lines = "\n".join(f"  {describe_spec(s)}: {e.strip().splitlines()[-1] if e.strip() else e}"
                           for s, e in failures)
        super().__init__(f"{len(failures)} of {n_runs} runs failed (the others are stored):\n{lines}")


def describe_spec(spec: RunSpec) -> str:
    """One line naming a run: key, model, label, dataset, seed and training protocol."""
    label = f" '{spec.label}'" if spec.label and spec.label != spec.model else ""
    return (f"run {spec.key} ({spec.model}{label} on {spec.dataset}, seed {spec.seed}, "
            f"trained under {spec.train_protocol})")


@dataclass(frozen=True)
class RayEngine:
    """How :func:`run_grid` runs specs on Ray: each run one task declaring ``cpus_per_run`` CPUs
    (torch's thread count in the task) and ``gpus_per_run`` GPUs (Ray gives the task only those
    GPUs); a task whose worker dies (node lost, preempted, killed) is retried ``retries`` times.
    ``address`` None starts a local Ray instance with ``num_cpus`` CPUs (None: all of them);
    ``"auto"`` or ``"host:port"`` joins a running cluster, whose nodes must see the results store
    at the same path (a shared filesystem) and have msa_lib installed."""

    address: str | None = None
    num_cpus: int | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    retries: int = 3

    def __post_init__(self) -> None:
        if not self.cpus_per_run > 0 or self.gpus_per_run < 0 or self.retries < 0:
            raise ValueError(f"ray engine: cpus_per_run must be > 0, gpus_per_run >= 0 and retries >= 0; got "
                             f"{self.cpus_per_run}, {self.gpus_per_run}, {self.retries}")
        if self.num_cpus is not None and self.num_cpus < self.cpus_per_run:
            raise ValueError(f"ray engine: num_cpus={self.num_cpus} is fewer than cpus_per_run={self.cpus_per_run}; "
                             f"no run could start")


#: Environment variables a Ray worker needs from the driver (where the shared data copy is; quiet bars).
WORKER_ENV = ("MSA_BOOK_DATA", "TQDM_DISABLE")


def run_grid(specs: list[RunSpec], store: ResultsStore, device: str = "auto", progress: bool = True,
             loader: Callable[[RunSpec], MSADataset] | None = None, engine: "str | RayEngine" = "local",
             keep_going: bool = False) -> list[dict]:
    """Bring every spec to complete (train what is not stored; evaluate stored runs under the
    protocols they lack, from their weights) and return ``store.load(spec)`` per spec. Complete
    runs are skipped and load no data; a grid stopped at any point resumes where it stopped.

    ``engine``: ``"local"`` runs the specs one after another in this process; ``"ray"`` (or a
    :class:`RayEngine`) runs each as a Ray task, in parallel as resources allow; a run with
    ``init_from`` starts once that run is stored. ``loader`` is called once per dataset in either
    case (Ray workers receive the loaded data through Ray's object store, once per worker).
    ``keep_going``: a failed run is reported with its spec and the others go on; at the end
    :class:`SweepFailed` lists the failures. Without it the first failure is raised as is."""
    loader = loader or load_for_spec
    if engine == "ray":
        engine = RayEngine()
    if not isinstance(engine, RayEngine) and engine != "local":
        raise ValueError(f"unknown engine {engine!r}; choose 'local' or 'ray' (or a RayEngine)")
    n_runs = len({s.key for s in specs})
    todo = list({s.key: s for s in specs if not store.is_complete(s)}.values())  # each run once
    bar = tqdm(total=n_runs, initial=n_runs - len(todo), desc="runs", disable=quiet(progress))
    try:
        if isinstance(engine, RayEngine):
            failures = _run_on_ray(todo, store, device, loader, engine, keep_going, bar)
        else:
            failures = _run_locally(todo, store, device, progress, loader, keep_going, bar)
    finally:
        bar.close()
    if failures:
        raise SweepFailed(failures, n_runs)
    return [store.load(spec) for spec in specs]


def data_key(spec: RunSpec) -> str:
    """Which loaded dataset a spec trains on (its dataset name and data options)."""
    return f"{spec.dataset}|{sorted(spec.data_options.items())}"


def _report(bar: tqdm, failures: list, spec: RunSpec, error: str) -> None:
    failures.append((spec, error))
    tqdm.write(f"FAILED {describe_spec(spec)}:\n{error.rstrip()}", file=sys.stderr)
    bar.set_postfix(failed=len(failures))


def _run_locally(todo: list[RunSpec], store: ResultsStore, device: str, progress: bool,
                 loader: Callable[[RunSpec], MSADataset], keep_going: bool, bar: tqdm) -> list:
    cache: dict[str, MSADataset] = {}

    def data_for(spec: RunSpec) -> MSADataset:
        if data_key(spec) not in cache:
            cache.clear()  # hold one dataset in memory at a time
            cache[data_key(spec)] = loader(spec)
        return cache[data_key(spec)]

    failures: list[tuple[RunSpec, str]] = []
    for spec in todo:
        try:
            finish_run(spec, store, lambda: data_for(spec), device, progress)
        except Exception:
            if not keep_going:
                raise
            _report(bar, failures, spec, traceback.format_exc())
            continue
        bar.update(1)
    return failures


# -- the Ray engine -------------------------------------------------------------------------------

#: A Ray worker's datasets, by object id: loaded once per worker, not once per run.
_WORKER_DATA: dict[str, MSADataset] = {}


def _finish_in_worker(spec: RunSpec, root: str, data_ref: list, device: str, threads: int) -> str:
    """One Ray task: :func:`finish_run` with torch's threads set to the task's CPUs."""
    import ray

    torch.set_num_threads(threads)
    # the dataset's arrays are read-only views of Ray's shared memory (no copy per worker); the
    # trainer only gathers batches from them by index, which copies, so nothing writes to them
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    ref = data_ref[0]  # wrapped in a list so Ray does not fetch it before it is needed

    def data() -> MSADataset:
        if ref.hex() not in _WORKER_DATA:
            _WORKER_DATA.clear()
            _WORKER_DATA[ref.hex()] = ray.get(ref)
        return _WORKER_DATA[ref.hex()]

    finish_run(spec, ResultsStore(root), data, device, progress=False)
    return spec.key


def init_ray(engine: RayEngine) -> None:
    """Start (``address`` None) or join the Ray instance of ``engine``, unless one is running."""
    try:
        import ray
    except ImportError:
        raise ImportError("engine='ray' needs Ray: pip install 'msa_lib[ray]' (or pip install ray)") from None
    if ray.is_initialized():
        return
    env = {k: os.environ[k] for k in WORKER_ENV if k in os.environ}
    ray.init(address=engine.address, num_cpus=engine.num_cpus if engine.address is None else None,
             include_dashboard=False, log_to_driver=True, logging_level="WARNING",
             runtime_env={"env_vars": env} if env else None)


def _run_on_ray(todo: list[RunSpec], store: ResultsStore, device: str, loader: Callable[[RunSpec], MSADataset],
                engine: RayEngine, keep_going: bool, bar: tqdm) -> list:
    init_ray(engine)
    import ray

    task = ray.remote(_finish_in_worker).options(
        name="msa_run", num_cpus=engine.cpus_per_run, num_gpus=engine.gpus_per_run, max_retries=engine.retries,
        retry_exceptions=False)  # only a lost worker is retried; an error in the run is reported
    threads = max(1, int(engine.cpus_per_run))
    refs: dict[str, object] = {}  # data key -> object ref, the loader called once per dataset
    waiting = {s.key: s for s in todo}
    running: dict[object, RunSpec] = {}
    failed: set[str] = set()
    failures: list[tuple[RunSpec, str]] = []

    def blocked(spec: RunSpec) -> bool:  # its init_from run is still to come in this grid
        return spec.init_from is not None and (spec.init_from in waiting or
                                               any(s.key == spec.init_from for s in running.values()))

    try:
        while waiting or running:
            for key, spec in list(waiting.items()):
                if spec.init_from in failed:
                    del waiting[key]
                    failed.add(key)
                    _report(bar, failures, spec, f"not run: the run it starts from ({spec.init_from}) failed")
                elif not blocked(spec):
                    del waiting[key]
                    if data_key(spec) not in refs:
                        refs[data_key(spec)] = ray.put(loader(spec))
                    running[task.remote(spec, str(store.root), [refs[data_key(spec)]], device, threads)] = spec
            bar.set_postfix(running=len(running), failed=len(failures))
            if not running:  # every waiting run was dropped (its start failed)
                continue
            [done], _ = ray.wait(list(running), num_returns=1)
            spec = running.pop(done)
            try:
                ray.get(done)
            except Exception as exc:  # the run's own error (RayTaskError) or retries exhausted
                if not keep_going:
                    raise
                failed.add(spec.key)
                _report(bar, failures, spec, str(exc))
                continue
            bar.update(1)
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
    return failures


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

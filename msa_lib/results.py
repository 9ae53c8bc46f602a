"""Results store: one JSON per finished run (plus optional HDF5 arrays), written atomically.

A run is identified by the hash of its full specification (model, model config, training config,
dataset, data options, training protocol, evaluation protocols, seed). Re-running a grid skips
runs whose JSON exists, so a sweep killed at any point resumes and loses nothing: files are
written to a temporary name in the same folder and renamed into place (``os.replace``), so a
kill leaves either the complete file or nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pandas as pd

from .missing import parse_protocol


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's numbers. ``key`` hashes all of it."""

    model: str
    dataset: str
    seed: int
    train_protocol: str = "complete"
    eval_protocols: tuple[str, ...] = ("complete",)
    model_config: dict = field(default_factory=dict)
    train_config: dict = field(default_factory=dict)
    data_options: dict = field(default_factory=dict)
    design: str = "train_once"
    save_outputs: tuple[str, ...] = ()
    label: str = ""  # the name tables show (e.g. "UMDF w/o DFIM"); defaults to the model name

    def __post_init__(self) -> None:
        # canonical protocol names, so "modality:{l,a}" and "modality:la" are one run
        object.__setattr__(self, "train_protocol", parse_protocol(self.train_protocol).spec)
        object.__setattr__(self, "eval_protocols", tuple(parse_protocol(p).spec for p in self.eval_protocols))
        object.__setattr__(self, "save_outputs", tuple(parse_protocol(p).spec for p in self.save_outputs))
        unknown = set(self.save_outputs) - set(self.eval_protocols)
        if unknown:
            raise ValueError(f"save_outputs {sorted(unknown)} are not among eval_protocols {self.eval_protocols}")
        if self.design not in ("train_once", "per_rate"):
            raise ValueError(f"design must be 'train_once' or 'per_rate', got {self.design!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["eval_protocols"] = list(self.eval_protocols)
        d["save_outputs"] = list(self.save_outputs)
        return d

    @property
    def key(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __hash__(self) -> int:
        # the generated frozen-dataclass hash fails on the dict fields; equal specs share a key
        return hash(self.key)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ResultsStore:
    """A folder of finished runs: ``<root>/<model>/<key>.json`` and ``<key>.<name>.h5``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, spec: RunSpec, suffix: str = ".json") -> Path:
        return self.root / spec.model / f"{spec.key}{suffix}"

    def has(self, spec: RunSpec) -> bool:
        return self.path(spec).exists()

    def save(self, spec: RunSpec, record: dict) -> Path:
        target = self.path(spec)
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps({"key": spec.key, "spec": spec.to_dict(), **record}, indent=1,
                                      default=_json_default))
        return target

    def load(self, spec: RunSpec) -> dict:
        return json.loads(self.path(spec).read_text())

    def save_arrays(self, spec: RunSpec, name: str, arrays: dict[str, np.ndarray]) -> Path:
        """Predictions / representations of one evaluation, as HDF5 datasets (atomic)."""
        target = self.path(spec, f".{_safe(name)}.h5")
        with atomic_path(target) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["run_key"] = spec.key
                f.attrs["protocol"] = name
                for k, v in arrays.items():
                    f.create_dataset(k, data=np.asarray(v))
        return target

    def load_arrays(self, spec: RunSpec, name: str) -> dict[str, np.ndarray]:
        with h5py.File(self.path(spec, f".{_safe(name)}.h5"), "r") as f:
            return {k: f[k][()] for k in f.keys()}

    def records(self, model: str | None = None) -> list[dict]:
        pattern = f"{model}/*.json" if model else "*/*.json"
        return [json.loads(p.read_text()) for p in sorted(self.root.glob(pattern))]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def tidy(records: list[dict]) -> pd.DataFrame:
    """One row per run × evaluation protocol × metric (columns: model, dataset, design, train_protocol,
    protocol, seed, metric, value; ``variant`` is the spec's label, or the model name)."""
    rows = []
    for r in records:
        s = r["spec"]
        for protocol, metrics in r["metrics"].items():
            for metric, value in metrics.items():
                rows.append({"model": s["model"], "variant": s.get("label") or s["model"], "dataset": s["dataset"],
                             "design": s["design"], "train_protocol": s["train_protocol"], "protocol": protocol,
                             "seed": s["seed"], "metric": metric, "value": value})
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, by: tuple[str, ...] = ("variant", "design", "protocol", "metric")) -> pd.DataFrame:
    """Mean, std and number of seeds per group."""
    g = df.groupby(list(by), sort=False)["value"]
    out = g.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out

"""Results store v2: runs identified by what determines their weights, and keeping those weights.

A run's ``key`` hashes only what fixes its trained weights: model, model config, training config,
the data's *content* (:func:`msa_lib.data.identity.data_identity`: file hashes, not paths),
training protocol, seed and ``init_from``. Display labels, evaluation protocols, saved outputs and
the design are not part of it, so renaming a variant or adding an evaluation protocol reuses the
trained run, and overwriting a data file at the same path gives new runs.

Layout (``LAYOUT`` at the root holds ``msa_lib results v2``)::

    <root>/<model>/<key>/run.json                 spec + training record (valid metrics, history, ...)
    <root>/<model>/<key>/weights.pt               best (validation-selected) state_dict
    <root>/<model>/<key>/eval/<protocol>.json     {"protocol": ..., "metrics": {...}}
    <root>/<model>/<key>/outputs/<protocol>.h5    predictions / representations (HDF5)

Every file is written to a temporary name in its folder and renamed into place (``os.replace``),
so a kill leaves the complete file or nothing; weights are written before ``run.json``, so a
``run.json`` means a finished run. This module imports neither torch nor the models at import time.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pandas as pd

from .data.identity import data_identity

LAYOUT_NAME = "LAYOUT"
LAYOUT_TEXT = "msa_lib results v2"
_KEY_RE = re.compile(r"^[0-9a-f]{16}$")
#: training-config entries that never change the weights (run_one overrides them anyway)
_NOT_WEIGHTS = ("device", "progress")


class ResultsLayoutError(ValueError):
    """The results folder was written in another layout (an older msa_lib)."""


@dataclass(frozen=True)
class RunSpec:
    """One run: what it trains (hashed into ``key``) and what is done with it (not hashed)."""

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
    init_from: str | None = None  # key of a stored run whose weights initialise this one

    def __post_init__(self) -> None:
        from .missing import parse_protocol  # imports torch: only when a spec is made

        # canonical protocol names, so "modality:{l,a}" and "modality:la" are one run
        object.__setattr__(self, "train_protocol", parse_protocol(self.train_protocol).spec)
        object.__setattr__(self, "eval_protocols", tuple(parse_protocol(p).spec for p in self.eval_protocols))
        object.__setattr__(self, "save_outputs", tuple(parse_protocol(p).spec for p in self.save_outputs))
        unknown = set(self.save_outputs) - set(self.eval_protocols)
        if unknown:
            raise ValueError(f"save_outputs {sorted(unknown)} are not among eval_protocols {self.eval_protocols}")
        if self.design not in ("train_once", "per_rate"):
            raise ValueError(f"design must be 'train_once' or 'per_rate', got {self.design!r}")
        if self.init_from is not None and not (isinstance(self.init_from, str) and _KEY_RE.match(self.init_from)):
            raise ValueError(f"init_from must be the key of a stored run (16 hex digits), got {self.init_from!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        """The spec of ``to_dict`` output (e.g. a stored ``run.json``'s ``spec``)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown RunSpec field(s) {unknown}; valid: {sorted(names)}")
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["eval_protocols"] = list(self.eval_protocols)
        d["save_outputs"] = list(self.save_outputs)
        return d

    def weights_identity(self, with_seed: bool = True) -> dict:
        """Everything that determines the trained weights (what ``key`` hashes)."""
        ident = {
            "model": self.model,
            "model_config": self.model_config,
            "train_config": {k: v for k, v in self.train_config.items() if k not in _NOT_WEIGHTS},
            "data": data_identity(self.dataset, self.data_options),
            "train_protocol": self.train_protocol,
            "init_from": self.init_from,
        }
        if with_seed:
            ident["seed"] = self.seed
        return ident

    @property
    def key(self) -> str:
        """16 hex digits identifying the trained weights (reads the data files' cached hashes)."""
        return _digest(self.weights_identity())

    @property
    def config_key(self) -> str:
        """``key`` without the seed: the runs of one configuration share it."""
        return _digest(self.weights_identity(with_seed=False))

    def __hash__(self) -> int:
        # the generated frozen-dataclass hash fails on the dict fields; hash the fields' content
        # (not ``key``, which reads the data files and may change while the spec is in a set)
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
    """A folder of runs (layout v2, see the module doc). Old-layout folders are refused."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        layout = self.root / LAYOUT_NAME
        if layout.exists():
            text = layout.read_text().strip()
            if text != LAYOUT_TEXT:
                raise ResultsLayoutError(f"results folder {self.root} has layout {text!r}, but this msa_lib reads "
                                         f"{LAYOUT_TEXT!r}; delete the folder or pick another results folder")
        else:
            old = [p for p in self.root.glob("*/*.json") if _KEY_RE.match(p.stem)]
            if old:
                raise ResultsLayoutError(
                    f"results folder {self.root} was written by an older msa_lib (runs stored as "
                    f"<model>/<key>.json, e.g. {old[0].relative_to(self.root)}, without weights). Results of "
                    f"the two layouts are not mixed: delete the folder, or pick another results folder, and "
                    f"the runs are rebuilt there.")
            with atomic_path(layout) as tmp:
                tmp.write_text(LAYOUT_TEXT + "\n")

    # -- paths ---------------------------------------------------------------------------------

    def _dir(self, spec: RunSpec) -> Path:
        return self.root / spec.model / spec.key

    def run_dir(self, key_or_spec: "str | RunSpec") -> Path:
        """The folder of a stored run, looked up by key across models; ``KeyError`` if none."""
        if isinstance(key_or_spec, RunSpec):
            key = key_or_spec.key
            d = self.root / key_or_spec.model / key
            if (d / "run.json").exists():
                return d
        else:
            key = str(key_or_spec)
            if _KEY_RE.match(key):
                for d in sorted(self.root.glob(f"*/{key}")):
                    if (d / "run.json").exists():
                        return d
        raise KeyError(f"no run with key {key!r} in results store {self.root}")

    def eval_path(self, spec: RunSpec, protocol: str) -> Path:
        return self._dir(spec) / "eval" / f"{_safe(_canonical(protocol))}.json"

    def outputs_path(self, spec: RunSpec, protocol: str) -> Path:
        return self._dir(spec) / "outputs" / f"{_safe(_canonical(protocol))}.h5"

    # -- state ---------------------------------------------------------------------------------

    def has_run(self, spec: RunSpec) -> bool:
        """The run is trained and its weights stored."""
        return (self._dir(spec) / "run.json").exists()

    def missing_evals(self, spec: RunSpec) -> list[str]:
        """Evaluation protocols of ``spec`` not evaluated yet, and ``save_outputs`` protocols whose
        arrays are missing (each once, in ``eval_protocols`` order)."""
        return [p for p in spec.eval_protocols
                if not self.eval_path(spec, p).exists()
                or (p in spec.save_outputs and not self.outputs_path(spec, p).exists())]

    def is_complete(self, spec: RunSpec) -> bool:
        return self.has_run(spec) and not self.missing_evals(spec)

    # -- writing -------------------------------------------------------------------------------

    def clear_partial(self, spec: RunSpec) -> list[Path]:
        """Remove the temporary files a killed writer of ``spec`` left in its folder (a kill
        between writing and renaming; finished files are never touched). Returns what was removed."""
        d = self._dir(spec)
        stale = [p for p in d.rglob(".*.tmp") if p.is_file()] if d.exists() else []
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def save_run(self, spec: RunSpec, record: dict, state_dict: dict) -> Path:
        """Store a trained run: ``weights.pt`` first, then ``run.json`` (which marks it finished)."""
        import torch

        if "metrics" in record:
            raise ValueError("save_run stores the training record; save evaluation metrics with save_eval")
        d = self._dir(spec)
        doc = {**record, "key": spec.key, "config_key": spec.config_key, "spec": spec.to_dict(),
               "data": data_identity(spec.dataset, spec.data_options)}
        text = json.dumps(doc, indent=1, default=_json_default)  # fails before anything is written
        weights = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in state_dict.items()}
        with atomic_path(d / "weights.pt") as tmp:
            torch.save(weights, tmp)
        with atomic_path(d / "run.json") as tmp:
            tmp.write_text(text)
        return d

    def _require_run(self, spec: RunSpec) -> None:
        if not self.has_run(spec):
            raise KeyError(f"run {spec.key} ({spec.model}, seed {spec.seed}) is not in results store {self.root}; "
                           f"store it with save_run first")

    def save_eval(self, spec: RunSpec, protocol: str, metrics: dict) -> Path:
        """Store the metrics of the run under one evaluation protocol."""
        self._require_run(spec)
        protocol = _canonical(protocol)
        target = self.eval_path(spec, protocol)
        text = json.dumps({"protocol": protocol, "metrics": metrics}, indent=1, default=_json_default)
        with atomic_path(target) as tmp:
            tmp.write_text(text)
        return target

    def save_arrays(self, spec: RunSpec, protocol: str, arrays: dict[str, np.ndarray]) -> Path:
        """Predictions / representations of one evaluation, as HDF5 datasets (atomic)."""
        protocol = _canonical(protocol)
        target = self.outputs_path(spec, protocol)
        with atomic_path(target) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["run_key"] = spec.key
                f.attrs["protocol"] = protocol
                for k, v in arrays.items():
                    f.create_dataset(k, data=np.asarray(v))
        return target

    # -- reading -------------------------------------------------------------------------------

    def load_weights(self, key_or_spec: "str | RunSpec") -> dict:
        """The run's best ``state_dict`` on CPU (``torch.load(..., weights_only=True)``)."""
        import torch

        path = self.run_dir(key_or_spec) / "weights.pt"
        return torch.load(path, map_location="cpu", weights_only=True)

    def load_arrays(self, spec: RunSpec, protocol: str) -> dict[str, np.ndarray]:
        path = self.outputs_path(spec, protocol)
        if not path.exists():
            raise KeyError(f"no stored outputs for protocol {_canonical(protocol)!r} of run {spec.key} "
                           f"in results store {self.root}")
        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in f.keys()}

    def _evals(self, d: Path) -> dict[str, dict]:
        out = {}
        for p in sorted((d / "eval").glob("*.json")):
            doc = json.loads(p.read_text())
            out[doc["protocol"]] = doc["metrics"]
        return out

    def load(self, spec: RunSpec) -> dict:
        """The run's record, with ``spec`` the requesting spec (so a renamed label shows) and
        ``metrics`` for the spec's evaluation protocols (``KeyError`` if one is not evaluated)."""
        self._require_run(spec)
        d = self._dir(spec)
        record = json.loads((d / "run.json").read_text())
        evals = self._evals(d)
        missing = [p for p in spec.eval_protocols if p not in evals]
        if missing:
            raise KeyError(f"run {spec.key} in results store {self.root} is not evaluated under {missing}; "
                           f"run_grid evaluates them")
        record["spec"] = spec.to_dict()
        record["metrics"] = {p: evals[p] for p in spec.eval_protocols}
        return record

    def records(self, model: str | None = None) -> list[dict]:
        """Every stored run (``spec`` as stored) with all its stored evaluations."""
        pattern = f"{model}/*/run.json" if model else "*/*/run.json"
        out = []
        for p in sorted(self.root.glob(pattern)):
            record = json.loads(p.read_text())
            evals = self._evals(p.parent)
            order = [q for q in record["spec"].get("eval_protocols", []) if q in evals]
            record["metrics"] = {q: evals[q] for q in order + sorted(set(evals) - set(order))}
            out.append(record)
        return out


def _canonical(protocol: str) -> str:
    from .missing import parse_protocol

    return parse_protocol(protocol).spec


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def tidy(records: list[dict]) -> pd.DataFrame:
    """One row per run × evaluation protocol × metric (columns: model, variant, dataset, design,
    train_protocol, protocol, seed, metric, value, config_key; ``variant`` is the spec's label, or
    the model name)."""
    rows = []
    for r in records:
        s = r["spec"]
        config_key = r.get("config_key") or RunSpec.from_dict(s).config_key
        for protocol, metrics in r["metrics"].items():
            for metric, value in metrics.items():
                rows.append({"model": s["model"], "variant": s.get("label") or s["model"], "dataset": s["dataset"],
                             "design": s["design"], "train_protocol": s["train_protocol"], "protocol": protocol,
                             "seed": s["seed"], "metric": metric, "value": value, "config_key": config_key,
                             "key": r.get("key", "")})
    return pd.DataFrame(rows, columns=["model", "variant", "dataset", "design", "train_protocol", "protocol",
                                       "seed", "metric", "value", "config_key", "key"])


def summarize(df: pd.DataFrame, by: tuple[str, ...] = ("variant", "design", "protocol", "metric")) -> pd.DataFrame:
    """Mean, std and number of seeds per group."""
    g = df.groupby(list(by), sort=False)["value"]
    out = g.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


SUMMARY_COLUMNS = ["model", "label", "dataset", "train_protocol", "config_key", "protocol", "metric", "mean", "std",
                   "n_seeds"]


def summary_table(records: list[dict]) -> pd.DataFrame:
    """Mean, std (ddof 1) and number of seeds per configuration × protocol × metric.

    Runs are grouped by ``config_key`` (every weight-determining setting but the seed), so runs of
    different configurations are never averaged as if they were seeds, whatever their labels; a run
    listed twice (e.g. shared by two designs) counts once. ``label`` is the first label seen in the
    group (the model name when empty).
    """
    df = tidy(records)
    if df.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    df = df.drop_duplicates(["config_key", "seed", "protocol", "metric"], keep="first")
    g = df.groupby(["config_key", "protocol", "metric"], sort=False)
    out = g.agg(model=("model", "first"), label=("variant", "first"), dataset=("dataset", "first"),
                train_protocol=("train_protocol", "first"), mean=("value", "mean"), std=("value", "std"),
                n_seeds=("value", "count")).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out[SUMMARY_COLUMNS]


__all__ = ["LAYOUT_TEXT", "ResultsLayoutError", "ResultsStore", "RunSpec", "atomic_path", "summarize",
           "summary_table", "tidy"]

"""Small helpers the notebooks share: seeds, the results folder, captions, reported numbers, AUILC
tables and rate-curve figures. Notebooks stay thin: parameters → msa_lib calls → these."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .data.container import MSADataset
from .metrics import auilc
from .missing import parse_protocol
from .results import ResultsStore

REPORTED_DIR = Path(__file__).resolve().parent.parent / "book" / "reported"

HEADLINE_METRICS: dict[str, list[str]] = {
    "mosi": ["MAE", "Corr", "Acc-7", "Acc-5", "Acc-2_has0", "Acc-2_non0", "F1_has0", "F1_non0"],
    "sims": ["MAE", "Corr", "Acc-5", "Acc-3", "Acc-2", "F1"],
    "iemocap": ["happy_F1", "sad_F1", "angry_F1", "neutral_F1", "Avg_F1", "Avg_Acc"],
}
#: AUILC rate range per dataset kind (EMT-DLFR code: MOSI/MOSEI 0.0–1.0, SIMS 0.0–0.5)
AUILC_RATES: dict[str, tuple[float, ...]] = {
    "mosi": tuple(round(0.1 * i, 1) for i in range(11)),
    "sims": tuple(round(0.1 * i, 1) for i in range(6)),
    "iemocap": tuple(round(0.1 * i, 1) for i in range(11)),
}


def parse_seeds(seeds: str | int | list) -> list[int]:
    """Seeds from a notebook parameter: "1,2,3", 3 or [1, 2, 3]."""
    if isinstance(seeds, int):
        return [seeds]
    if isinstance(seeds, str):
        seeds = [s for s in seeds.replace(" ", "").split(",") if s]
    try:
        out = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise ValueError(f"seeds must be integers like '1,2,3', got {seeds!r}") from None
    if not out:
        raise ValueError("at least one seed is needed")
    return out


def open_store(results_dir: str = "") -> ResultsStore:
    """The results folder of a notebook run; empty means a fresh temporary folder."""
    return ResultsStore(results_dir or tempfile.mkdtemp(prefix="msa-results-"))


def dataset_paths(dataset: str, data_path: str = "") -> list[tuple[str, str | None]]:
    """Pair a comma-separated ``dataset`` list with a comma-separated ``data_path`` list."""
    names = [d.strip() for d in dataset.split(",") if d.strip()]
    paths = [p.strip() for p in data_path.split(",")] if data_path else [""] * len(names)
    if len(paths) != len(names):
        raise ValueError(f"data_path lists {len(paths)} files for {len(names)} datasets ({names}); "
                         "give one path per dataset, comma-separated, or none for the synthetic default")
    return [(n, p or None) for n, p in zip(names, paths)]


def data_caption(data: MSADataset) -> str:
    """One sentence naming the data a table or figure was computed on."""
    sizes = "/".join(str(len(data[s])) for s in ("train", "valid", "test"))
    if data.is_synthetic:
        return (f"Data: the embedded **synthetic** default `{data.source}` ({data.name.upper()}-shaped, "
                f"train/valid/test = {sizes}, size factor {data.notes.get('size')}, seed {data.notes.get('seed')}). "
                f"These are not the real dataset's numbers and are not comparable to the paper's.")
    return f"Data: `{data.source}` (train/valid/test = {sizes})."


def pooled_features(split, modalities: tuple[str, ...] = ("text", "audio", "vision")) -> np.ndarray:
    """Per-sample mean over the present frames of each modality, concatenated (N, sum d_m)."""
    out = []
    for m in modalities:
        x = split.features(m)
        present = split.keep[m] if split.keep is not None else split.valid_mask(m)
        out.append((x * present[..., None]).sum(1) / np.maximum(present.sum(1, keepdims=True), 1))
    return np.concatenate(out, axis=1)


def ridge_probe(data: MSADataset, protocol: str = "complete", mask_seed: int = 0) -> dict[str, float]:
    """Test metrics of a ridge regression (scikit-learn ``RidgeCV``) on time-averaged features:
    fit on the complete training split, tested under ``protocol`` (a seeded mask). A cheap,
    model-free measure of how much each modality and each frame carries — on any dataset."""
    from sklearn.linear_model import RidgeCV

    from .metrics import compute_metrics
    from .missing import mask_split

    train, test = data["train"], mask_split(data["test"], protocol, mask_seed, data.text_special_tokens)
    target = train.labels if train.labels is not None else train.class_labels
    model = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(pooled_features(train), target)
    pred = model.predict(pooled_features(test))
    if data.task == "classification":
        pred = (pred > 0.5).astype(int)
    return compute_metrics(data.kind, pred, test.labels if test.labels is not None else test.class_labels)


def reported(name: str) -> pd.DataFrame:
    """A transcribed paper table from ``book/reported/<name>.csv``."""
    return pd.read_csv(REPORTED_DIR / f"{name}.csv", keep_default_na=False, na_values=[""])


def metric_scale(metric: str) -> float:
    """Tables print accuracies/F1 in %, MAE and Corr raw."""
    return 1.0 if metric.startswith(("MAE", "Corr")) else 100.0


def cells(summary: pd.DataFrame, decimals: int = 2) -> pd.Series:
    """"mean ± std" strings, accuracies and F1 ×100."""
    f = summary["metric"].map(metric_scale)
    return pd.Series([f"{m * k:.{decimals}f} ± {s * k:.{decimals}f}"
                      for m, s, k in zip(summary["mean"], summary["std"], f)], index=summary.index)


#: UMDF Tables 1-3 column order: six missing conditions, their average, then complete.
CONDITIONS: tuple[str, ...] = ("{l}", "{a}", "{v}", "{l,a}", "{l,v}", "{a,v}", "Avg", "{l,a,v}")
MISSING_CONDITIONS = CONDITIONS[:6]


def per_condition(tidy_df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (variant, seed) values of ``metric`` under each modality subset, plus "Avg" = the mean of
    the six missing-modality conditions for that seed (as the UMDF tables define it)."""
    d = tidy_df[(tidy_df["metric"] == metric) & tidy_df["protocol"].str.match(r"^modality:[lav]+$")].copy()
    d["condition"] = d["protocol"].map(lambda p: parse_protocol(p).label)
    wide = d.pivot_table(index=["variant", "seed"], columns="condition", values="value", aggfunc="first")
    wide["Avg"] = wide[list(MISSING_CONDITIONS)].mean(axis=1)
    return wide[list(CONDITIONS)]


def condition_table(tidy_df: pd.DataFrame, metrics: list[str], decimals: int = 2) -> pd.DataFrame:
    """Rows: the UMDF conditions; columns "<variant> <metric>"; cells mean ± std over seeds."""
    columns = {}
    for metric in metrics:
        wide = per_condition(tidy_df, metric) * metric_scale(metric)
        d = 3 if metric_scale(metric) == 1 else decimals
        for variant in tidy_df["variant"].unique():  # the order the runs were given in
            sub = wide.xs(variant, level="variant")
            mean, std = sub.mean(axis=0), sub.std(axis=0).fillna(0.0)
            columns[f"{variant} {metric}"] = [f"{m:.{d}f} ± {s:.{d}f}" for m, s in zip(mean, std)]
    return pd.DataFrame(columns, index=list(CONDITIONS)).rename_axis("condition")


def avg_means(tidy_df: pd.DataFrame, metric: str) -> pd.Series:
    """Mean over seeds of the six-condition average, per variant."""
    means = per_condition(tidy_df, metric)["Avg"].groupby(level="variant").mean()
    return means.reindex(tidy_df["variant"].unique())  # the order the runs were given in


def rate_of(protocol: str) -> float:
    return parse_protocol(protocol).rate


def curve(tidy_df: pd.DataFrame, metric: str, kind: str = "frame") -> pd.DataFrame:
    """Per-seed values of ``metric`` against the missing rate: index seed, columns rate."""
    d = tidy_df[(tidy_df["metric"] == metric) & tidy_df["protocol"].str.startswith(kind + ":")].copy()
    d["rate"] = d["protocol"].map(rate_of)
    return d.pivot_table(index="seed", columns="rate", values="value", aggfunc="first").sort_index(axis=1)


def auilc_table(tidy_df: pd.DataFrame, metrics: list[str], kind: str, group: str = "variant") -> pd.DataFrame:
    """AUILC per group and metric over the dataset's rate range (per-rate mean over seeds first)."""
    rates = AUILC_RATES[kind]
    rows = []
    for name, sub in tidy_df.groupby(group, sort=False):
        row = {group: name}
        for metric in metrics:
            c = curve(sub, metric)
            missing = [r for r in rates if r not in c.columns]
            if missing:
                raise ValueError(f"AUILC needs every rate in {rates}; missing {missing} for {name}")
            row[metric] = round(auilc(list(rates), c[list(rates)].to_numpy(), metric), 2 if metric_scale(metric) > 1
                                else 4)
        rows.append(row)
    return pd.DataFrame(rows).set_index(group)


def plot_rate_curves(ax, tidy_df: pd.DataFrame, metric: str, group: str = "variant", label_fmt: str = "{}"):
    """Mean ± std over seeds of ``metric`` against the frame-level missing rate, one line per group."""
    for name, sub in tidy_df.groupby(group, sort=False):
        c = curve(sub, metric) * metric_scale(metric)
        mean, std = c.mean(axis=0), c.std(axis=0).fillna(0.0)
        ax.plot(c.columns, mean, marker="o", label=label_fmt.format(name))
        ax.fill_between(c.columns, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("missing rate p")
    ax.set_ylabel(metric + (" (%)" if metric_scale(metric) > 1 else ""))
    ax.grid(alpha=0.3)


def save_figure(fig, store: ResultsStore, name: str) -> Path:
    path = store.root / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def save_table(df: pd.DataFrame, store: ResultsStore, name: str) -> Path:
    path = store.root / "tables" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


__all__ = ["AUILC_RATES", "CONDITIONS", "dataset_paths", "pooled_features", "ridge_probe", "HEADLINE_METRICS", "avg_means", "condition_table", "per_condition", "auilc_table", "cells", "curve", "data_caption", "metric_scale",
           "open_store", "parse_seeds", "plot_rate_curves", "rate_of", "reported", "save_figure", "save_table"]

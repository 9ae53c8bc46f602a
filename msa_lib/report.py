"""What the notebooks show: reported numbers beside ours, condition tables, AUILC tables, rate
curves, captions and the ridge reference. Every number format comes from the metric spec
(:func:`msa_lib.metrics.metric_spec`); notebooks stay thin: one chapter call, then these."""
from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from .data.container import MSADataset
from .metrics import auilc, format_mean_std, format_value, metric_spec
from .missing import FRAME_RATES, SUBSETS, parse_protocol

#: AUILC rate range per dataset kind (EMT-DLFR code: MOSI/MOSEI 0.0–1.0, SIMS 0.0–0.5)
AUILC_RATES: dict[str, tuple[float, ...]] = {
    "mosi": FRAME_RATES,
    "sims": FRAME_RATES[:6],
    "iemocap": FRAME_RATES,
}

#: Subset-table rows (UMDF Tables 1-3 layout): the six missing-modality conditions, their average,
#: then the complete set — in the order of :data:`msa_lib.missing.SUBSETS`.
_SUBSET_LABELS = tuple(parse_protocol(f"modality:{s}").label for s in SUBSETS)
MISSING_CONDITIONS: tuple[str, ...] = _SUBSET_LABELS[:-1]
CONDITIONS: tuple[str, ...] = MISSING_CONDITIONS + ("Avg", _SUBSET_LABELS[-1])


def data_caption(data: MSADataset) -> str:
    """The short data tag every caption ends with (the page's banner says what synthetic means)."""
    sizes = "/".join(str(len(data[s])) for s in ("train", "valid", "test"))
    if data.is_synthetic:
        return f"*Synthetic {data.name.upper()}-shaped data* (train/valid/test {sizes})."
    replaced = "; ".join(f"{split} {m} {n}" for split, counts in data.replaced.items() for m, n in counts.items())
    note = f"; non-finite values replaced by 0: {replaced}" if replaced else ""
    return f"Data: `{data.source}`, {data.describe_features()} (train/valid/test {sizes}{note})."


def synthetic_banner(sources: list[str]) -> str:
    """The one synthetic-data banner of a page ("" when no dataset of the page is synthetic)."""
    if not sources:
        return ""
    return (f":::{{important}}\n**Synthetic data** ({', '.join(f'`{s}`' for s in sources)}; see the data chapter): "
            "relative behaviour only, not comparable with the papers' numbers (shaded *paper* columns).\n:::")


# ---------------------------------------------------------------------------------------------
# reported numbers (package data: msa_lib/reported/<name>.csv)
# ---------------------------------------------------------------------------------------------

def reported(name: str, **where: str) -> pd.DataFrame:
    """A transcribed paper table (columns: table, dataset, model, condition, metric — the library's
    metric name — paper_label, value, note), filtered by column values (``model="UMDF"``)."""
    path = resources.files("msa_lib") / "reported" / f"{name}.csv"
    if not path.is_file():
        available = sorted(p.name[:-4] for p in (resources.files("msa_lib") / "reported").iterdir()
                           if p.name.endswith(".csv"))
        raise ValueError(f"no reported table {name!r}; available: {available}")
    with path.open() as f:
        table = pd.read_csv(f, keep_default_na=False, na_values=[""])
    for column, value in where.items():
        if column not in table.columns:
            raise ValueError(f"reported table {name!r} has no column {column!r}; columns: {list(table.columns)}")
        table = table[table[column] == value]
    return table


def beside(ours: pd.DataFrame, rows: pd.DataFrame, label: str = "{model} reported {metric}") -> pd.DataFrame:
    """``ours`` (index = condition or metric) with the reported ``rows`` added as columns, one per
    (model, metric), named by ``label``. Conditions the paper did not report stay empty."""
    out = ours.copy()
    key = "condition" if ours.index.name == "condition" else "metric"
    for (model, metric), group in rows.groupby(["model", "metric"], sort=False):
        out[label.format(model=model, metric=metric)] = group.set_index(key)["value"].reindex(out.index)
    return out


# ---------------------------------------------------------------------------------------------
# tables of ours
# ---------------------------------------------------------------------------------------------

def cells(summary: pd.DataFrame) -> pd.Series:
    """"mean ± std" strings of a :func:`msa_lib.results.summarize` frame, per the metric spec."""
    return pd.Series(["–" if pd.isna(m) else format_mean_std(k, m, s)  # undefined (Corr of a constant)
                      for k, m, s in zip(summary["metric"], summary["mean"], summary["std"])], index=summary.index)


def per_condition(tidy_df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (variant, seed) values of ``metric`` under each modality subset, plus "Avg" = the mean of
    the six missing-modality conditions for that seed (as the UMDF tables define it)."""
    d = tidy_df[(tidy_df["metric"] == metric) & tidy_df["protocol"].str.match(r"^modality:[lav]+$")].copy()
    d["condition"] = d["protocol"].map(lambda p: parse_protocol(p).label)
    wide = d.pivot_table(index=["variant", "seed"], columns="condition", values="value", aggfunc="first")
    wide["Avg"] = wide[list(MISSING_CONDITIONS)].mean(axis=1)
    return wide[list(CONDITIONS)]


def condition_table(tidy_df: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Rows: the subset conditions; columns "<variant> <metric>"; cells mean ± std over seeds."""
    columns = {}
    for metric in metrics:
        wide = per_condition(tidy_df, metric)
        for variant in tidy_df["variant"].unique():  # the order the runs were given in
            sub = wide.xs(variant, level="variant")
            mean, std = sub.mean(axis=0), sub.std(axis=0).fillna(0.0)
            columns[f"{variant} {metric}"] = ["–" if pd.isna(m) else format_mean_std(metric, m, s) for m, s in zip(mean, std)]
    return pd.DataFrame(columns, index=list(CONDITIONS)).rename_axis("condition")


def avg_means(tidy_df: pd.DataFrame, metric: str) -> pd.Series:
    """Mean over seeds of the six-condition average, per variant (fractions, like the metrics)."""
    means = per_condition(tidy_df, metric)["Avg"].groupby(level="variant").mean()
    return means.reindex(tidy_df["variant"].unique())  # the order the runs were given in


def curve(tidy_df: pd.DataFrame, metric: str, kind: str = "frame") -> pd.DataFrame:
    """Per-seed values of ``metric`` against the missing rate: index seed, columns rate."""
    d = tidy_df[(tidy_df["metric"] == metric) & tidy_df["protocol"].str.startswith(kind + ":")].copy()
    d["rate"] = d["protocol"].map(lambda p: parse_protocol(p).rate)
    return d.pivot_table(index="seed", columns="rate", values="value", aggfunc="first", dropna=False).sort_index(axis=1)


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
            values = c[list(rates)].to_numpy()
            # undefined somewhere on the curve (Corr of a constant prediction): no area
            row[metric] = np.nan if np.isnan(values).any() else round(
                auilc(list(rates), values, metric), metric_spec(metric).decimals + (0 if metric_spec(metric).percent else 1))
        rows.append(row)
    return pd.DataFrame(rows).set_index(group)


def plot_rate_curves(ax, tidy_df: pd.DataFrame, metric: str, group: str = "variant", label_fmt: str = "{}",
                     kind: str = "frame", references: tuple[str, ...] | None = None):
    """Mean ± std over seeds of ``metric`` against the missing rate of the ``kind`` protocols
    (``frame`` or ``erasure``), one line per group (the book's colour-blind-safe series styles);
    ``references`` groups (default :data:`REFERENCES`) are drawn as thin grey lines (the
    input-blind one dotted)."""
    from .style import series_style

    references = REFERENCES if references is None else references
    spec = metric_spec(metric)
    k = 0
    for name, sub in tidy_df.groupby(group, sort=False):
        c = curve(sub, metric, kind) * spec.scale
        if c.empty:
            continue
        mean, std = c.mean(axis=0), c.std(axis=0).fillna(0.0)
        if name in references:
            ax.plot(c.columns, mean, color="0.45", lw=1, ls=":" if name == BLIND_LABEL else "--",
                    label=label_fmt.format(name))
            continue
        style = series_style(k)
        k += 1
        ax.plot(c.columns, mean, label=label_fmt.format(name), **style)
        ax.fill_between(c.columns, mean - std, mean + std, alpha=0.15, color=style["color"])
    ax.set_xlabel("missing rate p")
    ax.set_ylabel(metric + spec.unit)
    ax.grid(alpha=0.3)


# ---------------------------------------------------------------------------------------------
# verdicts: paired across seeds, with an interval
# ---------------------------------------------------------------------------------------------

#: Confidence level of every verdict's interval.
CONFIDENCE = 0.95


def paired_comparison(values: pd.DataFrame, method: str, baseline: str, metric: str,
                      confidence: float = CONFIDENCE) -> dict:
    """Compare two models on per-seed values (index seed, one column per model, in the metric's
    units): the mean difference ``method - baseline`` over the seeds both have, its t-interval
    and the paired t-test's p-value, and a verdict: "better" / "worse" when the interval excludes
    0 (direction from the metric spec: MAE lower is better), else "no detectable difference";
    with fewer than two paired seeds, "too few seeds"."""
    from scipy import stats

    pairs = values[[method, baseline]].dropna()
    n = len(pairs)
    diff = (pairs[method] - pairs[baseline]).to_numpy(dtype=float)
    out = {"method": method, "baseline": baseline, "metric": metric, "seeds": n,
           "method mean": float(pairs[method].mean()) if n else np.nan,
           "baseline mean": float(pairs[baseline].mean()) if n else np.nan,
           "difference": float(diff.mean()) if n else np.nan, "low": np.nan, "high": np.nan, "p": np.nan}
    if n < 2:
        return {**out, "verdict": "too few seeds"}
    sem = stats.sem(diff)
    if sem == 0:  # identical differences on every seed: the interval is the point
        low = high = float(diff.mean())
        p = 0.0 if diff.mean() != 0 else 1.0
    else:
        low, high = stats.t.interval(confidence, n - 1, loc=diff.mean(), scale=sem)
        p = float(stats.ttest_rel(pairs[method], pairs[baseline]).pvalue)
    higher = metric_spec(metric).higher
    if low > 0 or high < 0:
        verdict = "better" if (low > 0) == higher else "worse"
    else:
        verdict = "no detectable difference"
    return {**out, "low": float(low), "high": float(high), "p": p, "verdict": verdict}


def claim_row(claim: str, where: str, comparison: dict, paper_margin: float | None, real: bool,
              paper_decimals: int = 2) -> dict:
    """One row of a chapter's claims table (the glance page) from a :func:`paired_comparison` of the
    method against its baseline: the paper's margin and ours, both signed so that positive = the
    method is better (ours with its interval), and the verdict: reproduced when ours excludes 0 on
    the paper's side, else why not. ``real``: the runs were on real data."""
    metric = comparison["metric"]
    sign = 1 if metric_spec(metric).higher else -1
    v = comparison
    if v["verdict"] in ("better", "worse", "no detectable difference"):
        lo, hi = sorted((sign * v["low"], sign * v["high"]))
        signed = lambda x: ("+" if x > 0 else "") + format_value(metric, x)  # noqa: E731
        ours = f"{signed(sign * v['difference'])} [{signed(lo)}, {signed(hi)}], {v['seeds']} seeds"
    else:
        ours = v["verdict"]
    if v["verdict"] in ("better", "worse"):
        agrees = (v["verdict"] == "better") == (paper_margin is None or paper_margin > 0)
        verdict = "reproduced" if agrees else "not reproduced: the opposite"
    elif v["verdict"] == "no detectable difference":
        verdict = "not reproduced: no detectable difference"
    else:
        verdict = f"no verdict ({v['verdict']})"
    row = {"claim": claim, "where": where,
           "paper (real data)": "not in the paper" if paper_margin is None else f"{paper_margin:+.{paper_decimals}f}",
           "ours (synthetic)": "not run", "ours (real data)": "not run",
           "verdict": verdict + (" (real data)" if real else " (synthetic only; not run on real data)")}
    row["ours (real data)" if real else "ours (synthetic)"] = ours
    return row


def seed_values(tidy_df: pd.DataFrame, metric: str, protocol: str | None = None) -> pd.DataFrame:
    """Per-seed values of ``metric`` (index seed, one column per variant): under ``protocol``, or
    (None) the six-missing-condition average of the subset tables."""
    if protocol is None:
        return per_condition(tidy_df, metric)["Avg"].unstack("variant")
    d = tidy_df[(tidy_df["metric"] == metric) & (tidy_df["protocol"] == protocol)]
    return d.pivot_table(index="seed", columns="variant", values="value", aggfunc="first")


def verdict_table(tidy_df: pd.DataFrame, method: str, baselines: list[str], metrics: list[str],
                  protocol: str | None = None, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per (baseline, metric): means, the paired difference with its interval, p and the
    verdict (see :func:`paired_comparison`), on the Avg of the six missing conditions (or under
    ``protocol``). Give it the runs that trained (``DatasetRuns.verdict_results``); a model with no
    such run is reported as "no run that trained"."""
    rows = []
    for metric in metrics:
        values = seed_values(tidy_df, metric, protocol) if not tidy_df.empty else pd.DataFrame()
        for baseline in baselines:
            if method not in values.columns or baseline not in values.columns:
                rows.append({"method": method, "baseline": baseline, "metric": metric, "seeds": 0,
                             "verdict": "no run that trained"})
                continue
            rows.append(paired_comparison(values, method, baseline, metric, confidence))
    return pd.DataFrame(rows)


def verdict_display(table: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """A :func:`verdict_table` as printed: one row per (other model, metric), values in the metric's
    units and decimals; the method's name heads its column."""
    level = f"{confidence:.0%} CI"
    rows = []
    for r in table.to_dict("records"):
        m = r["metric"]
        fmt = lambda v: "–" if pd.isna(v) else format_value(m, v)  # noqa: E731
        rows.append({"vs": r["baseline"], "metric": m, r["method"]: fmt(r.get("method mean")),
                     "other": fmt(r.get("baseline mean")), "difference": fmt(r.get("difference")),
                     level: "–" if pd.isna(r.get("low", np.nan)) else f"[{fmt(r['low'])}, {fmt(r['high'])}]",
                     "p": "–" if pd.isna(r.get("p", np.nan)) else f"{r['p']:.3f}",
                     "seeds": int(r["seeds"]), "verdict": r["verdict"]})
    return pd.DataFrame(rows).set_index(["vs", "metric"]).rename_axis([None, None])


# ---------------------------------------------------------------------------------------------
# reference rows: what the same split gives without a model
# ---------------------------------------------------------------------------------------------

#: Labels of the reference "models" every results table carries.
RIDGE_LABEL = "ridge probe"
BLIND_LABEL = "input-blind predictor"
REFERENCES: tuple[str, ...] = (RIDGE_LABEL, BLIND_LABEL)


def reference_results(data: MSADataset, protocols: tuple[str, ...] | list[str], mask_seed: int = 0) -> pd.DataFrame:
    """Tidy rows (like :func:`msa_lib.results.tidy`) of two references on the test split under each
    protocol: the ridge probe (:func:`ridge_probe`, same seeded masks as the models) and the
    input-blind predictor (training mean, or each emotion's majority class: what a model that
    ignores its input scores). Deterministic; seed 0."""
    from .metrics import compute_metrics, constant_prediction

    test = data["test"]
    target = test.labels if test.labels is not None else test.class_labels
    train = data["train"]
    blind = compute_metrics(data.kind, constant_prediction(
        data.kind, train.labels if train.labels is not None else train.class_labels, len(test)), target)
    rows = []
    for protocol in protocols:
        for label, metrics in ((RIDGE_LABEL, ridge_probe(data, protocol, mask_seed)), (BLIND_LABEL, blind)):
            rows += [{"model": "reference", "variant": label, "dataset": data.source, "design": "reference",
                      "train_protocol": "complete", "protocol": protocol, "seed": 0, "metric": k, "value": v,
                      "config_key": label, "key": label} for k, v in metrics.items()]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# did the runs train?
# ---------------------------------------------------------------------------------------------

def health_table(records: list[dict]) -> pd.DataFrame:
    """Per run: best epoch, epochs run of the cap, still improving at the cap, validation score
    against the predictor that ignores the input, and what makes it degenerate (empty if nothing)."""
    rows = []
    for r in records:
        h, s = r.get("health"), r["spec"]
        if not h:
            rows.append({"run": s.get("label") or s["model"], "seed": s["seed"], "key": r.get("key", ""),
                         "degenerate": "not recorded (run stored by an older msa_lib)"})
            continue
        rows.append({"run": s.get("label") or s["model"], "seed": s["seed"], "key": r.get("key", ""),
                     "best epoch": h["best_epoch"], "epochs run / cap": f"{h['epochs_run']} / {h['epoch_cap']}",
                     "still improving at cap": "yes" if h["improving_at_cap"] else "no",
                     f"valid {h['select_metric']} (ours / input-blind)":
                         f"{format_value(h['select_metric'], h['valid_score'])} / "
                         f"{format_value(h['select_metric'], h['reference_score'])}",
                     "degenerate": "; ".join(h["degenerate"])})
    return pd.DataFrame(rows)


def degenerate_keys(records: list[dict]) -> set[str]:
    """Keys of the runs that did not train (see :func:`health_table`); verdicts exclude them."""
    return {r["key"] for r in records if (r.get("health") or {}).get("degenerate")}


def degenerate_warning(records: list[dict]) -> str:
    """A Markdown warning box naming the degenerate runs, or "" when every run trained."""
    table = health_table(records)
    bad = table[table["degenerate"].astype(bool) & ~table["degenerate"].str.startswith("not recorded")]
    if bad.empty:
        return ""
    lines = "\n".join(f"* {row.run}, seed {row.seed}: {row.degenerate}" for row in bad.itertuples())
    data = ", ".join(sorted({f"`{r['spec']['dataset']}`" for r in records}))
    return (f":::{{warning}}\n**{len(bad)} of {len(table)} runs on {data} did not train** and are excluded from every "
            f"verdict on this page (their numbers still appear in the tables):\n\n{lines}\n:::")


# ---------------------------------------------------------------------------------------------
# the ridge reference
# ---------------------------------------------------------------------------------------------

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

    train, test = data["train"], mask_split(data["test"], protocol, mask_seed)
    target = train.labels if train.labels is not None else train.class_labels
    model = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(pooled_features(train), target)
    pred = model.predict(pooled_features(test))
    if data.task == "classification":
        pred = (pred > 0.5).astype(int)
    return compute_metrics(data.kind, pred, test.labels if test.labels is not None else test.class_labels)


__all__ = ["AUILC_RATES", "BLIND_LABEL", "CONDITIONS", "CONFIDENCE", "MISSING_CONDITIONS", "REFERENCES", "RIDGE_LABEL",
           "paired_comparison", "reference_results", "seed_values", "verdict_display",
           "verdict_table", "auilc_table", "avg_means", "beside", "cells",
           "condition_table", "curve", "data_caption", "synthetic_banner", "degenerate_keys", "degenerate_warning", "health_table",
           "per_condition", "plot_rate_curves", "pooled_features",
           "reported", "ridge_probe"]

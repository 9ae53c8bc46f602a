"""DAR chapter (IJCAI 2025): paper settings per dataset, profile -> configs, the training erasure
rate k, the variants of Tables 2-3, Table 1 (every model of the library trained as its paper trains it,
tested under LNLN's erasure at 0.0-0.9, no retraining), Fig. 4, the CLUB bound per epoch, the run
specs and the caption text. The network and its loss terms are in :mod:`msa_lib.models.dar`; InfoNCE
and CLUB in :mod:`msa_lib.losses`.

Evaluation (the paper, after LNLN): every run is tested at the erasure rates 0.0, 0.1, …, 0.9 (one
seeded mask per rate) and a table cell is the mean over the ten rates, then over seeds. LNLN's released
code picks one checkpoint per metric on the *test* split at r = 0.5; DAR picks "the same model with the
smallest overall loss" for every metric, and so do we, on the *validation* split.
"""
from __future__ import annotations

import pandas as pd

from ..experiments import (ChapterRun, DatasetRuns, Profile, data_options, parse_seeds, run_chapter, settings_row,
                           train_once_specs)
from ..models.dar import DARConfig
from ..results import RunSpec
from ..train import VALID_LOSS
from .leaderboard import ERASURE_EVALS, ERASURE_RATES
from .leaderboard import EVALS as LEADERBOARD_EVALS

NAME = "dar"
TITLE = "DAR"
MODELS = ("dar",)
COVERS = "Tables 1–3, Fig. 4, the CLUB bound per epoch"
REAL_DATA = "CMU-MOSI utterance features (leaderboard, real-data cell); MOSI / MOSEI files: loaders tested"
STATUS = "tables re-run on synthetic data; real-data leaderboard rows"

#: The paper gives λ, α, β and the training missing rate k (MOSI 0.3, MOSEI 0.4) and nothing about the
#: optimiser (no released code): Adam, lr 1e-3, batch 32, 30 epochs and patience 8 are ours. Selection:
#: "the same model with the smallest overall loss" (the weighted total loss on the validation split).
PAPER_SETTING: dict = {"lr": 1e-3, "batch_size": 32, "epochs": 30, "patience": 8}
SETTINGS: dict[str, dict] = {"mosi": {**PAPER_SETTING, "train_rate": 0.3},
                             "mosei": {**PAPER_SETTING, "train_rate": 0.4}}
#: λ of Eq. 2, α and β of Eq. 24.
LAMBDA, ALPHA, BETA = 0.7, 0.1, 0.1
#: The trainer's loss weights: L_total = ℓ(y, ŷ) + ℓ(y, ŷ_boot) + α (λ (L_sim + L_diff) + L_re) + β L_recon.
LOSS_WEIGHTS: dict[str, float] = {"sim": ALPHA * LAMBDA, "diff": ALPHA * LAMBDA, "re": ALPHA, "recon": BETA,
                                  "boot": 1.0}


def train_protocol(rate: float) -> str:
    """Training under erasure at the fixed rate k, a fresh mask every batch (the masks of ``erasure:k``,
    which are ``frame:k``'s, redrawn per batch); k = 0 is complete data."""
    return "complete" if rate == 0 else f"frame:{rate:g}:resample"


#: The leaderboard's train-once row: MOSI's k (the real dataset there is MOSI).
TRAIN_PROTOCOLS: dict[str, str] = {"dar": train_protocol(SETTINGS["mosi"]["train_rate"])}
#: Every chapter run is tested under the leaderboard's protocols (erasure 0.0-0.9 among them), so the
#: chapter and the leaderboard share their runs.
EVALS: tuple[str, ...] = LEADERBOARD_EVALS

MAIN = "DAR"
#: Table 2: label -> the switches it turns off.
TABLE2: dict[str, dict] = {
    "DAR w/o L_sim": {"use_sim": False},
    "DAR w/o L_diff": {"use_diff": False},
    "DAR w/o L_sim & L_diff": {"use_sim": False, "use_diff": False},
    "DAR w/o L_recon": {"use_recon": False},
    "DAR w/o L_boot": {"use_boot": False},
    MAIN: {},
}
#: Table 3: the training missing rates k.
TABLE3_RATES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8)
#: Table 1 / 2 / 3 columns, in the paper's order.
TABLE_METRICS: tuple[str, ...] = ("Acc-7", "Acc-5", "Acc-2_has0", "Acc-2_non0", "F1_has0", "F1_non0", "MAE", "Corr")
#: Fig. 4's metrics.
FIG4_METRICS: tuple[str, ...] = ("Acc-2_non0", "Acc-5")
#: Readings ``benchmarks/throughput.py`` times besides the default: none (one network).
BENCHMARKS: dict[str, dict] = {}


def k_label(rate: float) -> str:
    return f"DAR k={rate:.1f}"


def model_setup(model: str, row: str, profile: Profile) -> tuple[dict, dict]:
    """(model_config, train_config) of DAR for settings row ``row`` under ``profile``: MSE task loss,
    the paper's λ, α, β as loss weights, selection on the validation total loss."""
    s = SETTINGS[settings_row(NAME, SETTINGS, row)]
    patience = s["patience"] if profile.patience is None else min(s["patience"], profile.patience)
    return {}, {"batch_size": s["batch_size"], "lr": s["lr"], "epochs": profile.epochs_or(s["epochs"]),
                "patience": patience, "task_loss": "mse", "loss_weights": dict(LOSS_WEIGHTS),
                "select_metric": VALID_LOSS}


def variant_specs(label: str, dataset: str, data_path: str | None, profile: Profile, seeds: list[int], row: str
                  ) -> list[RunSpec]:
    """``label`` (a Table 2 row or a Table 3 ``DAR k=…``) trained once per seed, tested under :data:`EVALS`."""
    model_cfg, train_cfg = model_setup("dar", row, profile)
    rate = SETTINGS[row]["train_rate"]
    if label in TABLE2:
        model_cfg = {**model_cfg, **TABLE2[label]}
    elif label in {k_label(k) for k in TABLE3_RATES}:
        rate = float(label.rpartition("=")[2])
    else:
        raise ValueError(f"unknown DAR variant {label!r}; choose from {[*TABLE2, *map(k_label, TABLE3_RATES)]}")
    return train_once_specs("dar", dataset, seeds, train_protocol(rate), EVALS, label=label, model_config=model_cfg,
                            train_config=train_cfg, data_options=data_options(dataset, data_path, profile))


def setting_text(profile: Profile) -> str:
    cfg = DARConfig()
    _, train = model_setup("dar", "mosi", profile)
    rates = ", ".join(f"{row} {s['train_rate']:g}" for row, s in SETTINGS.items())
    return (f"DAR d = {cfg.d}, t = {cfg.t}, {cfg.sa_layers} self-attention layers × {cfg.heads} heads, InfoNCE τ = "
            f"{cfg.temperature:g}, q_θ fitted {cfg.club_steps} steps per batch; λ = {LAMBDA:g}, α = {ALPHA:g}, "
            f"β = {BETA:g}; trained under erasure at k ({rates}), fresh masks per batch; batch {train['batch_size']}, "
            f"lr {train['lr']:g}, ≤ {train['epochs']} epochs, selected on the validation total loss (patience "
            f"{train['patience']}; {profile.name} profile)")


def specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
          variants: tuple[str, ...] = tuple(TABLE2), rates: tuple[float, ...] = ()) -> list[RunSpec]:
    """The chapter's runs on one dataset: each of ``variants`` and each training rate of ``rates``
    (Table 3), trained once per seed, tested under :data:`EVALS`."""
    row = settings_row(NAME, SETTINGS, dataset, settings)
    labels = [*variants, *(k_label(k) for k in rates)]
    return [s for v in labels for s in variant_specs(v, dataset, data_path, profile, seeds, row)]


def run(dataset: str = "synthetic:mosi", data_path: str = "", profile: str = "smoke", seeds: str = "",
        device: str = "auto", results_dir: str = "", settings: str = "", variants: tuple[str, ...] = tuple(TABLE2),
        rates: tuple[float, ...] = TABLE3_RATES) -> ChapterRun:
    """Tables 2 and 3: build, train (what the store lacks) and load ``variants`` and the Table 3 rates."""
    def make(name, path, prof, seed_list, choice, data):
        return specs(name, path, prof, seed_list, choice, tuple(variants), tuple(rates))

    return run_chapter(NAME, make, dataset, data_path, profile, seeds, device, results_dir, settings, setting_text)


# ---------------------------------------------------------------------------------------------
# Table 1 and Fig. 4: every model of the library under erasure (the leaderboard's runs)
# ---------------------------------------------------------------------------------------------

def comparison_specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
                     kind: str = "mosi", models: tuple[str, ...] | None = None) -> tuple[list[RunSpec], dict[str, str]]:
    """DAR's runs and every other model's leaderboard run trained as its paper trains it, tested under
    every leaderboard protocol (erasure 0.0-0.9 among them: no retraining per rate; runs another page
    stored are read). A model whose chapter has no settings for the dataset's row uses MOSI's.
    ``models`` limits the others (default: every one). Returns (specs, label -> settings row used)."""
    from . import leaderboard

    row = settings_row(NAME, SETTINGS, dataset, settings)
    others, rows = leaderboard.paper_specs(dataset, data_path, profile, seeds, settings, kind, models, exclude=("dar",))
    return variant_specs(MAIN, dataset, data_path, profile, seeds, row) + others, {MAIN: row, **rows}


def comparison(dataset: str = "synthetic:mosi", data_path: str = "", profile: str = "smoke", seeds: str = "",
               device: str = "auto", results_dir: str = "", settings: str = "",
               models: tuple[str, ...] | None = None) -> ChapterRun:
    """Table 1's and Fig. 4's runs on each dataset of a comma-separated list."""
    def make(name, path, prof, seed_list, choice, data):
        return comparison_specs(name, path, prof, seed_list, choice, data.kind, models)[0]

    return run_chapter(NAME, make, dataset, data_path, profile, seeds, device, results_dir, settings, setting_text)


def sweep_specs(dataset: str, data_path: str | None, profile: Profile, seeds: str = "", settings: str = "",
                kind: str = "mosi") -> list[RunSpec]:
    """Every run of the chapter's pages on one dataset (Tables 1-3), without the validation sweeps:
    what ``python -m msa_lib sweep --chapter dar`` runs."""
    seed_list = parse_seeds(seeds or profile.seeds)
    return (specs(dataset, data_path, profile, seed_list, settings, tuple(TABLE2), TABLE3_RATES)
            + comparison_specs(dataset, data_path, profile, seed_list, settings, kind)[0])


def comparison_labels(item: DatasetRuns) -> list[str]:
    """DAR first, then the other models in the order of their runs."""
    labels = list(dict.fromkeys(s.label for s in item.specs))
    return [MAIN, *[v for v in labels if v != MAIN]]


def rate_mean(results: pd.DataFrame, label: str, metric: str) -> pd.Series:
    """Per seed, ``metric`` of ``label``'s runs averaged over the erasure rates 0.0-0.9 (every rate
    must be there; NaN, e.g. Corr of a constant prediction, propagates)."""
    d = results[(results["variant"] == label) & (results["metric"] == metric) & results["protocol"].isin(ERASURE_EVALS)]
    wide = d.pivot_table(index="seed", columns="protocol", values="value", aggfunc="first", dropna=False)
    lacking = [p for p in ERASURE_EVALS if p not in wide.columns]
    if d.empty or lacking:
        raise ValueError(f"{label!r}: the runs lack the erasure protocols {lacking or list(ERASURE_EVALS)}")
    return wide[list(ERASURE_EVALS)].mean(axis=1)


def rate_mean_table(results: pd.DataFrame, labels: list[str], metrics: tuple[str, ...] = TABLE_METRICS
                    ) -> pd.DataFrame:
    """Per label, each metric averaged over the erasure rates, then mean ± std over seeds (the paper's
    Tables 1-3)."""
    from ..metrics import format_mean_std, format_value

    def cell(metric, values):
        values = values.dropna()
        if values.empty:
            return "–"
        return format_value(metric, values.iloc[0]) if len(values) == 1 else format_mean_std(
            metric, values.mean(), values.std())

    return pd.DataFrame([{"model": label, **{m: cell(m, rate_mean(results, label, m)) for m in metrics}}
                         for label in labels]).set_index("model")


def table1(item: DatasetRuns) -> pd.DataFrame:
    """Table 1: every model, each metric averaged over erasure rates 0.0-0.9 and seeds."""
    return rate_mean_table(item.results, comparison_labels(item))


def table2(item: DatasetRuns) -> pd.DataFrame:
    """Table 2: the ablation rows present in the runs, the full model last (the paper's order)."""
    return rate_mean_table(item.results, [v for v in TABLE2 if (item.results["variant"] == v).any()])


def table3(item: DatasetRuns) -> pd.DataFrame:
    """Table 3: DAR trained at each rate k of :data:`TABLE3_RATES` present in the runs."""
    return rate_mean_table(item.results, [k_label(k) for k in TABLE3_RATES
                                          if (item.results["variant"] == k_label(k)).any()])


def reported_table(name: str) -> pd.DataFrame:
    """The paper's Table 1 (``dar_table1``, MOSI and MOSEI), 2 or 3, in the paper's units: one row per
    model, one column per (dataset, metric)."""
    from ..report import reported

    table = reported(name)
    table = table.assign(metric=pd.Categorical(table["metric"], TABLE_METRICS, ordered=True))
    return table.pivot_table(index="model", columns=["dataset", "metric"], values="value", aggfunc="first",
                             sort=False, observed=True)


def verdicts(results: pd.DataFrame, method: str, others: list[str], metric: str) -> pd.DataFrame:
    """``method`` against each of ``others`` on the rate-averaged ``metric``, paired over seeds: the 95 %
    t-interval of the difference and a verdict."""
    from ..report import paired_comparison

    rows = []
    for other in others:
        if other == method:
            continue
        pair = pd.concat([rate_mean(results, method, metric).rename(method),
                          rate_mean(results, other, metric).rename(other)], axis=1)
        rows.append(paired_comparison(pair, method, other, metric))
    return pd.DataFrame(rows)


def verdict_sentences(table: pd.DataFrame) -> str:
    """One sentence per comparison of :func:`verdicts`: better / worse / no detectable difference."""
    from ..metrics import format_value

    word = {"better": "better than", "worse": "worse than", "no detectable difference": "not distinguishable from"}
    parts = [f"{r['method']}'s rate-averaged {r['metric']} is {word.get(r['verdict'], 'not comparable with')} "
             f"{r['baseline']}'s ({format_value(r['metric'], r['method mean'])} vs "
             f"{format_value(r['metric'], r['baseline mean'])}, {r['seeds']} seeds)" for r in table.to_dict("records")]
    return "; ".join(parts) + "." if parts else "no comparison could be made."


def fig4(item: DatasetRuns, labels: list[str] | None = None):
    """Fig. 4: Acc-2 (non0) and Acc-5 against the test erasure rate, one line per model (mean ± std
    over seeds). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    from ..report import plot_rate_curves

    labels = labels or comparison_labels(item)
    tidy = item.results[item.results["variant"].isin(labels)]
    tidy = tidy.assign(variant=pd.Categorical(tidy["variant"], labels, ordered=True)).sort_values("variant")
    fig, axes = plt.subplots(1, len(FIG4_METRICS), figsize=(9, 3.4))
    for ax, metric in zip(axes, FIG4_METRICS):
        plot_rate_curves(ax, tidy, metric, kind="erasure", references=())
        ax.set_xlabel("test erasure rate")
        ax.set_xticks(list(ERASURE_RATES)[::3])
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def rate_drop(item: DatasetRuns, metric: str = "Acc-2_non0") -> pd.DataFrame:
    """Per model, ``metric`` at test erasure 0.0 and 0.9 (mean over seeds) and the drop between them."""
    rows = []
    for label in comparison_labels(item):
        d = item.results[(item.results["variant"] == label) & (item.results["metric"] == metric)]
        at = d.groupby("protocol")["value"].mean()
        first, last = at[ERASURE_EVALS[0]], at[ERASURE_EVALS[-1]]
        rows.append({"model": label, "at 0.0": first, "at 0.9": last, "drop": first - last})
    return pd.DataFrame(rows).set_index("model")


def drop_sentence(drop: pd.DataFrame, metric: str = "Acc-2_non0") -> str:
    """:func:`rate_drop` as one sentence, the smallest drop first."""
    from ..metrics import format_value

    parts = [f"{model} {format_value(metric, r['at 0.0'])} → {format_value(metric, r['at 0.9'])}"
             for model, r in drop.sort_values("drop").iterrows()]
    return f"{metric} from test erasure 0.0 to 0.9 (mean over seeds), the smallest drop first: " + "; ".join(parts) + "."


def club_history(item: DatasetRuns, label: str = MAIN) -> pd.DataFrame:
    """The CLUB estimate L_diff (Σ over modalities, the training mean per epoch) of ``label``'s runs:
    index epoch, one column per seed."""
    rows = [{"seed": r["spec"]["seed"], "epoch": h["epoch"], "L_diff": h["train/diff"]}
            for r in item.records if r["spec"]["label"] == label for h in r["history"] if "train/diff" in h]
    if not rows:
        raise ValueError(f"no CLUB history for {label!r} (runs without L_diff log none)")
    return pd.DataFrame(rows).pivot_table(index="epoch", columns="seed", values="L_diff")


# ---------------------------------------------------------------------------------------------
# the chapter page: settings and every choice the paper leaves open
# ---------------------------------------------------------------------------------------------

def settings_table() -> pd.DataFrame:
    """What DAR's optimisation runs under each profile and settings row (computed, for the chapter page)."""
    from ..experiments import PROFILES

    rows = []
    for row in SETTINGS:
        for prof in PROFILES.values():
            _, t = model_setup("dar", row, prof)
            rows.append({"row": row, "profile": prof.name, "training k": SETTINGS[row]["train_rate"],
                         "batch": t["batch_size"], "lr": t["lr"], "epochs ≤": t["epochs"],
                         "selection": f"valid total loss, patience {t['patience']}",
                         "weights (sim, diff, re, recon, boot)": ", ".join(
                             f"{t['loss_weights'][k]:g}" for k in ("sim", "diff", "re", "recon", "boot"))})
    return pd.DataFrame(rows).set_index(["row", "profile"])


def open_choices() -> pd.DataFrame:
    """Every choice the paper leaves open: the paper's words, our default (read from the code), the
    alternatives, and where the book measures them."""
    cfg = DARConfig()
    rows = [
        ("Optimiser, batch, epochs", "not given (no released code)", f"Adam, lr {PAPER_SETTING['lr']:g}, batch "
         f"{PAPER_SETTING['batch_size']}, ≤ {PAPER_SETTING['epochs']} epochs", "LNLN's own settings", "not measured"),
        ("Training erasure", "“the missing rate k” (MOSI 0.3, MOSEI 0.4)", "every modality's valid frames erased at "
         "rate k, a fresh mask every batch", "one mask per split (erasure:k); LNLN's per-sample U(0, k)",
         "Table 3 (k)"),
        ("Model selection", "“the same model with the smallest overall loss”", "the weighted total loss on the "
         "validation split (erased at k, the complete input beside it)", "LNLN: one checkpoint per metric, "
         "chosen on test at r = 0.5", "not measured (we never select on test)"),
        ("Alignment layer", "“1D convolutions followed by a simple nonlinear layer”", f"Conv1d (kernel {cfg.kernel}) "
         f"+ GELU to d = {cfg.d}, then each sample's valid frames average-pooled to t = {cfg.t} (or the longest "
         "input's length, if shorter)", "a transformer "
         "with t learned tokens (LNLN)", "not measured"),
        ("E_c, E_s, reconstruction modules, decoders", "not specified", "per-frame 2-layer MLPs of width d",
         "transformer encoders", "not measured"),
        ("InfoNCE pairs (Fig. 3)", "lost in the paper's text", "common: positives the same sample's other "
         "modalities, negatives other samples; specific: positives the same modality's other samples, negatives "
         "the other modalities", "—", "ablation page (w/o L_sim)"),
        ("InfoNCE denominator", "Eq. 6 sums over the negatives only", "as printed (include_positive = "
         f"{cfg.include_positive})", "the positive in the denominator too (the usual InfoNCE)", "unit test"),
        ("τ of InfoNCE", "“a temperature parameter”", f"τ = {cfg.temperature:g}", "—", "not measured"),
        ("q_θ and its training", "BiLSTM + non-linear FC, optimised alternately", f"BiLSTM ({cfg.club_hidden} per "
         f"direction) + GELU FC → mean and tanh-bounded log-variance; {cfg.club_steps} steps per batch on the "
         "erased input's matched pairs, its own Adam", "one step per batch", "ablation page (CLUB per epoch)"),
        ("Eq. 13 and Eq. 16", "Ĥ^spec from H^spec; H_fused = g ⊙ Ĥ + (1 − g) ⊙ Ĥ", "typos read as H̃^spec and "
         "(1 − g) ⊙ H̃", "—", "unit test (the gate lies between its inputs)"),
        ("Eq. 14's decoder", "“a specially set up private decoder D_m”", "its own decoder (Eq. 10's D_m reads "
         "three features, Eq. 14's two)", "—", "not measured"),
        ("L_recon targets", "not said", f"not detached (detach_targets = {cfg.detach_targets}): the paper's "
         "bootstrap loss is there to stop the encoders degrading under it", "detach the complete features",
         "not measured"),
        ("‖·‖²_F", "squared Frobenius norm", "the mean squared error (over frames, features and samples)", "the sum",
         "not measured"),
        ("Fusion of h^com", "“a multilayer self-attention module for each modal counterpart”, the last frame",
         f"one {cfg.sa_layers}-layer encoder per modality, the three last frames concatenated", "one encoder over "
         "the three modalities' frames", "not measured"),
        ("Bootstrap head input H", "“common features generated from the complete information”", "the complete "
         "input's common features, averaged over time and concatenated", "—", "ablation page (w/o L_boot)"),
        ("Length-1 sequences", "frame-level features", "on utterance features (one frame per modality) erasure "
         "removes a whole modality with probability k, the aligned length is 1, each attention reads its one key "
         "and q_θ's BiLSTM one step", "—", "real-data cell"),
    ]
    return pd.DataFrame(rows, columns=["choice", "paper's words", "our default", "alternatives",
                                       "measured"]).set_index("choice")


# ---------------------------------------------------------------------------------------------
# real data: the paper's Table 1 comparison on the CMU-MOSI utterance features
# ---------------------------------------------------------------------------------------------

def real_data(profile: str = "smoke", seeds: str = "", device: str = "auto", results_dir: str = ""):
    """Every model on the real dataset as its paper trains it, tested under erasure 0.0-0.9 (the
    leaderboard's runs): a :class:`~msa_lib.chapters.leaderboard.Leaderboard`, or why the data cannot be had."""
    from . import leaderboard

    return leaderboard.real_data_against_all("dar", profile, seeds, device, results_dir)


def show_real_data(real) -> None:
    """Display :func:`real_data`: Table 1 on real features and DAR's paired verdicts against every other
    model on the rate-averaged MAE and Acc-2 (non0)."""
    from IPython.display import Markdown, display

    from ..style import show, styled_parts
    from . import leaderboard

    if isinstance(real, str):
        display(Markdown(f"*Real data not available here* ({real.splitlines()[0]}); the leaderboard page shows the "
                         f"stored real-data results."))
        return
    results = real.item.results
    labels = [leaderboard.labels(m)["paper"] for m in real.models]
    labels = [MAIN, *[v for v in labels if v != MAIN]]
    show(*styled_parts(rate_mean_table(results, labels), 4, best="column"))
    said = " ".join(verdict_sentences(verdicts(results, MAIN, labels, m)) for m in ("MAE", "Acc-2_non0"))
    display(Markdown(
        f"**Real data: the paper's Table 1 on `{real.item.name}`**, every model trained as its paper trains it and "
        f"tested at erasure rates 0.0–0.9, the leaderboard's runs ({{doc}}`/notebooks/leaderboard`). Paired over "
        f"seeds {', '.join(map(str, real.runs.seeds))}: {said} Every modality is one frame long here, so erasing "
        f"at rate r removes each modality of a sample with probability r ({{doc}}`/book/dar`). {real.item.caption}"))


# ---------------------------------------------------------------------------------------------
# the chapter's claims, paper vs ours (the glance page)
# ---------------------------------------------------------------------------------------------

#: The paper's baselines trained without erasure (MMSA defaults; Table 1's context-based rows).
NON_ROBUST: tuple[str, ...] = ("MISA", "Self-MM", "MMIM", "CENET", "TETFN", "ALMT")
#: The paper's claims the chapter tests: (claim, where, method, baseline, metric, the paper's margin
#: source: (table, dataset, baseline rows — the best of them is the paper's baseline)).
CLAIMS: tuple[dict, ...] = (
    {"claim": "Under erasure, DAR beats models trained without it", "where": "Table 1 (MOSI, rate-averaged MAE; "
     "the paper's best non-robust baseline, ours TFN)", "method": MAIN, "baseline": "TFN", "metric": "MAE",
     "paper": ("dar_table1", "MOSI", NON_ROBUST)},
    {"claim": "Under erasure, DAR beats models trained without it", "where": "Table 1 (MOSI, rate-averaged Acc-2 "
     "non0; the paper's best non-robust baseline, ours TFN)", "method": MAIN, "baseline": "TFN",
     "metric": "Acc-2_non0", "paper": ("dar_table1", "MOSI", NON_ROBUST)},
    {"claim": "L_recon helps", "where": "Table 2 (MOSI, rate-averaged MAE)", "method": MAIN,
     "baseline": "DAR w/o L_recon", "metric": "MAE", "paper": ("dar_table2", "MOSI", ("DAR w/o L_recon",))},
)


def paper_margin(claim: dict) -> float:
    """DAR's margin over the paper's best row among the claim's baselines (positive = DAR better)."""
    from ..metrics import higher_is_better
    from ..report import reported

    table, dataset, baselines = claim["paper"]
    rows = reported(table, dataset=dataset, metric=claim["metric"]).set_index("model")["value"]
    higher = higher_is_better(claim["metric"])
    best = rows[list(baselines)].max() if higher else rows[list(baselines)].min()
    return float((rows[MAIN] - best) if higher else (best - rows[MAIN]))


def claims(profile: str = "smoke", seeds: str = "", device: str = "auto", results_dir: str = "",
           mosi: str = "synthetic:mosi", mosi_path: str = "") -> pd.DataFrame:
    """The chapter's claims (:data:`CLAIMS`): the paper's margin, ours (a paired difference over seeds of
    the rate-averaged metric with its 95 % interval; positive = DAR better) and a verdict. Trains what
    the store lacks: DAR, the Table 2 rows the claims name, and TFN as its paper trains it."""
    from ..metrics import metric_spec
    from ..report import CONFIDENCE, claim_row, paired_comparison

    variants = tuple(dict.fromkeys([MAIN, *(c["baseline"] for c in CLAIMS if c["baseline"] in TABLE2)]))

    def make(name, path, prof, seed_list, choice, data):
        own = specs(name, path, prof, seed_list, choice, variants)
        return own + [s for s in comparison_specs(name, path, prof, seed_list, choice, data.kind,
                                                  models=("tfn",))[0] if s.model == "tfn"]

    item = run_chapter(NAME, make, mosi, mosi_path, profile, seeds, device, results_dir,
                       "mosi" if mosi_path else "", setting_text).first
    rows = []
    for c in CLAIMS:
        pair = pd.concat([rate_mean(item.results, c["method"], c["metric"]).rename(c["method"]),
                          rate_mean(item.results, c["baseline"], c["metric"]).rename(c["baseline"])], axis=1)
        v = paired_comparison(pair, c["method"], c["baseline"], c["metric"])
        rows.append(claim_row(c["claim"], c["where"], v, paper_margin(c), item.path is not None,
                              paper_decimals=2 if metric_spec(c["metric"]).percent else 3))
    table = pd.DataFrame(rows)
    table.attrs["confidence"] = CONFIDENCE
    table.attrs["synthetic"] = [item.data.source] if item.data.is_synthetic else []
    return table

"""UMDF chapter (Li et al., AAAI 2024): paper settings per dataset, profile -> configs, the
evaluation protocols, the ablation variants, the run specs and the caption text. The network and
its loss terms are in :mod:`msa_lib.models.umdf`."""
from __future__ import annotations

import pandas as pd

from ..models.umdf import DFIM_WEIGHTINGS, UMDFConfig
from ..experiments import ChapterRun, DatasetRuns, Profile, data_options, frame_protocols, parse_seeds, run_chapter, \
    settings_row, subset_protocols, train_once_specs
from ..results import RunSpec
from . import baselines

NAME = "umdf"
TITLE = "UMDF (AAAI 2024)"
MODELS = ("umdf",)
COVERS = "Tables 1–3, Figs. 3–6, claims"
REAL_DATA = ("CMU-MOSI utterance features (leaderboard, real-data cells, diagnosis page); full MOSI / MOSEI / "
             "IEMOCAP files: loaders tested on small files")
STATUS = "tables re-run on synthetic data; real-data leaderboard rows"

#: Paper, "Experimental Setup": batch {128, 16, 32}, lr {1e-3, 1e-3, 2e-3}, epochs {100, 30, 40},
#: heads {10, 8, 10} on MOSI / MOSEI / IEMOCAP; feature size 40 and 4 MCIM layers on all three; Adam.
SETTINGS: dict[str, dict] = {
    "mosi": {"batch_size": 128, "lr": 1e-3, "epochs": 100, "n_heads": 10, "n_layers": 4, "d": 40},
    "mosei": {"batch_size": 16, "lr": 1e-3, "epochs": 30, "n_heads": 8, "n_layers": 4, "d": 40},
    "iemocap": {"batch_size": 32, "lr": 2e-3, "epochs": 40, "n_heads": 10, "n_layers": 4, "d": 40},
}

#: Profiles with ``cpu_budget`` (smoke, book) run UMDF with 2 attention heads and 2 MCIM layers and
#: a batch of at most 64: with heads of size 4, PyTorch's CPU attention costs ~5x more per step
#: (``benchmarks/throughput.py`` measures the paper setting). Captions say which setting ran.
CPU_BUDGET: dict[str, int] = {"n_heads": 2, "n_layers": 2, "max_batch": 64}

#: lambda_1 (L_fea) and lambda_2 (L_logits) per settings row: not reported in the paper. Chosen
#: by :func:`lambda_sweep` over :data:`LAMBDA_GRID` on the validation split of the synthetic
#: default (generator v3, book profile, seed 1). MOSI, validation MAE: (0.1, 0.1) 0.733,
#: (1, 0.1) 0.750, (1, 1) 0.761, (0.1, 1) 0.778. IEMOCAP, validation Avg-F1: (0.1, 1) 0.7233,
#: (0.1, 0.1) 0.7232, (1, 0.1) and (1, 1) 0.601 = the majority predictor: with lambda_1 = 1 every
#: run collapsed (the MMD term is smallest when h_a, h_b are constant, and the cross-entropy's pull
#: on a few hundred imbalanced samples is weak). MOSEI is not swept: it takes MOSI's pair. The
#: ablation (MOSI) and IEMOCAP pages re-run the sweep and show it.
LOSS_WEIGHTS: dict[str, dict[str, float]] = {
    "mosi": {"fea": 0.1, "logits": 0.1},
    "mosei": {"fea": 0.1, "logits": 0.1},
    "iemocap": {"fea": 0.1, "logits": 1.0},
}
LAMBDA_GRID: tuple[tuple[float, float], ...] = ((0.1, 0.1), (0.1, 1.0), (1.0, 0.1), (1.0, 1.0))
#: What the pages re-run, to fit the book's budget (the full :data:`LAMBDA_GRID` is one argument
#: away): per settings row, the default against lambda_1 = 1 (on IEMOCAP, the pair that collapsed).
PAGE_LAMBDA_GRID: dict[str, tuple[tuple[float, float], ...]] = {
    "mosi": ((0.1, 0.1), (1.0, 0.1)), "mosei": ((0.1, 0.1), (1.0, 0.1)), "iemocap": ((0.1, 1.0), (1.0, 1.0))}

#: Fig. 6's condition (language only, p = 0.5); its representations are stored for t-SNE / UMAP.
TSNE_PROTOCOL = "modality:l+frame:0.5"
#: Everything the chapter evaluates: complete, frame rates 0.0-1.0, the seven subsets, Fig. 6's condition.
EVALS: tuple[str, ...] = ("complete",) + frame_protocols() + subset_protocols() + (TSNE_PROTOCOL,)
#: UMDF's training distribution: two heterogeneous missing versions per sample (frame- or
#: modality-level, the complete case included).
TRAIN_PROTOCOL = "mixed"
#: Each model's paper training distribution (the leaderboard trains every model this way).
TRAIN_PROTOCOLS: dict[str, str] = {"umdf": TRAIN_PROTOCOL}
#: Table 3 / Fig. 5 ablations as config switches, and the control without both distillation
#: terms (UMDF's distinctive losses off, same network and training views).
NO_DISTILLATION = "UMDF w/o L_fea & L_logits"
VARIANTS: dict[str, dict] = {
    "UMDF": {},
    NO_DISTILLATION: {"use_fea_distill": False, "use_logit_distill": False},
    "UMDF w/o L_fea": {"use_fea_distill": False},
    "UMDF w/o L_logits": {"use_logit_distill": False},
    "UMDF w/o MCIM": {"mcim": "self"},
    "UMDF w/o DFIM": {"dfim": False},
}
#: The runs every results page of the chapter compares: UMDF, its no-distillation control, and TFN
#: trained on complete data (the paper's kind of baseline) and on UMDF's own `mixed` missingness
#: (the fair control).
MAIN_VARIANTS: tuple[str, ...] = ("UMDF", NO_DISTILLATION)
TFN_PROTOCOLS: tuple[str, ...] = ("complete", TRAIN_PROTOCOL)

#: Readings of what the paper leaves open, each one switch away from the default UMDF (the chapter
#: page's table of open choices says where each is measured): the other DFIM weightings, the
#: paired reading of L_fea, f_y with the head's dropout in L_logits.
READINGS: dict[str, dict] = {
    **{f"UMDF, DFIM {w}": {"dfim_weighting": w} for w in DFIM_WEIGHTINGS if w != UMDFConfig.dfim_weighting},
    "UMDF, L_fea paired": {"fea_reading": "paired"},
    "UMDF, f_y with dropout": {"logits_dropout": True},
}
#: Training distributions other than :data:`TRAIN_PROTOCOL`: a lower maximum frame rate, and the
#: draw that also drops frames inside a subset (Fig. 6's test condition is such a view).
TRAINING_READINGS: dict[str, str] = {
    "UMDF, trained on mixed:0.5": "mixed:0.5",
    "UMDF, trained on mixed:0.9:combined": "mixed:0.9:combined",
}
#: Every UMDF variant a spec can name: model-config overrides (training readings use the default).
ALL_VARIANTS: dict[str, dict] = {**VARIANTS, **READINGS, **{k: {} for k in TRAINING_READINGS}}


def parse_lambdas(lambdas: str) -> dict[str, float] | None:
    """``"0.1,1"`` -> {"fea": 0.1, "logits": 1.0} (λ1 for L_fea, λ2 for L_logits); "" -> None (the
    settings row's default, :data:`LOSS_WEIGHTS`)."""
    if not str(lambdas).strip():
        return None
    try:
        l1, l2 = (float(x) for x in str(lambdas).split(","))
    except ValueError:
        raise ValueError(f"lambdas must be two numbers 'λ1,λ2' (L_fea, L_logits weights), got {lambdas!r}") from None
    if min(l1, l2) < 0:
        raise ValueError(f"lambdas must be >= 0, got {lambdas!r}")
    return {"fea": l1, "logits": l2}


def model_setup(model: str, row: str, profile: Profile, loss_weights: dict[str, float] | None = None
                ) -> tuple[dict, dict]:
    """(model_config, train_config) of UMDF for settings row ``row`` under ``profile``: the paper's
    setting for profiles without a CPU budget, :data:`CPU_BUDGET` otherwise."""
    row = settings_row(NAME, SETTINGS, row)
    s = SETTINGS[row]
    if profile.cpu_budget:
        model_config = {"n_heads": CPU_BUDGET["n_heads"], "n_layers": CPU_BUDGET["n_layers"]}
        batch = min(s["batch_size"], CPU_BUDGET["max_batch"])
    else:
        model_config = {"n_heads": s["n_heads"], "n_layers": s["n_layers"]}
        batch = s["batch_size"]
    train_config = {"batch_size": batch, "lr": s["lr"], "epochs": profile.epochs_or(s["epochs"]),
                    "patience": profile.patience, "loss_weights": dict(loss_weights or LOSS_WEIGHTS[row])}
    return model_config, train_config


def specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
          variants: tuple[str, ...] = MAIN_VARIANTS, with_tfn: bool = True, lambdas: str = "") -> list[RunSpec]:
    """The chapter's runs on one dataset: each variant trained once per seed (on ``mixed``, or on
    its own distribution for :data:`TRAINING_READINGS`), and (``with_tfn``) the baselines chapter's
    TFN trained on each of :data:`TFN_PROTOCOLS`; all tested under :data:`EVALS`. ``lambdas``
    ("λ1,λ2") overrides the settings row's loss weights. Every UMDF page builds its runs here, so
    pages share runs through the results store."""
    unknown = [v for v in variants if v not in ALL_VARIANTS]
    if unknown:
        raise ValueError(f"unknown UMDF variant(s) {unknown}; choose from {list(ALL_VARIANTS)}")
    row = settings_row(NAME, SETTINGS, dataset, settings)
    model_cfg, train_cfg = model_setup("umdf", row, profile, parse_lambdas(lambdas))
    out = []
    for variant in variants:
        out += train_once_specs("umdf", dataset, seeds, TRAINING_READINGS.get(variant, TRAIN_PROTOCOL), EVALS,
                                label=variant, model_config={**model_cfg, **ALL_VARIANTS[variant]},
                                train_config=train_cfg, data_options=data_options(dataset, data_path, profile),
                                save_outputs=(TSNE_PROTOCOL,))
    if with_tfn:
        for protocol in TFN_PROTOCOLS:
            out += baselines.tfn_specs(dataset, data_path, profile, seeds, row, EVALS, (TSNE_PROTOCOL,),
                                       train_protocol=protocol)
    return out


def sweep_specs(dataset: str, data_path: str | None, profile: Profile, seeds: str = "", settings: str = "",
                kind: str = "mosi") -> list[RunSpec]:
    """Every run of the chapter's pages on one dataset (every variant and reading, and the TFN contrasts), without the validation sweeps:
    what ``python -m msa_lib sweep --chapter umdf`` runs."""
    return specs(dataset, data_path, profile, parse_seeds(seeds or profile.seeds), settings, tuple(ALL_VARIANTS))


def paper_dataset(item: DatasetRuns) -> str:
    """The paper's dataset (MOSI / MOSEI / IEMOCAP) whose settings and reported rows a dataset's
    runs use."""
    return settings_row(NAME, SETTINGS, item.name, item.settings).upper()


def lambda_text(lambdas: str = "") -> str:
    """Which λ1, λ2 the runs used and where they came from."""
    given = parse_lambdas(lambdas)
    if given:
        return f"λ1, λ2 = ({given['fea']:g}, {given['logits']:g}), given as the `lambdas` parameter"
    pairs = ", ".join(f"({w['fea']:g}, {w['logits']:g}) on {r.upper()}" for r, w in LOSS_WEIGHTS.items())
    return (f"λ1, λ2 = {pairs}: the library's defaults, chosen on synthetic validation data (the paper does not "
            f"report them; re-choose on your data with `umdf_lambda.ipynb`)")


def setting_text(profile: Profile, lambdas: str = "") -> str:
    """Which UMDF setting a profile runs, for captions."""
    heads = "/".join(str(SETTINGS[r]["n_heads"]) for r in SETTINGS)
    lam = lambda_text(lambdas)
    paper = f"d={SETTINGS['mosi']['d']}, {SETTINGS['mosi']['n_layers']} MCIM layers, {heads} heads on {'/'.join(SETTINGS).upper()}"
    if not profile.cpu_budget:
        return f"the paper's setting ({paper}; {lam})"
    return (f"the CPU budget of the {profile.name} profile ({CPU_BUDGET['n_layers']} MCIM layers, "
            f"{CPU_BUDGET['n_heads']} heads, batch ≤ {CPU_BUDGET['max_batch']}, ≤ {profile.epochs} epochs; {lam}; "
            f"the paper's setting is on the chapter page)")


def run(dataset: str = "synthetic:mosi", data_path: str = "", profile: str = "smoke", seeds: str = "",
        device: str = "auto", results_dir: str = "", settings: str = "", variants: tuple[str, ...] = MAIN_VARIANTS,
        with_tfn: bool = True, lambdas: str = "") -> ChapterRun:
    """Build, train (what the store lacks) and load the chapter's runs on each dataset."""
    def make(name, path, prof, seed_list, choice, data):
        return specs(name, path, prof, seed_list, choice, tuple(variants), with_tfn, lambdas)

    return run_chapter(NAME, make, dataset, data_path, profile, seeds, device, results_dir, settings,
                       lambda prof: setting_text(prof, lambdas))


def _validation_sweep(choices: dict[str, tuple[dict, dict | None]], dataset: str, data_path: str, profile: str,
                      seed: int, device: str, results_dir: str, settings: str) -> pd.DataFrame:
    """One UMDF run per choice (label -> (model-config overrides, loss weights or None)), ranked
    by validation score: :func:`~msa_lib.experiments.validation_sweep`."""
    from ..experiments import get_profile, open_store, validation_sweep

    prof = get_profile(profile)
    row = settings_row(NAME, SETTINGS, dataset, settings)
    specs_by_choice = {}
    for label, (overrides, weights) in choices.items():
        model_cfg, train_cfg = model_setup("umdf", row, prof, weights)
        specs_by_choice[label] = train_once_specs(
            "umdf", dataset, [seed], TRAIN_PROTOCOL, (), label=f"UMDF {label}", model_config={**model_cfg, **overrides},
            train_config=train_cfg, data_options=data_options(dataset, data_path or None, prof))[0]
    return validation_sweep(specs_by_choice, open_store(results_dir), device)


def lambda_sweep(dataset: str = "synthetic:mosi", data_path: str = "", profile: str = "smoke", seed: int = 1,
                 device: str = "auto", results_dir: str = "", settings: str = "",
                 grid: tuple[tuple[float, float], ...] = LAMBDA_GRID) -> pd.DataFrame:
    """Validation score of UMDF for each (lambda_1, lambda_2) in ``grid`` (one seed; the test split
    is never read), best first, with columns ``lambda_1``, ``lambda_2``."""
    choices = {f"λ=({l1:g}, {l2:g})": ({}, {"fea": l1, "logits": l2}) for l1, l2 in grid}
    table = _validation_sweep(choices, dataset, data_path, profile, seed, device, results_dir, settings)
    pairs = pd.DataFrame([{"lambda_1": w["fea"], "lambda_2": w["logits"]} for _, w in
                          (choices[c] for c in table.pop("choice"))])
    return pd.concat([pairs, table], axis=1)


def dfim_sweep(dataset: str = "synthetic:mosi", data_path: str = "", profile: str = "smoke", seed: int = 1,
               device: str = "auto", results_dir: str = "", settings: str = "") -> pd.DataFrame:
    """Validation score of UMDF for each DFIM weighting (one seed, validation only), best first: how
    the default ``UMDFConfig.dfim_weighting`` was chosen."""
    choices = {w: ({"dfim_weighting": w}, None) for w in DFIM_WEIGHTINGS}
    table = _validation_sweep(choices, dataset, data_path, profile, seed, device, results_dir, settings)
    return table.rename(columns={"choice": "DFIM weighting"})


def settings_table() -> pd.DataFrame:
    """The paper's settings per dataset and what each profile runs (computed, for the chapter page)."""
    from ..experiments import PROFILES

    rows = []
    for row, s in SETTINGS.items():
        for prof in PROFILES.values():
            cfg, train = model_setup("umdf", row, prof)
            rows.append({"dataset": row.upper(), "profile": prof.name, "heads": cfg["n_heads"],
                         "MCIM layers": cfg["n_layers"], "d": s["d"], "batch": train["batch_size"], "lr": train["lr"],
                         "epochs": train["epochs"], "λ1 (L_fea)": train["loss_weights"]["fea"],
                         "λ2 (L_logits)": train["loss_weights"]["logits"]})
    return pd.DataFrame(rows).set_index(["dataset", "profile"])


# ---------------------------------------------------------------------------------------------
# what the paper leaves open: one table on the chapter page
# ---------------------------------------------------------------------------------------------

def open_choices() -> pd.DataFrame:
    """Every choice the paper leaves open (or where we differ): the paper's words, our default, the
    alternatives, and where the book measures them. Defaults are read from the code."""
    cfg = UMDFConfig()
    others = lambda values, default: ", ".join(v for v in values if v != default)  # noqa: E731
    lam = "; ".join(f"{r.upper()} ({w['fea']:g}, {w['logits']:g})" for r, w in LOSS_WEIGHTS.items())
    rows = [
        ("DFIM frame-level self-enhancement", "“Matrix multiplication of M_k with H_k yields the self-enhanced "
         "representation” (M_k = softmax of a score per frame)", f"dfim_weighting = {cfg.dfim_weighting}, chosen "
         "on validation (umdf.dfim_sweep)", others(DFIM_WEIGHTINGS, cfg.dfim_weighting) + " (M⊙H shrinks each "
         "frame by ~1/T; scaled keeps the scale; pooled = Mᵀ H, one vector)",
         "ablation page: readings table; validation sweep"),
        ("L_fea, Eq. 3", "“L_fea = (1/n) Σᵢ D̂(h_a, h_b)” with D̂ the MMD of Eq. 2", f"fea_reading = {cfg.fea_reading}: "
         "one MMD between the batch samples of h_a and h_b", "paired: mean over samples of the kernel distance "
         "between h_a,i and h_b,i", "ablation page: readings table"),
        ("MMD kernel", "“Gaussian kernel” (no bandwidth)", f"{cfg.kernel_num} Gaussian kernels, bandwidths "
         f"×{cfg.kernel_mul:g} around the mean pairwise squared distance (multi-kernel MMD, DAN)",
         "kernel_num, kernel_mul", "not measured"),
        ("f_y and dropout in L_logits", "“f_y(h_a)”, “f_y(h_b)” — no word on dropout",
         f"the prediction head without its dropout (logits_dropout = {cfg.logits_dropout}): identical views give "
         "L_logits = 0", "logits_dropout = True (the head's dropout makes L_logits partly a dropout-consistency "
         "term); share_logit_head = False (own FC layer)", "ablation page: readings table"),
        ("λ1, λ2", "“λ1 and λ2 are the weights” — no values", f"per settings row: {lam} (synthetic validation)",
         "the lambdas parameter of every UMDF page; umdf.LAMBDA_GRID", "λ sweep page (validation only)"),
        ("Training missingness", "“two heterogeneous modality-missing versions (including the modality-complete "
         "case)” per sample", f"{TRAIN_PROTOCOL}: frame dropping with r ~ U(0, 0.9) or one of the 7 subsets, "
         "½ each", ", ".join(TRAINING_READINGS.values()) + " (a subset with frames dropped "
         "inside it, as in Fig. 6's test condition)", "ablation page: training distribution table"),
        ("Epochs and selection", "epochs {100, 30, 40}; “hyper-parameters are determined via the validation set”",
         "paper profile: every epoch, the best validation epoch kept; smoke and book: early stopping on "
         "validation", "patience in the train config", "not measured (the book profile's budget)"),
        ("Crossmodal attention, Eq. 7", "CA = softmax(X_t W_Q W_Kᵀ X_sᵀ/√d_k) X_s W_V (no output projection)",
         "torch's MultiheadAttention, which adds an output projection W_O after the heads", "none implemented",
         "not measured"),
        ("Which representation Fig. 6 plots", "“the joint multimodal representations”", "h_k, the last element "
         "of H_k (what L_fea distils)", "the last element of H̄ (the head's input; representation = h_bar)",
         "t-SNE page (representation parameter)"),
        ("Absent modality", "“raw features at the modality missing positions are replaced by zero vectors”",
         "a dropped frame is zeroed; an absent modality is zeroed whole, padding included", "—",
         "protocols page"),
        ("Table 3's full-model row", "not readable in the extracted text", "Table 1's MOSI F1 row of UMDF stands in",
         "—", "ablation page (shaded column)"),
    ]
    return pd.DataFrame(rows, columns=["choice", "paper's words", "our default", "alternatives",
                                       "measured"]).set_index("choice")


def readings_table(item: DatasetRuns) -> pd.DataFrame:
    """One row per UMDF variant of ``item``: its validation score (what a choice is made on), and
    on test the complete condition, the Avg of the six missing conditions and Fig. 6's condition;
    mean ± std over seeds. Runs that did not train are left out."""
    from ..metrics import format_mean_std
    from ..report import seed_values

    valid = pd.DataFrame([{"variant": r["spec"]["label"], "seed": r["spec"]["seed"], **r["valid"]}
                          for r in item.records if r["spec"]["model"] == "umdf" and not r["health"]["degenerate"]])
    select = item.records[0]["health"]["select_metric"]
    results = item.verdict_results
    columns = {f"valid {select}": valid.pivot_table(index="seed", columns="variant", values=select)}
    for metric in ("F1_non0", "MAE"):
        columns[f"complete {metric}"] = seed_values(results, metric, "complete")
        columns[f"Avg {metric}"] = seed_values(results, metric)
    columns["{l}, p=0.5 F1_non0"] = seed_values(results, "F1_non0", TSNE_PROTOCOL)
    order = [v for v in dict.fromkeys(s.label for s in item.specs) if v in valid["variant"].unique()]
    table = pd.DataFrame({name: [format_mean_std(name.split()[-1], v[c].mean(), v[c].std()) if c in v else "–"
                                 for c in order] for name, v in columns.items()}, index=order)
    table.insert(1, "training", [TRAINING_READINGS.get(v, TRAIN_PROTOCOL) for v in order])
    return table.rename_axis("variant")


# ---------------------------------------------------------------------------------------------
# the chapter's claims, paper vs ours
# ---------------------------------------------------------------------------------------------

#: The paper's claims the chapter tests: (claim, where, method, baseline, metric, dataset row,
#: paper margin source). Margins are compared, not absolute values: a margin over a baseline is
#: what can carry over from synthetic data. ``paper`` names how the paper's margin is read off the
#: transcribed tables (None: the paper has no number for it).
CLAIMS: tuple[dict, ...] = (
    {"claim": "UMDF beats the baselines under inter-modality missingness", "where": "Table 1 (MOSI, Avg F1)",
     "method": "UMDF", "baseline": baselines.TRAINED_ON["mixed"], "metric": "F1_non0", "row": "mosi",
     "paper": ("umdf_table1", "best baseline")},
    {"claim": "UMDF beats the baselines on emotion recognition", "where": "Table 2 (IEMOCAP, Avg F1)",
     "method": "UMDF", "baseline": baselines.TRAINED_ON["mixed"], "metric": "Avg_F1", "row": "iemocap",
     "paper": ("umdf_table2", "best baseline")},
    {"claim": "Feature distillation (L_fea) helps", "where": "Table 3 (MOSI, Avg F1)", "method": "UMDF",
     "baseline": "UMDF w/o L_fea", "metric": "F1_non0", "row": "mosi", "paper": ("umdf_table3", "UMDF w/o L_fea")},
    {"claim": "Logits distillation (L_logits) helps", "where": "Table 3 (MOSI, Avg F1)", "method": "UMDF",
     "baseline": "UMDF w/o L_logits", "metric": "F1_non0", "row": "mosi",
     "paper": ("umdf_table3", "UMDF w/o L_logits")},
    {"claim": "Multi-grained crossmodal interaction (MCIM) helps", "where": "Table 3 (MOSI, Avg F1)",
     "method": "UMDF", "baseline": "UMDF w/o MCIM", "metric": "F1_non0", "row": "mosi",
     "paper": ("umdf_table3", "UMDF w/o MCIM")},
    {"claim": "Dynamic feature integration (DFIM) helps", "where": "Table 3 (MOSI, Avg F1)", "method": "UMDF",
     "baseline": "UMDF w/o DFIM", "metric": "F1_non0", "row": "mosi", "paper": ("umdf_table3", "UMDF w/o DFIM")},
    {"claim": "Self-distillation as a whole helps (our control; not in the paper)", "where": "control (MOSI, Avg F1)",
     "method": "UMDF", "baseline": NO_DISTILLATION, "metric": "F1_non0", "row": "mosi", "paper": None},
)


def paper_margin(source: tuple[str, str] | None, metric: str, row: str) -> float | None:
    """The paper's margin of UMDF over a baseline on the Avg condition (in the table's units, % for
    F1): over the best of the paper's baselines, or over one ablation row of Table 3. For Table 2
    the F1 is averaged over the four emotions first."""
    from ..metrics import metric_spec
    from ..report import reported

    if source is None:
        return None
    table, baseline = source
    rows = reported(table, condition="Avg")
    rows = rows[rows["dataset"] == row.upper()] if "dataset" in rows and row != "iemocap" else rows
    if metric == "Avg_F1":  # Table 2 reports F1 per emotion: average the four
        rows = rows[rows["metric"].str.endswith("_F1")].groupby("model")["value"].mean()
    else:
        rows = rows[rows["metric"] == metric].set_index("model")["value"]
    if table == "umdf_table3":  # the full model's row is Table 1's
        full = reported("umdf_table1", condition="Avg", dataset=row.upper(), model="UMDF")
        umdf = float(full[full["metric"] == metric]["value"].iloc[0])
        return umdf - float(rows[baseline])
    others = rows.drop("UMDF")
    best = others.max() if metric_spec(metric).higher else others.min()
    return float(rows["UMDF"] - best)


def claims(profile: str = "smoke", seeds: str = "", device: str = "auto", results_dir: str = "",
           mosi: str = "synthetic:mosi", mosi_path: str = "", iemocap: str = "synthetic:iemocap",
           iemocap_path: str = "") -> pd.DataFrame:
    """The chapter's claims (:data:`CLAIMS`): the paper's margin, ours (a paired difference over
    seeds with its interval, from the runs that trained) and a verdict. Trains what the store
    lacks: UMDF with every variant and both TFNs on ``mosi``, the main runs on ``iemocap``."""
    from ..metrics import metric_spec
    from ..report import CONFIDENCE, claim_row, verdict_table

    mosi_runs = run(mosi, mosi_path, profile, seeds, device, results_dir, "" if mosi_path == "" else "mosi",
                    variants=tuple(VARIANTS)).first
    iemocap_runs = run(iemocap, iemocap_path, profile, seeds, device, results_dir,
                       "" if iemocap_path == "" else "iemocap").first
    source = {"mosi": mosi_runs, "iemocap": iemocap_runs}
    rows = []
    for c in CLAIMS:
        item = source[c["row"]]
        v = verdict_table(item.verdict_results, c["method"], [c["baseline"]], [c["metric"]]).iloc[0].to_dict()
        paper = paper_margin(c["paper"], c["metric"], c["row"])
        sign = 1 if metric_spec(c["metric"]).higher else -1  # margins printed so that positive = better
        rows.append(claim_row(c["claim"], c["where"], v, None if paper is None else sign * paper,
                              item.path is not None))
    table = pd.DataFrame(rows)
    table.attrs["confidence"] = CONFIDENCE
    table.attrs["synthetic"] = [r.data.source for r in source.values() if r.data.is_synthetic]
    return table


def parse_grid(grid: str, row: str) -> tuple[tuple[float, float], ...]:
    """The λ grid a sweep runs: "page" (the row's default against λ1 = 1, :data:`PAGE_LAMBDA_GRID`),
    "full" (:data:`LAMBDA_GRID`) or explicit pairs "0.1,0.1;1,0.1"."""
    if grid in ("", "page"):
        return PAGE_LAMBDA_GRID[row]
    if grid == "full":
        return LAMBDA_GRID
    pairs = tuple(parse_lambdas(pair) for pair in grid.split(";") if pair.strip())
    if not pairs or None in pairs:
        raise ValueError(f"grid must be 'page', 'full' or pairs like '0.1,0.1;1,0.1'; got {grid!r}")
    return tuple((w["fea"], w["logits"]) for w in pairs)


def lambda_sweeps(dataset: str = "synthetic:mosi,synthetic:iemocap", data_path: str = "", settings: str = "",
                  profile: str = "smoke", seeds: str = "", device: str = "auto", results_dir: str = "",
                  grid: str = "page") -> tuple[list[tuple[pd.DataFrame, str]], list[str]]:
    """Per dataset of a comma-separated list: the λ sweep on validation (:func:`lambda_sweep`, with
    the first of ``seeds``) and its caption (which pair the pages use, whether this data agrees, the
    data); and the sources of the synthetic datasets among them (for the page's banner)."""
    from ..data import load_dataset
    from ..experiments import dataset_paths, get_profile, parse_seeds, settings_choices
    from ..report import data_caption

    prof = get_profile(profile)
    first_seed = parse_seeds(seeds or prof.seeds)[0]
    pairs = dataset_paths(dataset, data_path)
    choices = settings_choices(settings, len(pairs))
    out, synthetic = [], []
    for (name, path), choice in zip(pairs, choices):
        row = settings_row(NAME, SETTINGS, name, choice)
        sweep = lambda_sweep(name, path or "", profile, first_seed, device, results_dir, choice,
                             grid=parse_grid(grid, row))
        data = load_dataset(name, **data_options(name, path, prof))
        out.append((sweep, sweep_text(sweep, row, first_seed, data_caption(data))))
        if data.is_synthetic:
            synthetic.append(data.source)
    return out, synthetic


def sweep_text(sweep: pd.DataFrame, row: str, seed: int, caption: str) -> str:
    """The λ sweep's caption: which pair the pages ran with for this settings row, and whether the
    validation split of this data agrees."""
    default = (LOSS_WEIGHTS[row]["fea"], LOSS_WEIGHTS[row]["logits"])
    best = (float(sweep["lambda_1"].iloc[0]), float(sweep["lambda_2"].iloc[0]))
    agree = (" — the default." if best == default else
             f" — not the default: re-run the pages with `-p lambdas {best[0]:g},{best[1]:g}`.")
    return (f"**λ sweep, {row.upper()} settings** (validation only, seed {seed}; *trained* says whether the run beat "
            f"the input-blind predictor). The pages run with the library's default for {row.upper()}, "
            f"λ₁ = {default[0]:g}, λ₂ = {default[1]:g}; on this data the best pair on validation is λ₁ = {best[0]:g}, "
            f"λ₂ = {best[1]:g}{agree} {caption}")


def representation_key(model: str, representation: str) -> str:
    """The stored array a t-SNE figure plots: for UMDF ``"h_k"`` (the model's ``representation``)
    or ``"h_bar"`` (``representation_h_bar``); other models have one joint representation."""
    if representation not in ("h_k", "h_bar"):
        raise ValueError(f"representation must be 'h_k' (the last element of H_k) or 'h_bar' (of H-bar); "
                         f"got {representation!r}")
    return "representation_h_bar" if model == "umdf" and representation == "h_bar" else "representation"


# ---------------------------------------------------------------------------------------------
# real data: why UMDF falls below text alone (validation only)
# ---------------------------------------------------------------------------------------------

#: What the real-data page varies to explain the symptom, each against the default UMDF: label ->
#: (model-config overrides, training protocol, loss weights or None = the settings row's).
DIAGNOSIS: dict[str, tuple[dict, str, dict | None]] = {
    "UMDF": ({}, TRAIN_PROTOCOL, None),
    "UMDF, trained complete": ({}, "complete", None),
    "UMDF, trained on mixed:0.5": ({}, "mixed:0.5", None),
    NO_DISTILLATION: (VARIANTS[NO_DISTILLATION], TRAIN_PROTOCOL, None),
    "UMDF, λ = (1, 1)": ({}, TRAIN_PROTOCOL, {"fea": 1.0, "logits": 1.0}),
    "UMDF, f_y with dropout": (READINGS["UMDF, f_y with dropout"], TRAIN_PROTOCOL, None),
    "UMDF w/o DFIM": (VARIANTS["UMDF w/o DFIM"], TRAIN_PROTOCOL, None),
}
#: The conditions the diagnosis scores on validation: complete, text alone, text with one other
#: modality, vision alone.
DIAGNOSIS_PROTOCOLS: tuple[str, ...] = ("complete", "modality:l", "modality:la", "modality:lv", "modality:v")
#: Seeds of the diagnosis: the first of the page's seeds (budget).
DIAGNOSIS_SEEDS = 3


def diagnosis_specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = ""
                    ) -> list[RunSpec]:
    """The runs of :func:`diagnosis`: each :data:`DIAGNOSIS` reading, and TFN trained on complete
    data and on ``mixed`` (no test protocols: the diagnosis reads validation only). The default
    UMDF and complete-trained runs are the leaderboard's (same keys)."""
    row = settings_row(NAME, SETTINGS, dataset, settings)
    out = []
    for label, (overrides, protocol, weights) in DIAGNOSIS.items():
        model_cfg, train_cfg = model_setup("umdf", row, profile, weights)
        out += train_once_specs("umdf", dataset, seeds, protocol, (), label=label,
                                model_config={**model_cfg, **overrides}, train_config=train_cfg,
                                data_options=data_options(dataset, data_path, profile))
    for protocol in TFN_PROTOCOLS:
        out += baselines.tfn_specs(dataset, data_path, profile, seeds, row, (), train_protocol=protocol)
    return out


def diagnosis(dataset: str = "mosi-utterance", data_path: str = "", profile: str = "smoke", seeds: str = "",
              device: str = "auto", results_dir: str = "", settings: str = "") -> pd.DataFrame:
    """Why UMDF can be worse with three modalities than with text alone, measured on the
    *validation* split (the test split is never read): per run of :func:`diagnosis_specs`, the
    validation metrics under :data:`DIAGNOSIS_PROTOCOLS`, and the training split's under vision
    alone (what the model fitted). Seeds: the first :data:`DIAGNOSIS_SEEDS` of the leaderboard's.
    Tidy rows (label, seed, split, protocol, metric, value); ``attrs`` holds the data caption,
    the seeds and the synthetic source (None for real data)."""
    from ..data import load_dataset
    from ..experiments import get_profile, open_store, parse_seeds
    from ..report import data_caption
    from ..runs import run_grid, split_metrics
    from .leaderboard import default_seeds

    prof = get_profile(profile)
    seed_list = parse_seeds(seeds or default_seeds(dataset, data_path, prof))[:DIAGNOSIS_SEEDS]
    data = load_dataset(dataset, **data_options(dataset, data_path or None, prof))
    store = open_store(results_dir)
    specs_ = diagnosis_specs(dataset, data_path or None, prof, seed_list, settings)
    rows = []
    for spec, record in zip(specs_, run_grid(specs_, store, device=device, loader=lambda spec: data)):
        for split, protocols in (("valid", DIAGNOSIS_PROTOCOLS), ("train", ("modality:v",))):
            for protocol, metrics in split_metrics(spec, store, data, protocols, split, device).items():
                rows += [{"label": spec.label, "seed": spec.seed, "split": split, "protocol": protocol, "metric": k,
                          "value": v, "best epoch": record["best_epoch"]} for k, v in metrics.items()]
    out = pd.DataFrame(rows)
    out.attrs.update(caption=data_caption(data), seeds=seed_list,
                     synthetic=data.source if data.is_synthetic else None)
    return out


def diagnosis_table(values: pd.DataFrame, metric: str = "MAE") -> pd.DataFrame:
    """One row per run of :func:`diagnosis`: validation ``metric`` under each condition, the paired
    difference complete − text alone (signed so that + means the three modalities are better), and
    the training split's score with vision alone; mean ± std over seeds."""
    from ..metrics import format_mean_std, metric_spec
    from ..missing import parse_protocol

    d = values[values["metric"] == metric]
    wide = d.pivot_table(index=["label", "seed"], columns=["split", "protocol"], values="value", aggfunc="first")
    sign = 1 if metric_spec(metric).higher else -1
    columns = {f"valid {parse_protocol(p).label} {metric}": wide[("valid", p)] for p in DIAGNOSIS_PROTOCOLS}
    columns[f"3 modalities vs text alone (valid) {metric}"] = sign * (wide[("valid", "complete")]
                                                                      - wide[("valid", "modality:l")])
    columns[f"train {{v}} {metric}"] = wide[("train", "modality:v")]
    order = list(dict.fromkeys(values["label"]))
    table = pd.DataFrame({name: [format_mean_std(metric, col.xs(lab, level="label").mean(),
                                                 col.xs(lab, level="label").std()) for lab in order]
                          for name, col in columns.items()}, index=pd.Index(order, name="run"))
    return table


def diagnosis_text(values: pd.DataFrame, metric: str = "MAE") -> str:
    """What the diagnosis finds, computed: which runs are better with three modalities than with
    text alone on validation, which reading scores best on complete validation data, and what the
    runs fitted with vision alone on train against validation."""
    from ..metrics import format_value, metric_spec

    d = values[values["metric"] == metric]
    mean = d.groupby(["label", "split", "protocol"], sort=False)["value"].mean()
    sign = 1 if metric_spec(metric).higher else -1
    gain = {lab: sign * (mean[(lab, "valid", "complete")] - mean[(lab, "valid", "modality:l")])
            for lab in dict.fromkeys(values["label"])}
    better = [lab for lab, g in gain.items() if g > 0]
    worse = [lab for lab, g in gain.items() if g <= 0]
    complete = {lab: mean[(lab, "valid", "complete")] for lab in gain}
    best = max(complete, key=lambda lab: sign * complete[lab])
    umdf_v = (mean[("UMDF", "train", "modality:v")], mean[("UMDF", "valid", "modality:v")])
    fmt = lambda x: format_value(metric, x)  # noqa: E731
    seeds = ", ".join(map(str, values.attrs.get("seeds", [])))
    return (f"On validation ({metric}, mean over seeds {seeds}), **three modalities beat text alone** for: "
            f"{'; '.join(better) or 'no run'}. **Text alone is as good or better** for: {'; '.join(worse) or 'no run'}. "
            f"Best on complete validation data: {best} ({fmt(complete[best])}; default UMDF {fmt(complete['UMDF'])}). "
            f"With vision alone, the default UMDF scores {fmt(umdf_v[0])} on the training split and {fmt(umdf_v[1])} on "
            f"validation: what it learnt from vision on the training speakers does not carry over to held-out ones.")

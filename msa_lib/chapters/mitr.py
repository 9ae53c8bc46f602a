"""MITR-DNet chapter (Wang et al., ICASSP 2025): paper settings per dataset, profile -> configs,
the evaluation design (AUILC under per-rate training), the variants of Tables II-IV and of the
paper-vs-released-code readings, the run specs and the caption text. The network and its loss
terms are in :mod:`msa_lib.models.mitr_dnet`."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ..experiments import (ChapterRun, DatasetRuns, Profile, data_options, parse_seeds, per_rate_specs, run_chapter, settings_row,
                           train_once_specs)
from ..models.mitr_dnet import TERMS, MITRConfig
from ..report import AUILC_RATES
from ..results import RunSpec
from ..train import VALID_LOSS
from . import baselines

NAME = "mitr"
TITLE = "MITR-DNet (ICASSP 2025)"
MODELS = ("mitr_dnet",)
COVERS = "Tables I–IV, Figs. 3–4, paper vs released code"
REAL_DATA = "CMU-MOSI utterance features (leaderboard, real-data cell); MOSI / CH-SIMS files: loaders tested"
STATUS = "tables re-run on synthetic data; real-data leaderboard rows"

#: Paper, "Implementation details": Adam, batch 32, early stopping after 8 epochs without improvement,
#: seeds averaged; λ1, λ2, λ3 by grid search: (0.01, 0.1, 0.1) on MOSI, (0.3, 0, 0) on SIMS. The
#: learning rate and the epoch cap are not given: Adam's default 1e-3 and 100 epochs (early stopping
#: ends every run long before).
SETTINGS: dict[str, dict] = {
    "mosi": {"lambdas": (0.01, 0.1, 0.1), "batch_size": 32, "lr": 1e-3, "epochs": 100, "patience": 8},
    "sims": {"lambdas": (0.3, 0.0, 0.0), "batch_size": 32, "lr": 1e-3, "epochs": 100, "patience": 8},
}
#: Early stopping and checkpoint selection: the paper says only "an early stopping set at eight
#: epochs"; the released code stops on the validation total loss (Eq. 12, weighted as in training,
#: on the masked validation split with its complete input beside it), and so do we. The foundation's
#: criterion, validation MAE, is the ``SELECT_MAE`` reading.
SELECT_ON = VALID_LOSS
#: The paper's seeds (the released code's): what the paper profile trains when a page is given no
#: seeds; the other profiles train their own.
PAPER_SEEDS: tuple[int, ...] = (111, 1111, 11111)
#: Profiles with ``cpu_budget`` (smoke, book) project every modality to this width before its
#: encoder: the released encoder on the raw 768-d BERT features costs ~5x more per step on CPU.
CPU_BUDGET: dict[str, int] = {"encoder_dim": 32}
#: Each model's paper training distribution, for the leaderboard's train-once rows. The paper trains
#: one student per missing rate (the per-rate design, also on the leaderboard); one model for every
#: rate is trained on a fresh time mask per batch at the middle of MOSI's range.
TRAIN_PROTOCOLS: dict[str, str] = {"mitr_dnet": "frame:0.5:resample"}
#: Runs of the per-rate design: seeds (the paper: 3); the smoke profile, which nbval replays, runs one.
PER_RATE_SEEDS = 3


def page_seeds(profile: str, seeds: str = "") -> str:
    """The seeds a page trains: ``seeds`` if given; else :data:`PAPER_SEEDS` on the paper profile,
    and the profile's own (empty) otherwise."""
    return seeds or (",".join(map(str, PAPER_SEEDS)) if profile == "paper" else "")


def rate_seeds(profile: Profile, seeds: list[int]) -> list[int]:
    """The seeds a page's per-rate design trains: the first :data:`PER_RATE_SEEDS` (one on smoke)."""
    return seeds[:1 if profile.name == "smoke" else PER_RATE_SEEDS]

MAIN = "MITR-DNet"
FROZEN = "MITR-DNet, frozen teacher"
TEACHER = "teacher (complete-trained, frozen)"
FEATURES = "MITR-DNet, backward = features"
NO_TF = "MITR-DNet w/o TF"
SELECT_MAE = "MITR-DNet, selected on validation MAE"
#: Variants as model-config overrides of the default (the released-code reading where the paper is
#: silent: teacher = shared; the paper's where they conflict: backward = time).
VARIANTS: dict[str, dict] = {
    MAIN: {},
    FROZEN: {"teacher": "frozen", "phase": "student"},
    FEATURES: {"backward": "features"},
    SELECT_MAE: {},
    NO_TF: {"fusion": "sum"},
    **{f"MITR-DNet n={n}": {"n_modules": n} for n in (1, 2, 3, 5)},
    "MITR-DNet w/o L_dis": {"use_dis": False},
    "MITR-DNet w/o L_rec": {"use_rec": False},
    "MITR-DNet w/o L_sim": {"use_sim": False},
    "MITR-DNet w/o L_dis, L_rec, L_sim": {"use_dis": False, "use_rec": False, "use_sim": False},
}
#: Variants that change the training, not the network: train-config overrides of the default.
TRAIN_VARIANTS: dict[str, dict] = {SELECT_MAE: {"select_metric": "MAE"}}
#: Table II: n = 1..5 (the default n = 4 is MITR-DNet itself).
TABLE2: dict[int, str] = {n: MAIN if n == MITRConfig.n_modules else f"MITR-DNet n={n}" for n in range(1, 6)}
#: Table IV: the loss groups switched off one at a time and together.
TABLE4: tuple[str, ...] = (MAIN, "MITR-DNet w/o L_dis", "MITR-DNet w/o L_rec", "MITR-DNet w/o L_sim",
                           "MITR-DNet w/o L_dis, L_rec, L_sim")
#: The paper's reading against the released code's, one switch at a time (and the selection
#: criterion, which the paper leaves open).
READINGS: tuple[str, ...] = (MAIN, FROZEN, FEATURES, SELECT_MAE)
#: What the ablation page compares the default with, paired over seeds: each reading and w/o TF.
ABLATION_COMPARISONS: tuple[str, ...] = (*READINGS[1:], NO_TF)
#: The settings row of each table's dataset: Tables II and IV are on CH-SIMS.
ABLATION_ROW = "sims"
#: The readings ``benchmarks/throughput.py`` times besides the default (shared) network: the frozen
#: reading's teacher stage (complete data, Eq. 11) and student stage (teacher frozen, Eq. 12).
BENCHMARKS: dict[str, dict] = {"teacher": {"teacher": "frozen", "phase": "teacher"},
                               "student": {"teacher": "frozen", "phase": "student"}}
#: Fig. 4's missing rates.
FIG4_RATES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)


def loss_weights(row: str) -> dict[str, float]:
    """The trainer's loss weights for settings row ``row``: λ1 on each distillation term (MITR Eq.
    15), λ2 on L_rec^en (Eq. 17), λ3 on L_sim^en (Eq. 20); L_rec^MIB, L_sim^MIB and the teacher's
    task term weigh 1."""
    l1, l2, l3 = SETTINGS[row]["lambdas"]
    return {**{t: l1 for t in TERMS["dis"]}, "rec_en": l2, "sim_en": l3}


def model_setup(model: str, row: str, profile: Profile) -> tuple[dict, dict]:
    """(model_config, train_config) of MITR-DNet for settings row ``row`` under ``profile``: L1 task
    loss, the paper's batch, patience and λs; :data:`CPU_BUDGET` encoders on CPU profiles."""
    row = settings_row(NAME, SETTINGS, row)
    s = SETTINGS[row]
    model_config = dict(CPU_BUDGET) if profile.cpu_budget else {}
    patience = s["patience"] if profile.patience is None else min(s["patience"], profile.patience)
    train_config = {"batch_size": s["batch_size"], "lr": s["lr"], "epochs": profile.epochs_or(s["epochs"]),
                    "patience": patience, "task_loss": "l1", "loss_weights": loss_weights(row),
                    "select_metric": SELECT_ON}
    return model_config, train_config


def teacher_specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], row: str,
                  kind: str) -> list[RunSpec]:
    """The frozen reading's teachers: one per seed, trained on complete data (MITR Eq. 11) and
    tested at every rate of the dataset's AUILC range (the teacher on the students' masked inputs)."""
    model_cfg, train_cfg = model_setup("mitr_dnet", row, profile)
    return train_once_specs("mitr_dnet", dataset, seeds, "complete", [f"frame:{r:g}" for r in AUILC_RATES[kind]],
                            label=TEACHER, model_config={**model_cfg, "teacher": "frozen", "phase": "teacher"},
                            train_config=train_cfg, data_options=data_options(dataset, data_path, profile))


def variant_specs(variant: str, dataset: str, data_path: str | None, profile: Profile, seeds: list[int], row: str,
                  kind: str) -> list[RunSpec]:
    """``variant`` in the per-rate design: one run per (rate, seed), trained and tested at that rate.
    The frozen reading's students start from their seed's stored teacher (``init_from``): one
    teacher per seed instead of one per rate."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown MITR-DNet variant {variant!r}; choose from {list(VARIANTS)}")
    model_cfg, train_cfg = model_setup("mitr_dnet", row, profile)
    common = {"label": variant, "model_config": {**model_cfg, **VARIANTS[variant]},
              "train_config": {**train_cfg, **TRAIN_VARIANTS.get(variant, {})},
              "data_options": data_options(dataset, data_path, profile)}
    rates = AUILC_RATES[kind]
    if variant != FROZEN:
        return per_rate_specs("mitr_dnet", dataset, rates, seeds, **common)
    teachers = {t.seed: t.key for t in teacher_specs(dataset, data_path, profile, seeds, row, kind)}
    return [replace(s, init_from=teachers[s.seed]) for s in per_rate_specs("mitr_dnet", dataset, rates, seeds, **common)]


def specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
          kind: str = "mosi", variants: tuple[str, ...] = (MAIN, FROZEN), with_tfn: bool = True) -> list[RunSpec]:
    """The chapter's runs on one dataset: each variant per rate; with the frozen reading, its
    teachers (tested at every rate); and (``with_tfn``) TFN per rate, the baselines chapter's."""
    row = settings_row(NAME, SETTINGS, dataset, settings)
    out = teacher_specs(dataset, data_path, profile, seeds, row, kind) if FROZEN in variants else []
    for variant in variants:
        out += variant_specs(variant, dataset, data_path, profile, seeds, row, kind)
    if with_tfn:
        model_cfg, train_cfg = baselines.model_setup("tfn", row, profile)
        out += per_rate_specs("tfn", dataset, AUILC_RATES[kind], seeds, label="TFN", model_config=model_cfg,
                              train_config=train_cfg, data_options=data_options(dataset, data_path, profile))
    return out


def sweep_specs(dataset: str, data_path: str | None, profile: Profile, seeds: str = "", settings: str = "",
                kind: str = "mosi") -> list[RunSpec]:
    """Every run of the chapter's pages on one dataset (Table I's variants with TFN, and the ablation page's), without the validation sweeps:
    what ``python -m msa_lib sweep --chapter mitr`` runs."""
    row = settings_row(NAME, SETTINGS, dataset, settings)
    variants = tuple(dict.fromkeys((MAIN, FROZEN, *ablation_variants(row))))
    seed_list = parse_seeds(page_seeds(profile.name, seeds) or profile.seeds)
    return specs(dataset, data_path, profile, rate_seeds(profile, seed_list), settings, kind, variants)


def setting_text(profile: Profile) -> str:
    cfg = MITRConfig()
    lam = "; ".join(f"λ1, λ2, λ3 = {', '.join(f'{x:g}' for x in s['lambdas'])} on {r.upper()}" for r, s in SETTINGS.items())
    enc = (f"encoders on {CPU_BUDGET['encoder_dim']}-d projections (CPU budget)" if profile.cpu_budget
           else "encoders on the raw features")
    model_cfg, train_cfg = model_setup("mitr_dnet", "mosi", profile)
    return (f"MITR-DNet n = {cfg.n_modules}, d = {cfg.d}, {enc}; {lam}; batch {train_cfg['batch_size']}, "
            f"lr {train_cfg['lr']:g}, ≤ {train_cfg['epochs']} epochs, early stopping patience {train_cfg['patience']} "
            f"on the validation total loss ({profile.name} profile)")


def run(dataset: str = "synthetic:mosi,synthetic:sims", data_path: str = "", profile: str = "smoke",
        seeds: str = "", device: str = "auto", results_dir: str = "", settings: str = "",
        variants: tuple[str, ...] = (MAIN, FROZEN), with_tfn: bool = True) -> ChapterRun:
    """Build, train (what the store lacks) and load the chapter's per-rate runs on each dataset."""
    def make(name, path, prof, seed_list, choice, data):
        return specs(name, path, prof, rate_seeds(prof, seed_list), choice, data.kind, tuple(variants), with_tfn)

    return run_chapter(NAME, make, dataset, data_path, profile, page_seeds(profile, seeds), device, results_dir,
                       settings, setting_text)


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------

def table_metrics(kind: str) -> list[str]:
    """Table I's columns: MAE, Corr, Acc-5 / Acc-3, Acc-2 and F1 (has0/non0 on MOSI)."""
    if kind == "sims":
        return ["MAE", "Corr", "Acc-3", "Acc-2", "F1"]
    return ["MAE", "Corr", "Acc-5", "Acc-2_has0", "Acc-2_non0", "F1_has0", "F1_non0"]


def paper_dataset(item: DatasetRuns) -> str:
    """MOSI or SIMS: the paper's dataset whose settings and reported rows a dataset's runs use."""
    return settings_row(NAME, SETTINGS, item.name, item.settings).upper()


def per_rate_results(item: DatasetRuns) -> pd.DataFrame:
    """The tidy results of the per-rate runs (the teachers are train-once). Every run counts: at
    rate 1.0 nothing of the input is left, so those runs cannot train (the run-health table flags
    them) and are part of the curve by definition, as in the foundation's AUILC."""
    return item.results[item.results["design"] == "per_rate"]


def complete_table(item: DatasetRuns, labels: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Table I's complete block: each per-rate variant's rate-0 run (trained on complete data, the
    student's input is the teacher's) on complete test data; mean ± std over seeds."""
    from ..report import cells
    from ..results import summarize

    d = per_rate_results(item)
    d = d[d["protocol"] == "frame:0"]
    if labels:
        d = d[d["variant"].isin(labels)]
    s = summarize(d, by=("variant", "metric"))
    s["cell"] = cells(s)
    out = s.pivot(index="variant", columns="metric", values="cell")
    metrics = [m for m in table_metrics(item.data.kind) if m in out.columns]
    return out.reindex([v for v in dict.fromkeys(d["variant"]) if v in out.index])[metrics]


def auilc_values(item: DatasetRuns, labels: tuple[str, ...] | None = None, with_teacher: bool = True) -> pd.DataFrame:
    """Table I's incomplete block: AUILC over the dataset's rates (mean over seeds per rate first,
    the foundation's definition) of each per-rate variant, and of the frozen teachers tested at
    every rate (``with_teacher``)."""
    from ..report import auilc_table

    kind = item.data.kind
    d = per_rate_results(item)
    if labels:
        d = d[d["variant"].isin(labels)]
    parts = [d]
    teachers = item.results[item.results["variant"] == TEACHER]
    if with_teacher and not teachers.empty:
        parts.insert(0, teachers)
    return auilc_table(pd.concat(parts, ignore_index=True), table_metrics(kind), kind)


def auilc_per_seed(item: DatasetRuns, label: str, metric: str) -> pd.Series:
    """AUILC of ``metric`` per seed for one variant (what a paired comparison uses), in the metric's
    stored units (fractions for accuracies, so it formats like the metric)."""
    from ..metrics import auilc, metric_spec
    from ..report import curve

    kind = item.data.kind
    rates = list(AUILC_RATES[kind])
    c = curve(item.results[item.results["variant"] == label], metric)
    scale = metric_spec(metric).scale  # stored like the metric (fractions), as the leaderboard's
    return pd.Series({seed: auilc(rates, row[rates].to_numpy(), metric) / scale for seed, row in c.iterrows()
                      if not row[rates].isna().any()}, name=label, dtype=float)


def reported_rows(table: str, dataset: str, condition: str, model: str | None = None) -> pd.DataFrame:
    """The paper's rows of ``table`` (mitr_table1/2/3) for one dataset and condition, wide: one row
    per model (label "<model> (paper)"), one column per metric."""
    from ..report import reported

    rows = reported(table, dataset=dataset, condition=condition)
    if model:
        rows = rows[rows["model"] == model]
    wide = rows.pivot_table(index="model", columns="metric", values="value", aggfunc="first", sort=False)
    return wide.rename(index=lambda m: f"{m} (paper)")


def beside_paper(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Our rows, then the paper's (formatted as the library formats the metric), same columns."""
    from ..metrics import metric_spec

    fmt = paper.copy().astype(object)
    for metric in fmt.columns:  # the paper prints percentages; ours are fractions formatted as %
        spec = metric_spec(metric)
        fmt[metric] = [("–" if pd.isna(v) else f"{v:.{spec.decimals}f}") for v in paper[metric]]
    return pd.concat([ours.astype(object), fmt.reindex(columns=ours.columns).fillna("–")])


def format_auilc(values: pd.DataFrame) -> pd.DataFrame:
    """AUILC values as the tables print them (MAE / Corr plain, accuracies and F1 as the area in %)."""
    from ..metrics import metric_spec

    return values.apply(lambda col: [("–" if pd.isna(v) else f"{v:.{metric_spec(col.name).decimals}f}") for v in col])


# ---------------------------------------------------------------------------------------------
# the chapter page: settings and every choice the paper leaves open
# ---------------------------------------------------------------------------------------------

def settings_table() -> pd.DataFrame:
    """The paper's settings per dataset and what each profile runs (computed, for the chapter page)."""
    from ..experiments import PROFILES

    rows = []
    for row, s in SETTINGS.items():
        for prof in PROFILES.values():
            cfg, train = model_setup("mitr_dnet", row, prof)
            rows.append({"dataset": row.upper(), "profile": prof.name,
                         "encoders": f"{cfg['encoder_dim']}-d projection" if cfg.get("encoder_dim") else "raw features",
                         "n (modules 𝓕)": MITRConfig.n_modules, "d": MITRConfig.d, "batch": train["batch_size"],
                         "lr": train["lr"], "epochs ≤": train["epochs"], "patience": train["patience"],
                         "selected on": "validation total loss" if train["select_metric"] == VALID_LOSS
                         else f"validation {train['select_metric']}",
                         "λ1, λ2, λ3": ", ".join(f"{x:g}" for x in s["lambdas"])})
    return pd.DataFrame(rows).set_index(["dataset", "profile"])


def open_choices() -> pd.DataFrame:
    """Every choice the paper leaves open or where its released code differs: the paper's words, our
    default (read from the code), the alternatives, and where the book measures them."""
    cfg = MITRConfig()
    rows = [
        ("Teacher and student", "Fig. 2 draws a complete-modality teacher guiding a missing-modality student; the text "
         "never says the teacher is trained first", f"teacher = {cfg.teacher}: one network on the complete and the "
         "masked view, trained jointly, targets not detached (released code)", "frozen: teacher trained on complete "
         "data with Eq. 11, frozen, then the student (init_from: one teacher per seed for every rate)",
         "ablation page: paper vs released code"),
        ("Backward direction of MIB-TRL", "“splits the data stream into two directions”", f"backward = {cfg.backward}: "
         "each sample's valid frames reversed in time, outputs reversed back", "features: the channel axis of the "
         "(B, C, T) tensor flipped (released code), the time order unchanged", "ablation page: paper vs released code"),
        ("Modules shared between directions", "“each direction consists of n modules 𝓕”",
         f"share_blocks = {cfg.share_blocks} (released code)", "share_blocks = False: own modules per direction",
         "not measured"),
        ("The two identical convolutions", "“two identical convolutional layers” (no kernel)", "kernel 1 (pointwise), "
         f"ReLU, to d = {cfg.d}: the forward stack stays causal", "a wider kernel", "not measured"),
        ("Gated activation, Eq. 1", "ξ = tanh(y_dc) × σ(y_dc), one convolution", "literal: one dilated convolution "
         "feeds both", "WaveNet's separate filter and gate convolutions", "not measured"),
        ("Unimodal encoders 𝓔", "“self-attentive encoders”", f"one encoder layer, {cfg.encoder_heads} head, causal "
         "mask (released code); raw features on the paper profile, a "
         f"{CPU_BUDGET['encoder_dim']}-d projection first on CPU profiles", "encoder_dim, encoder_heads, "
         "encoder_causal; BERT fine-tuning is out of scope (text features are consumed)", "settings table"),
        ("Tokens of the fusion", "X_t, X_a, X_v (no pooling named)", "the mean of Z_m over valid frames (one token per "
         "modality; also what makes unaligned CH-SIMS lengths fit)", "the released code also averages the padding",
         "not measured"),
        ("Eq. 8 / 9", "MLP(Y_t↔v) + Y + MLP(Y_t↔v): the same term twice", "two separately parameterised MLPs", "one "
         "MLP counted twice", "not measured"),
        ("Distillation terms, Eq. 13-14", "‖Z̄ − Z̃‖², ‖Ȳ − Z̃‖¹, ‖Ỹ − Z̃‖² summed over modalities", "on the pooled "
         "tokens, as means over the batch and features (MSE, L1, MSE)", "on the whole sequences; sums instead of means",
         "not measured"),
        ("Reconstruction, Eq. 16", "smooth-L1 of X − MLP(·) · (1 − M_m)", "smooth-L1 against the complete input at "
         "the masked valid frames only, averaged over them", "—", "unit test"),
        ("SimSiam, Eq. 18", "f and h “MLP with different mapping dimensions”", f"h = projector (Linear + BN without "
         f"affine, {cfg.proj_dim}-d), f = predictor ({cfg.pred_dim}-d bottleneck) ∘ projector, on pooled E_m and "
         "Z_m", "—", "unit test"),
        ("Student masks", "“a randomly generated time mask g_m”", "per-rate runs: one fixed mask per split and rate "
         "(the foundation's per-rate design, EMT-DLFR / TFR-Net code); leaderboard train-once row: "
         f"{TRAIN_PROTOCOLS['mitr_dnet']}", "frame:P:resample per rate (a fresh mask per batch)", "not measured"),
        ("Learning rate, epochs", "Adam, batch 32 (no learning rate, no epoch cap)", f"lr {SETTINGS['mosi']['lr']:g} "
         f"(Adam's default), ≤ {SETTINGS['mosi']['epochs']} epochs (early stopping ends every run long before)", "—",
         "settings table"),
        ("Early stopping criterion", "“an early stopping set at eight epochs” (on what, not said)",
         "the validation total loss, Eq. 12 weighted as in training, on the masked validation split with its "
         "complete input beside it, in eval mode (the released code); it also selects the checkpoint",
         "validation MAE (= the student's L1 task term; the other chapters' criterion)",
         "ablation page: paper vs released code"),
        ("Complete-modality results", "“complete modality setting … the teacher model accomplishes the task alone”",
         "the rate-0 run of each per-rate variant, tested on complete data", "the frozen teacher on complete data",
         "Table I page"),
    ]
    return pd.DataFrame(rows, columns=["choice", "paper's words", "our default", "alternatives",
                                       "measured"]).set_index("choice")


# ---------------------------------------------------------------------------------------------
# verdicts: the student against the teacher and TFN, paired over seeds
# ---------------------------------------------------------------------------------------------

def auilc_verdicts(item: DatasetRuns, method: str, others: tuple[str, ...], metrics: tuple[str, ...] = ("MAE", "Acc-2")
                   ) -> pd.DataFrame:
    """``method``'s AUILC against each of ``others`` per metric: paired over seeds, the 95 %
    t-interval of the difference and a verdict (:func:`msa_lib.report.paired_comparison`). On MOSI
    "Acc-2" is Acc-2 non0."""
    from ..report import paired_comparison

    rows = []
    for metric in metrics:
        name = metric if metric in table_metrics(item.data.kind) else f"{metric}_non0"
        labels = [method, *others]
        values = pd.concat([auilc_per_seed(item, label, name) for label in labels], axis=1)
        for other in others:
            if other not in values.columns or values[other].dropna().empty:
                continue
            rows.append(paired_comparison(values, method, other, name))
    return pd.DataFrame(rows)


def verdict_text(verdicts: pd.DataFrame, paper: str) -> str:
    """One sentence per comparison of :func:`auilc_verdicts`: better / worse / no detectable difference."""
    from ..metrics import format_value

    if not verdicts.empty and (verdicts["verdict"] == "too few seeds").all():
        return f"**{paper}-shaped data:** one seed per run on this profile, so no verdict."
    parts = []
    for r in verdicts.to_dict("records"):
        fmt = lambda v: format_value(r["metric"], v)  # noqa: E731
        if r["verdict"] in ("better", "worse"):
            word = "beats" if r["verdict"] == "better" else "is below"
        elif r["verdict"] == "no detectable difference":
            word = "is not distinguishable from"
        else:
            word = f"cannot be compared with ({r['verdict']})"
        parts.append(f"{r['method']} {word} {r['baseline']} on {r['metric']} AUILC ({fmt(r['method mean'])} vs "
                     f"{fmt(r['baseline mean'])}, {r['seeds']} seeds)")
    return f"**{paper}-shaped data:** " + "; ".join(parts) + "." if parts else ""


# ---------------------------------------------------------------------------------------------
# the ablation page: Tables II-IV and the paper against the released code
# ---------------------------------------------------------------------------------------------

def ablation_variants(row: str) -> tuple[str, ...]:
    """What the ablation page trains on a dataset with settings row ``row``: Table III (w/o TF) and
    the readings everywhere; Tables II and IV on CH-SIMS, as the paper."""
    out = [MAIN, NO_TF, *READINGS[1:]]
    if row == ABLATION_ROW:
        out += [v for v in [*TABLE2.values(), *TABLE4] if v not in out]
    return tuple(out)


def ablation(dataset: str = "synthetic:mosi,synthetic:sims", data_path: str = "", profile: str = "smoke",
             seeds: str = "", device: str = "auto", results_dir: str = "", settings: str = "") -> ChapterRun:
    """The ablation page's per-rate runs (:func:`ablation_variants` per dataset; MITR-DNet and the
    frozen reading are shared with the Table I page through the results store)."""
    def make(name, path, prof, seed_list, choice, data):
        row = settings_row(NAME, SETTINGS, name, choice)
        return specs(name, path, prof, rate_seeds(prof, seed_list), choice, data.kind, ablation_variants(row),
                     with_tfn=False)

    return run_chapter(NAME, make, dataset, data_path, profile, page_seeds(profile, seeds), device, results_dir,
                       settings, setting_text)


def table2(item: DatasetRuns) -> pd.DataFrame:
    """Table II: AUILC per number of modules n (rows "n = 1" …), ours beside the paper's."""
    ours = format_auilc(auilc_values(item, tuple(TABLE2.values()), with_teacher=False))
    ours = ours.rename(index={label: f"n = {n}" for n, label in TABLE2.items()}).reindex([f"n = {n}" for n in TABLE2])
    paper = reported_rows("mitr_table2", paper_dataset(item), "AUILC")
    paper = paper.rename(index=lambda m: "n = " + m.split("n=")[1].split()[0] + " (paper)")
    return beside_paper(ours, paper)


def table3(item: DatasetRuns) -> pd.DataFrame:
    """Table III: MITR-DNet with and without Transformer Fusion, complete (the rate-0 runs) and
    incomplete (AUILC), ours beside the paper's w/o TF row."""
    metrics = ["Acc-3" if item.data.kind == "sims" else "Acc-5", "MAE", "Corr"]
    complete = complete_table(item, (MAIN, NO_TF))[metrics]
    incomplete = format_auilc(auilc_values(item, (MAIN, NO_TF), with_teacher=False))[metrics]
    paper = paper_dataset(item)
    rows = {"complete": (complete, reported_rows("mitr_table3", paper, "complete")),
            "incomplete (AUILC)": (incomplete, reported_rows("mitr_table3", paper, "AUILC"))}
    parts = {setting: beside_paper(ours, rep.reindex(columns=metrics)) for setting, (ours, rep) in rows.items()}
    return pd.concat(parts, names=["setting", "model"])


def table4(item: DatasetRuns) -> pd.DataFrame:
    """Table IV: AUILC with the loss groups switched off one at a time and together (the paper's
    numbers did not survive text extraction: ours only)."""
    return format_auilc(auilc_values(item, TABLE4, with_teacher=False))


def readings(item: DatasetRuns) -> pd.DataFrame:
    """The paper against the released code: per reading (and the frozen teacher on the students'
    masked inputs), complete (rate-0 run) and AUILC MAE and Acc-2; mean ± std over seeds."""
    from ..metrics import format_mean_std, format_value

    acc = "Acc-2" if item.data.kind == "sims" else "Acc-2_non0"
    labels = [v for v in (TEACHER, *READINGS) if (item.results["variant"] == v).any()]
    complete = complete_table(item, READINGS)
    rows = []
    for label in labels:
        row = {"reading": label}
        for metric in ("MAE", acc):
            row[f"complete {metric}"] = complete.loc[label, metric] if label in complete.index else "–"
            values = auilc_per_seed(item, label, metric)
            row[f"AUILC {metric}"] = ("–" if values.empty else format_value(metric, values.iloc[0]) if len(values) == 1
                                      else format_mean_std(metric, values.mean(), values.std()))
        rows.append(row)
    return pd.DataFrame(rows).set_index("reading")


READING_TEXT: dict[str, str] = {
    MAIN: "teacher = shared (released code), backward = time (paper)",
    FROZEN: "teacher = frozen (the paper's figure), backward = time",
    FEATURES: "teacher = shared, backward = features (released code)",
    SELECT_MAE: "the default, stopped and selected on validation MAE instead of the validation total loss",
    TEACHER: "the frozen reading's teacher, trained on complete data, on the students' masked inputs",
}


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------

def example_samples(item: DatasetRuns, n: int = 5) -> list[int]:
    """Fig. 3's samples: the test samples whose labels are nearest the 0, 25, 50, 75 and 100 %
    quantiles of the test labels (a spread from most negative to most positive)."""
    import numpy as np

    labels = item.data["test"].labels
    picks: list[int] = []
    for q in np.linspace(0, 1, n):
        order = np.argsort(np.abs(labels - np.quantile(labels, q)), kind="stable")
        picks.append(int(next(i for i in order if i not in picks)))
    return picks


def example_predictions(runs: ChapterRun, item: DatasetRuns, labels: tuple[str, ...] = (MAIN, FROZEN, "TFN"),
                        device: str = "auto") -> pd.DataFrame:
    """Fig. 3: for the :func:`example_samples`, the true label and each model's prediction on the
    complete test input (its rate-0 run, the first seed): one row per sample (the paper's columns,
    turned to fit the page), one column per model."""
    from ..runs import stored_model
    from ..train import predict, resolve_device

    picks = example_samples(item)
    test = item.data["test"]
    rows = {"true label": test.labels[picks]}
    for label in labels:
        spec = next((s for s in item.specs if s.label == label and s.train_protocol == "frame:0"), None)
        if spec is None:
            continue
        model = stored_model(spec, runs.store, item.data, device)
        rows[label] = predict(model, test, device=resolve_device(device))["prediction"][picks]
    return pd.DataFrame(rows, index=pd.Index([test.ids[i] for i in picks], name="test sample"))


def loss_curves(item: DatasetRuns, label: str = MAIN, rates: tuple[float, ...] = FIG4_RATES) -> pd.DataFrame:
    """Fig. 4: the student's training loss per epoch (the weighted total and each term as logged,
    unweighted) for each missing rate of ``rates``, the first seed: tidy (rate, epoch, term, value)."""
    seed = min(r["spec"]["seed"] for r in item.records)
    rows = []
    for record in item.records:
        spec = record["spec"]
        if spec["label"] != label or spec["seed"] != seed or spec["design"] != "per_rate":
            continue
        rate = float(spec["train_protocol"].split(":")[1])
        if not any(abs(rate - r) < 1e-9 for r in rates):
            continue
        for h in record["history"]:
            rows += [{"rate": rate, "epoch": h["epoch"] + 1, "term": k[len("train/"):], "value": v}
                     for k, v in h.items() if k.startswith("train/")]
    return pd.DataFrame(rows).sort_values(["rate", "epoch"], kind="stable")


# ---------------------------------------------------------------------------------------------
# real data: the paper's headline comparison on the CMU-MOSI utterance features
# ---------------------------------------------------------------------------------------------

def real_data(profile: str = "smoke", seeds: str = "", device: str = "auto", results_dir: str = ""):
    """MITR-DNet and TFN on the real dataset, per-rate training included (the leaderboard's runs):
    a :class:`~msa_lib.chapters.leaderboard.Leaderboard`, or why the data cannot be had."""
    from . import leaderboard

    why = leaderboard.unavailable()
    if why:
        return why
    seeds = seeds or ("1" if profile == "smoke" else "")  # smoke (what nbval replays): one seed's curves
    return leaderboard.run(leaderboard.DATASET, "", profile, seeds, device, results_dir, models=("mitr_dnet", "tfn"))


def show_real_data(real) -> None:
    """Display :func:`real_data`: complete data and per-rate AUILC, MITR-DNet against TFN and the
    ridge references, and the paired verdict; a one-line note when the data could not be had."""
    from IPython.display import Markdown, display

    from ..style import show, styled_parts
    from . import leaderboard

    if isinstance(real, str):
        display(Markdown(f"*Real data not available here* ({real.splitlines()[0]}); the leaderboard page shows the "
                         f"stored real-data results."))
        return
    blocks = ("complete", "per-rate training (AUILC)")
    metrics = ("MAE", "Corr", "Acc-2_non0", "F1_non0")
    tables = {b: real.block_table(b)[list(metrics)] for b in blocks}
    wide = pd.concat(tables, axis=1)
    wide = wide.set_axis([f"{b} {m}" for b, m in wide.columns], axis=1).fillna("–")
    show(*styled_parts(wide, 4, best="column", reference_rows=real.reference_entries))
    per_rate = leaderboard.labels("mitr_dnet")["per_rate"], leaderboard.labels("tfn")["per_rate"]
    scores = real.scores[real.scores["block"] == "per-rate training (AUILC)"]
    from ..metrics import format_value
    from ..report import paired_comparison

    sentences = []
    for metric in ("MAE", "Acc-2_non0"):
        values = scores[scores["metric"] == metric].pivot_table(index="seed", columns="entry", values="value")
        names = [leaderboard.display_name("mitr_dnet"), leaderboard.display_name("tfn")]
        if all(n in values.columns for n in names):
            v = paired_comparison(values, names[0], names[1], metric)
            sentences.append(f"{metric} {v['verdict']} (difference {format_value(metric, v['difference'])}, "
                             f"{v['seeds']} seeds)")
    display(Markdown(
        f"**Real data: MITR-DNet and TFN on `{real.item.name}`**, the paper's headline comparison (Table I: complete "
        f"data, and AUILC under per-rate training) on real features: the leaderboard's runs "
        f"({{doc}}`/notebooks/leaderboard`). Paired over seeds {', '.join(map(str, real.runs.seeds))}, MITR-DNet "
        f"against TFN per-rate — " + "; ".join(sentences) + ". Every modality is one frame long here: a frame rate "
        f"p drops whole modalities, and the temporal machinery (causal convolutions, time reversal, the time masks "
        f"within a modality) has nothing to work on ({{doc}}`/book/mitr`). Per-rate labels: {', '.join(per_rate)}. "
        f"{real.item.caption}"))


# ---------------------------------------------------------------------------------------------
# the chapter's claims, paper vs ours (the glance page)
# ---------------------------------------------------------------------------------------------

#: The paper's claims the chapter tests, on AUILC under per-rate training: (claim, where, method,
#: baseline, metric, settings row, the paper's rows: (table, baseline model) or None).
CLAIMS: tuple[dict, ...] = (
    {"claim": "MITR-DNet beats TFN under random missingness", "where": "Table I (MOSI, AUILC MAE)",
     "method": MAIN, "baseline": "TFN", "metric": "MAE", "row": "mosi", "paper": ("mitr_table1", "TFN")},
    {"claim": "MITR-DNet beats TFN under random missingness", "where": "Table I (CH-SIMS, AUILC MAE)",
     "method": MAIN, "baseline": "TFN", "metric": "MAE", "row": "sims", "paper": ("mitr_table1", "TFN")},
    {"claim": "Transformer Fusion helps", "where": "Table III (CH-SIMS, AUILC MAE)", "method": MAIN,
     "baseline": NO_TF, "metric": "MAE", "row": "sims", "paper": ("mitr_table3", "MITR-DNet w/o TF")},
    {"claim": "The student beats its complete-trained teacher on the same masked inputs (our control)",
     "where": "control (CH-SIMS, AUILC MAE)", "method": FROZEN, "baseline": TEACHER, "metric": "MAE", "row": "sims",
     "paper": None},
)


def paper_margin(source: tuple[str, str] | None, metric: str, row: str) -> float | None:
    """MITR-DNet's AUILC margin over ``source``'s baseline in the paper (positive = MITR-DNet better)."""
    from ..metrics import metric_spec

    if source is None:
        return None
    table, baseline = source
    mitr_value = reported_rows("mitr_table1", row.upper(), "AUILC", "MITR-DNet")[metric].iloc[0]
    other = reported_rows(table, row.upper(), "AUILC", baseline)[metric].iloc[0]
    return float(mitr_value - other) * (1 if metric_spec(metric).higher else -1)


def claims(profile: str = "smoke", seeds: str = "", device: str = "auto", results_dir: str = "",
           mosi: str = "synthetic:mosi", mosi_path: str = "", sims: str = "synthetic:sims", sims_path: str = ""
           ) -> pd.DataFrame:
    """The chapter's claims (:data:`CLAIMS`): the paper's margin, ours (a paired AUILC difference over
    seeds with its 95 % interval; positive = the method is better) and a verdict. Trains what the
    store lacks: the Table I page's runs on both datasets and MITR-DNet w/o TF on CH-SIMS."""
    from ..report import CONFIDENCE, claim_row, paired_comparison

    def runs_of(name, path, row, variants):
        return run(name, path, profile, seeds, device, results_dir, "" if not path else row, variants=variants).first

    source = {"mosi": runs_of(mosi, mosi_path, "mosi", (MAIN, FROZEN)),
              "sims": runs_of(sims, sims_path, "sims", (MAIN, FROZEN, NO_TF))}
    rows = []
    for c in CLAIMS:
        item = source[c["row"]]
        values = pd.concat([auilc_per_seed(item, c["method"], c["metric"]),
                            auilc_per_seed(item, c["baseline"], c["metric"])], axis=1)
        v = paired_comparison(values, c["method"], c["baseline"], c["metric"])
        rows.append(claim_row(c["claim"], c["where"], v, paper_margin(c["paper"], c["metric"], c["row"]),
                              item.path is not None, paper_decimals=3))
    table = pd.DataFrame(rows)
    table.attrs["confidence"] = CONFIDENCE
    table.attrs["synthetic"] = [r.data.source for r in source.values() if r.data.is_synthetic]
    return table

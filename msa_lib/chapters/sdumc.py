"""SDUMC chapter (Weng et al., 2024): paper settings per dataset, profile -> configs, the two presets
(the paper's and the released code's), the variants of Table I, the text-missing comparison of
Table II (every model of the library, text removed at test time, no retraining), the similarity
figure (Fig. 2), the run specs and the caption text. The network and its loss terms are in
:mod:`msa_lib.models.sdumc`; Rank-N-Contrast and RMSE in :mod:`msa_lib.losses`."""
from __future__ import annotations

import pandas as pd

from ..experiments import (ChapterRun, DatasetRuns, Profile, data_options, parse_seeds, run_chapter, settings_row,
                           train_once_specs, validation_sweep)
from ..models.sdumc import SDUMCConfig
from ..results import RunSpec

NAME = "sdumc"
TITLE = "SDUMC"
MODELS = ("sdumc",)
COVERS = "Tables I–II, Fig. 2, paper vs released preset"
REAL_DATA = "CMU-MOSI utterance features (leaderboard, real-data cell); MOSEI files: loaders tested"
STATUS = "tables re-run on synthetic data; real-data leaderboard rows"

#: The paper evaluates on CMU-MOSEI only and refers to its released code for every value: Adam, lr 1e-4,
#: weight decay 1e-5, batch 96, 25 epochs. Early stopping on validation MAE (the paper: "using the MAE
#: metric for early stopping"; the patience is ours). MOSI and CH-SIMS rows reuse MOSEI's values so the
#: leaderboard can run the model on them (the paper has no setting there).
PAPER_SETTING: dict = {"lr": 1e-4, "weight_decay": 1e-5, "batch_size": 96, "epochs": 25, "patience": 5}
SETTINGS: dict[str, dict] = {row: PAPER_SETTING for row in ("mosei", "mosi", "sims")}
#: α, β, γ, δ of Eq. 7 (loss weights of mkd1, mkd2, rs, rnc) for the paper preset: chosen on
#: validation (:func:`weight_sweep`, shown on the ablation page; synthetic MOSEI, book profile, seed 1,
#: validation MAE).
PAPER_WEIGHTS: dict[str, float] = {"mkd1": 0.1, "mkd2": 0.1, "rs": 0.1, "rnc": 1.0}
#: The α…δ grid :func:`weight_sweep` chooses from.
WEIGHT_GRID: dict[str, dict[str, float]] = {
    "α=β=γ=0.1, δ=1": PAPER_WEIGHTS,
    "α=β=γ=0.1, δ=0.5": {"mkd1": 0.1, "mkd2": 0.1, "rs": 0.1, "rnc": 0.5},
    "α=β=γ=δ=1": {"mkd1": 1.0, "mkd2": 1.0, "rs": 1.0, "rnc": 1.0},
    "α=β=γ=1, δ=0.5": {"mkd1": 1.0, "mkd2": 1.0, "rs": 1.0, "rnc": 0.5},
    "α=β=γ=1, δ=0.1": {"mkd1": 1.0, "mkd2": 1.0, "rs": 1.0, "rnc": 0.1},
}
#: The released code (WarmCongee/SDUMC): MIA defined but not called, text-distillation weights 0, loss
#: 0.5·MSE_full + 0.5·MSE_missing + 0.13·RMSE(r̂, r) + 0.5·RnC on 64-d projections (temperature 2,
#: L1 label distance); 5 warm-up epochs, then ×0.9 every 10; no early stopping over its 25 epochs, the
#: best epoch picked on test MAE — ours on validation MAE.
RELEASED: dict = {"model": {"use_mia": False, "use_mkd": False, "rnc_dim": 64},
                  "weights": {"task": 0.5, "task_missing": 0.5, "rs": 0.13, "rnc": 0.5},
                  "warmup_epochs": 5, "lr_step_epochs": 10, "lr_gamma": 0.9}
PRESETS: tuple[str, ...] = ("paper", "released")
#: CPU profiles (smoke, book) train ≤ 8 epochs on a few hundred samples: at lr 1e-4 with batch 96
#: that is ~24 steps and nothing trains, so they use batch 32 and lr 1e-3 (the settings table says so)
#: and the released schedule scaled to the epoch cap.
CPU_BUDGET: dict = {"batch_size": 32, "lr": 1e-3}
#: The leaderboard's train-once row: the paper trains on complete data (the text-missing flow is made
#: inside every batch).
TRAIN_PROTOCOLS: dict[str, str] = {"sdumc": "complete"}
#: What every chapter run is tested under: with the ground-truth text, and without text.
WITH_TEXT, WITHOUT_TEXT = "complete", "modality:av"
EVALS: tuple[str, ...] = (WITH_TEXT, WITHOUT_TEXT)

MAIN = "SDUMC"
RELEASED_LABEL = "SDUMC, released preset"
NO_MIA_MKD = "SDUMC w/o MIA, L_MKD"
#: Table I: label -> (LLM_g, MIA, L_MKD, L_RS, L_RNC) as the paper's check marks, and the switches.
TABLE1: dict[str, tuple[tuple[bool, ...], dict]] = {
    "SDUMC w/o LLM_g": ((False, True, True, True, True), {"text_sim": "none"}),
    NO_MIA_MKD: ((True, False, False, True, True), {"use_mia": False, "use_mkd": False}),
    "SDUMC w/o MIA": ((True, False, True, True, True), {"use_mia": False}),
    "SDUMC w/o L_MKD": ((True, True, False, True, True), {"use_mkd": False}),
    "SDUMC w/o L_RS": ((True, True, True, False, True), {"use_rs": False}),
    "SDUMC w/o L_RNC": ((True, True, True, True, False), {"use_rnc": False}),
    MAIN: ((True, True, True, True, True), {}),
}
SWITCHES: tuple[str, ...] = ("LLM_g", "MIA", "L_MKD", "L_RS", "L_RNC")
#: Fig. 2: the full model beside the one "after removing MIA and distillation losses".
FIG2: tuple[str, str] = (MAIN, NO_MIA_MKD)
#: Readings ``benchmarks/throughput.py`` times besides the default: the released preset's network.
BENCHMARKS: dict[str, dict] = {"released": RELEASED["model"]}


def parse_text_sim(text_sim: str) -> dict:
    """The notebooks' ``text_sim`` parameter as model-config fields: "learned", "none" or
    "precomputed:<key>" (the data file's key of the simulated text features)."""
    kind, _, key = text_sim.partition(":")
    if kind not in ("learned", "none", "precomputed") or (kind == "precomputed") != bool(key):
        raise ValueError(f"text_sim must be 'learned', 'none' or 'precomputed:<key>' (the data file's key of the "
                         f"simulated text features); got {text_sim!r}")
    return {"text_sim": kind, "text_sim_key": key} if key else ({} if kind == "learned" else {"text_sim": kind})


def extra_keys(text_sim: str) -> tuple[str, ...]:
    """The data keys a ``text_sim`` reading needs loaded (the precomputed simulated text)."""
    key = parse_text_sim(text_sim).get("text_sim_key")
    return (key,) if key else ()


def model_setup(model: str, row: str, profile: Profile, preset: str = "paper") -> tuple[dict, dict]:
    """(model_config, train_config) of SDUMC for settings row ``row``, ``preset`` ("paper" or
    "released") under ``profile``: MSE task loss on both flows, the preset's α…δ, and on CPU
    profiles :data:`CPU_BUDGET` with the released schedule scaled to the epoch cap."""
    if preset not in PRESETS:
        raise ValueError(f"unknown SDUMC preset {preset!r}; choose one of {PRESETS}")
    s = SETTINGS[settings_row(NAME, SETTINGS, row)]
    epochs = profile.epochs_or(s["epochs"])
    train = {"batch_size": s["batch_size"], "lr": s["lr"], "weight_decay": s["weight_decay"], "epochs": epochs,
             "task_loss": "mse", "loss_weights": dict(PAPER_WEIGHTS)}
    if profile.cpu_budget:
        train.update(CPU_BUDGET)
    if preset == "paper":
        train["patience"] = s["patience"] if profile.patience is None else min(s["patience"], profile.patience)
        return {}, train
    scale = epochs / s["epochs"]  # the released schedule, scaled to the epoch cap (1 on the paper profile)
    train.update(patience=None, loss_weights=dict(RELEASED["weights"]), lr_gamma=RELEASED["lr_gamma"],
                 warmup_epochs=max(1, round(RELEASED["warmup_epochs"] * scale)),
                 lr_step_epochs=max(1, round(RELEASED["lr_step_epochs"] * scale)))
    return dict(RELEASED["model"]), train


def variant_specs(label: str, dataset: str, data_path: str | None, profile: Profile, seeds: list[int], row: str,
                  text_sim: str = "learned", weights: dict[str, float] | None = None) -> list[RunSpec]:
    """``label`` (a Table I row, :data:`MAIN` or :data:`RELEASED_LABEL`) trained once per seed on
    complete data, tested with and without text. The "w/o LLM_g" row keeps ``text_sim="none"``."""
    if label == RELEASED_LABEL:
        model_cfg, train_cfg = model_setup("sdumc", row, profile, "released")
        switches = {}
    elif label in TABLE1:
        model_cfg, train_cfg = model_setup("sdumc", row, profile)
        switches = TABLE1[label][1]
    else:
        raise ValueError(f"unknown SDUMC variant {label!r}; choose from {[*TABLE1, RELEASED_LABEL]}")
    if weights:
        train_cfg = {**train_cfg, "loss_weights": {**train_cfg["loss_weights"], **weights}}
    model_cfg = {**model_cfg, **parse_text_sim(text_sim), **switches}
    if model_cfg.get("text_sim") == "none":  # the "w/o LLM_g" row reads no simulated text, precomputed or not
        model_cfg.pop("text_sim_key", None)
    return train_once_specs("sdumc", dataset, seeds, TRAIN_PROTOCOLS["sdumc"], EVALS, label=label,
                            model_config=model_cfg, train_config=train_cfg,
                            data_options=data_options(dataset, data_path, profile, extra_keys=extra_keys(text_sim)))


def setting_text(profile: Profile) -> str:
    cfg = SDUMCConfig()
    model_cfg, train = model_setup("sdumc", "mosei", profile)
    weights = ", ".join(f"{g} = {train['loss_weights'][k]:g}" for g, k in zip("αβγδ", ("mkd1", "mkd2", "rs", "rnc")))
    budget = " (CPU budget)" if profile.cpu_budget else ""
    return (f"SDUMC D = {cfg.d}, D' = {cfg.mia_hidden}, learned text simulator ({cfg.sim_layers} layers, "
            f"{cfg.sim_dim}-d); {weights}, RNC τ = {cfg.rnc_temperature:g}; batch {train['batch_size']}, "
            f"lr {train['lr']:g}{budget}, ≤ {train['epochs']} epochs, early stopping patience {train['patience']} on "
            f"validation MAE ({profile.name} profile)")


def specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
          variants: tuple[str, ...] = (*TABLE1, RELEASED_LABEL), text_sim: str = "learned") -> list[RunSpec]:
    """The chapter's runs on one dataset: each of ``variants`` trained once per seed (on complete data,
    both flows in every batch), tested with and without text."""
    row = settings_row(NAME, SETTINGS, dataset, settings)
    return [s for v in variants for s in variant_specs(v, dataset, data_path, profile, seeds, row, text_sim)]


def run(dataset: str = "synthetic:mosei", data_path: str = "", profile: str = "smoke", seeds: str = "",
        device: str = "auto", results_dir: str = "", settings: str = "", text_sim: str = "learned",
        variants: tuple[str, ...] = (*TABLE1, RELEASED_LABEL)) -> ChapterRun:
    """Build, train (what the store lacks) and load the chapter's runs (``variants``) on each dataset."""
    def make(name, path, prof, seed_list, choice, data):
        return specs(name, path, prof, seed_list, choice, tuple(variants), text_sim)

    return run_chapter(NAME, make, dataset, data_path, profile, seeds, device, results_dir, settings, setting_text,
                       extra_keys=extra_keys(text_sim))


def sweep_specs(dataset: str, data_path: str | None, profile: Profile, seeds: str = "", settings: str = "",
                kind: str = "mosei") -> list[RunSpec]:
    """Every run of the chapter's pages on one dataset (Table I's rows, the released preset and Table II's comparison), without the validation sweeps:
    what ``python -m msa_lib sweep --chapter sdumc`` runs."""
    seed_list = parse_seeds(seeds or profile.seeds)
    return (specs(dataset, data_path, profile, seed_list, settings)
            + comparison_specs(dataset, data_path, profile, seed_list, settings, kind)[0])


def weight_sweep(dataset: str = "synthetic:mosei", data_path: str = "", profile: str = "smoke", seed: int = 1,
                 device: str = "auto", results_dir: str = "", settings: str = "", text_sim: str = "learned"
                 ) -> pd.DataFrame:
    """α…δ chosen on validation: one run per :data:`WEIGHT_GRID` choice, ranked by validation MAE (the
    test split is never read)."""
    from ..experiments import get_profile, open_store

    prof = get_profile(profile)
    row = settings_row(NAME, SETTINGS, dataset, settings)
    choices = {label: variant_specs(MAIN, dataset, data_path or None, prof, [seed], row, text_sim, weights)[0]
               for label, weights in WEIGHT_GRID.items()}
    choices = {label: RunSpec(**{**spec.to_dict(), "eval_protocols": ()}) for label, spec in choices.items()}
    return validation_sweep(choices, open_store(results_dir), device)


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------

ACC = ("Acc-2_has0", "Acc-2_non0")


def seed_values(results: pd.DataFrame, label: str, protocol: str, metric: str) -> pd.Series:
    """``metric`` of the runs labelled ``label`` under ``protocol``, per seed."""
    d = results[(results["variant"] == label) & (results["protocol"] == protocol) & (results["metric"] == metric)]
    return d.set_index("seed")["value"].astype(float).sort_index()


def gap_values(results: pd.DataFrame, label: str, metric: str) -> pd.Series:
    """Per seed, |metric without text − metric with text| (the paper's performance gap, Table II)."""
    return (seed_values(results, label, WITHOUT_TEXT, metric) - seed_values(results, label, WITH_TEXT, metric)).abs()


def gap_table(results: pd.DataFrame, labels: list[str], metrics: tuple[str, ...] = ("MAE", *ACC)) -> pd.DataFrame:
    """Per label: each metric with text, without text, and the gap |Δ| (per seed, then mean ± std)."""
    from ..metrics import format_mean_std, format_value

    def cell(metric, values):
        values = values.dropna()
        if values.empty:
            return "–"
        return format_value(metric, values.iloc[0]) if len(values) == 1 else format_mean_std(
            metric, values.mean(), values.std())

    rows = []
    for label in labels:
        row = {"model": label}
        for name, protocol in (("with text", WITH_TEXT), ("w/o text", WITHOUT_TEXT)):
            for metric in metrics:
                row[f"{name} {metric}"] = cell(metric, seed_values(results, label, protocol, metric))
        for metric in metrics:
            row[f"Δ {metric}"] = cell(metric, gap_values(results, label, metric))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def table1(item: DatasetRuns) -> pd.DataFrame:
    """Table I: the switches (✓ / ✗ for LLM_g, MIA, L_MKD, L_RS, L_RNC, in one column) and MAE, Acc-2
    has0 / non0 with the ground-truth text and without text, per row (mean ± std over seeds), the
    released preset last."""
    labels = [v for v in (*TABLE1, RELEASED_LABEL) if (item.results["variant"] == v).any()]
    table = gap_table(item.results, labels).drop(columns=[f"Δ {m}" for m in ("MAE", *ACC)])
    marks = [" ".join("✓" if on else "✗" for on in TABLE1[v][0]) if v in TABLE1 else "released" for v in labels]
    table.insert(0, " ".join(SWITCHES), marks)
    return table


def reported_table(name: str) -> pd.DataFrame:
    """The paper's Table I (``sdumc_table1``: one row per switch pattern) or Table II (``sdumc_table2``;
    the other models' numbers quoted by the paper from the GMD article), MOSEI, in the paper's units:
    one column per (condition, metric)."""
    from ..report import reported

    return reported(name).pivot_table(index="model", columns=["condition", "metric"], values="value",
                                      aggfunc="first", sort=False)


# ---------------------------------------------------------------------------------------------
# Table II: every model of the library, tested without text (no retraining)
# ---------------------------------------------------------------------------------------------

def comparison_specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
                     kind: str = "mosei", text_sim: str = "learned", models: tuple[str, ...] | None = None
                     ) -> tuple[list[RunSpec], dict[str, str]]:
    """SDUMC's runs and, for every other model of the registry, its leaderboard run trained as its paper
    trains it (tested under every leaderboard protocol, the text-removed one included; runs the
    leaderboard or another chapter stored are read, not retrained). A model whose chapter has no
    settings for the dataset's row uses MOSI's. ``models`` limits the others (default: every one).
    Returns (specs, label -> settings row used)."""
    from . import leaderboard

    row = settings_row(NAME, SETTINGS, dataset, settings)
    others, rows = leaderboard.paper_specs(dataset, data_path, profile, seeds, settings, kind, models, exclude=("sdumc",))
    return variant_specs(MAIN, dataset, data_path, profile, seeds, row, text_sim) + others, {MAIN: row, **rows}


def comparison(dataset: str = "synthetic:mosei", data_path: str = "", profile: str = "smoke", seeds: str = "",
               device: str = "auto", results_dir: str = "", settings: str = "", text_sim: str = "learned"
               ) -> ChapterRun:
    """Table II's runs on each dataset (:func:`comparison_specs`, which also says which settings row
    each model ran)."""
    def make(name, path, prof, seed_list, choice, data):
        return comparison_specs(name, path, prof, seed_list, choice, data.kind, text_sim)[0]

    return run_chapter(NAME, make, dataset, data_path, profile, seeds, device, results_dir, settings, setting_text,
                       extra_keys=extra_keys(text_sim))


def comparison_labels(item: DatasetRuns) -> list[str]:
    """SDUMC first, then the other models in the order of their runs."""
    labels = list(dict.fromkeys(s.label for s in item.specs))
    return [MAIN, *[v for v in labels if v != MAIN]]


def table2(item: DatasetRuns) -> pd.DataFrame:
    """Table II: MAE and Acc-2 with text, without text and the gap, per model (mean ± std over seeds)."""
    return gap_table(item.results, comparison_labels(item))


def without_text_values(results: pd.DataFrame, label: str, metric: str) -> pd.Series:
    """Per seed, ``metric`` without text."""
    return seed_values(results, label, WITHOUT_TEXT, metric)


def gap_verdicts(results: pd.DataFrame, method: str, others: list[str], metric: str = "MAE",
                 values=gap_values) -> pd.DataFrame:
    """``method`` against each of ``others``, paired over seeds, on ``values`` (default the text-missing
    gap |Δ metric|, where smaller is better; :func:`without_text_values`: the metric without text): the
    95 % t-interval of the difference and a verdict."""
    from ..report import paired_comparison

    rows = []
    for other in others:
        pair = pd.concat([values(results, method, metric).rename(method), values(results, other, metric).rename(other)],
                         axis=1)
        if other == method or pair[other].dropna().empty:
            continue
        rows.append(paired_comparison(pair, method, other, metric))
    return pd.DataFrame(rows)


def verdict_sentences(verdicts: pd.DataFrame, what: str) -> str:
    """One sentence per comparison of :func:`gap_verdicts`: better / worse / no detectable difference."""
    from ..metrics import format_value

    parts = []
    for r in verdicts.to_dict("records"):
        word = {"better": "better than", "worse": "worse than", "no detectable difference":
                "not distinguishable from"}.get(r["verdict"], f"not comparable with ({r['verdict']})")
        parts.append(f"{r['method']}'s {what} is {word} {r['baseline']}'s ({format_value(r['metric'], r['method mean'])} "
                     f"vs {format_value(r['metric'], r['baseline mean'])}, {r['seeds']} seeds)")
    return "; ".join(parts) + "." if parts else "no comparison could be made."


def mia_verdict(item: DatasetRuns) -> dict:
    """The full model's MAE without text against the model without MIA and L_MKD, paired over seeds."""
    from ..report import paired_comparison

    values = pd.concat([seed_values(item.results, MAIN, WITHOUT_TEXT, "MAE").rename(MAIN),
                        seed_values(item.results, NO_MIA_MKD, WITHOUT_TEXT, "MAE").rename(NO_MIA_MKD)], axis=1)
    return paired_comparison(values, MAIN, NO_MIA_MKD, "MAE")


def mia_text(item: DatasetRuns) -> str:
    """The chapter's check of MIA and L_MKD, computed: the full model's MAE without text against the
    model without them ("no worse" holds unless the paired interval says worse)."""
    from ..metrics import format_value

    v = mia_verdict(item)
    holds = {"better": "holds (better)", "worse": "does not hold", "no detectable difference":
             "holds within seed noise (no detectable difference)"}.get(v["verdict"], f"cannot be checked ({v['verdict']})")
    return (f"The full model's MAE without text is {format_value('MAE', v['method mean'])}, the model without MIA and "
            f"L_MKD's {format_value('MAE', v['baseline mean'])} ({v['seeds']} seeds, paired): \"no worse\" {holds}.")


# ---------------------------------------------------------------------------------------------
# Fig. 2: complete-flow against text-missing-flow representations
# ---------------------------------------------------------------------------------------------

def similarity(runs: ChapterRun, item: DatasetRuns, label: str, n: int = 64, device: str = "auto") -> dict:
    """Fig. 2 for ``label``'s first seed: on the first ``n`` test samples sorted by label, the L2
    distance matrix between complete-flow representations (rows) and text-missing-flow ones (columns),
    and the statistics that make the figure a number: mean diagonal and off-diagonal distance, their
    ratio, and the Spearman correlation of representation distance with label distance (off the
    diagonal)."""
    import numpy as np
    import torch
    from scipy import stats

    from ..runs import stored_model
    from ..train import SplitTensors, resolve_device

    spec = min((s for s in item.specs if s.label == label), key=lambda s: s.seed)
    model = stored_model(spec, runs.store, item.data, device).eval()
    test = item.data["test"]
    order = np.argsort(test.labels[: min(n, len(test))], kind="stable")
    batch = SplitTensors(test).batch(torch.as_tensor(order)).to(resolve_device(device))
    with torch.no_grad():
        full, miss = model.complete_flow(batch)["r"], model.missing_flow(batch)["r"]
    dist = torch.cdist(full, miss).cpu().numpy()
    y = test.labels[order]
    off = ~np.eye(len(y), dtype=bool)
    rho = stats.spearmanr(dist[off], np.abs(y[:, None] - y[None, :])[off]).statistic
    diag, rest = float(np.diag(dist).mean()), float(dist[off].mean())
    return {"label": label, "distances": dist, "labels": y, "diagonal": diag, "off-diagonal": rest,
            "ratio": diag / rest, "spearman": float(rho), "seed": spec.seed}


def similarity_table(stats: list[dict]) -> pd.DataFrame:
    """Fig. 2's statistics per model."""
    return pd.DataFrame([{"model": s["label"], "mean distance, same sample": f"{s['diagonal']:.3f}",
                          "mean distance, other samples": f"{s['off-diagonal']:.3f}",
                          "ratio (lower: flows aligned)": f"{s['ratio']:.3f}",
                          "Spearman ρ (distance ~ label distance)": f"{s['spearman']:.3f}"} for s in stats]
                        ).set_index("model")


# ---------------------------------------------------------------------------------------------
# the chapter page: settings and every choice the paper leaves open
# ---------------------------------------------------------------------------------------------

def settings_table() -> pd.DataFrame:
    """What each preset's optimisation runs under each profile (computed, for the chapter page)."""
    from ..experiments import PROFILES

    rows = []
    for preset in PRESETS:
        for prof in PROFILES.values():
            _, t = model_setup("sdumc", "mosei", prof, preset)
            rows.append({"preset": preset, "profile": prof.name, "batch": t["batch_size"], "lr": t["lr"],
                         "weight decay": t["weight_decay"], "epochs ≤": t["epochs"],
                         "selection (valid MAE)": (f"patience {t['patience']}" if t["patience"] is not None
                                                   else "every epoch"),
                         "schedule": (f"warm-up {t['warmup_epochs']}, ×{t['lr_gamma']:g} every {t['lr_step_epochs']}"
                                      if t.get("warmup_epochs") else "constant")})
    return pd.DataFrame(rows).set_index(["preset", "profile"])


def objective_table() -> pd.DataFrame:
    """Each preset's objective: the loss weights and the modules (the same under every profile)."""
    from ..experiments import PROFILES

    cfg = SDUMCConfig()
    rows = []
    for preset in PRESETS:
        model_cfg, t = model_setup("sdumc", "mosei", PROFILES["paper"], preset)
        w, mkd = t["loss_weights"], model_cfg.get("use_mkd", cfg.use_mkd)
        rows.append({"preset": preset, "task (complete, missing)": f"{w.get('task', 1):g}, {w.get('task_missing', 1):g}",
                     "α, β, γ, δ": ", ".join(f"{w.get(k, 0) if mkd or k not in ('mkd1', 'mkd2') else 0:g}"
                                             for k in ("mkd1", "mkd2", "rs", "rnc")),
                     "MIA": "on" if model_cfg.get("use_mia", cfg.use_mia) else "off",
                     "RNC on": f"{model_cfg['rnc_dim']}-d projection of r" if model_cfg.get("rnc_dim") else "r"})
    return pd.DataFrame(rows).set_index("preset")


def open_choices() -> pd.DataFrame:
    """Every choice the paper leaves open or where its released code differs: the paper's words, our
    default (read from the code), the alternatives, and where the book measures them."""
    cfg = SDUMCConfig()
    rows = [
        ("Encoders", "MANet (visual), WavLM-Large (audio), Vicuna-7B (text)", "the data's own feature sequences, "
         "each through a 2-layer MLP to D", "—", "not measured (no download here)"),
        ("LLM_g, the simulated text", "SLAM-ASR's projector + Vicuna on the audio, a hidden layer of the generated "
         "result (Eq. 4)", f"text_sim = {cfg.text_sim}: a {cfg.sim_layers}-layer transformer over the audio frames "
         "projected to the text size, trained jointly to regress the mean real text feature", "precomputed:<key> "
         "(your offline SLAM-ASR features); none (Table I row 1)", "ablation page (w/o LLM_g)"),
        ("D, D', τ of Eq. 2", "“a hyperparameter”; τ “ensures the stability of the gradient”",
         f"D = {cfg.d}, D' = {cfg.mia_hidden}, τ = √D", "—", "not measured"),
        ("Stage-2 keys", "“the original modal representations are mapped as key and value”", "a second "
         "cross-attention unit per modality (own W, b) on the same E_m", "share stage 1's units", "not measured"),
        ("Final representation r", "“attention weighted summing R_m^seq by AFG”", "AFG per view of Q_multv, the "
         "7 views concatenated (7·D)", "the mean over the 7 views", "not measured"),
        ("f in MIA (Eq. 5-6)", "f(·), unnamed", "tanh in both layers (a residual that can be negative)",
         "ReLU / GELU", "not measured"),
        ("MIA with no simulated text", "“only uses the audio and visual representations for modality imagination”",
         "R̂_t starts from zeros and MIA-1/2 fill it", "—", "ablation page (w/o LLM_g)"),
        ("RMSE of Eq. 9-10", "√(Σ_i (R_i − R̂_i)² / N)", "√ of the mean over samples and features (+1e-8 for a "
         "finite gradient)", "the mean per-sample L2 norm", "unit test"),
        ("L_RS gradient", "not said", "both flows (not detached; the released code's)", "detach r", "not measured"),
        ("Rank-N-Contrast", "sim = L2 distance; τ and the label distance not given", f"sim = −L2, τ = "
         f"{cfg.rnc_temperature:g}, L1 label distance (the official RnC defaults), on r", "the released code: on "
         "64-d projections (rnc_dim)", "ablation page (released preset)"),
        ("α, β, γ, δ", "“displayed in our open-sourced code”", ", ".join(f"{g} = {PAPER_WEIGHTS[k]:g}" for g, k in
         zip("αβγδ", ("mkd1", "mkd2", "rs", "rnc"))) + ", chosen on validation", "the released code: 0, 0, 0.13, 0.5 "
         "(task 0.5 + 0.5)", "ablation page (weight sweep; released preset)"),
        ("Checkpoint selection", "“using the MAE metric for early stopping”", "validation MAE, patience "
         f"{PAPER_SETTING['patience']}", "the released code picks the best epoch on test MAE", "both presets are "
         "selected on validation here (the released preset's numbers were test-selected)"),
        ("Inference", "activate or deactivate MIA", "per sample: the text-missing flow when no text frame is present "
         "(text_present = None)", "text_present = True / False for every sample", "unit test"),
        ("Length-1 sequences", "frame-level features", "on utterance features (one frame per modality) each "
         "cross-attention is a linear map of its one frame and the simulator a per-utterance MLP", "—",
         "real-data cell"),
    ]
    return pd.DataFrame(rows, columns=["choice", "paper's words", "our default", "alternatives",
                                       "measured"]).set_index("choice")


# ---------------------------------------------------------------------------------------------
# real data: the paper's headline comparison on the CMU-MOSI utterance features
# ---------------------------------------------------------------------------------------------

def real_data(profile: str = "smoke", seeds: str = "", device: str = "auto", results_dir: str = ""):
    """Every model on the real dataset as its paper trains it, tested with and without text (the
    leaderboard's runs): a :class:`~msa_lib.chapters.leaderboard.Leaderboard`, or why the data cannot
    be had."""
    from . import leaderboard

    return leaderboard.real_data_against_all("sdumc", profile, seeds, device, results_dir)


def show_real_data(real) -> None:
    """Display :func:`real_data`: Table II on real features (with / without text, the gap) and the
    paired verdicts of SDUMC's MAE gap against every other model's."""
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
    show(*styled_parts(gap_table(results, labels), 4, best="column"))
    gaps = verdict_sentences(gap_verdicts(results, MAIN, labels[1:]), "MAE gap")
    without = verdict_sentences(gap_verdicts(results, MAIN, labels[1:], values=without_text_values), "MAE without text")
    display(Markdown(
        f"**Real data: the paper's Table II on `{real.item.name}`**, every model trained as its paper trains it and "
        f"tested with the text removed (`{WITHOUT_TEXT}`), the leaderboard's runs ({{doc}}`/notebooks/leaderboard`). "
        f"Paired over seeds {', '.join(map(str, real.runs.seeds))}: {gaps} {without} Every "
        f"modality is one frame long here, so each cross-attention reads one key and the simulator maps one audio "
        f"vector to one text vector ({{doc}}`/book/sdumc`). {real.item.caption}"))


# ---------------------------------------------------------------------------------------------
# the chapter's claims, paper vs ours (the glance page)
# ---------------------------------------------------------------------------------------------

#: The paper's claims the chapter tests: (claim, where, method, baseline, the per-seed values compared,
#: metric, the paper's margin: method better by this much, from its tables).
CLAIMS: tuple[dict, ...] = (
    {"claim": "Without text, SDUMC loses less than other models", "where": "Table II (MOSEI, MAE gap; the paper's "
     "nearest baseline MInD, ours TFN)", "method": MAIN, "baseline": "TFN", "values": "gap",
     "paper": ("sdumc_table2", "MInD", "gap")},
    {"claim": "MIA and L_MKD help when the text is missing", "where": "Table I (MOSEI, MAE w/o text)", "method": MAIN,
     "baseline": NO_MIA_MKD, "values": "without", "paper": ("sdumc_table1", NO_MIA_MKD, "w/o text")},
    {"claim": "L_RNC helps with the ground-truth text", "where": "Table I (MOSEI, MAE with text)", "method": MAIN,
     "baseline": "SDUMC w/o L_RNC", "values": "with", "paper": ("sdumc_table1", "SDUMC w/o L_RNC",
                                                                   "with ground-truth text")},
)
CLAIM_VALUES = {"gap": gap_values, "without": without_text_values,
                "with": lambda results, label, metric: seed_values(results, label, WITH_TEXT, metric)}


def paper_margin(source: tuple[str, str, str]) -> float:
    """SDUMC's MAE margin over a baseline row of the paper's table (positive = SDUMC better)."""
    from ..report import reported

    table, baseline, condition = source
    rows = reported(table, condition=condition, metric="MAE").set_index("model")["value"]
    return float(rows[baseline] - rows[MAIN])


def claims(profile: str = "smoke", seeds: str = "", device: str = "auto", results_dir: str = "",
           mosei: str = "synthetic:mosei", mosei_path: str = "") -> pd.DataFrame:
    """The chapter's claims (:data:`CLAIMS`): the paper's margin, ours (a paired difference over seeds
    with its 95 % interval; positive = SDUMC better) and a verdict. Trains what the store lacks: the
    full model, the two Table I rows the claims name, and TFN as its paper trains it."""
    from ..report import CONFIDENCE, claim_row, paired_comparison

    variants = tuple(dict.fromkeys([MAIN, *(c["baseline"] for c in CLAIMS if c["baseline"] in TABLE1)]))

    def make(name, path, prof, seed_list, choice, data):
        own = specs(name, path, prof, seed_list, choice, variants)
        return own + [s for s in comparison_specs(name, path, prof, seed_list, choice, data.kind,
                                                  models=("tfn",))[0] if s.model == "tfn"]

    item = run_chapter(NAME, make, mosei, mosei_path, profile, seeds, device, results_dir,
                       "mosei" if mosei_path else "", setting_text).first
    rows = []
    for c in CLAIMS:
        values = CLAIM_VALUES[c["values"]]
        pair = pd.concat([values(item.results, c["method"], "MAE").rename(c["method"]),
                          values(item.results, c["baseline"], "MAE").rename(c["baseline"])], axis=1)
        v = paired_comparison(pair, c["method"], c["baseline"], "MAE")
        rows.append(claim_row(c["claim"], c["where"], v, paper_margin(c["paper"]), item.path is not None,
                              paper_decimals=3))
    table = pd.DataFrame(rows)
    table.attrs["confidence"] = CONFIDENCE
    table.attrs["synthetic"] = [item.data.source] if item.data.is_synthetic else []
    return table

"""UMDF chapter (Li et al., AAAI 2024): paper settings per dataset, profile -> configs, the
evaluation protocols, the ablation variants, the run specs and the caption text. The network and
its loss terms are in :mod:`msa_lib.models.umdf`."""
from __future__ import annotations

import pandas as pd

from ..experiments import ChapterRun, DatasetRuns, Profile, data_options, frame_protocols, run_chapter, settings_row, \
    subset_protocols, train_once_specs
from ..results import RunSpec
from . import baselines

NAME = "umdf"
TITLE = "UMDF (AAAI 2024)"
MODELS = ("umdf",)

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

#: lambda_1 (L_fea) and lambda_2 (L_logits) are not reported in the paper. Chosen by
#: :func:`lambda_sweep` over :data:`LAMBDA_GRID` on the validation MAE of the synthetic MOSI
#: default (book profile, seed 1); the ablation page re-runs the sweep and shows it.
LOSS_WEIGHTS: dict[str, float] = {"fea": 1.0, "logits": 0.1}
LAMBDA_GRID: tuple[tuple[float, float], ...] = ((0.1, 0.1), (0.1, 1.0), (1.0, 0.1), (1.0, 1.0))

#: Fig. 6's condition (language only, p = 0.5); its representations are stored for t-SNE / UMAP.
TSNE_PROTOCOL = "modality:l+frame:0.5"
#: Everything the chapter evaluates: complete, frame rates 0.0-1.0, the seven subsets, Fig. 6's condition.
EVALS: tuple[str, ...] = ("complete",) + frame_protocols() + subset_protocols() + (TSNE_PROTOCOL,)
#: UMDF's training distribution: two heterogeneous missing versions per sample (frame- or
#: modality-level, the complete case included).
TRAIN_PROTOCOL = "mixed"
#: Table 3 / Fig. 5 ablations as config switches.
VARIANTS: dict[str, dict] = {
    "UMDF": {},
    "UMDF w/o L_fea": {"use_fea_distill": False},
    "UMDF w/o L_logits": {"use_logit_distill": False},
    "UMDF w/o MCIM": {"mcim": "self"},
    "UMDF w/o DFIM": {"dfim": False},
}
TFN_LABEL = "TFN (complete-trained)"


def model_setup(model: str, row: str, profile: Profile, loss_weights: dict[str, float] | None = None
                ) -> tuple[dict, dict]:
    """(model_config, train_config) of UMDF for settings row ``row`` under ``profile``: the paper's
    setting for profiles without a CPU budget, :data:`CPU_BUDGET` otherwise."""
    s = SETTINGS[settings_row(NAME, SETTINGS, row)]
    if profile.cpu_budget:
        model_config = {"n_heads": CPU_BUDGET["n_heads"], "n_layers": CPU_BUDGET["n_layers"]}
        batch = min(s["batch_size"], CPU_BUDGET["max_batch"])
    else:
        model_config = {"n_heads": s["n_heads"], "n_layers": s["n_layers"]}
        batch = s["batch_size"]
    train_config = {"batch_size": batch, "lr": s["lr"], "epochs": profile.epochs_or(s["epochs"]),
                    "patience": profile.patience, "loss_weights": dict(loss_weights or LOSS_WEIGHTS)}
    return model_config, train_config


def specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
          variants: tuple[str, ...] = ("UMDF",), with_tfn: bool = True) -> list[RunSpec]:
    """The chapter's runs on one dataset: each variant trained once per seed on ``mixed``, and
    (``with_tfn``) the baselines chapter's complete-trained TFN; all tested under :data:`EVALS`.
    Every UMDF page builds its runs here, so pages share runs through the results store."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown UMDF variant(s) {unknown}; choose from {list(VARIANTS)}")
    row = settings_row(NAME, SETTINGS, dataset, settings)
    model_cfg, train_cfg = model_setup("umdf", row, profile)
    out = []
    for variant in variants:
        out += train_once_specs("umdf", dataset, seeds, TRAIN_PROTOCOL, EVALS, label=variant,
                                model_config={**model_cfg, **VARIANTS[variant]}, train_config=train_cfg,
                                data_options=data_options(dataset, data_path, profile), save_outputs=(TSNE_PROTOCOL,))
    if with_tfn:
        out += baselines.tfn_specs(dataset, data_path, profile, seeds, row, EVALS, (TSNE_PROTOCOL,), TFN_LABEL)
    return out


def paper_dataset(item: DatasetRuns) -> str:
    """The paper's dataset (MOSI / MOSEI / IEMOCAP) whose settings and reported rows a dataset's
    runs use."""
    return settings_row(NAME, SETTINGS, item.name, item.settings).upper()


def setting_text(profile: Profile) -> str:
    """Which UMDF setting a profile runs, for captions."""
    heads = "/".join(str(SETTINGS[r]["n_heads"]) for r in SETTINGS)
    lam = f"λ1 = {LOSS_WEIGHTS['fea']:g}, λ2 = {LOSS_WEIGHTS['logits']:g}"
    paper = f"d={SETTINGS['mosi']['d']}, {SETTINGS['mosi']['n_layers']} MCIM layers, {heads} heads on {'/'.join(SETTINGS).upper()}"
    if not profile.cpu_budget:
        return f"the paper's setting ({paper}; {lam})"
    return (f"the CPU budget of the {profile.name} profile ({CPU_BUDGET['n_layers']} MCIM layers, "
            f"{CPU_BUDGET['n_heads']} heads, batch ≤ {CPU_BUDGET['max_batch']}, {profile.epochs} epochs, {lam}; "
            f"paper: {paper})")


def run(dataset: str = "synthetic:mosi", data_path: str = "", profile: str = "smoke", seeds: str = "",
        device: str = "auto", results_dir: str = "", settings: str = "", variants: tuple[str, ...] = ("UMDF",),
        with_tfn: bool = True) -> ChapterRun:
    """Build, train (what the store lacks) and load the chapter's runs on each dataset."""
    def make(name, path, prof, seed_list, choice, data):
        return specs(name, path, prof, seed_list, choice, tuple(variants), with_tfn)

    return run_chapter(NAME, make, dataset, data_path, profile, seeds, device, results_dir, settings, setting_text)


def lambda_sweep(dataset: str = "synthetic:mosi", data_path: str = "", profile: str = "smoke", seed: int = 1,
                 device: str = "auto", results_dir: str = "", settings: str = "",
                 grid: tuple[tuple[float, float], ...] = LAMBDA_GRID) -> pd.DataFrame:
    """Validation metrics of UMDF for each (lambda_1, lambda_2) in ``grid`` (one seed; the test
    split is never read). Returns one row per pair with the validation MAE and F1, best first."""
    from ..experiments import get_profile, open_store
    from ..runs import run_grid

    prof = get_profile(profile)
    row = settings_row(NAME, SETTINGS, dataset, settings)
    runs = []
    for l1, l2 in grid:
        model_cfg, train_cfg = model_setup("umdf", row, prof, {"fea": l1, "logits": l2})
        runs += train_once_specs("umdf", dataset, [seed], TRAIN_PROTOCOL, (), label=f"UMDF λ=({l1:g}, {l2:g})",
                                 model_config=model_cfg, train_config=train_cfg,
                                 data_options=data_options(dataset, data_path or None, prof))
    records = run_grid(runs, open_store(results_dir), device=device)
    table = pd.DataFrame([{"lambda_1": l1, "lambda_2": l2, "valid MAE": r["valid"]["MAE"],
                           "valid F1_non0": r["valid"]["F1_non0"], "best epoch": r["best_epoch"]}
                          for (l1, l2), r in zip(grid, records)])
    return table.sort_values("valid MAE").reset_index(drop=True)


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

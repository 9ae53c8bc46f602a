"""Baselines chapter: the Tensor Fusion Network (Zadeh et al., EMNLP 2017) — the complete-modality
contrast every paper chapter compares with, and the pipeline page (both evaluation designs)."""
from __future__ import annotations

import pandas as pd

from ..experiments import (ChapterRun, Profile, data_options, frame_protocols, parse_seeds, per_rate_specs, run_chapter,
                           settings_row, subset_protocols, train_once_specs)
from ..report import AUILC_RATES
from ..results import RunSpec

NAME = "baselines"
TITLE = "Baselines: TFN"
MODELS = ("tfn",)

#: TFN's setting, the same on every dataset: the TFNConfig sizes, batch 32, Adam, up to 30 epochs
#: with early stopping (patience 6) on validation. TFN is cheap, so every profile but smoke trains
#: it to convergence. Learning rate chosen on validation (:func:`lr_sweep`, shown on the pipeline
#: page; synthetic MOSI, book profile, seed 1, validation MAE): 1e-2 0.803, 3e-3 0.827, 1e-3 0.863.
#: Before, with 10 epochs at 1e-3, the best epoch was the last one and complete-data Corr was ~0.35.
TFN_SETTING: dict = {"epochs": 30, "patience": 6, "lr": 1e-2}
#: Seeds of the per-rate design (one run per rate and seed): the first two of the page's seeds, to
#: fit the book's budget (11 rates x seeds runs; EMT-DLFR / TFR-Net / MITR-DNet use 3).
PER_RATE_SEEDS = 2
#: Each model's paper training distribution (the leaderboard trains every model this way).
TRAIN_PROTOCOLS: dict[str, str] = {"tfn": "complete"}
SETTINGS: dict[str, dict] = {row: TFN_SETTING for row in ("mosi", "mosei", "sims", "iemocap")}
#: What a TFN run is trained on, by label: complete data (the papers' contrast) or the same
#: missingness distribution as the method it is compared with (the fair control).
TRAINED_ON: dict[str, str] = {"complete": "TFN (complete)", "mixed": "TFN (mixed)"}

#: Everything the pipeline page evaluates a complete-trained TFN under.
EVALS: tuple[str, ...] = ("complete",) + frame_protocols() + subset_protocols()


def model_setup(model: str, row: str, profile: Profile) -> tuple[dict, dict]:
    """(model_config, train_config) of ``model`` for settings row ``row`` under ``profile``."""
    s = SETTINGS[settings_row(NAME, SETTINGS, row)]
    return {}, {"lr": s["lr"], **profile.light_setup(s["epochs"], s["patience"])}


def tfn_specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
              eval_protocols: tuple[str, ...] = EVALS, save_outputs: tuple[str, ...] = (),
              label: str = "", train_protocol: str = "complete") -> list[RunSpec]:
    """TFN trained once per seed on ``train_protocol`` (default: complete data), tested under
    ``eval_protocols``. Other chapters ask for these runs as their contrast: complete-trained (what
    the papers compare with) and trained on the method's own missingness (the fair control);
    the label defaults to :data:`TRAINED_ON`'s."""
    model_cfg, train_cfg = model_setup("tfn", settings_row(NAME, SETTINGS, dataset, settings), profile)
    label = label or TRAINED_ON.get(train_protocol, f"TFN ({train_protocol}-trained)")
    return train_once_specs("tfn", dataset, seeds, train_protocol, eval_protocols, label=label, model_config=model_cfg,
                            train_config=train_cfg, data_options=data_options(dataset, data_path, profile),
                            save_outputs=save_outputs)


def specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
          kind: str = "mosi") -> list[RunSpec]:
    """The pipeline page's runs: TFN trained once (tested everywhere) and trained per rate."""
    model_cfg, train_cfg = model_setup("tfn", settings_row(NAME, SETTINGS, dataset, settings), profile)
    once = tfn_specs(dataset, data_path, profile, seeds, settings, label="TFN (train once)")
    per_rate = per_rate_specs("tfn", dataset, AUILC_RATES[kind], seeds[:PER_RATE_SEEDS], model_config=model_cfg,
                              train_config=train_cfg,
                              data_options=data_options(dataset, data_path, profile), label="TFN (per-rate training)")
    return once + per_rate


def sweep_specs(dataset: str, data_path: str | None, profile: Profile, seeds: str = "", settings: str = "",
                kind: str = "mosi") -> list[RunSpec]:
    """Every run of the chapter's pages on one dataset (the pipeline page's TFN runs), without the validation sweeps:
    what ``python -m msa_lib sweep --chapter baselines`` runs."""
    return specs(dataset, data_path, profile, parse_seeds(seeds or profile.seeds), settings, kind)


#: Learning rates :func:`lr_sweep` compares on validation.
LR_GRID: tuple[float, ...] = (1e-3, 3e-3, 1e-2)


def lr_sweep(dataset: str = "synthetic:mosi", data_path: str = "", profile: str = "smoke", seed: int = 1,
             device: str = "auto", results_dir: str = "", settings: str = "",
             grid: tuple[float, ...] = LR_GRID) -> pd.DataFrame:
    """Validation score of complete-trained TFN for each learning rate in ``grid`` (one seed; the
    test split is never read), best first, with a ``lr`` column."""
    from ..experiments import get_profile, open_store, validation_sweep

    prof = get_profile(profile)
    model_cfg, train_cfg = model_setup("tfn", settings_row(NAME, SETTINGS, dataset, settings), prof)
    choices = {f"{lr:g}": train_once_specs("tfn", dataset, [seed], "complete", (), label=f"TFN lr={lr:g}",
                                           model_config=model_cfg, train_config={**train_cfg, "lr": lr},
                                           data_options=data_options(dataset, data_path or None, prof))[0]
               for lr in grid}
    table = validation_sweep(choices, open_store(results_dir), device)
    table.insert(0, "lr", table.pop("choice").astype(float))
    return table


def setting_text(profile: Profile) -> str:
    train = model_setup("tfn", "mosi", profile)[1]
    return (f"TFN with its default sizes, lr {train['lr']:g}, up to {train['epochs']} epochs "
            f"(early stopping, patience {train['patience']}; {profile.name} profile)")


def run(dataset: str = "synthetic:mosi", data_path: str = "", profile: str = "smoke", seeds: str = "",
        device: str = "auto", results_dir: str = "", settings: str = "") -> ChapterRun:
    """The pipeline page: TFN in both evaluation designs on each dataset."""
    def make(name, path, prof, seed_list, choice, data):
        return specs(name, path, prof, seed_list, choice, data.kind)

    return run_chapter(NAME, make, dataset, data_path, profile, seeds, device, results_dir, settings, setting_text)

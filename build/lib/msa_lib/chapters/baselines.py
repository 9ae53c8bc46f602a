"""Baselines chapter: the Tensor Fusion Network (Zadeh et al., EMNLP 2017) — the complete-modality
contrast every paper chapter compares with, and the pipeline page (both evaluation designs)."""
from __future__ import annotations

from ..experiments import (ChapterRun, Profile, data_options, frame_protocols, per_rate_specs, run_chapter,
                           settings_row, subset_protocols, train_once_specs)
from ..report import AUILC_RATES
from ..results import RunSpec

NAME = "baselines"
TITLE = "Baselines: TFN"
MODELS = ("tfn",)

#: TFN's setting per dataset: the TFNConfig defaults (small subnetworks), 20 epochs, Adam 1e-3,
#: batch 32; the same on every dataset.
SETTINGS: dict[str, dict] = {row: {"epochs": 20} for row in ("mosi", "mosei", "sims", "iemocap")}

#: Everything the pipeline page evaluates a complete-trained TFN under.
EVALS: tuple[str, ...] = ("complete",) + frame_protocols() + subset_protocols()


def model_setup(model: str, row: str, profile: Profile) -> tuple[dict, dict]:
    """(model_config, train_config) of ``model`` for settings row ``row`` under ``profile``."""
    row = settings_row(NAME, SETTINGS, row)
    return {}, {"epochs": profile.epochs_or(SETTINGS[row]["epochs"]), "patience": profile.patience}


def tfn_specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
              eval_protocols: tuple[str, ...] = EVALS, save_outputs: tuple[str, ...] = (),
              label: str = "TFN (complete-trained)") -> list[RunSpec]:
    """TFN trained once per seed on complete data, tested under ``eval_protocols`` (other chapters
    ask for these runs as their complete-modality contrast)."""
    model_cfg, train_cfg = model_setup("tfn", settings_row(NAME, SETTINGS, dataset, settings), profile)
    return train_once_specs("tfn", dataset, seeds, "complete", eval_protocols, label=label, model_config=model_cfg,
                            train_config=train_cfg, data_options=data_options(dataset, data_path, profile),
                            save_outputs=save_outputs)


def specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
          kind: str = "mosi") -> list[RunSpec]:
    """The pipeline page's runs: TFN trained once (tested everywhere) and trained per rate."""
    model_cfg, train_cfg = model_setup("tfn", settings_row(NAME, SETTINGS, dataset, settings), profile)
    once = tfn_specs(dataset, data_path, profile, seeds, settings, label="TFN (train once)")
    per_rate = per_rate_specs("tfn", dataset, AUILC_RATES[kind], seeds, model_config=model_cfg, train_config=train_cfg,
                              data_options=data_options(dataset, data_path, profile), label="TFN (per-rate training)")
    return once + per_rate


def setting_text(profile: Profile) -> str:
    return f"TFN with its default sizes, {profile.name} profile ({profile.epochs_or(SETTINGS['mosi']['epochs'])} epochs)"


def run(dataset: str = "synthetic:mosi", data_path: str = "", profile: str = "smoke", seeds: str = "",
        device: str = "auto", results_dir: str = "", settings: str = "") -> ChapterRun:
    """The pipeline page: TFN in both evaluation designs on each dataset."""
    def make(name, path, prof, seed_list, choice, data):
        return specs(name, path, prof, seed_list, choice, data.kind)

    return run_chapter(NAME, make, dataset, data_path, profile, seeds, device, results_dir, settings, setting_text)

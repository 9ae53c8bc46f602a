"""One module per book chapter: everything paper-specific that is not ``nn`` code (per-dataset
paper settings, profile -> configs, evaluation protocols, variants, run specs, caption text).

``CHAPTERS`` is the one registry. Every chapter module provides ``NAME``, ``TITLE``, ``MODELS``
(the models whose paper settings it owns), ``SETTINGS`` (row -> paper setting), ``model_setup``,
``specs``, ``run`` and ``sweep_specs`` (every run of its pages on one dataset: :mod:`msa_lib.sweeps`).
"""
from __future__ import annotations

from types import ModuleType

from . import baselines, dar, leaderboard, mitr, sdumc, umdf

CHAPTERS: dict[str, ModuleType] = {"baselines": baselines, "dar": dar, "leaderboard": leaderboard, "mitr": mitr,
                                  "sdumc": sdumc, "umdf": umdf}

#: The four papers the book reproduces and the chapter module of each (None: not written yet).
PAPERS: dict[str, str | None] = {"UMDF (AAAI 2024)": "umdf", "MITR-DNet (ICASSP 2025)": "mitr", "SDUMC": "sdumc",
                                 "DAR (IJCAI 2025)": "dar"}


def get_chapter(name: str) -> ModuleType:
    if name not in CHAPTERS:
        raise ValueError(f"unknown chapter {name!r}; choose one of {sorted(CHAPTERS)}")
    return CHAPTERS[name]


def chapter_of_model(model: str) -> ModuleType:
    """The chapter that owns ``model``'s paper settings."""
    for chapter in CHAPTERS.values():
        if model in chapter.MODELS:
            return chapter
    from ..models import MODELS

    raise ValueError(f"unknown model {model!r}; available: {sorted(MODELS)}")


def status_table():
    """paper | chapter | tables and figures covered | real data run | status, from the chapter
    modules (``COVERS``, ``REAL_DATA``, ``STATUS``), for the README, the intro and the glance page."""
    import pandas as pd

    rows = []
    for paper, name in PAPERS.items():
        chapter = CHAPTERS.get(name) if name else None
        rows.append({"paper": paper, "chapter": name or "–",
                     "tables and figures covered": chapter.COVERS if chapter else "–",
                     "real data run": chapter.REAL_DATA if chapter else "–",
                     "status": chapter.STATUS if chapter else "not started"})
    return pd.DataFrame(rows).set_index("paper")


__all__ = ["CHAPTERS", "PAPERS", "chapter_of_model", "get_chapter", "status_table"]

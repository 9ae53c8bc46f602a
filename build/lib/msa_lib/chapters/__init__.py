"""One module per book chapter: everything paper-specific that is not ``nn`` code (per-dataset
paper settings, profile -> configs, evaluation protocols, variants, run specs, caption text).

``CHAPTERS`` is the one registry. Every chapter module provides ``NAME``, ``TITLE``, ``MODELS``
(the models whose paper settings it owns), ``SETTINGS`` (row -> paper setting), ``model_setup``,
``specs`` and ``run``.
"""
from __future__ import annotations

from types import ModuleType

from . import baselines, umdf

CHAPTERS: dict[str, ModuleType] = {"baselines": baselines, "umdf": umdf}


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


__all__ = ["CHAPTERS", "chapter_of_model", "get_chapter"]

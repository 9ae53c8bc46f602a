"""What every chapter shares: compute profiles, seeds, data identity, run-spec builders and the
one call a notebook makes (:func:`run_chapter`). Paper-specific settings live in
:mod:`msa_lib.chapters`.

Two evaluation designs, named in every table:

* ``per_rate``   — EMT-DLFR / TFR-Net / MITR: a model is trained *and* tested at each missing
                   rate (``frame:P`` fixed masks), usually with 3 seeds;
* ``train_once`` — LNLN / DAR / UMDF curves: one model per seed, tested at every rate / subset.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from .data import FETCHED, PRESETS, MSADataset, load_dataset
from .data.container import extra_key_tuple
from .missing import FRAME_RATES, SUBSETS
from .report import (data_caption, degenerate_keys, degenerate_warning, health_table, reference_results,
                     synthetic_banner)
from .results import ResultsStore, RunSpec, tidy


@dataclass(frozen=True)
class Profile:
    """How much compute a run spends: ``smoke`` (seconds, what nbval replays), ``book`` (what
    ``make book`` renders), ``paper`` (full split sizes and the papers' epochs).

    ``train_samples`` sets the synthetic split sizes (the real ratios kept; real data is always
    used whole), ``eval_samples`` the least number of synthetic validation and test samples (so
    test metrics do not swing with a small draw), ``max_len`` caps synthetic sequence lengths
    (attention cost grows with its square); ``light_epochs`` is the epoch count of cheap baselines
    (TFN), ``None`` meaning their own setting with their own patience; ``epochs=None`` means the
    paper's own epoch count; ``patience=None`` trains every epoch, as the papers do (the best
    validation epoch is still the one kept); ``seeds`` is the default seed
    list when a notebook's ``seeds`` parameter is left empty; ``cpu_budget`` runs attention models
    with fewer heads and layers than the papers (each chapter says how many).
    """

    name: str
    train_samples: int | None
    eval_samples: int | None
    max_len: int | None
    epochs: int | None
    light_epochs: int | None
    patience: int | None
    seeds: str
    cpu_budget: bool
    purpose: str

    def size_for(self, dataset: str) -> float:
        """Synthetic size factor giving about ``train_samples`` training samples."""
        if self.train_samples is None:
            return 1.0
        preset = dataset.partition(":")[2]
        if preset not in PRESETS:
            raise ValueError(f"dataset {dataset!r} is not a synthetic preset; choose one of "
                             f"{['synthetic:' + p for p in PRESETS]}")
        return min(1.0, self.train_samples / PRESETS[preset].split_sizes[0])

    def epochs_or(self, paper_epochs: int) -> int:
        return paper_epochs if self.epochs is None else self.epochs

    def light_setup(self, epochs: int, patience: int) -> dict[str, int]:
        """Epochs and patience of a cheap baseline whose own setting is (``epochs``, ``patience``)."""
        if self.light_epochs is None:
            return {"epochs": epochs, "patience": patience}
        return {"epochs": self.light_epochs, "patience": self.patience}


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", train_samples=48, eval_samples=None, max_len=20, epochs=2, light_epochs=2, patience=2, seeds="1,2", cpu_budget=True,
                     purpose="seconds per notebook; what the stored notebooks and nbval replay"),
    "book": Profile("book", train_samples=256, eval_samples=250, max_len=20, epochs=8, light_epochs=None, patience=3, seeds="1,2,3", cpu_budget=True,
                    purpose="what `make book` renders on 2 CPU cores"),
    "paper": Profile("paper", train_samples=None, eval_samples=None, max_len=None, epochs=None, light_epochs=None, patience=None, seeds="1,2,3,4,5", cpu_budget=False,
                     purpose="full split sizes, the papers' settings and epochs (a GPU, or hours on CPU)"),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def profile_table() -> pd.DataFrame:
    """The profiles as the book shows them (computed from :data:`PROFILES`)."""
    return pd.DataFrame([{
        "profile": p.name, "synthetic train samples": p.train_samples or "full preset size",
        "synthetic valid / test samples": f"≥ {p.eval_samples}" if p.eval_samples else "scaled with train",
        "synthetic sequence length": f"≤ {p.max_len}" if p.max_len else "the preset's",
        "epochs": p.epochs or "the paper's", "TFN epochs": p.light_epochs or "its own (early stopping)",
        "early-stopping patience": p.patience if p.patience is not None else "none: every epoch, best validation epoch kept", "default seeds": p.seeds,
        "attention models": "CPU budget (fewer heads / layers)" if p.cpu_budget else "the paper's setting",
        "for": p.purpose} for p in PROFILES.values()]).set_index("profile")


def parse_seeds(seeds: str | int | list) -> list[int]:
    """Seeds from a notebook parameter: "1,2,3", 3 or [1, 2, 3]."""
    if isinstance(seeds, int):
        return [seeds]
    if isinstance(seeds, str):
        seeds = [s for s in seeds.replace(" ", "").split(",") if s]
    try:
        out = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise ValueError(f"seeds must be integers like '1,2,3', got {seeds!r}") from None
    if not out:
        raise ValueError("at least one seed is needed")
    return out


def dataset_paths(dataset: str, data_path: str = "") -> list[tuple[str, str | None]]:
    """Pair a comma-separated ``dataset`` list with a comma-separated ``data_path`` list."""
    names = [d.strip() for d in dataset.split(",") if d.strip()]
    paths = [p.strip() for p in data_path.split(",")] if data_path else [""] * len(names)
    if len(paths) != len(names):
        raise ValueError(f"data_path lists {len(paths)} files for {len(names)} datasets ({names}); "
                         "give one path per dataset, comma-separated, or none for the synthetic default")
    return [(n, p or None) for n, p in zip(names, paths)]


def data_options(dataset: str, data_path: str | None, profile: Profile, seed: int = 0,
                 extra_keys: tuple[str, ...] | list[str] = ()) -> dict:
    """How to load the data of a run: the file, or the synthetic preset's size and seed.
    ``load_dataset(dataset, **data_options(...))`` loads it.

    ``extra_keys`` (non-empty): the file's per-split extras to read (``MSASplit.extras``), kept as
    ``"extra_keys"``, a sorted list, so they are part of the run identity (only a pickle can carry
    them: ``load_dataset`` refuses them for other data)."""
    keys = sorted(extra_key_tuple(extra_keys))
    extra = {"extra_keys": keys} if keys else {}
    if data_path:
        return {"data_path": str(data_path), **extra}
    if dataset in FETCHED:  # a public dataset fetched by name is always used whole
        return extra
    options = {"size": round(profile.size_for(dataset), 6), "seed": seed}
    options.update({k: v for k, v in (("max_len", profile.max_len), ("eval_samples", profile.eval_samples)) if v})
    return {**options, **extra}


def settings_row(chapter: str, settings: dict[str, dict], dataset: str, choice: str = "") -> str:
    """Which row of a chapter's per-dataset paper settings a run uses: ``choice`` when given, else
    the synthetic preset's name, or a fetched dataset's own row (``mosi-utterance``: mosi). A name
    the chapter has no settings for is an error."""
    default = FETCHED[dataset].settings_row if dataset in FETCHED else dataset.partition(":")[2] or dataset
    row = (choice or default).strip().lower()
    if row not in settings:
        hint = "" if choice or dataset.startswith("synthetic:") else (f"; for your own data (dataset {dataset!r}) say which paper setting to use "
                                  f"with the `settings` parameter")
        raise ValueError(f"the {chapter} chapter has no settings for {row!r}: choose one of {sorted(settings)}{hint}")
    return row


def settings_choices(settings: str, n_datasets: int) -> list[str]:
    """The comma-separated ``settings`` parameter as one settings row per dataset ("" = the
    preset's own): one per dataset, or one for all."""
    choices = [s.strip() for s in settings.split(",")] if settings else [""]
    if len(choices) == 1:
        choices = choices * n_datasets
    if len(choices) != n_datasets:
        raise ValueError(f"settings lists {len(choices)} rows for {n_datasets} datasets; give one per dataset or one")
    return choices


def frame_protocols(rates: Iterable[float] = FRAME_RATES) -> tuple[str, ...]:
    return tuple(f"frame:{r:g}" for r in rates)


def subset_protocols() -> tuple[str, ...]:
    return tuple(f"modality:{s}" for s in SUBSETS)


def per_rate_specs(model: str, dataset: str, rates: Iterable[float], seeds: Iterable[int], **common) -> list[RunSpec]:
    """Per-rate design: one run per (rate, seed), trained and tested at that rate (fixed masks)."""
    return [RunSpec(model=model, dataset=dataset, seed=s, train_protocol=f"frame:{r:g}",
                    eval_protocols=(f"frame:{r:g}",), design="per_rate", **common)
            for r in rates for s in seeds]


def train_once_specs(model: str, dataset: str, seeds: Iterable[int], train_protocol: str,
                     eval_protocols: Iterable[str], **common) -> list[RunSpec]:
    """Train-once design: one run per seed, tested under every protocol in ``eval_protocols``."""
    return [RunSpec(model=model, dataset=dataset, seed=s, train_protocol=train_protocol,
                    eval_protocols=tuple(eval_protocols), design="train_once", **common) for s in seeds]


# ---------------------------------------------------------------------------------------------
# the one call a chapter notebook makes
# ---------------------------------------------------------------------------------------------

@dataclass
class DatasetRuns:
    """One dataset's runs of a chapter: the data, the tidy results, the specs, a caption."""

    name: str
    path: str | None
    data: MSADataset
    results: pd.DataFrame
    specs: list[RunSpec]
    caption: str
    settings: str = ""
    records: list[dict] = field(default_factory=list)

    @property
    def verdict_results(self) -> pd.DataFrame:
        """The tidy results without the runs that did not train: what every verdict uses."""
        return self.results[~self.results["key"].isin(degenerate_keys(self.records))]

    @cached_property
    def table_results(self) -> pd.DataFrame:
        """The tidy results plus the reference rows (ridge probe, input-blind predictor) on the same
        test split under every protocol the runs were tested under: what results tables show."""
        refs = reference_results(self.data, sorted(self.results["protocol"].unique()))
        return pd.concat([self.results, refs], ignore_index=True)

    @property
    def warning(self) -> str:
        """A warning box naming the runs that did not train ("" when all did)."""
        return degenerate_warning(self.records)


@dataclass
class ChapterRun:
    """What :func:`run_chapter` returns: per dataset its runs, and the run's context."""

    chapter: str
    profile: Profile
    seeds: list[int]
    store: ResultsStore
    datasets: list[DatasetRuns]
    setting: str = ""
    seconds: float = 0.0

    def __iter__(self):
        return iter(self.datasets)

    @property
    def first(self) -> DatasetRuns:
        return self.datasets[0]

    def describe(self, notebook: str = "") -> str:
        """The page's head, in Markdown: one synthetic-data banner (when any dataset is synthetic),
        the run configuration box (profile, seeds, setting, split sizes, wall time) with the
        command that re-runs ``notebook`` on real data, and a warning box per dataset whose runs
        did not all train."""
        data = "; ".join(f"`{d.data.source}` ({'/'.join(str(len(d.data[s])) for s in ('train', 'valid', 'test'))})"
                         for d in self.datasets)
        lines = [f"* **profile** `{self.profile.name}`; **seeds** {', '.join(map(str, self.seeds))}",
                 f"* **setting** {self.setting}" if self.setting else "",
                 f"* **data** (train/valid/test) {data}",
                 f"* **wall time** {self.seconds:.0f} s for this page (finished runs are read from the results store)"]
        box = ":::{admonition} Run configuration\n:class: note\n" + "\n".join(x for x in lines if x) + "\n:::"
        details = []  # folded, so the first result stays above the fold
        if notebook:
            details.append("Re-run this page on your data (one file per dataset; `settings` names the paper's "
                           "settings row; finished runs are reused from `results_dir`):\n\n```bash\n"
                           f"papermill notebooks/{notebook}.ipynb out.ipynb -p dataset my_data "
                           "-p data_path /path/to/aligned_50.pkl -p settings mosi -p profile paper -p results_dir runs/\n```")
        records = [r for d in self.datasets for r in d.records]
        if records:  # did every run train? one row per run
            health = health_table(records).drop(columns="key")
            details.append("**Run health**: best epoch, epochs run of the cap, validation score against the "
                           "input-blind predictor.\n\n" + health.to_html(index=False, border=0, na_rep="–"))
        if details:
            box += ("\n\n:::{admonition} Re-run command and run health\n:class: dropdown\n"
                    + "\n\n".join(details) + "\n:::")
        synthetic = [d.data.source for d in self.datasets if d.data.is_synthetic]
        return "\n\n".join([x for x in (synthetic_banner(synthetic), box) if x]
                             + [d.warning for d in self.datasets if d.warning])

    def save_figure(self, fig, name: str) -> Path:
        """Keep a figure next to the runs (``<results_dir>/figures/<name>.svg``)."""
        path = self.store.root / "figures" / f"{name}.svg"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
        return path


def validation_sweep(choices: dict[str, RunSpec], store: ResultsStore, device: str = "auto") -> pd.DataFrame:
    """Train one run per choice (label -> spec, no test protocols) and rank the choices by the
    validation score the trainer selects on (MAE, or Avg-F1 on IEMOCAP); the test split is never
    read. One row per choice: the score, the best epoch, whether the run trained."""
    from .metrics import metric_spec
    from .runs import run_grid

    records = run_grid(list(choices.values()), store, device=device)
    metric = records[0]["health"]["select_metric"]
    table = pd.DataFrame([{"choice": label, f"valid {metric}": r["health"]["valid_score"], "best epoch": r["best_epoch"],
                           "trained": "no" if r["health"]["degenerate"] else "yes"}
                          for label, r in zip(choices, records)])
    table = table.sort_values(f"valid {metric}", ascending=not metric_spec(metric).higher, kind="stable")
    return table.reset_index(drop=True)


def open_store(results_dir: str = "") -> ResultsStore:
    """The results folder of a notebook run; empty means a fresh temporary folder."""
    return ResultsStore(results_dir or tempfile.mkdtemp(prefix="msa-results-"))


#: A chapter's spec builder: (dataset name, data path, profile, seeds, settings choice, loaded data) -> specs.
SpecBuilder = Callable[[str, "str | None", Profile, list[int], str, MSADataset], list[RunSpec]]


def run_chapter(chapter: str, make_specs: SpecBuilder,
                dataset: str, data_path: str = "", profile: str = "smoke", seeds: str = "", device: str = "auto",
                results_dir: str = "", settings: str = "", setting_text: Callable[[Profile], str] | None = None,
                progress: bool = True, extra_keys: tuple[str, ...] | list[str] = ()) -> ChapterRun:
    """Build a chapter's runs on every dataset of a comma-separated list, train what the results
    store does not hold yet, and return the tidy results. ``make_specs`` is the chapter's spec
    builder; ``settings`` (comma-separated, one per dataset or one for all) picks the
    paper-settings row for data that is not a synthetic preset. ``extra_keys`` names per-split
    extras every dataset file carries (:func:`data_options`); the specs ``make_specs`` builds
    should pass them to :func:`data_options` too, so the run identity names them."""
    from .runs import run_grid  # training imports only when a chapter runs

    t0 = time.perf_counter()
    prof = get_profile(profile)
    seed_list = parse_seeds(seeds or prof.seeds)
    store = open_store(results_dir)
    pairs = dataset_paths(dataset, data_path)
    choices = settings_choices(settings, len(pairs))
    out = []
    for (name, path), choice in zip(pairs, choices):
        data = load_dataset(name, **data_options(name, path, prof, extra_keys=extra_keys))
        specs = make_specs(name, path, prof, seed_list, choice, data)
        records = run_grid(specs, store, device=device, progress=progress, loader=lambda spec, data=data: data)
        out.append(DatasetRuns(name, path, data, tidy(records), specs, data_caption(data), choice, records))
    return ChapterRun(chapter, prof, seed_list, store, out, setting_text(prof) if setting_text else "",
                      time.perf_counter() - t0)


__all__ = ["PROFILES", "ChapterRun", "DatasetRuns", "Profile", "data_options", "dataset_paths", "frame_protocols",
           "get_profile", "open_store", "validation_sweep", "parse_seeds", "per_rate_specs", "profile_table", "run_chapter",
           "settings_row", "subset_protocols", "train_once_specs"]

"""The real-data chapter: every model of the library under every protocol, on one page.

Rows are the models of :data:`msa_lib.models.MODELS` (a model joins when it is registered and its
chapter names its paper training in ``TRAIN_PROTOCOLS``), two scikit-learn references (ridge on the
standardised concatenated features, and ridge on each modality alone; α chosen on validation) and,
on ``mosi-utterance``, Poria et al. 2017's published binary accuracies on the same features, quoted.

Column blocks, one per protocol family (:data:`BLOCKS`): complete test data; the six
missing-modality subsets tested on a model trained on complete data and on the model's own paper
training distribution; LNLN/DAR erasure at 0.0…0.9 on the model trained once (as its paper
trains it), averaged over rates; EMT/MITR per-rate training (trained and tested at each rate) as
AUILC. Every cell is mean ± std over seeds; every checkpoint is selected on validation.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..data import FETCHED, MSADataset
from ..experiments import (ChapterRun, DatasetRuns, Profile, data_options, get_profile, parse_seeds, per_rate_specs,
                           run_chapter, settings_row, subset_protocols, train_once_specs)
from ..metrics import HEADLINE_METRICS, PRIMARY_METRIC, auilc, compute_metrics, format_mean_std, format_value, \
    metric_spec
from ..missing import FRAME_RATES, parse_protocol
from ..report import AUILC_RATES, CONFIDENCE
from ..results import RunSpec

NAME = "leaderboard"
TITLE = "Real data and the leaderboard"
MODELS: tuple[str, ...] = ()  # owns no model's settings: each model's chapter does
SETTINGS: dict[str, dict] = {}
#: The real dataset the book renders the page on.
DATASET = "mosi-utterance"
#: Seeds on real data outside the smoke profile: at least these many, whatever the profile's default.
REAL_SEEDS = 5
#: The leaderboard's metrics on MOSI-kind data (other kinds: their headline metrics).
MOSI_METRICS: tuple[str, ...] = ("MAE", "Corr", "Acc-2_has0", "Acc-2_non0", "F1_non0", "Acc-7")
#: LNLN / DAR evaluation: one fixed erasure rate per column, 0.0 to 0.9.
ERASURE_RATES: tuple[float, ...] = FRAME_RATES[:-1]
ERASURE_EVALS: tuple[str, ...] = tuple(f"erasure:{r:g}" for r in ERASURE_RATES)
MISSING_SUBSETS: tuple[str, ...] = tuple(p for p in subset_protocols() if p != "modality:lav")
#: What every train-once run is tested under.
EVALS: tuple[str, ...] = ("complete",) + subset_protocols() + ERASURE_EVALS

#: Column blocks: name -> what its cells are (the page's captions say it).
BLOCKS: dict[str, str] = {
    "complete": "complete test data, each model trained as its paper trains it",
    "subsets, trained complete": "mean of the six missing-modality subsets ({l} … {a,v}), models trained on "
                                 "complete data",
    "subsets, trained as its paper": "mean of the six missing-modality subsets, models trained as their paper "
                                     "trains them",
    "erasure 0–0.9, trained once": "mean over erasure rates 0.0, 0.1, …, 0.9 (LNLN/DAR: one fixed mask per rate), "
                                   "models trained once as their paper trains them",
    "per-rate training (AUILC)": "trained and tested at each rate 0.0, 0.1, …, 1.0 (EMT/MITR: fixed frame masks), "
                                 "the area under each seed's curve (AUILC, EMT-DLFR's trapezoid: accuracies in % × rate)",
}

#: Poria et al. 2017 (ACL), binary accuracy (%) on these features, their whole test split (our
#: validation and test together; their Table 3, MOSI, speaker-independent): quoted, not re-run.
PORIA_2017: dict[str, float] = {"SVM text": 75.5, "SVM audio": 58.5, "SVM video": 53.1, "SVM trimodal": 77.9,
                                "bc-LSTM": 80.3}
QUOTED_PREFIX = "quoted: "

#: Ridge references: label -> modalities read (standardised, concatenated).
RIDGES: dict[str, tuple[str, ...]] = {"ridge, concatenated": ("text", "audio", "vision"), "ridge, text": ("text",),
                                      "ridge, audio": ("audio",), "ridge, vision": ("vision",)}
RIDGE_REFERENCE = "ridge, concatenated"
#: The α grid the ridge references choose from on validation.
RIDGE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-2, 5, 15))


def board_metrics(kind: str) -> tuple[str, ...]:
    return MOSI_METRICS if kind == "mosi" else HEADLINE_METRICS[kind]


def model_names() -> list[str]:
    """The registry's models, in its order."""
    from ..models import MODELS as REGISTRY

    return list(REGISTRY)


def display_name(model: str) -> str:
    """How tables name a model: its class's ``display_name`` or class name (``TFN``, ``UMDF``)."""
    from ..models import MODELS as REGISTRY

    cls = REGISTRY[model][0]
    return getattr(cls, "display_name", "") or cls.__name__


def paper_training(model: str) -> str:
    """The training protocol of ``model``'s paper (its chapter's ``TRAIN_PROTOCOLS``)."""
    from . import chapter_of_model

    chapter = chapter_of_model(model)
    protocols = getattr(chapter, "TRAIN_PROTOCOLS", {})
    if model not in protocols:
        raise ValueError(f"the {chapter.NAME} chapter does not name {model!r}'s paper training in TRAIN_PROTOCOLS")
    return protocols[model]


def labels(model: str) -> dict[str, str]:
    """Run labels of ``model``'s leaderboard runs: as its paper trains it, on complete data, per rate."""
    name = display_name(model)
    own = paper_training(model)
    return {"paper": name, "complete": name if own == "complete" else f"{name}, trained complete",
            "per_rate": f"{name}, per-rate"}


def default_seeds(dataset: str, data_path: str, profile: Profile) -> str:
    """The profile's seeds, but at least :data:`REAL_SEEDS` on real data outside the smoke profile."""
    seeds = parse_seeds(profile.seeds)
    real = bool(data_path) or not dataset.startswith("synthetic:")
    if real and profile.name != "smoke" and len(seeds) < REAL_SEEDS:
        seeds = list(range(1, REAL_SEEDS + 1))
    return ",".join(map(str, seeds))


def model_setup(model: str, row: str, profile: Profile) -> tuple[dict, dict]:
    """(model_config, train_config) of ``model``: its own chapter's paper settings."""
    from . import chapter_of_model

    return chapter_of_model(model).model_setup(model, row, profile)


def model_specs(model: str, dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
                kind: str = "mosi", per_rate: bool = True) -> list[RunSpec]:
    """``model``'s leaderboard runs on one dataset, at its chapter's paper settings for the settings
    row: trained once as its paper trains it and (if that is not complete data) on complete data,
    both tested under :data:`EVALS`; and (``per_rate``) trained and tested at each AUILC rate."""
    from . import chapter_of_model

    chapter = chapter_of_model(model)
    row = settings_row(chapter.NAME, chapter.SETTINGS, dataset, settings)
    model_cfg, train_cfg = model_setup(model, row, profile)
    common = {"model_config": model_cfg, "train_config": train_cfg,
              "data_options": data_options(dataset, data_path, profile)}
    names, own = labels(model), paper_training(model)
    out = train_once_specs(model, dataset, seeds, own, EVALS, label=names["paper"], **common)
    if own != "complete":
        out += train_once_specs(model, dataset, seeds, "complete", EVALS, label=names["complete"], **common)
    if per_rate:
        out += per_rate_specs(model, dataset, AUILC_RATES[kind], seeds, label=names["per_rate"], **common)
    return out


def paper_specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
                kind: str = "mosi", models: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()
                ) -> tuple[list[RunSpec], dict[str, str]]:
    """The leaderboard's run of every model of the registry (or ``models``) but ``exclude``, trained once
    as its paper trains it and tested under :data:`EVALS` (a chapter comparing itself with the others
    builds these, so the runs are shared). A model whose chapter has no settings for the dataset's row
    uses MOSI's. Returns (specs, label -> settings row used)."""
    from . import chapter_of_model

    out, rows = [], {}
    for model in models or model_names():
        if model in exclude:
            continue
        chapter = chapter_of_model(model)
        try:
            own = settings_row(chapter.NAME, chapter.SETTINGS, dataset, settings)
        except ValueError:
            own = "mosi"
        label = labels(model)["paper"]
        out += [s for s in model_specs(model, dataset, data_path, profile, seeds, own, kind, per_rate=False)
                if s.label == label]
        rows[label] = own
    return out, rows


# ---------------------------------------------------------------------------------------------
# the ridge references (scikit-learn), α on validation
# ---------------------------------------------------------------------------------------------

def _target(split) -> np.ndarray:
    return split.labels if split.labels is not None else split.class_labels


def _ridge_predict(model, x: np.ndarray, task: str) -> np.ndarray:
    pred = model.predict(x)
    return (pred > 0.5).astype(int) if task == "classification" else pred


def fit_ridge(data: MSADataset, modalities: tuple[str, ...], train_protocol: str = "complete", mask_seed: int = 0):
    """A standardised ridge regression (scikit-learn) on the time-averaged ``modalities``, fit on
    the training split under ``train_protocol`` (a seeded fixed mask), with α chosen from
    :data:`RIDGE_ALPHAS` on the validation split under the same protocol by the kind's selection
    metric. Returns the fitted pipeline and the chosen α; the test split is not read."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..missing import mask_split
    from ..report import pooled_features

    train, valid = (mask_split(data[s], train_protocol, mask_seed) for s in ("train", "valid"))
    metric, direction = PRIMARY_METRIC[data.kind]
    best = None
    for alpha in RIDGE_ALPHAS:
        model = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(pooled_features(train, modalities),
                                                                       _target(train))
        score = compute_metrics(data.kind, _ridge_predict(model, pooled_features(valid, modalities), data.task),
                                _target(valid))[metric]
        if best is None or (score < best[0] if direction == "min" else score > best[0]):
            best = (score, alpha, model)
    return best[2], best[1]


def ridge_results(data: MSADataset, protocols: tuple[str, ...], per_rate: bool = True, mask_seed: int = 0
                  ) -> pd.DataFrame:
    """Tidy rows (like :func:`msa_lib.results.tidy`, seed 0) of every :data:`RIDGES` reference: fit
    on complete data and tested under each of ``protocols``, and (``per_rate``) fit and tested at
    each AUILC rate (design ``per_rate``). Masks are the models' test masks (seed 0)."""
    from ..missing import mask_split
    from ..report import pooled_features

    test = data["test"]
    rows = []

    def add(label, design, train_protocol, protocol, metrics, alpha):
        rows.extend({"model": "reference", "variant": label, "dataset": data.source, "design": design,
                     "train_protocol": train_protocol, "protocol": protocol, "seed": 0, "metric": k, "value": v,
                     "config_key": label, "key": label, "alpha": alpha} for k, v in metrics.items())

    for label, modalities in RIDGES.items():
        model, alpha = fit_ridge(data, modalities, "complete", mask_seed)
        for protocol in protocols:
            masked = mask_split(test, protocol, mask_seed)
            add(label, "train_once", "complete", protocol, compute_metrics(
                data.kind, _ridge_predict(model, pooled_features(masked, modalities), data.task), _target(masked)), alpha)
        if per_rate:
            for rate in AUILC_RATES[data.kind]:
                protocol = f"frame:{rate:g}"
                model, alpha = fit_ridge(data, modalities, protocol, mask_seed)
                masked = mask_split(test, protocol, mask_seed)
                add(label, "per_rate", protocol, protocol, compute_metrics(
                    data.kind, _ridge_predict(model, pooled_features(masked, modalities), data.task),
                    _target(masked)), alpha)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# the board
# ---------------------------------------------------------------------------------------------

def _block_values(tidy: pd.DataFrame, entry: str, paper: str, complete: str, per_rate: str, kind: str,
                  metrics: tuple[str, ...]) -> list[dict]:
    """Per block, metric and seed: one entry's value (tidy rows of its runs by label)."""
    out = []

    def put(block, frame):  # frame: index seed, columns metric
        for seed, row in frame.iterrows():
            out.extend({"entry": entry, "block": block, "metric": m, "seed": seed, "value": row[m]}
                       for m in metrics if m in row)

    def mean_over(label, protocols, design="train_once"):
        d = tidy[(tidy["variant"] == label) & (tidy["design"] == design) & tidy["protocol"].isin(protocols)]
        if d.empty:
            return None
        wide = d.pivot_table(index=["seed", "protocol"], columns="metric", values="value", aggfunc="first",
                             dropna=False)
        counts = wide.groupby(level="seed").size()
        if (counts < len(protocols)).any():
            raise ValueError(f"{label}: runs lack some of the protocols {protocols}")
        return wide.groupby(level="seed").mean()  # NaN (Corr of a constant prediction) propagates

    for block, label, protocols in (("complete", paper, ("complete",)),
                                    ("subsets, trained complete", complete, MISSING_SUBSETS),
                                    ("subsets, trained as its paper", paper, MISSING_SUBSETS),
                                    ("erasure 0–0.9, trained once", paper, ERASURE_EVALS)):
        frame = mean_over(label, protocols)
        if frame is not None:
            put(block, frame)
    rates = AUILC_RATES[kind]
    d = tidy[(tidy["variant"] == per_rate) & (tidy["design"] == "per_rate")]
    if not d.empty:
        d = d.assign(rate=d["protocol"].map(lambda p: parse_protocol(p).rate))
        for metric in metrics:
            curves = d[d["metric"] == metric].pivot_table(index="seed", columns="rate", values="value",
                                                          aggfunc="first", dropna=False)
            missing = [r for r in rates if r not in curves.columns]
            if missing:
                raise ValueError(f"{per_rate}: AUILC needs every rate in {rates}; missing {missing}")
            for seed, curve in curves[list(rates)].iterrows():  # stored like the metric (fractions), printed as AUILC
                value = (np.nan if curve.isna().any()
                         else auilc(list(rates), curve.to_numpy(), metric) / metric_spec(metric).scale)
                out.append({"entry": entry, "block": "per-rate training (AUILC)", "metric": metric, "seed": seed,
                            "value": value})
    return out


@dataclass
class Leaderboard:
    """What :func:`run` returns: the runs (``runs``: the chapter run, ``item``: its one dataset), the
    reference rows, and every cell's per-seed values (``scores``: entry, block, metric, seed, value)."""

    runs: ChapterRun
    models: list[str]
    references: pd.DataFrame

    def __iter__(self):
        return iter(self.runs)

    @property
    def item(self) -> DatasetRuns:
        return self.runs.first

    @property
    def data(self) -> MSADataset:
        return self.item.data

    @property
    def metrics(self) -> tuple[str, ...]:
        return board_metrics(self.data.kind)

    @property
    def quoted(self) -> bool:
        """Poria et al.'s numbers are quoted only beside the features they were measured on."""
        return self.item.name == DATASET and self.item.path is None

    @property
    def model_entries(self) -> list[str]:
        return [display_name(m) for m in self.models]

    @property
    def reference_entries(self) -> list[str]:
        return list(RIDGES) + ([QUOTED_PREFIX + k for k in PORIA_2017] if self.quoted else [])

    @cached_property
    def scores(self) -> pd.DataFrame:
        tidy = self.item.results  # every run, as in every table (runs that did not train get a warning box)
        rows = []
        for m in self.models:
            names = labels(m)
            rows += _block_values(tidy, display_name(m), names["paper"], names["complete"], names["per_rate"],
                                  self.data.kind, self.metrics)
        for label in RIDGES:
            rows += _block_values(self.references, label, label, label, label, self.data.kind, self.metrics)
        if self.quoted:
            rows += [{"entry": QUOTED_PREFIX + k, "block": "complete", "metric": "Acc-2_has0", "seed": 0,
                      "value": v / 100} for k, v in PORIA_2017.items()]
        return pd.DataFrame(rows, columns=["entry", "block", "metric", "seed", "value"])

    def block_table(self, block: str) -> pd.DataFrame:
        """Rows: models, then references; columns: the metrics; cells "mean ± std" over seeds (a
        reference is deterministic: its value alone); "–" where undefined or not measured."""
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose one of {list(BLOCKS)}")
        s = self.scores[self.scores["block"] == block]
        refs = [e for e in self.reference_entries if e in set(s["entry"])]  # quoted rows: complete data only
        entries = self.model_entries + refs
        cells = {}
        for metric in self.metrics:
            column = []
            for entry in entries:
                v = s[(s["entry"] == entry) & (s["metric"] == metric)]["value"]
                if v.empty or v.isna().any():
                    column.append("–")
                elif entry in self.model_entries:
                    column.append(format_mean_std(metric, v.mean(), v.std() if len(v) > 1 else 0.0))
                else:
                    column.append(format_value(metric, float(v.iloc[0])))
            cells[metric] = column
        return pd.DataFrame(cells, index=pd.Index(entries, name="model"))

    def block_caption(self, block: str) -> str:
        training = ", ".join(f"{display_name(m)} on `{paper_training(m)}`" for m in self.models)
        seeds = ", ".join(map(str, self.runs.seeds))
        text = (f"**{block}**: {BLOCKS[block]}. Mean ± std over seeds {seeds}; best of the models in bold; "
                f"references in italics (deterministic: one value).")
        if "paper" in block or block in ("complete", "erasure 0–0.9, trained once"):
            text += f" Trained as their paper trains them: {training}."
        if block == "per-rate training (AUILC)":
            text += (" At rate 1.0 every input is removed and a prediction is constant, so Corr is undefined there "
                     "and has no AUILC (–). An Acc AUILC over 0.0–1.0 is close to the mean accuracy in %.")
        if block == "complete" and self.quoted:
            n_valid, n_test = len(self.data["valid"]), len(self.data["test"])
            text += (" *quoted*: Poria et al. 2017's binary accuracies from their paper (unimodal and trimodal SVMs; "
                     "bc-LSTM reads the neighbouring utterances of the video as context), measured on all "
                     f"{n_valid + n_test} segments of their test split (ours is {n_test} of them; the other {n_valid} "
                     "are our validation).")
        return text + " " + self.item.caption

    def curves(self, metric: str) -> pd.DataFrame:
        """Tidy rows for an erasure-rate figure: each model trained as its paper (variant = its name)
        and the concatenated ridge."""
        tidy = self.item.results
        models = tidy[tidy["variant"].isin([labels(m)["paper"] for m in self.models])
                      & (tidy["design"] == "train_once")]
        refs = self.references[(self.references["variant"] == RIDGE_REFERENCE)
                               & (self.references["design"] == "train_once")]
        both = pd.concat([models, refs.drop(columns="alpha")], ignore_index=True)
        return both[both["metric"] == metric]

    def ridge_comparison(self) -> pd.DataFrame:
        """Each model against the concatenated ridge on complete test data, for the kind's selection
        metric (and Acc-2 on MOSI-kind data): mean, seed std, the difference (positive = the model is
        better), the difference in seed stds, and the verdict from the 95 % t-interval of the model's
        mean (the ridge is deterministic)."""
        from scipy import stats

        primary = PRIMARY_METRIC[self.data.kind][0]
        metrics = (primary, "Acc-2_has0") if self.data.kind == "mosi" else (primary,)
        s = self.scores[self.scores["block"] == "complete"]
        tidy = self.item.verdict_results  # runs that did not train are left out of verdicts
        rows = []
        for m, entry in zip(self.models, self.model_entries):
            for metric in metrics:
                v = tidy[(tidy["variant"] == labels(m)["paper"]) & (tidy["design"] == "train_once")
                         & (tidy["protocol"] == "complete") & (tidy["metric"] == metric)]["value"].dropna()
                ref = s[(s["entry"] == RIDGE_REFERENCE) & (s["metric"] == metric)]["value"]
                if v.empty or ref.empty:
                    continue
                sign = 1 if metric_spec(metric).higher else -1
                diff = sign * (v.mean() - float(ref.iloc[0]))
                std = float(v.std()) if len(v) > 1 else np.nan
                if len(v) > 1:
                    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(v) - 1) * std / np.sqrt(len(v))
                    verdict = ("beats the ridge" if diff - half > 0 else "below the ridge" if diff + half < 0
                               else f"no detectable difference (mean {'above' if diff > 0 else 'below'})")
                else:
                    verdict = "too few seeds"
                rows.append({"model": entry, "metric": metric, "mean": float(v.mean()), "seed std": std,
                             "ridge": float(ref.iloc[0]), "difference": diff,
                             "in seed stds": diff / std if std > 0 else np.nan, "seeds": len(v), "verdict": verdict})
        return pd.DataFrame(rows)

    def ridge_text(self) -> str:
        """One computed paragraph: which models beat the ridge on complete real data, by how much
        relative to their seed std, and which do not."""
        table = self.ridge_comparison()
        if table.empty:
            return "No model has a complete-data result on this page."
        parts = []
        for model, sub in table.groupby("model", sort=False):
            bits = []
            for _, r in sub.iterrows():
                spec = metric_spec(r["metric"])
                diff = f"{r['difference'] * spec.scale:+.{spec.decimals}f}"
                ratio = "" if np.isnan(r["in seed stds"]) else f" = {r['in seed stds']:+.1f} seed std"
                bits.append(f"{r['metric']} {format_value(r['metric'], r['mean'])} vs "
                            f"{format_value(r['metric'], r['ridge'])} ({diff}{ratio}: {r['verdict']})")
            parts.append(f"**{model}** " + ", ".join(bits))
        beats = sorted(set(table[table["verdict"] == "beats the ridge"]["model"]))
        below = sorted(set(table[table["verdict"] == "below the ridge"]["model"]))
        noise = sorted(set(table[table["verdict"] == "no detectable difference (mean below)"]["model"]) - set(below))
        return (f"On complete test data, against the {RIDGE_REFERENCE} reference (α chosen on validation; "
                f"differences signed so that + means the model is better; verdicts from the {CONFIDENCE:.0%} "
                f"t-interval of the model's mean over {int(table['seeds'].max())} seeds, the ridge being "
                f"deterministic): " + "; ".join(parts) + f". **Beats the ridge** on at least one metric: "
                f"{'; '.join(beats) or 'no model'}. **Below the ridge** on at least one metric: "
                f"{'; '.join(below) or 'no model'}. **Mean below the ridge, within seed noise**, on at least one "
                f"metric: {'; '.join(noise) or 'no model'}.")

    def alphas(self) -> pd.DataFrame:
        """The α each ridge reference chose on validation (complete data)."""
        r = self.references[(self.references["design"] == "train_once")]
        return r.groupby("variant", sort=False)["alpha"].first().to_frame("α (chosen on validation)")


def models_with_settings(dataset: str, settings: str = "") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The registry's models split into those whose chapter has paper settings for ``dataset``'s
    settings row (``settings``, or the dataset's own) and those whose chapter has none (MITR-DNet's
    paper has MOSI and CH-SIMS settings only): the leaderboard runs the first and names the second."""
    from . import chapter_of_model

    has, lacks = [], []
    for m in model_names():
        chapter = chapter_of_model(m)
        try:
            settings_row(chapter.NAME, chapter.SETTINGS, dataset, settings)
            has.append(m)
        except ValueError:
            lacks.append(m)
    if not has:  # no model has settings for it: the first chapter's error says how to name a row
        chapter = chapter_of_model(lacks[0])
        settings_row(chapter.NAME, chapter.SETTINGS, dataset, settings)
    return tuple(has), tuple(lacks)


def setting_text(profile: Profile, models: tuple[str, ...] | None = None) -> str:
    models = ", ".join(f"{display_name(m)} at its chapter's settings" for m in (models or model_names()))
    return f"{models} ({profile.name} profile); ridge references with α chosen on validation"


def specs(dataset: str, data_path: str | None, profile: Profile, seeds: list[int], settings: str = "",
          kind: str = "mosi", models: tuple[str, ...] | None = None, per_rate: bool = True) -> list[RunSpec]:
    """Every leaderboard run on one dataset: :func:`model_specs` of each model (default: the registry)."""
    chosen = list(models) if models else model_names()
    unknown = sorted(set(chosen) - set(model_names()))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; available: {model_names()}")
    return [s for m in chosen for s in model_specs(m, dataset, data_path, profile, seeds, settings, kind, per_rate)]


def sweep_specs(dataset: str, data_path: str | None, profile: Profile, seeds: str = "", settings: str = "",
                kind: str = "mosi") -> list[RunSpec]:
    """Every run of the chapter's pages on one dataset (every model with settings for its row, on complete data and per rate), without the validation sweeps:
    what ``python -m msa_lib sweep --chapter leaderboard`` runs."""
    seed_list = parse_seeds(seeds or default_seeds(dataset, data_path or "", profile))
    return specs(dataset, data_path, profile, seed_list, settings, kind, models_with_settings(dataset, settings)[0])


def run(dataset: str = DATASET, data_path: str = "", profile: str = "smoke", seeds: str = "", device: str = "auto",
        results_dir: str = "", settings: str = "", models: tuple[str, ...] | None = None,
        per_rate: bool = True) -> Leaderboard:
    """Train what the store lacks and return the leaderboard of ``dataset`` (one dataset): every
    model of the registry (or ``models``) trained as its paper trains it, on complete data and per
    rate, and the ridge references."""
    if "," in dataset:
        raise ValueError(f"the leaderboard takes one dataset, got {dataset!r}")
    prof = get_profile(profile)
    chosen, skipped = (tuple(models), ()) if models else models_with_settings(dataset, settings)

    def make(name, path, prof, seed_list, choice, data):
        return specs(name, path, prof, seed_list, choice, data.kind, chosen, per_rate)

    def describe(prof):
        left_out = "".join(f"; {display_name(m)} not run: its chapter has no paper settings for this dataset's row "
                           f"(name one with `settings`)" for m in skipped)
        return setting_text(prof, chosen) + left_out

    with warnings.catch_warnings():  # Corr of a constant prediction (a modality-less input) is "–" in the tables
        warnings.filterwarnings("ignore", message="Corr is undefined", category=RuntimeWarning)
        runs = run_chapter(NAME, make, dataset, data_path, profile, seeds or default_seeds(dataset, data_path, prof),
                           device, results_dir, settings, describe)
        return Leaderboard(runs, list(chosen), ridge_results(runs.first.data, EVALS, per_rate))


def real_data_summary(model: str, profile: str = "smoke", seeds: str = "", device: str = "auto",
                      results_dir: str = "", dataset: str = DATASET, data_path: str = "",
                      settings: str = "") -> Leaderboard:
    """``model``'s train-once leaderboard runs on the real dataset (the leaderboard page's runs,
    read from the store when it ran first) with the ridge references; per-rate training is on the
    leaderboard page."""
    return run(dataset, data_path, profile, seeds, device, results_dir, settings, models=(model,), per_rate=False)


def real_data_against_all(model: str, profile: str = "smoke", seeds: str = "", device: str = "auto",
                          results_dir: str = "") -> Leaderboard | str:
    """A chapter's real-data comparison of ``model`` with every other model: the train-once
    leaderboard runs on the real dataset, or why the data cannot be had. Under the smoke profile (what
    nbval replays) only ``model`` and TFN, two seeds (a paired verdict needs two)."""
    why = unavailable()
    if why:
        return why
    smoke = profile == "smoke"
    return run(DATASET, "", profile, seeds or ("1,2" if smoke else ""), device, results_dir,
               models=(model, "tfn") if smoke else None, per_rate=False)


def real_data(model: str, profile: str = "smoke", seeds: str = "", device: str = "auto", results_dir: str = "",
              dataset: str = DATASET, data_path: str = "", settings: str = "") -> Leaderboard | str:
    """A chapter page's "real data" cell, computed: :func:`real_data_summary`, or why the data
    cannot be had (offline, no cache) as a string."""
    why = "" if data_path else unavailable(dataset)
    if why:
        return why
    return real_data_summary(model, profile, seeds, device, results_dir, dataset, data_path, settings)


def show_real_data(real: Leaderboard | str) -> None:
    """Display :func:`real_data`: the model on the real dataset, every leaderboard block but per-rate
    training, beside the references; a one-line note when the data could not be had."""
    from IPython.display import Markdown, display

    from ..style import show, styled_parts

    if isinstance(real, str):
        display(Markdown(f"*Real data not available here* ({real.splitlines()[0]}); the leaderboard page shows the "
                         f"stored real-data results."))
        return
    show(*styled_parts(summary_table(real), 6, best="column", reference_rows=real.reference_entries))
    names = ", ".join(real.model_entries)
    display(Markdown(
        f"**Real data: {names} on `{real.item.name}`** — the same runs as the leaderboard page "
        f"({{doc}}`/notebooks/leaderboard`, which adds per-rate training and the other models). Blocks: complete "
        f"test data; the mean of the six missing-modality subsets trained on complete data and as the paper trains "
        f"it; the mean over erasure rates 0.0–0.9. Mean ± std over seeds {', '.join(map(str, real.runs.seeds))}; "
        f"references (ridge, α chosen on validation; quoted numbers) in italics. Sequences have length 1 here, so a "
        f"frame-level protocol drops whole modalities. {real.item.caption}"))


def summary_table(board: Leaderboard, metrics: tuple[str, ...] = ("MAE", "Acc-2_has0")) -> pd.DataFrame:
    """The blocks measured on ``board`` side by side for a few metrics (columns "<block> <metric>")."""
    blocks = [b for b in BLOCKS if (board.scores["block"] == b).any()]
    tables = {b: board.block_table(b)[list(metrics)] for b in blocks}
    order = list(dict.fromkeys(label for t in tables.values() for label in t.index))
    wide = pd.concat(tables, axis=1).reindex(order).fillna("–")
    return wide.set_axis([f"{b} {m}" for b, m in wide.columns], axis=1)


def unavailable(dataset: str = DATASET) -> str:
    """Why a fetched dataset cannot be had now ("" if it can)."""
    return FETCHED[dataset].unavailable() if dataset in FETCHED else ""


def subset_table(board: Leaderboard, metric: str) -> pd.DataFrame:
    """Per modality subset (rows, UMDF's table layout), each model trained complete and as its
    paper, and the ridge references (columns "<label> <metric>"): mean ± std of ``metric`` over seeds."""
    from ..report import condition_table

    tidy = board.item.results
    keep = [lab for m in board.models for lab in dict.fromkeys((labels(m)["paper"], labels(m)["complete"]))]
    models = tidy[tidy["variant"].isin(keep) & (tidy["design"] == "train_once")]
    refs = board.references[board.references["design"] == "train_once"].drop(columns="alpha")
    both = pd.concat([models, refs], ignore_index=True)
    return condition_table(both[both["protocol"].str.startswith("modality:")], [metric])


__all__ = ["BLOCKS", "DATASET", "ERASURE_EVALS", "EVALS", "Leaderboard", "PORIA_2017", "RIDGES", "board_metrics",
           "default_seeds", "display_name", "fit_ridge", "labels", "model_setup", "model_specs", "paper_training",
           "real_data", "real_data_summary", "ridge_results", "run", "show_real_data", "specs", "subset_table", "summary_table", "unavailable"]

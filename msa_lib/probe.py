"""The orderings the book relies on, computed with the ridge probe: does a dataset keep them?

The synthetic default promises (``book/data.md``) that text is the most informative modality, that
every proper modality subset loses to the complete set, and that dropping frames never helps.
:func:`orderings` checks these promises on one dataset with :func:`msa_lib.report.ridge_probe` (a
ridge regression on time-averaged features, fit on complete training data and tested under a
missing-data protocol); :func:`orderings_summary` does it for every synthetic preset at a profile's
sizes (the synthetic-data page shows it). It works on any :class:`~msa_lib.data.MSADataset`.

**Which orderings, per dataset kind** (``data.kind``; MOSEI is kind ``mosi``):

* ``text ≥ audio`` and ``text ≥ vision`` (unimodal) for every kind: on the real MOSI, MOSEI, CH-SIMS
  and IEMOCAP language is the strongest single modality.
* ``audio ≥ vision`` only for ``iemocap``: emotion categories (angry, happy, sad) are carried by
  prosody, and unimodal IEMOCAP results rank acoustic above facial features. For the sentiment
  datasets the literature gives no consistent audio–vision ranking (it flips with the feature set),
  so that row is shown with the result ``no claim``.
* ``complete ≥ S`` for each of the six proper subsets S of {l, a, v}.
* ``non-increasing in frame-drop rate`` over the rates p < 1 of :data:`msa_lib.missing.FRAME_RATES`
  (``frame:p`` masks; p = 0 is the complete set). Every pair p < p' is compared and the row shows
  the worst pair. p = 1 leaves no frame: the probe outputs its intercept, a constant. Corr is
  undefined there, and the constant's MAE or F1 measures the label distribution, not information:
  a probe fit on complete data and given 1 or 2 frames of a sequence (p = 0.9) sees a mean ~10×
  noisier than the one its weights were fit on, and its overshooting predictions can score worse
  than that constant although Corr shows the information left. So p = 0.9 vs p = 1 is a separate
  row with the result ``no claim``.

**Metrics** (:data:`ORDERING_METRICS`): MAE (the regression kinds' model-selection metric) and Corr
for ``mosi`` / ``sims``, ``Avg_F1`` for ``iemocap``; :func:`msa_lib.metrics.metric_spec` gives the
direction.

**Evaluation data.** The probe is fit on the training split and evaluated on the valid and test
splits joined (:func:`held_out`): it selects nothing on the valid split (RidgeCV picks its penalty
on the training data), so both are held out, and twice the samples halve the variance of the mask
noise. Each frame-drop rate is evaluated with :data:`FRAME_DRAWS` independent test masks (seeds
``mask_seed``, ``mask_seed + 1``, ...; 2 for regression data, 4 for IEMOCAP, whose thresholded F1
moves in steps) and the metric averaged over them.

**Tolerance.** An ordering ``A ≥ B`` passes when A is better than B, or worse by at most the
tolerance. The tolerance is :data:`TOLERANCE_FRACTION` (one half) of the probe's *seed noise*: the
standard deviation of a metric between re-drawn test masks — the only random choice the probe
makes — estimated from the :data:`FRAME_DRAWS` draws at each rate 0 < p < 1 and pooled (root mean
square) over the rates. Being below the noise, the tolerance cannot hide a violation larger than
re-drawing the masks would produce; it only forgives differences smaller than that. The noise and
the tolerance are columns of the table.

Fast enough for a page: single-threaded (small matrices; models may be training on the other
cores), the training split pooled once, one ridge fit per protocol and draw — 2 to 4 s per preset
at the ``book`` profile's sizes (SIMS, with 1,510 feature dimensions, is the slowest).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import replace
from itertools import combinations
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from .data import PRESETS, MSADataset, load_dataset
from .data.container import MODALITIES, MSASplit
from .metrics import metric_spec
from .missing import FRAME_RATES, LETTER, SUBSETS, parse_protocol
from .report import pooled_features, ridge_probe

__all__ = ["FRAME_DRAWS", "ORDERING_METRICS", "TOLERANCE_FRACTION", "UNIMODAL_CLAIMS", "held_out", "orderings",
           "orderings_summary"]

#: metrics every ordering is checked with, per dataset kind
ORDERING_METRICS: dict[str, tuple[str, ...]] = {"mosi": ("MAE", "Corr"), "sims": ("MAE", "Corr"),
                                                "iemocap": ("Avg_F1",)}
#: unimodal orderings claimed per kind (better, worse); the other pairs are shown as "no claim"
UNIMODAL_CLAIMS: dict[str, tuple[tuple[str, str], ...]] = {
    "mosi": (("text", "audio"), ("text", "vision")),
    "sims": (("text", "audio"), ("text", "vision")),
    "iemocap": (("text", "audio"), ("text", "vision"), ("audio", "vision")),
}
#: independent test-mask draws per frame-drop rate, per task (averaged; their spread is the seed
#: noise). Thresholded F1 moves in steps (a prediction crossing 0.5 flips a whole sample), so
#: classification data get more draws.
FRAME_DRAWS: dict[str, int] = {"regression": 2, "classification": 4}
#: tolerance = this fraction of the seed noise (below the noise by construction)
TOLERANCE_FRACTION = 0.5

PASS, FAIL, NO_CLAIM = "pass", "fail", "no claim"
_UNIMODAL_PAIRS = (("text", "audio"), ("text", "vision"), ("audio", "vision"))
_AV_NOTE = "not claimed: the real sentiment datasets give no consistent audio–vision ranking"
_CONSTANT_NOTE = ("not claimed: at p=1 the probe predicts a constant; fit on complete data, at p=0.9 it overshoots "
                  "and may do worse although information is left (Corr)")


@contextmanager
def _single_thread() -> Iterator[None]:
    """One BLAS and one torch thread: the probe's matrices are small, and on a shared machine
    (models training in parallel) extra threads only contend."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(previous)


def _probe(data: MSADataset, protocol: str, mask_seed: int = 0) -> dict[str, float]:
    with warnings.catch_warnings():
        # frame:1 leaves no frame: the constant prediction makes Corr NaN (not used in any ordering)
        warnings.filterwarnings("ignore", message="Corr is undefined", category=RuntimeWarning)
        return ridge_probe(data, protocol, mask_seed)


def _pad(a: np.ndarray, t: int) -> np.ndarray:
    """(N, T, d) ``a`` zero-padded at the end of the sequence axis to ``t`` frames."""
    return a if a.shape[1] == t else np.pad(a, [(0, 0), (0, t - a.shape[1]), (0, 0)])


def held_out(data: MSADataset) -> MSADataset:
    """``data`` with its valid and test splits joined as the test split (named ``test``; BERT token
    ids dropped, which the probe does not read): what :func:`orderings` evaluates on."""
    valid, test = data["valid"], data["test"]

    def join(a, b):
        if a is None or b is None:
            return None
        if isinstance(a, list):
            return a + b
        if a.ndim == 3:  # features: pad both to the longer sequence axis (padding is never read)
            t = max(a.shape[1], b.shape[1])
            a, b = _pad(a, t), _pad(b, t)
        return np.concatenate([a, b])

    def join_dict(a, b):
        return None if a is None or b is None else {m: join(a[m], b[m]) for m in a}

    joined = MSASplit(
        text=join(valid.text, test.text), audio=join(valid.audio, test.audio), vision=join(valid.vision, test.vision),
        lengths=join_dict(valid.lengths, test.lengths), labels=join(valid.labels, test.labels),
        ids=join(list(valid.ids), list(test.ids)), raw_text=join(valid.raw_text, test.raw_text),
        unimodal_labels=join_dict(valid.unimodal_labels, test.unimodal_labels),
        class_labels=join(valid.class_labels, test.class_labels), extras=join_dict(valid.extras, test.extras),
        extra_lengths=join_dict(valid.extra_lengths, test.extra_lengths), name="test", source=test.source)
    return replace(data, splits={**data.splits, "test": joined})


def _pooled(split: MSASplit) -> MSASplit:
    """``split`` with every modality time-averaged into one frame (by :func:`pooled_features`): the
    ridge probe computes the same features from it without re-pooling every frame on each call.
    Only where no frame is masked: training data, and whole-modality protocols."""
    feats = {m: pooled_features(split, (m,)).astype(np.float32)[:, None, :] for m in MODALITIES}
    return replace(split, **feats, lengths={m: (split.lengths[m] > 0).astype(np.int64) for m in MODALITIES},
                   text_bert=None, keep=None)


def _subset_label(subset: str) -> str:
    return parse_protocol(f"modality:{subset}").label


def _gain(metric: str, better: float, worse: float) -> float:
    """How much ``better`` beats ``worse`` in the metric's direction (negative: it loses)."""
    return better - worse if metric_spec(metric).higher else worse - better


def orderings(data: MSADataset, mask_seed: int = 0, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """The orderings the book relies on (module doc), computed on ``data`` with the ridge probe.

    One row per (ordering, metric): ``ordering``, ``metric``, ``compared`` (the two conditions),
    ``better`` (the value of the side that should win) and ``worse`` (the other side), as fractions
    like :func:`msa_lib.metrics.compute_metrics`; ``noise`` (the seed noise: std between re-drawn
    test masks), ``tolerance`` (:data:`TOLERANCE_FRACTION` × noise), ``result`` (``pass``, ``fail``,
    or ``no claim`` for a row shown for information) and ``note``. ``metrics`` defaults to
    :data:`ORDERING_METRICS` of the dataset's kind; draw k of a frame-drop rate uses the mask seed
    ``mask_seed + k``.
    """
    metrics = tuple(metrics or ORDERING_METRICS[data.kind])
    data = held_out(data)
    with _single_thread():
        compact = replace(data, splits={s: _pooled(data[s]) for s in ("train", "valid", "test")})
        train_compact = replace(data, splits={**data.splits, "train": compact["train"]})
        subsets = {s: _probe(compact, "complete" if s == "lav" else f"modality:{s}") for s in SUBSETS}
        draws = {p: [_probe(train_compact, f"frame:{p:g}", mask_seed + k) for k in range(FRAME_DRAWS[data.task])]
                 for p in FRAME_RATES if 0 < p < 1}
        nothing = _probe(compact, "frame:1") if 1.0 in FRAME_RATES else None
    frames = {0.0: subsets["lav"], **{p: {m: float(np.mean([d[m] for d in ds])) for m in ds[0]}
                                      for p, ds in draws.items()}}
    noise = {m: float(np.sqrt(np.mean([np.var([d[m] for d in ds], ddof=1) for ds in draws.values()])))
             for m in metrics}

    rows = []

    def row(ordering: str, metric: str, compared: str, better: float, worse: float, claimed: bool = True,
            note: str = "") -> None:
        tol = TOLERANCE_FRACTION * noise[metric]
        ok = bool(np.isfinite(better) and np.isfinite(worse) and _gain(metric, better, worse) >= -tol)
        rows.append({"ordering": ordering, "metric": metric, "compared": compared, "better": better,
                     "worse": worse, "noise": noise[metric], "tolerance": tol,
                     "result": (PASS if ok else FAIL) if claimed else NO_CLAIM, "note": note})

    claims = set(UNIMODAL_CLAIMS[data.kind])
    for metric in metrics:
        for a, b in _UNIMODAL_PAIRS:
            claimed = (a, b) in claims
            row(f"{a} ≥ {b} (unimodal)", metric, f"{{{LETTER[a]}}} vs {{{LETTER[b]}}}", subsets[LETTER[a]][metric],
                subsets[LETTER[b]][metric], claimed, "" if claimed else _AV_NOTE)
        for s in SUBSETS[:-1]:
            row(f"complete ≥ {_subset_label(s)}", metric, f"{_subset_label('lav')} vs {_subset_label(s)}",
                subsets["lav"][metric], subsets[s][metric])
        low, high = min(combinations(sorted(frames), 2),
                        key=lambda pq: _gain(metric, frames[pq[0]][metric], frames[pq[1]][metric]))
        row("non-increasing in frame-drop rate", metric, f"p={low:g} vs p={high:g} (worst pair)",
            frames[low][metric], frames[high][metric])
        if nothing is not None and np.isfinite(nothing[metric]):
            last = max(frames)
            row("frame-drop rate: any frames beat none", metric, f"p={last:g} vs p=1 (constant)",
                frames[last][metric], nothing[metric], claimed=False, note=_CONSTANT_NOTE)
    return pd.DataFrame(rows)


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """Values as pages print them: accuracies and F1 in %, each metric's decimals (noise and
    tolerance with one more)."""
    out = table.copy()
    for col, extra in (("better", 0), ("worse", 0), ("noise", 1), ("tolerance", 1)):
        out[col] = [round(v * metric_spec(m).scale, metric_spec(m).decimals + extra)
                    for v, m in zip(table[col], table["metric"])]
    return out


def orderings_summary(profile: str = "book", datasets: Iterable[str] | None = None, mask_seed: int = 0,
                      display: bool = True) -> pd.DataFrame:
    """:func:`orderings` of every synthetic preset (or of ``datasets``, e.g. ``["synthetic:sims"]``)
    drawn at ``profile``'s sizes (a :class:`~msa_lib.experiments.Profile` or its name), stacked with
    a ``dataset`` column first. ``display=True`` prints values like the pages (accuracies and F1
    in %, rounded); ``False`` keeps fractions. ``attrs["caption"]`` names the data."""
    from .experiments import data_options, get_profile

    prof = get_profile(profile) if isinstance(profile, str) else profile
    names = list(datasets) if datasets is not None else [f"synthetic:{p}" for p in PRESETS]
    tables, sizes = [], []
    for name in names:
        data = load_dataset(name, **data_options(name, None, prof))
        table = orderings(data, mask_seed)
        tables.append((_display(table) if display else table).assign(dataset=name))
        sizes.append(f"{name} {'/'.join(str(len(data[s])) for s in ('train', 'valid', 'test'))}")
    out = pd.concat(tables, ignore_index=True)
    out = out[["dataset"] + [c for c in out.columns if c != "dataset"]]
    out.attrs["caption"] = (
        f"**Orderings** of the ridge probe on the synthetic presets at the `{prof.name}` profile's sizes "
        f"(train/valid/test: {'; '.join(sizes)}{f'; sequences ≤ {prof.max_len} frames' if prof.max_len else ''}), "
        f"evaluated on valid and test joined. *better*: the side that should win; *noise*: the std of the "
        f"metric between re-drawn test masks ({FRAME_DRAWS['regression']} draws per frame-drop rate, "
        f"{FRAME_DRAWS['classification']} for IEMOCAP, pooled over the rates); "
        f"*tolerance*: {TOLERANCE_FRACTION:g} × noise{'; accuracies and F1 in %' if display else ''}.")
    return out

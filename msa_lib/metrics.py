"""Evaluation metrics for multimodal sentiment analysis (MMSA-compatible).

One definition of every metric used in the book and benchmarks:

* :func:`mosi_metrics` -- CMU-MOSI / CMU-MOSEI regression labels in [-3, 3].
* :func:`sims_metrics` -- CH-SIMS regression labels in [-1, 1].
* :func:`iemocap_metrics` -- IEMOCAP multi-label (4 emotions, binary each).
* :func:`compute_metrics` -- dispatch on the dataset kind.
* :func:`auilc` -- Area Under the Indicators-Line Chart (EMT-DLFR) over
  missing rates.

All metric values are plain Python ``float`` and are *fractions*
(an accuracy of 81.23 % is returned as ``0.8123``); tables multiply by 100.
The only exception is :func:`auilc`, which reproduces the EMT-DLFR scaling.

A note on F1: every F1 here is
``sklearn.metrics.f1_score(y_true, y_pred, average="weighted")`` with the
ground truth FIRST.  An old MMSA / TFR-Net version swapped the two arguments
(``f1_score(y_pred, y_true, ...)``), which weights the per-class F1 by the
*predicted* class frequencies and inflated the reported CH-SIMS F1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats
from scipy.integrate import trapezoid
from sklearn.metrics import accuracy_score, f1_score

from .data.container import IEMOCAP_EMOTIONS

__all__ = [
    "mosi_metrics",
    "sims_metrics",
    "iemocap_metrics",
    "compute_metrics",
    "PRIMARY_METRIC",
    "HEADLINE_METRICS",
    "MetricSpec",
    "metric_spec",
    "format_value",
    "format_mean_std",
    "higher_is_better",
    "constant_prediction",
    "is_constant",
    "auilc",
]

#: Model-selection metric per dataset kind: (metric name, "min" | "max").
PRIMARY_METRIC: dict[str, tuple[str, str]] = {
    "mosi": ("MAE", "min"),
    "sims": ("MAE", "min"),
    "iemocap": ("Avg_F1", "max"),
}

# CH-SIMS bin edges.  Bins are closed on the RIGHT (``lo < x <= hi``), the
# first bin additionally contains -1: with ``np.digitize(x, edges, right=True)``
# a value equal to an edge falls into the bin on its left.
_SIMS_EDGES_2 = np.array([0.0])  # [-1, 0] | (0, 1]
_SIMS_EDGES_3 = np.array([-0.1, 0.1])  # [-1,-.1] | (-.1,.1] | (.1,1]
_SIMS_EDGES_5 = np.array([-0.7, -0.1, 0.1, 0.7])


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------
def _to_numpy(x: Any) -> np.ndarray:
    """Convert a numpy array / list / torch tensor to a float numpy array."""
    if hasattr(x, "detach"):  # torch.Tensor (possibly on GPU / with grad)
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_pair(pred: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate regression predictions/labels and return them as 1-D arrays.

    Shapes ``(N,)`` and ``(N, 1)`` are accepted (the latter is flattened).
    """
    p, y = _to_numpy(pred), _to_numpy(labels)
    shapes = f"pred shape {p.shape}, labels shape {y.shape}"
    for name, a in (("pred", p), ("labels", y)):
        if a.ndim == 2 and a.shape[1] == 1:
            continue
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-D (or (N, 1)); got {shapes}")
    p, y = p.reshape(-1), y.reshape(-1)
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"pred and labels differ in length: {shapes}")
    if p.shape[0] == 0:
        raise ValueError(f"pred and labels are empty: {shapes}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(y))):
        raise ValueError(f"pred and labels must not contain NaN or inf ({shapes})")
    return p, y


# --------------------------------------------------------------------------
# primitive metrics
# --------------------------------------------------------------------------
def _accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(accuracy_score(y_true, y_pred))


def _weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    # Ground truth FIRST.  An old MMSA / TFR-Net version called
    # f1_score(y_pred, y_true, ...), i.e. with the arguments swapped, which
    # weights by predicted-class support and inflated the CH-SIMS F1.
    # zero_division=0 gives the same value as sklearn's default ("warn"
    # behaves as 0) without the UndefinedMetricWarning noise.
    return float(f1_score(y_true, y_pred, average="weighted", zero_division=0))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r; NaN plus exactly one RuntimeWarning if an input is constant."""
    if np.all(x == x[0]) or np.all(y == y[0]):
        warnings.warn(
            "Corr is undefined for constant predictions/labels; returning NaN.",
            RuntimeWarning,
            stacklevel=3,
        )
        return float("nan")
    with warnings.catch_warnings():
        # Do not let scipy's own Constant/NearConstantInputWarning leak out.
        warnings.simplefilter("ignore", category=stats.ConstantInputWarning)
        warnings.simplefilter("ignore", category=stats.NearConstantInputWarning)
        r = stats.pearsonr(x, y)[0]
    return float(r)


# --------------------------------------------------------------------------
# MOSI / MOSEI
# --------------------------------------------------------------------------
def mosi_metrics(pred: Any, labels: Any) -> dict[str, float]:
    """Regression metrics for CMU-MOSI / CMU-MOSEI (labels in [-3, 3]).

    Args:
        pred: 1-D predicted sentiment scores (numpy array, list or tensor).
        labels: 1-D ground-truth sentiment scores, same length as ``pred``.

    Returns:
        Dict of plain floats (fractions, not percentages) with keys

        * ``"MAE"`` -- mean absolute error on the RAW predictions (no clipping);
        * ``"Corr"`` -- Pearson r on the raw predictions (NaN plus one
          ``RuntimeWarning`` if either array is constant);
        * ``"Acc-7"`` -- accuracy after clipping to [-3, 3] and ``np.round``
          (round half to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2);
        * ``"Acc-5"`` -- the same after clipping to [-2, 2];
        * ``"Acc-2_has0"`` / ``"F1_has0"`` -- negative (< 0) vs non-negative
          (>= 0) on all samples;
        * ``"Acc-2_non0"`` / ``"F1_non0"`` -- samples whose label is exactly 0
          are dropped; positive (> 0) vs negative (label < 0, pred <= 0).
          NaN plus a ``RuntimeWarning`` if no non-zero label remains.

        F1 is ``f1_score(y_true, y_pred, average="weighted")``.

    Raises:
        ValueError: if the inputs differ in length, are empty, are not 1-D or
            contain NaN / inf.
    """
    p, y = _check_pair(pred, labels)

    out: dict[str, float] = {
        "MAE": float(np.mean(np.abs(p - y))),
        "Corr": _pearson(p, y),
    }

    p7 = np.round(np.clip(p, -3.0, 3.0)).astype(np.int64)
    y7 = np.round(np.clip(y, -3.0, 3.0)).astype(np.int64)
    out["Acc-7"] = _accuracy(y7, p7)

    p5 = np.round(np.clip(p, -2.0, 2.0)).astype(np.int64)
    y5 = np.round(np.clip(y, -2.0, 2.0)).astype(np.int64)
    out["Acc-5"] = _accuracy(y5, p5)

    y_has0, p_has0 = y >= 0, p >= 0
    out["Acc-2_has0"] = _accuracy(y_has0, p_has0)
    out["F1_has0"] = _weighted_f1(y_has0, p_has0)

    non0 = y != 0
    if np.any(non0):
        y_non0, p_non0 = y[non0] > 0, p[non0] > 0
        out["Acc-2_non0"] = _accuracy(y_non0, p_non0)
        out["F1_non0"] = _weighted_f1(y_non0, p_non0)
    else:
        warnings.warn(
            "Acc-2_non0/F1_non0 are undefined: every label is exactly 0; returning NaN.",
            RuntimeWarning,
            stacklevel=2,
        )
        out["Acc-2_non0"] = float("nan")
        out["F1_non0"] = float("nan")

    # Fixed key order for tables.
    order = ("MAE", "Corr", "Acc-7", "Acc-5", "Acc-2_has0", "F1_has0", "Acc-2_non0", "F1_non0")
    return {k: out[k] for k in order}


# --------------------------------------------------------------------------
# CH-SIMS
# --------------------------------------------------------------------------
def _sims_bins(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index with right-closed bins: ``edges[i-1] < x <= edges[i]``."""
    return np.digitize(x, edges, right=True)


def sims_metrics(pred: Any, labels: Any) -> dict[str, float]:
    """Regression metrics for CH-SIMS (labels in [-1, 1]).

    Predictions AND labels are clipped to [-1, 1] before every metric,
    MAE and Corr included.

    Args:
        pred: 1-D predicted sentiment scores.
        labels: 1-D ground-truth sentiment scores, same length as ``pred``.

    Returns:
        Dict of plain floats (fractions) with keys

        * ``"MAE"``, ``"Corr"`` -- on the clipped values (Corr is NaN plus one
          ``RuntimeWarning`` if either clipped array is constant);
        * ``"Acc-2"`` / ``"F1"`` -- non-positive [-1, 0] vs positive (0, 1];
          F1 is weighted, ground truth first;
        * ``"Acc-3"`` -- bins [-1, -0.1], (-0.1, 0.1], (0.1, 1];
        * ``"Acc-5"`` -- bins [-1, -0.7], (-0.7, -0.1], (-0.1, 0.1],
          (0.1, 0.7], (0.7, 1].

        Exactly -0.1 is in the first Acc-3 bin, exactly 0.1 in the middle
        one, exactly 0 is non-positive.

    Raises:
        ValueError: if the inputs differ in length, are empty, are not 1-D or
            contain NaN / inf.
    """
    p, y = _check_pair(pred, labels)
    p, y = np.clip(p, -1.0, 1.0), np.clip(y, -1.0, 1.0)

    y2, p2 = _sims_bins(y, _SIMS_EDGES_2), _sims_bins(p, _SIMS_EDGES_2)
    return {
        "MAE": float(np.mean(np.abs(p - y))),
        "Corr": _pearson(p, y),
        "Acc-2": _accuracy(y2, p2),
        "F1": _weighted_f1(y2, p2),
        "Acc-3": _accuracy(_sims_bins(y, _SIMS_EDGES_3), _sims_bins(p, _SIMS_EDGES_3)),
        "Acc-5": _accuracy(_sims_bins(y, _SIMS_EDGES_5), _sims_bins(p, _SIMS_EDGES_5)),
    }


# --------------------------------------------------------------------------
# IEMOCAP
# --------------------------------------------------------------------------
def iemocap_metrics(
    logits: Any,
    class_labels: Any,
    emotions: Sequence[str] = IEMOCAP_EMOTIONS,
) -> dict[str, float]:
    """Per-emotion binary metrics for IEMOCAP.

    Args:
        logits: either ``(N, C, 2)`` scores -- the prediction for each emotion
            is ``argmax`` over the last axis -- or ``(N, C)`` 0/1 predictions.
        class_labels: ``(N, C)`` 0/1 ground truth.
        emotions: names of the ``C`` emotions, in column order.

    Returns:
        Dict of plain floats with ``f"{emotion}_Acc"`` and ``f"{emotion}_F1"``
        (weighted F1, ground truth first) for every emotion, followed by
        ``"Avg_Acc"`` and ``"Avg_F1"`` (unweighted means over emotions).

    Raises:
        ValueError: on wrong shapes, ``C != len(emotions)``, mismatching N,
            empty input, NaN / inf, or non-0/1 values where 0/1 is required.
    """
    s, y = _to_numpy(logits), _to_numpy(class_labels)
    emotions = tuple(emotions)
    shapes = f"logits shape {s.shape}, class_labels shape {y.shape}"
    if y.ndim != 2:
        raise ValueError(f"class_labels must be (N, C); got {shapes}")
    if not (s.ndim == 2 or (s.ndim == 3 and s.shape[2] == 2)):
        raise ValueError(f"logits must be (N, C, 2) scores or (N, C) 0/1 predictions; got {shapes}")
    if s.shape[0] != y.shape[0] or s.shape[1] != y.shape[1]:
        raise ValueError(f"logits and class_labels differ in N or C: {shapes}")
    if y.shape[0] == 0:
        raise ValueError(f"logits and class_labels are empty: {shapes}")
    if y.shape[1] != len(emotions):
        raise ValueError(
            f"number of classes C={y.shape[1]} does not match len(emotions)={len(emotions)} "
            f"({emotions}); {shapes}"
        )
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(y))):
        raise ValueError(f"logits and class_labels must not contain NaN or inf ({shapes})")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("class_labels must contain only 0/1 values")

    if s.ndim == 3:
        preds = np.argmax(s, axis=-1)
    else:
        if not np.all((s == 0) | (s == 1)):
            raise ValueError("(N, C) predictions must contain only 0/1 values; pass (N, C, 2) scores otherwise")
        preds = s.astype(np.int64)
    truth = y.astype(np.int64)

    out: dict[str, float] = {}
    accs, f1s = [], []
    for i, emo in enumerate(emotions):
        acc = _accuracy(truth[:, i], preds[:, i])
        f1 = _weighted_f1(truth[:, i], preds[:, i])
        out[f"{emo}_Acc"], out[f"{emo}_F1"] = acc, f1
        accs.append(acc)
        f1s.append(f1)
    out["Avg_Acc"] = float(np.mean(accs))
    out["Avg_F1"] = float(np.mean(f1s))
    return out


# --------------------------------------------------------------------------
# dispatch / model selection
# --------------------------------------------------------------------------
_DISPATCH: dict[str, Callable[[Any, Any], dict[str, float]]] = {
    "mosi": mosi_metrics,
    "sims": sims_metrics,
    "iemocap": iemocap_metrics,
}


def compute_metrics(kind: str, prediction: Any, target: Any) -> dict[str, float]:
    """Compute the metric dict for a dataset kind.

    Args:
        kind: one of ``"mosi"`` (also for MOSEI), ``"sims"``, ``"iemocap"``.
        prediction: model output (see the per-kind function).
        target: ground truth (see the per-kind function).

    Returns:
        The dict returned by :func:`mosi_metrics`, :func:`sims_metrics` or
        :func:`iemocap_metrics`.

    Raises:
        ValueError: for an unknown ``kind`` (the message lists the valid kinds).
    """
    try:
        fn = _DISPATCH[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown metrics kind {kind!r}; valid kinds: {sorted(_DISPATCH)}") from None
    return fn(prediction, target)


# --------------------------------------------------------------------------
# the one metric spec: direction, scale and printed decimals of every metric
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricSpec:
    """How a metric reads: ``higher`` is better or not, printed as a percentage (values are
    fractions, tables multiply by 100) or raw, and with how many decimals on every page."""

    name: str
    higher: bool = True
    percent: bool = True
    decimals: int = 2

    @property
    def scale(self) -> float:
        return 100.0 if self.percent else 1.0

    @property
    def unit(self) -> str:
        return " (%)" if self.percent else ""


_RAW = {"MAE": MetricSpec("MAE", higher=False, percent=False, decimals=3),
        "Corr": MetricSpec("Corr", percent=False, decimals=3)}


def metric_spec(name: str) -> MetricSpec:
    """The spec of ``name``: MAE (lower is better, 3 decimals), Corr (3 decimals), and every
    accuracy / F1 (``Acc-7``, ``F1_non0``, ``happy_F1``, ``Avg_Acc`` ...: %, 2 decimals)."""
    if name in _RAW:
        return _RAW[name]
    if name.startswith(("Acc", "F1")) or name.endswith(("_Acc", "_F1")):
        return MetricSpec(name)
    raise ValueError(f"unknown metric {name!r}; known: MAE, Corr, Acc-*, F1*, <emotion>_Acc/_F1, Avg_Acc/Avg_F1")


#: The metrics each dataset kind's tables show, in order.
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "mosi": ("MAE", "Corr", "Acc-7", "Acc-5", "Acc-2_has0", "Acc-2_non0", "F1_has0", "F1_non0"),
    "sims": ("MAE", "Corr", "Acc-5", "Acc-3", "Acc-2", "F1"),
    "iemocap": tuple(f"{e}_F1" for e in IEMOCAP_EMOTIONS) + ("Avg_F1", "Avg_Acc"),
}


def higher_is_better(metric_name: str) -> bool:
    """Whether a larger value of ``metric_name`` is better (False only for MAE)."""
    return metric_spec(metric_name).higher


def format_value(metric: str, value: float) -> str:
    """``value`` (a fraction for accuracies) as a page prints it."""
    spec = metric_spec(metric)
    return f"{value * spec.scale:.{spec.decimals}f}"


def format_mean_std(metric: str, mean: float, std: float) -> str:
    """"mean ± std" as a page prints it (accuracies and F1 in %)."""
    spec = metric_spec(metric)
    return f"{mean * spec.scale:.{spec.decimals}f} ± {std * spec.scale:.{spec.decimals}f}"


# --------------------------------------------------------------------------
# the reference that ignores the input, and constant predictions
# --------------------------------------------------------------------------
def constant_prediction(kind: str, train_target: Any, n: int) -> np.ndarray:
    """What a predictor that ignores the input outputs for ``n`` samples: the training mean
    (regression), or each emotion's majority class as (n, C, 2) scores (IEMOCAP)."""
    y = np.asarray(train_target)
    if kind == "iemocap":
        majority = (y.mean(axis=0) > 0.5).astype(int)  # (C,)
        scores = np.zeros((n, y.shape[1], 2))
        scores[:, np.arange(y.shape[1]), majority] = 1.0
        return scores
    return np.full(n, float(np.mean(y)))


def is_constant(kind: str, prediction: Any, rel_tol: float = 1e-3) -> bool:
    """True when predictions do not depend on the input: every emotion's predicted class is the same
    for all samples (IEMOCAP), or the spread of the scores is below ``rel_tol`` of their scale."""
    p = _to_numpy(prediction)
    if kind == "iemocap":
        classes = np.argmax(p, axis=-1) if p.ndim == 3 else p
        return bool(np.all(classes == classes[:1]))
    return bool(np.std(p) <= rel_tol * max(1.0, float(np.mean(np.abs(p)))))


# --------------------------------------------------------------------------
# AUILC
# --------------------------------------------------------------------------
def auilc(rates: Any, values: Any, metric: str) -> float:
    """Area Under the Indicators-Line Chart, exactly as the EMT-DLFR code.

    The per-rate metric (mean over seeds) is multiplied by 100 and integrated
    over the missing rates with the trapezoid rule
    (``scipy.integrate.trapezoid(y, x=rates)``, i.e. step 0.1).  For MAE and
    Corr (any ``metric`` starting with ``"MAE"`` or ``"Corr"``) the result is
    divided by 100 again, i.e. it is the plain trapezoid of the raw values.

    Consequently, on MOSI/MOSEI (rates 0.0, 0.1, ..., 1.0; 11 points) an
    Acc-2 AUILC is close to the mean accuracy in % (a constant 0.8 gives
    80.0), while on CH-SIMS (rates 0.0, ..., 0.5; 6 points) it is close to
    half of it (a constant 0.8 gives 40.0).

    Note: the papers' captions say the missing rates start at 0.1, but the
    released code starts at 0.0; we follow the code.

    Args:
        rates: 1-D increasing missing rates starting at 0.0, equally spaced
            by 0.1 (tolerance 1e-6).
        values: metric values (fractions, as returned by this module) of
            shape ``(n_rates,)`` or ``(n_seeds, n_rates)``.
        metric: metric name, used only to decide the scaling.

    Returns:
        The AUILC as a plain float.

    Raises:
        ValueError: if ``rates`` do not start at 0.0 or are not spaced by 0.1,
            if shapes do not match, or if ``values`` contain NaN / inf.
    """
    r = _to_numpy(rates)
    v = _to_numpy(values)
    if r.ndim != 1 or r.shape[0] < 2:
        raise ValueError(f"rates must be 1-D with at least 2 points; got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("rates must not contain NaN or inf")
    tol = 1e-6
    if abs(r[0]) > tol:
        raise ValueError(
            f"rates must start at 0.0 (EMT-DLFR code convention), got rates[0]={r[0]!r}"
        )
    if not np.allclose(np.diff(r), 0.1, rtol=0.0, atol=tol):
        raise ValueError(f"rates must be equally spaced by 0.1; got {r.tolist()}")
    if v.ndim == 2:
        if v.shape[0] == 0:
            raise ValueError(f"values has no seeds: shape {v.shape}")
        v_shape = v.shape
    elif v.ndim == 1:
        v_shape = v.shape
    else:
        raise ValueError(f"values must be (n_rates,) or (n_seeds, n_rates); got shape {v.shape}")
    if v_shape[-1] != r.shape[0]:
        raise ValueError(f"values shape {v.shape} does not match rates shape {r.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("values must not contain NaN or inf")

    curve = v.mean(axis=0) if v.ndim == 2 else v
    area = float(trapezoid(curve * 100.0, x=r))
    if not metric_spec(metric).percent:
        area /= 100.0
    return float(area)

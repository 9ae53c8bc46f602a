"""Tests for msa_lib.metrics.

Expected values are computed by hand (derivations in the comments) and
written out explicitly; they are not re-derived with the library code path.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score

from msa_lib.metrics import (
    higher_is_better,
    PRIMARY_METRIC,
    auilc,
    compute_metrics,
    iemocap_metrics,
    mosi_metrics,
    sims_metrics,
)

MOSI_KEYS = ["MAE", "Corr", "Acc-7", "Acc-5", "Acc-2_has0", "F1_has0", "Acc-2_non0", "F1_non0"]
SIMS_KEYS = ["MAE", "Corr", "Acc-2", "F1", "Acc-3", "Acc-5"]


def _record(fn, *args):
    """Call fn recording every warning (no filtering); return (result, warnings)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn(*args)
    return out, rec


# ---------------------------------------------------------------- MOSI ----
# labels y has mean 0; pred = y + e with e = ±0.5, sum(e) = 0 and e·y = 0, so
# Corr = sum(y^2) / sqrt(sum(y^2) * (sum(y^2) + sum(e^2))) = sqrt(28 / 30).
MOSI_LABELS = np.array([-3.0, -2.0, -1.0, 0.0, 0.0, 1.0, 2.0, 3.0])
MOSI_PRED = np.array([-2.5, -2.5, -1.5, 0.5, -0.5, 1.5, 2.5, 2.5])


def test_mosi_all_keys_small_case():
    m = mosi_metrics(MOSI_PRED, MOSI_LABELS)
    assert list(m) == MOSI_KEYS
    assert all(type(v) is float for v in m.values())
    # every |e| = 0.5
    assert m["MAE"] == pytest.approx(0.5)
    assert m["Corr"] == pytest.approx(math.sqrt(14 / 15))
    # round-half-even pred: -2,-2,-2,0,0,2,2,2 vs labels -3,-2,-1,0,0,1,2,3 -> 4/8
    assert m["Acc-7"] == pytest.approx(0.5)
    # clip to [-2,2] then round: pred -2,-2,-2,0,0,2,2,2 vs labels -2,-2,-1,0,0,1,2,2 -> 6/8
    assert m["Acc-5"] == pytest.approx(0.75)
    # has0: truth FFFTTTTT, pred FFFTFTTT -> 7/8
    assert m["Acc-2_has0"] == pytest.approx(0.875)
    # F-class: P=3/4 R=1 F1=6/7 (sup 3); T-class: P=1 R=4/5 F1=8/9 (sup 5)
    # (3*6/7 + 5*8/9) / 8 = 221/252
    assert m["F1_has0"] == pytest.approx(221 / 252)
    # non0 drops the two zero labels; the rest is all correct
    assert m["Acc-2_non0"] == pytest.approx(1.0)
    assert m["F1_non0"] == pytest.approx(1.0)


def test_mosi_ties_at_zero_has0_vs_non0():
    labels = np.array([0.0, 0.0, 0.0, 1.0, -1.0, 2.0])
    pred = np.array([0.0, -0.3, 0.4, 0.0, -0.5, 1.0])
    m = mosi_metrics(pred, labels)
    # has0: truth TTTTFT, pred TFTTFT (pred 0.0 is non-negative) -> 5/6
    assert m["Acc-2_has0"] == pytest.approx(5 / 6)
    # F: TP1 FP1 FN0 -> 2/3 (sup 1); T: TP4 FP0 FN1 -> 8/9 (sup 5); (2/3 + 40/9)/6
    assert m["F1_has0"] == pytest.approx(23 / 27)
    # non0 keeps labels 1,-1,2 only; pred 0.0 for label 1 counts as NEGATIVE -> 2/3
    assert m["Acc-2_non0"] == pytest.approx(2 / 3)
    # truth [1,0,1], pred [0,0,1]: both classes F1 = 2/3
    assert m["F1_non0"] == pytest.approx(2 / 3)


def test_mosi_non0_excludes_label_zero_even_if_pred_is_wrong():
    # Only the label-0 samples are mispredicted (w.r.t. has0); non0 is perfect.
    labels = np.array([0.0, 0.0, 1.0, -1.0, 2.0])
    pred = np.array([-2.0, -1.0, 1.0, -1.0, 2.0])
    m = mosi_metrics(pred, labels)
    assert m["Acc-2_has0"] == pytest.approx(3 / 5)
    assert m["Acc-2_non0"] == pytest.approx(1.0)
    assert m["F1_non0"] == pytest.approx(1.0)


def test_mosi_all_labels_zero_non0_is_nan_with_warning():
    labels = np.zeros(4)
    pred = np.array([0.5, -0.5, 1.0, -1.0])
    m, rec = _record(mosi_metrics, pred, labels)
    # constant labels -> one Corr warning, plus one for the empty non0 subset
    msgs = sorted(str(w.message) for w in rec)
    assert len(rec) == 2 and all(issubclass(w.category, RuntimeWarning) for w in rec)
    assert "Corr" in msgs[1] and "non0" in msgs[0]
    assert math.isnan(m["Corr"])
    assert math.isnan(m["Acc-2_non0"]) and math.isnan(m["F1_non0"])
    # has0: truth all T, pred T F T F -> 1/2
    assert m["Acc-2_has0"] == pytest.approx(0.5)


def test_mosi_acc7_round_half_to_even():
    pred = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5])
    # np.round: 0, 2, 2, -0, -2, -2  (half-up would give 1, 2, 3, 0, -1, -2)
    assert mosi_metrics(pred, np.array([0.0, 2.0, 2.0, 0.0, -2.0, -2.0]))["Acc-7"] == 1.0
    assert mosi_metrics(pred, np.array([1.0, 1.0, 3.0, -1.0, -1.0, -3.0]))["Acc-7"] == 0.0


def test_mosi_clipping_for_acc7_acc5_but_not_mae():
    pred = np.array([5.0, -4.0, 2.6, 0.2, -0.3])
    labels = np.array([3.0, -3.0, 2.0, 0.0, 0.0])
    m = mosi_metrics(pred, labels)
    # raw errors 2, 1, 0.6, 0.2, 0.3 -> 4.1 / 5 (clipped would be 0.18)
    assert m["MAE"] == pytest.approx(0.82)
    # Acc-7: pred 3,-3,3,0,0 vs 3,-3,2,0,0 -> 4/5 (5.0 counts as 3)
    assert m["Acc-7"] == pytest.approx(0.8)
    # Acc-5: pred 2,-2,2,0,0 vs 2,-2,2,0,0 -> 1 (5.0 counts as 2)
    assert m["Acc-5"] == pytest.approx(1.0)


# ---------------------------------------------------- F1 argument order ----
# truth P P P P N, pred P P N N N.
# N: TP1 FP2 FN0 -> P=1/3 R=1 F1=1/2; P: TP2 FP0 FN2 -> P=1 R=1/2 F1=2/3.
# weighted by TRUE support (N 1, P 4): (1/2 + 4*2/3)/5 = 19/30
# swapped (weights = predicted support N 3, P 2): (3/2 + 4/3)/5 = 17/30
F1_RIGHT, F1_SWAPPED = 19 / 30, 17 / 30


def test_f1_argument_order_case_is_discriminating():
    t, p = np.array([1, 1, 1, 1, 0]), np.array([1, 1, 0, 0, 0])
    assert f1_score(t, p, average="weighted") == pytest.approx(F1_RIGHT)
    assert f1_score(p, t, average="weighted") == pytest.approx(F1_SWAPPED)


def test_f1_argument_order_sims():
    labels = np.array([0.5, 0.8, 0.2, 0.6, -0.4])
    pred = np.array([0.3, 0.9, -0.2, 0.0, -0.6])  # 0.0 is non-positive
    m = sims_metrics(pred, labels)
    assert m["Acc-2"] == pytest.approx(3 / 5)
    assert m["F1"] == pytest.approx(F1_RIGHT)
    assert m["F1"] != pytest.approx(F1_SWAPPED)


def test_f1_argument_order_mosi():
    labels = np.array([1.0, 2.0, 0.5, 1.5, -1.0])
    pred = np.array([1.0, 2.0, -0.5, -1.0, -1.0])
    m = mosi_metrics(pred, labels)
    assert m["F1_has0"] == pytest.approx(F1_RIGHT)
    assert m["F1_non0"] == pytest.approx(F1_RIGHT)


def test_iemocap_f1_argument_order():
    t = np.array([[1], [1], [1], [1], [0]])
    p = np.array([[1], [1], [0], [0], [0]])
    m = iemocap_metrics(p, t, emotions=("happy",))
    assert m["happy_F1"] == pytest.approx(F1_RIGHT)


# ------------------------------------------------------ constant input ----
def test_constant_predictions_corr_nan_one_warning_mosi():
    pred = np.full(5, 0.5)
    labels = np.array([-1.0, 0.0, 1.0, 2.0, 3.0])
    with pytest.warns(RuntimeWarning, match="Corr"):
        mosi_metrics(pred, labels)
    m, rec = _record(mosi_metrics, pred, labels)
    assert len(rec) == 1, [str(w.message) for w in rec]
    assert issubclass(rec[0].category, RuntimeWarning)
    assert "Corr" in str(rec[0].message)
    assert math.isnan(m["Corr"])
    # errors 1.5, 0.5, 0.5, 1.5, 2.5 -> 6.5/5
    assert m["MAE"] == pytest.approx(1.3)
    # round(0.5) = 0 matches only label 0
    assert m["Acc-7"] == pytest.approx(0.2)
    assert m["Acc-5"] == pytest.approx(0.2)
    # has0: all predicted non-negative, 4 of 5 labels >= 0
    assert m["Acc-2_has0"] == pytest.approx(0.8)
    # F: F1 0 (sup 1); T: P=4/5 R=1 F1=8/9 (sup 4) -> 32/45
    assert m["F1_has0"] == pytest.approx(32 / 45)
    # non0: labels -1,1,2,3 all predicted positive -> 3/4; F1 = (3 * 6/7) / 4
    assert m["Acc-2_non0"] == pytest.approx(0.75)
    assert m["F1_non0"] == pytest.approx(9 / 14)


def test_constant_labels_corr_nan_one_warning_mosi():
    m, rec = _record(mosi_metrics, np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))
    assert len(rec) == 1 and issubclass(rec[0].category, RuntimeWarning)
    assert math.isnan(m["Corr"])
    assert m["MAE"] == pytest.approx(2 / 3)


def test_sims_constant_after_clipping_corr_nan_one_warning():
    # pred 2.0, 3.0, 1.5 all clip to 1.0 -> constant
    pred = np.array([2.0, 3.0, 1.5, 1.2])
    labels = np.array([1.0, 0.5, -0.5, 0.0])
    m, rec = _record(sims_metrics, pred, labels)
    assert len(rec) == 1 and issubclass(rec[0].category, RuntimeWarning)
    assert "Corr" in str(rec[0].message)
    assert math.isnan(m["Corr"])
    # clipped errors 0, 0.5, 1.5, 1.0 -> 3/4
    assert m["MAE"] == pytest.approx(0.75)
    assert m["Acc-2"] == pytest.approx(0.5)


def test_non_constant_no_warning():
    _, rec = _record(mosi_metrics, MOSI_PRED, MOSI_LABELS)
    assert rec == []


# ---------------------------------------------------------------- SIMS ----
def test_sims_all_keys_small_case():
    # y mean 0, sum y^2 = 1.6; e = pred - y = [.1,-.2,.2,-.2,.1], sum e = 0,
    # e·y = 0, sum e^2 = 0.14 -> Corr = sqrt(1.6 / 1.74) = sqrt(80/87)
    labels = np.array([-0.8, -0.4, 0.0, 0.4, 0.8])
    pred = np.array([-0.7, -0.6, 0.2, 0.2, 0.9])
    m = sims_metrics(pred, labels)
    assert list(m) == SIMS_KEYS
    assert all(type(v) is float for v in m.values())
    assert m["MAE"] == pytest.approx(0.16)
    assert m["Corr"] == pytest.approx(math.sqrt(80 / 87))
    # Acc-2: truth 0,0,0,1,1 pred 0,0,1,1,1
    assert m["Acc-2"] == pytest.approx(0.8)
    # class 0: P=1 R=2/3 -> 0.8; class 1: P=2/3 R=1 -> 0.8
    assert m["F1"] == pytest.approx(0.8)
    # Acc-3: truth 0,0,1,2,2 pred 0,0,2,2,2
    assert m["Acc-3"] == pytest.approx(0.8)
    # Acc-5: truth 0,1,2,3,4 pred 0(-0.7 is in [-1,-0.7]),1,3,3,4
    assert m["Acc-5"] == pytest.approx(0.8)


def test_sims_clipping_applies_to_mae_and_corr():
    pred = np.array([3.0, -2.0, 0.5, 0.0])
    labels = np.array([1.0, -1.0, 0.5, 0.0])
    m = sims_metrics(pred, labels)
    # clipped pred == labels: MAE 0 (raw would be 0.75), Corr 1
    assert m["MAE"] == pytest.approx(0.0, abs=1e-12)
    assert m["Corr"] == pytest.approx(1.0)
    assert m["Acc-5"] == 1.0


def test_sims_clipping_applies_to_labels():
    pred = np.array([1.0, -1.0, 0.2, -0.2])
    labels = np.array([1.8, -1.5, 0.2, -0.2])
    m = sims_metrics(pred, labels)
    assert m["MAE"] == pytest.approx(0.0, abs=1e-12)


# Expected bin index of each edge value (Acc-2, Acc-3, Acc-5), by hand:
#   Acc-2: [-1,0] | (0,1]
#   Acc-3: [-1,-0.1] | (-0.1,0.1] | (0.1,1]
#   Acc-5: [-1,-0.7] | (-0.7,-0.1] | (-0.1,0.1] | (0.1,0.7] | (0.7,1]
SIMS_EDGE_BINS = [
    (-1.0, 0, 0, 0),
    (-0.7, 0, 0, 0),
    (-0.1, 0, 0, 1),
    (0.0, 0, 1, 2),
    (0.1, 1, 1, 2),
    (0.7, 1, 2, 3),
    (1.0, 1, 2, 4),
]
# An interior representative of every bin.
SIMS_REPS = {
    "Acc-2": [-0.5, 0.5],
    "Acc-3": [-0.5, 0.05, 0.5],
    "Acc-5": [-0.85, -0.4, 0.05, 0.4, 0.85],
}


@pytest.mark.parametrize("x,b2,b3,b5", SIMS_EDGE_BINS)
@pytest.mark.parametrize("edge_side", ["pred", "label"])
def test_sims_bin_edges(x, b2, b3, b5, edge_side):
    # Two anchors (-0.95 -> first bin, 0.95 -> last bin, in every scheme) are
    # always right; the edge sample is right iff it shares the rep's bin, so
    # accuracy is 1 for the expected bin and 2/3 for every other bin.
    expected = {"Acc-2": b2, "Acc-3": b3, "Acc-5": b5}
    for key, reps in SIMS_REPS.items():
        for b, rep in enumerate(reps):
            edge_vec = np.array([x, -0.95, 0.95])
            rep_vec = np.array([rep, -0.95, 0.95])
            if edge_side == "pred":
                m = sims_metrics(edge_vec, rep_vec)
            else:
                m = sims_metrics(rep_vec, edge_vec)
            want = 1.0 if b == expected[key] else 2 / 3
            assert m[key] == pytest.approx(want), (key, x, b, edge_side)


def test_sims_edges_as_one_vector():
    edges = np.array([-1.0, -0.7, -0.1, 0.0, 0.1, 0.7, 1.0])
    m = sims_metrics(edges, np.array([-0.5, -0.5, -0.5, -0.5, 0.5, 0.5, 0.5]))
    assert m["Acc-2"] == 1.0
    m = sims_metrics(edges, np.array([-0.5, -0.5, -0.5, 0.05, 0.05, 0.5, 0.5]))
    assert m["Acc-3"] == 1.0
    m = sims_metrics(edges, np.array([-0.85, -0.85, -0.4, 0.05, 0.05, 0.4, 0.85]))
    assert m["Acc-5"] == 1.0


# ------------------------------------------------------------- IEMOCAP ----
# columns: happy, sad, angry, neutral
IEMO_TRUTH = np.array(
    [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [1, 0, 0, 0],
        [0, 0, 1, 1],
    ]
)
IEMO_PRED = np.array(
    [
        [1, 0, 1, 1],
        [0, 1, 0, 1],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 1],
    ]
)
# happy   t 1,0,0,1,0 p 1,0,0,0,0: acc 4/5; c0 P3/4 R1 -> 6/7 (sup 3), c1 P1 R1/2 -> 2/3 (sup 2)
#         F1 = (3*6/7 + 2*2/3)/5 = 82/105
# sad     perfect: acc 1, F1 1
# angry   t 0,0,1,0,1 p 1,0,1,0,0: acc 3/5; c0 TP2 FP1 FN1 -> 2/3 (sup 3), c1 TP1 FP1 FN1 -> 1/2 (sup 2)
#         F1 = (2 + 1)/5 = 3/5
# neutral t 0,0,0,0,1 p 1,1,0,0,1: acc 3/5; c0 P1 R1/2 -> 2/3 (sup 4), c1 P1/3 R1 -> 1/2 (sup 1)
#         F1 = (8/3 + 1/2)/5 = 19/30
IEMO_EXPECTED = {
    "happy_Acc": 0.8,
    "happy_F1": 82 / 105,
    "sad_Acc": 1.0,
    "sad_F1": 1.0,
    "angry_Acc": 0.6,
    "angry_F1": 0.6,
    "neutral_Acc": 0.6,
    "neutral_F1": 19 / 30,
    "Avg_Acc": 0.75,
    "Avg_F1": (82 / 105 + 1.0 + 0.6 + 19 / 30) / 4,
}


def _check_iemocap(m):
    assert set(m) == set(IEMO_EXPECTED)
    assert all(type(v) is float for v in m.values())
    for k, v in IEMO_EXPECTED.items():
        assert m[k] == pytest.approx(v), k


def test_iemocap_with_logits():
    # score pairs (not probabilities): argmax over the last axis == IEMO_PRED
    logits = np.where(IEMO_PRED[..., None] == 1, [-0.3, 0.8], [1.1, -2.0])
    assert logits.shape == (5, 4, 2)
    _check_iemocap(iemocap_metrics(logits, IEMO_TRUTH))


def test_iemocap_with_binary_predictions():
    _check_iemocap(iemocap_metrics(IEMO_PRED, IEMO_TRUTH))
    _check_iemocap(compute_metrics("iemocap", IEMO_PRED.astype(float), IEMO_TRUTH))


def test_iemocap_wrong_number_of_emotions():
    with pytest.raises(ValueError, match="len\\(emotions\\)"):
        iemocap_metrics(IEMO_PRED[:, :3], IEMO_TRUTH[:, :3])


def test_iemocap_bad_inputs():
    with pytest.raises(ValueError, match="0/1"):
        iemocap_metrics(IEMO_PRED * 0.7, IEMO_TRUTH)
    with pytest.raises(ValueError, match="differ"):
        iemocap_metrics(IEMO_PRED[:4], IEMO_TRUTH)
    with pytest.raises(ValueError, match="NaN"):
        bad = IEMO_PRED.astype(float)
        bad[0, 0] = np.nan
        iemocap_metrics(bad, IEMO_TRUTH)
    with pytest.raises(ValueError):
        iemocap_metrics(np.zeros((5, 4, 3)), IEMO_TRUTH)


# ------------------------------------------------------ input checking ----
@pytest.mark.parametrize("fn", [mosi_metrics, sims_metrics])
def test_length_mismatch_names_shapes(fn):
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        fn(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("fn", [mosi_metrics, sims_metrics])
def test_empty_raises(fn):
    with pytest.raises(ValueError, match="empty"):
        fn(np.array([]), np.array([]))


@pytest.mark.parametrize("fn", [mosi_metrics, sims_metrics])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["pred", "labels"])
def test_nan_inf_raises(fn, bad, where):
    good = np.array([0.1, -0.2, 0.3])
    broken = np.array([0.1, bad, 0.3])
    args = (broken, good) if where == "pred" else (good, broken)
    with pytest.raises(ValueError, match="NaN"):
        fn(*args)


def test_non_1d_raises():
    with pytest.raises(ValueError, match="1-D"):
        mosi_metrics(np.zeros((3, 2)), np.zeros((3, 2)))


def test_accepts_lists_column_vectors_and_tensors():
    ref = mosi_metrics(MOSI_PRED, MOSI_LABELS)
    assert mosi_metrics(MOSI_PRED.tolist(), MOSI_LABELS.tolist()) == ref
    assert mosi_metrics(MOSI_PRED[:, None], MOSI_LABELS) == ref
    torch = pytest.importorskip("torch")
    t = torch.tensor(MOSI_PRED, requires_grad=True)
    assert mosi_metrics(t, torch.tensor(MOSI_LABELS)) == ref


# ------------------------------------------------------------ dispatch ----
def test_compute_metrics_dispatch():
    assert compute_metrics("mosi", MOSI_PRED, MOSI_LABELS) == mosi_metrics(MOSI_PRED, MOSI_LABELS)
    p, y = np.array([0.3, -0.6, 0.9]), np.array([0.2, -0.5, 1.0])
    assert compute_metrics("sims", p, y) == sims_metrics(p, y)


def test_compute_metrics_unknown_kind_lists_valid():
    with pytest.raises(ValueError, match="mosi.*sims|iemocap"):
        compute_metrics("mosei2", MOSI_PRED, MOSI_LABELS)
    with pytest.raises(ValueError) as exc:
        compute_metrics("foo", MOSI_PRED, MOSI_LABELS)
    for kind in ("mosi", "sims", "iemocap"):
        assert kind in str(exc.value)


def test_primary_metric_and_direction():
    assert PRIMARY_METRIC == {
        "mosi": ("MAE", "min"),
        "sims": ("MAE", "min"),
        "iemocap": ("Avg_F1", "max"),
    }
    assert higher_is_better("MAE") is False
    for name in ("Corr", "Acc-7", "Acc-2_non0", "F1", "Avg_F1"):
        assert higher_is_better(name) is True
    for name, direction in PRIMARY_METRIC.values():
        assert higher_is_better(name) is (direction == "max")


# --------------------------------------------------------------- AUILC ----
MOSI_RATES = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
SIMS_RATES = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
# in %: 85 84 82 80 78 75 72 68 64 60 55, sum 803; trapezoid with step 0.1:
# 0.1 * (803 - (85 + 55)/2) = 73.3
MOSI_ACC2_CURVE = np.array([0.85, 0.84, 0.82, 0.80, 0.78, 0.75, 0.72, 0.68, 0.64, 0.60, 0.55])


def test_auilc_mosi_hand_trapezoid():
    assert auilc(MOSI_RATES, MOSI_ACC2_CURVE, "Acc-2_non0") == pytest.approx(73.3)
    assert type(auilc(MOSI_RATES, MOSI_ACC2_CURVE, "Acc-2")) is float


def test_auilc_sims_hand_trapezoid():
    # in %: 80 78 75 71 66 60, sum 430; 0.1 * (430 - (80 + 60)/2) = 36.0
    vals = np.array([0.80, 0.78, 0.75, 0.71, 0.66, 0.60])
    assert auilc(SIMS_RATES, vals, "Acc-2") == pytest.approx(36.0)


def test_auilc_constant_curves():
    assert auilc(MOSI_RATES, np.full(11, 0.8), "Acc-2") == pytest.approx(80.0)
    assert auilc(SIMS_RATES, np.full(6, 0.8), "F1") == pytest.approx(40.0)


def test_auilc_mae_and_corr_not_scaled():
    # sum 10.23; 0.1 * (10.23 - (0.70 + 1.25)/2) = 0.9255
    mae = np.array([0.70, 0.72, 0.75, 0.80, 0.85, 0.90, 0.96, 1.02, 1.10, 1.18, 1.25])
    assert auilc(MOSI_RATES, mae, "MAE") == pytest.approx(0.9255)
    assert auilc(MOSI_RATES, mae, "Acc-7") == pytest.approx(92.55)
    assert auilc(MOSI_RATES, np.full(11, 0.7), "Corr") == pytest.approx(0.7)
    assert auilc(SIMS_RATES, np.full(6, 0.4), "MAE") == pytest.approx(0.2)


def test_auilc_averages_seeds_first():
    seeds = np.vstack(
        [
            MOSI_ACC2_CURVE + 0.03,
            MOSI_ACC2_CURVE - 0.01,
            MOSI_ACC2_CURVE - 0.02,
        ]
    )
    assert seeds.shape == (3, 11)
    assert auilc(MOSI_RATES, seeds, "Acc-2") == pytest.approx(73.3)
    # a (1, 11) array behaves like the 1-D curve
    assert auilc(MOSI_RATES, seeds[:1], "Acc-2") == pytest.approx(73.3 + 3.0)


def test_auilc_float_tolerant_rates():
    rates = np.arange(11) * 0.1  # 0.30000000000000004 etc.
    assert auilc(rates, np.full(11, 0.8), "Acc-2") == pytest.approx(80.0)
    assert auilc(list(np.linspace(0, 0.5, 6)), [0.8] * 6, "Acc-2") == pytest.approx(40.0)


@pytest.mark.parametrize(
    "rates,match",
    [
        (np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]), "start at 0.0"),
        (np.array([0.0, 0.1, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]), "spaced by 0.1"),
        (np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0]), "spaced by 0.1"),
        (np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]), "start at 0.0"),
    ],
)
def test_auilc_bad_rates_raise(rates, match):
    with pytest.raises(ValueError, match=match):
        auilc(rates, np.full(11, 0.8), "Acc-2")


def test_auilc_bad_values_raise():
    vals = MOSI_ACC2_CURVE.copy()
    vals[4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        auilc(MOSI_RATES, vals, "Acc-2")
    with pytest.raises(ValueError, match="NaN"):
        auilc(MOSI_RATES, np.vstack([MOSI_ACC2_CURVE, vals]), "Acc-2")
    with pytest.raises(ValueError, match="shape"):
        auilc(MOSI_RATES, np.full(6, 0.8), "Acc-2")

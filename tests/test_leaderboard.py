"""The leaderboard chapter: every registered model joins, blocks are computed from the runs as
defined, the ridge references choose α on validation only, and the verdict against the ridge."""
from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from msa_lib import chapters, models
from msa_lib.chapters import leaderboard as lb
from msa_lib.chapters import umdf
from msa_lib.data import load_dataset
from msa_lib.experiments import get_profile, settings_row
from msa_lib.metrics import auilc, compute_metrics
from msa_lib.missing import parse_protocol
from msa_lib.report import AUILC_RATES, pooled_features


@pytest.fixture(scope="module")
def small():
    return load_dataset("synthetic:mosi", size=0.1, seed=0, max_len=6)


def test_every_registered_model_gets_its_paper_training_complete_training_and_per_rate_runs():
    prof = get_profile("smoke")
    specs = lb.specs("synthetic:mosi", None, prof, [1, 2])
    by_label = pd.Series([s.label for s in specs]).value_counts()
    rates = len(AUILC_RATES["mosi"])
    # UMDF is trained on mixed, so it also gets complete-trained runs; TFN's paper training is complete
    assert by_label["UMDF"] == 2 and by_label["UMDF, trained complete"] == 2 and by_label["UMDF, per-rate"] == 2 * rates
    assert by_label["TFN"] == 2 and "TFN, trained complete" not in by_label and by_label["TFN, per-rate"] == 2 * rates
    umdf_paper = [s for s in specs if s.label == "UMDF"]
    assert {s.train_protocol for s in umdf_paper} == {parse_protocol(umdf.TRAIN_PROTOCOL).spec}
    assert set(lb.EVALS) <= set(umdf_paper[0].eval_protocols)
    # the leaderboard's UMDF run is the chapter's own UMDF run: one training, shared through the store
    assert umdf_paper[0].key == umdf.specs("synthetic:mosi", None, prof, [1], with_tfn=False)[0].key
    per_rate = [s for s in specs if s.label == "TFN, per-rate"]
    assert all(s.design == "per_rate" and s.eval_protocols == (s.train_protocol,) for s in per_rate)


def test_a_new_model_joins_the_board_without_editing_it(monkeypatch):
    from msa_lib.models.tfn import TFN, TFNConfig

    class Newcomer(TFN):
        display_name = "Newcomer"

    chapter = types.SimpleNamespace(NAME="new", TITLE="New", MODELS=("newcomer",), SETTINGS={"mosi": {}},
                                    TRAIN_PROTOCOLS={"newcomer": "erasure:0.3:random"},
                                    model_setup=lambda model, row, prof: ({}, {"epochs": 1}))
    monkeypatch.setitem(models.MODELS, "newcomer", (Newcomer, TFNConfig))
    monkeypatch.setitem(chapters.CHAPTERS, "new", chapter)
    specs = lb.specs("synthetic:mosi", None, get_profile("smoke"), [1], per_rate=False)
    new = [s for s in specs if s.model == "newcomer"]
    assert [(s.label, s.train_protocol) for s in new] == [("Newcomer", "erasure:0.3:random"),
                                                          ("Newcomer, trained complete", "complete")]


def test_a_chapter_that_does_not_name_its_paper_training_is_refused(monkeypatch):
    chapter = types.SimpleNamespace(NAME="new", MODELS=("newcomer",))
    monkeypatch.setitem(chapters.CHAPTERS, "new", chapter)
    with pytest.raises(ValueError, match="does not name 'newcomer'.*TRAIN_PROTOCOLS"):
        lb.paper_training("newcomer")


def test_seeds_are_at_least_five_on_real_data_outside_smoke():
    assert lb.default_seeds("mosi-utterance", "", get_profile("book")) == "1,2,3,4,5"
    assert lb.default_seeds("my_data", "/x.pkl", get_profile("book")) == "1,2,3,4,5"
    assert lb.default_seeds("synthetic:mosi", "", get_profile("book")) == get_profile("book").seeds
    assert lb.default_seeds("mosi-utterance", "", get_profile("smoke")) == get_profile("smoke").seeds


def test_a_fetched_dataset_brings_its_own_settings_row():
    prof = get_profile("book")
    assert settings_row("umdf", umdf.SETTINGS, "mosi-utterance") == "mosi"
    assert umdf.model_setup("umdf", "mosi-utterance", prof) == umdf.model_setup("umdf", "mosi", prof)
    assert settings_row("umdf", umdf.SETTINGS, "mosi-utterance", "mosei") == "mosei"  # an explicit choice wins


def _ridge_oracle(data, modalities, alpha):
    """Closed-form ridge on train-standardised features (sklearn's Ridge centres X and y)."""
    x, y = pooled_features(data["train"], modalities), data["train"].labels
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return lambda split: ((pooled_features(split, modalities) - mu) / sd) @ w + y.mean()


def test_ridge_reference_matches_a_closed_form_and_chooses_alpha_on_validation(small):
    model, alpha = lb.fit_ridge(small, ("text", "audio"))
    predict = _ridge_oracle(small, ("text", "audio"), alpha)
    np.testing.assert_allclose(model.predict(pooled_features(small["test"], ("text", "audio"))),
                               predict(small["test"]), rtol=1e-5, atol=1e-6)
    # the chosen α is the best on validation (by MAE) among the grid
    scores = {a: compute_metrics("mosi", _ridge_oracle(small, ("text", "audio"), a)(small["valid"]),
                                 small["valid"].labels)["MAE"] for a in lb.RIDGE_ALPHAS}
    assert alpha == min(scores, key=scores.get)


def test_ridge_never_reads_the_test_split(small):
    _, alpha = lb.fit_ridge(small, ("text", "audio", "vision"))
    poisoned = small.__class__(**{**small.__dict__})
    test = small["test"]
    poisoned.splits = {**small.splits, "test": test.__class__(**{**test.__dict__, "labels": -test.labels})}
    assert lb.fit_ridge(poisoned, ("text", "audio", "vision"))[1] == alpha


def _tidy(label, design, protocol, seed, metric, value):
    return {"model": "m", "variant": label, "dataset": "d", "design": design, "train_protocol": "x",
            "protocol": protocol, "seed": seed, "metric": metric, "value": value, "config_key": "k", "key": "k"}


def test_block_values_average_the_right_protocols_and_auilc_is_per_seed():
    rows = []
    for seed, shift in ((1, 0.0), (2, 0.1)):
        rows.append(_tidy("M", "train_once", "complete", seed, "Acc-2_has0", 0.8 + shift))
        for k, p in enumerate(lb.MISSING_SUBSETS):  # paper-trained: 0.5 .. 0.55 ; complete-trained: 0.3 + ...
            rows.append(_tidy("M", "train_once", p, seed, "Acc-2_has0", 0.5 + 0.01 * k + shift))
            rows.append(_tidy("M, trained complete", "train_once", p, seed, "Acc-2_has0", 0.3 + shift))
        rows.append(_tidy("M", "train_once", "modality:lav", seed, "Acc-2_has0", 0.99))  # complete subset: not averaged
        for r in lb.ERASURE_RATES:
            rows.append(_tidy("M", "train_once", f"erasure:{r:g}", seed, "Acc-2_has0", 0.9 - r / 2 + shift))
        for r in AUILC_RATES["mosi"]:
            rows.append(_tidy("M, per-rate", "per_rate", f"frame:{r:g}", seed, "Acc-2_has0", 0.8 - 0.3 * r + shift))
    v = pd.DataFrame(lb._block_values(pd.DataFrame(rows), "M", "M", "M, trained complete", "M, per-rate", "mosi",
                                      ("Acc-2_has0",)))
    got = v.pivot_table(index="block", columns="seed", values="value")
    assert got.loc["complete"].tolist() == pytest.approx([0.8, 0.9])
    assert got.loc["subsets, trained as its paper"].tolist() == pytest.approx([0.525, 0.625])
    assert got.loc["subsets, trained complete"].tolist() == pytest.approx([0.3, 0.4])
    assert got.loc["erasure 0–0.9, trained once"].tolist() == pytest.approx([0.9 - 0.225, 1.0 - 0.225])
    rates = list(AUILC_RATES["mosi"])
    # stored as a fraction like the metric itself (printed × 100 as EMT-DLFR's AUILC)
    assert got.loc["per-rate training (AUILC)"].tolist() == pytest.approx(
        [auilc(rates, [0.8 - 0.3 * r for r in rates], "Acc-2_has0") / 100,
         auilc(rates, [0.9 - 0.3 * r for r in rates], "Acc-2_has0") / 100])
    # a trapezoid of a line is exact: (0.8 + 0.5) / 2
    assert got.loc["per-rate training (AUILC)", 1] == pytest.approx(0.65)


def test_a_run_missing_a_protocol_is_an_error_not_a_smaller_average():
    rows = [_tidy("M", "train_once", p, 1, "MAE", 1.0) for p in lb.MISSING_SUBSETS[:-1]]
    rows += [_tidy("M", "train_once", "complete", 1, "MAE", 1.0)]
    with pytest.raises(ValueError, match="lack some of the protocols"):
        lb._block_values(pd.DataFrame(rows), "M", "M", "M", "M, per-rate", "mosi", ("MAE",))


def _board(scores: pd.DataFrame, verdict_results: pd.DataFrame | None = None, models=()) -> lb.Leaderboard:
    """A board holding given per-seed scores and tidy runs (entries patched by the caller)."""
    runs = types.SimpleNamespace(seeds=[1, 2, 3, 4, 5], first=types.SimpleNamespace(
        data=types.SimpleNamespace(kind="mosi"), name="synthetic:mosi", path=None, caption="",
        verdict_results=verdict_results))
    board = lb.Leaderboard(runs, list(models), pd.DataFrame())
    board.__dict__["scores"] = scores  # the cached_property's slot
    return board


def test_verdict_against_the_ridge_uses_the_t_interval_of_the_model_mean(monkeypatch):
    monkeypatch.setattr(lb.Leaderboard, "model_entries", property(lambda self: list(self.models)))
    monkeypatch.setattr(lb, "labels", lambda m: {"paper": m})
    values = {"A": [0.80, 0.82, 0.81, 0.83, 0.79], "B": [0.70, 0.72, 0.71, 0.69, 0.73], "C": [0.70, 0.90, 0.75, 0.85, 0.80],
              "D": [0.66, 0.86, 0.71, 0.81, 0.76]}
    runs = [_tidy(e, "train_once", "complete", i, "Acc-2_has0", x) for e, xs in values.items() for i, x in enumerate(xs)]
    runs += [_tidy(e, "train_once", "complete", i, "MAE", 0.85 if e == "D" else 1.0) for e in values for i in range(5)]
    runs += [_tidy("A", "per_rate", "frame:0", i, "Acc-2_has0", 0.0) for i in range(5)]  # other designs: ignored
    refs = [{"entry": lb.RIDGE_REFERENCE, "block": "complete", "metric": "Acc-2_has0", "seed": 0, "value": 0.77},
            {"entry": lb.RIDGE_REFERENCE, "block": "complete", "metric": "MAE", "seed": 0, "value": 0.9}]
    board = _board(pd.DataFrame(refs), pd.DataFrame(runs), models=list(values))
    table = board.ridge_comparison().set_index(["model", "metric"])
    assert table.loc[("A", "Acc-2_has0"), "verdict"] == "beats the ridge"
    assert table.loc[("B", "Acc-2_has0"), "verdict"] == "below the ridge"
    # C: mean 0.80, std 0.079: the 95 % interval (0.80 ± 2.776 * 0.079 / sqrt 5) contains 0.77
    c = np.array(values["C"])
    half = stats.t.ppf(0.975, 4) * c.std(ddof=1) / np.sqrt(5)
    assert c.mean() - half < 0.77 < c.mean() + half
    assert table.loc[("C", "Acc-2_has0"), "verdict"] == "no detectable difference (mean above)"
    assert table.loc[("D", "Acc-2_has0"), "verdict"] == "no detectable difference (mean below)"  # 0.76 vs 0.77
    assert table.loc[("A", "Acc-2_has0"), "in seed stds"] == pytest.approx((0.81 - 0.77) / np.std(values["A"], ddof=1))
    assert table.loc[("A", "MAE"), "verdict"] == "below the ridge"  # identical seeds: a zero-width interval
    assert np.isnan(table.loc[("A", "MAE"), "in seed stds"])
    text = board.ridge_text()
    assert "**Beats the ridge** on at least one metric: A; D." in text  # D: MAE 0.85 vs 0.9, zero spread
    assert "**Below the ridge** on at least one metric: A; B; C." in text  # MAE 1.0 vs 0.9, zero spread
    assert "**Mean below the ridge, within seed noise**, on at least one metric: D." in text


def test_block_table_prints_mean_std_for_models_and_one_value_for_references(monkeypatch):
    monkeypatch.setattr(lb.Leaderboard, "model_entries", property(lambda self: ["A"]))
    monkeypatch.setattr(lb.Leaderboard, "reference_entries", property(lambda self: [lb.RIDGE_REFERENCE]))
    rows = [{"entry": "A", "block": "complete", "metric": "MAE", "seed": s, "value": v} for s, v in ((1, 1.0), (2, 1.2))]
    rows += [{"entry": lb.RIDGE_REFERENCE, "block": "complete", "metric": "MAE", "seed": 0, "value": 0.9}]
    rows += [{"entry": "A", "block": "complete", "metric": "Corr", "seed": s, "value": np.nan} for s in (1, 2)]
    board = _board(pd.DataFrame(rows))
    table = board.block_table("complete")
    assert table.loc["A", "MAE"] == "1.100 ± 0.141" and table.loc[lb.RIDGE_REFERENCE, "MAE"] == "0.900"
    assert table.loc["A", "Corr"] == "–" and table.loc["A", "Acc-7"] == "–"
    with pytest.raises(ValueError, match="unknown block"):
        board.block_table("everything")


def test_the_leaderboard_runs_end_to_end_on_the_synthetic_default(tmp_path, single_thread):
    board = lb.run("synthetic:mosi", profile="smoke", seeds="1,2", results_dir=str(tmp_path), models=("tfn",),
                   per_rate=False)
    complete = board.block_table("complete")
    assert list(complete.index) == ["TFN"] + list(lb.RIDGES)  # no quoted rows beside synthetic data
    tidy = board.item.results
    acc = tidy[(tidy["variant"] == "TFN") & (tidy["protocol"] == "complete") & (tidy["metric"] == "Acc-2_has0")]["value"]
    assert complete.loc["TFN", "Acc-2_has0"] == f"{acc.mean() * 100:.2f} ± {acc.std() * 100:.2f}"
    assert not (board.scores["block"] == "per-rate training (AUILC)").any()
    # the ridge's complete row is the reference computed on the same test split
    model, _ = lb.fit_ridge(board.data, lb.RIDGES[lb.RIDGE_REFERENCE])
    pred = model.predict(pooled_features(board.data["test"], lb.RIDGES[lb.RIDGE_REFERENCE]))
    mae = compute_metrics("mosi", pred, board.data["test"].labels)["MAE"]
    assert complete.loc[lb.RIDGE_REFERENCE, "MAE"] == f"{mae:.3f}"
    with pytest.raises(ValueError, match="one dataset"):
        lb.run("synthetic:mosi,synthetic:mosei")
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['nope'\]"):
        lb.run("synthetic:mosi", models=("nope",))


def test_models_without_settings_for_the_row_are_named_not_run():
    has, lacks = lb.models_with_settings("synthetic:iemocap")
    assert "mitr_dnet" in lacks and {"tfn", "umdf"} <= set(has)  # MITR-DNet's paper: MOSI and CH-SIMS only
    has, lacks = lb.models_with_settings("synthetic:sims")
    assert "mitr_dnet" in has and "umdf" in lacks
    assert set(has) | set(lacks) == set(lb.model_names())
    with pytest.raises(ValueError, match="settings"):  # your own data without a settings row: one clear error
        lb.models_with_settings("my_lab_data")

"""The helpers that turn stored runs into the book's tables: every number shown goes through them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from msa_lib.metrics import auilc
from msa_lib.experiments import dataset_paths, parse_seeds
from msa_lib.metrics import HEADLINE_METRICS, format_mean_std, metric_spec
from msa_lib.report import (
    CONDITIONS, auilc_table, avg_means, beside, cells, condition_table, curve, data_caption, per_condition, reported,
)
from msa_lib.data import make_synthetic

SUBSET_PROTOCOLS = {"{l}": "modality:l", "{a}": "modality:a", "{v}": "modality:v", "{l,a}": "modality:la",
                    "{l,v}": "modality:lv", "{a,v}": "modality:av", "{l,a,v}": "modality:lav"}


def rows(variant: str, seed: int, metric: str, values: dict[str, float]) -> list[dict]:
    return [{"variant": variant, "seed": seed, "metric": metric, "protocol": p, "value": v, "design": "train_once"}
            for p, v in values.items()]


@pytest.fixture()
def subsets() -> pd.DataFrame:
    # seed 1: six missing conditions 1..6 (Avg 3.5), complete 0.5; seed 2: 2..7 (Avg 4.5), complete 1.5
    d = []
    for seed, shift in ((1, 0.0), (2, 1.0)):
        vals = {SUBSET_PROTOCOLS[c]: i + 1 + shift for i, c in enumerate(CONDITIONS[:6])}
        vals["modality:lav"] = 0.5 + shift
        vals["modality:l+frame:0.5"] = 99.0  # a combined condition must not enter the table
        d += rows("B", seed, "MAE", vals)
        d += rows("A", seed, "MAE", {k: v / 10 for k, v in vals.items()})
    return pd.DataFrame(d)


def test_per_condition_avg_is_mean_of_six_per_seed(subsets):
    wide = per_condition(subsets, "MAE")
    assert list(wide.columns) == list(CONDITIONS)
    assert wide.loc[("B", 1), "Avg"] == pytest.approx(3.5)
    assert wide.loc[("B", 2), "Avg"] == pytest.approx(4.5)
    assert wide.loc[("B", 1), "{l,a,v}"] == pytest.approx(0.5)
    assert 99.0 not in wide.to_numpy()


def test_condition_table_mean_std_and_order(subsets):
    table = condition_table(subsets, ["MAE"])
    assert list(table.columns) == ["B MAE", "A MAE"]  # the order the runs came in, not alphabetical
    assert list(table.index) == list(CONDITIONS)
    # {l}: seeds give 1 and 2 -> mean 1.5, sample std 0.7071; MAE printed with 3 decimals
    assert table.loc["{l}", "B MAE"] == "1.500 ± 0.707"
    assert table.loc["Avg", "B MAE"] == "4.000 ± 0.707"
    assert list(avg_means(subsets, "MAE").round(6).items()) == [("B", 4.0), ("A", 0.4)]


def test_accuracy_metrics_are_shown_in_percent():
    d = pd.DataFrame(rows("A", 1, "F1_non0", {p: 0.8 for p in SUBSET_PROTOCOLS.values()}))
    assert condition_table(d, ["F1_non0"]).loc["{a}", "A F1_non0"] == "80.00 ± 0.00"
    summary = pd.DataFrame({"metric": ["MAE", "Acc-2_has0"], "mean": [0.5, 0.75], "std": [0.1, 0.05]})
    # one spec for every page: MAE with 3 decimals everywhere, accuracies in % with 2
    assert cells(summary).tolist() == ["0.500 ± 0.100", "75.00 ± 5.00"]


def test_metric_spec_is_the_one_source_of_direction_scale_and_decimals():
    assert not metric_spec("MAE").higher and metric_spec("Corr").higher and metric_spec("happy_F1").percent
    assert (metric_spec("Corr").percent, metric_spec("Corr").decimals) == (False, 3)
    assert format_mean_std("Avg_F1", 0.51234, 0.0) == "51.23 ± 0.00"
    assert HEADLINE_METRICS["iemocap"][:4] == ("happy_F1", "sad_F1", "angry_F1", "neutral_F1")
    with pytest.raises(ValueError, match="unknown metric 'R2'"):
        metric_spec("R2")


def test_reported_tables_use_library_metric_names_and_keep_the_paper_label():
    t1 = reported("umdf_table1", dataset="MOSI", model="UMDF")
    assert set(t1.metric) == {"MAE", "F1_non0"} and set(t1.paper_label) == {"MAE", "F1"}
    assert len(t1) == 16 and t1.set_index(["condition", "metric"]).loc[("{l,a,v}", "MAE"), "value"] == pytest.approx(0.697, abs=0.1)
    t2 = reported("umdf_table2", model="UMDF")
    assert set(t2.metric) == {f"{e}_F1" for e in ("happy", "sad", "angry", "neutral")}
    with pytest.raises(ValueError, match="no reported table 'nope'.*umdf_table1"):
        reported("nope")
    with pytest.raises(ValueError, match="no column 'colour'"):
        reported("umdf_table1", colour="red")


def test_beside_puts_reported_columns_next_to_ours_by_condition():
    ours = pd.DataFrame({"A MAE": ["x"] * 3}, index=pd.Index(["{l}", "{a}", "Avg"], name="condition"))
    rows_ = pd.DataFrame({"model": ["P", "P", "P"], "metric": ["MAE"] * 3, "condition": ["{a}", "{l}", "{v}"],
                          "value": [2.0, 1.0, 9.0]})
    out = beside(ours, rows_, "{model} reported {metric}")
    assert list(out.columns) == ["A MAE", "P reported MAE"]
    assert out["P reported MAE"].tolist()[:2] == [1.0, 2.0] and pd.isna(out.loc["Avg", "P reported MAE"])


def test_auilc_table_matches_metrics_auilc_on_seed_means():
    rates = [round(0.1 * i, 1) for i in range(11)]
    rng = np.random.default_rng(0)
    per_seed = rng.uniform(0.5, 0.9, size=(2, 11))
    d = []
    for seed in range(2):
        d += rows("M", seed, "Acc-2_non0", {f"frame:{r:g}": per_seed[seed, i] for i, r in enumerate(rates)})
    d = pd.DataFrame(d)
    assert list(curve(d, "Acc-2_non0").columns) == rates
    table = auilc_table(d, ["Acc-2_non0"], "mosi")
    assert table.loc["M", "Acc-2_non0"] == pytest.approx(round(auilc(rates, per_seed, "Acc-2_non0"), 2))
    # by hand: trapezoid of the seed-mean curve, x100
    mean = per_seed.mean(axis=0) * 100
    assert table.loc["M", "Acc-2_non0"] == pytest.approx(round(0.1 * (mean.sum() - (mean[0] + mean[-1]) / 2), 2))
    sims = auilc_table(d, ["Acc-2_non0"], "sims")  # SIMS integrates 0.0-0.5 only
    assert sims.loc["M", "Acc-2_non0"] < table.loc["M", "Acc-2_non0"] * 0.6
    with pytest.raises(ValueError, match="missing"):
        auilc_table(d[d.protocol != "frame:0.3"], ["Acc-2_non0"], "mosi")


def test_dataset_paths_and_seeds():
    assert dataset_paths("synthetic:mosi, synthetic:mosei") == [("synthetic:mosi", None), ("synthetic:mosei", None)]
    assert dataset_paths("mosi,mosei", "/a.pkl,/b.pkl") == [("mosi", "/a.pkl"), ("mosei", "/b.pkl")]
    with pytest.raises(ValueError, match="1 files for 2 datasets"):
        dataset_paths("mosi,mosei", "/a.pkl")
    assert parse_seeds("1, 2,3") == [1, 2, 3] and parse_seeds(4) == [4] and parse_seeds([5, 6]) == [5, 6]
    for bad in ("", "1,x"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_caption_names_the_data_and_the_page_has_one_banner():
    from msa_lib.report import synthetic_banner

    data = make_synthetic("mosi", size=0.02, seed=3)
    caption = data_caption(data)
    assert "Synthetic MOSI-shaped" in caption and "/".join(str(len(data[s])) for s in ("train", "valid", "test")) in caption
    banner = synthetic_banner(["synthetic:mosi"])
    assert banner.startswith(":::{important}") and "not comparable" in banner and "synthetic:mosi" in banner
    assert synthetic_banner([]) == ""


def test_ridge_probe_ranks_modalities_and_handles_classification():
    from msa_lib.report import pooled_features, ridge_probe

    data = make_synthetic("mosi", size=0.2, seed=0)
    pooled = pooled_features(data["test"])
    assert pooled.shape == (len(data["test"]), 768 + 5 + 20)
    complete, audio = ridge_probe(data, "complete"), ridge_probe(data, "modality:a")
    assert complete["MAE"] < audio["MAE"] and complete["Acc-2_non0"] > audio["Acc-2_non0"]
    assert 0.6 < complete["Acc-2_non0"] < 0.95
    emo = ridge_probe(make_synthetic("iemocap", size=0.05, seed=0), "complete")
    assert set(emo) >= {"happy_F1", "Avg_F1"} and 0.0 <= emo["Avg_F1"] <= 1.0


def test_paired_comparison_matches_a_hand_computed_t_interval():
    from msa_lib.report import paired_comparison

    # differences 1, 2, 3: mean 2, sd 1, sem 1/sqrt(3); t(0.975, df=2) = 4.302653 -> half-width 2.484138
    values = pd.DataFrame({"A": [0.71, 0.82, 0.93], "B": [0.70, 0.80, 0.90]}, index=[1, 2, 3])
    r = paired_comparison(values * 100, "A", "B", "F1_non0")
    assert r["difference"] == pytest.approx(2.0) and r["seeds"] == 3
    assert r["low"] == pytest.approx(2 - 2.484138, abs=1e-5) and r["high"] == pytest.approx(2 + 2.484138, abs=1e-5)
    assert r["verdict"] == "no detectable difference"
    # p of the paired t statistic t = 2 / (1/sqrt(3)) = 3.4641 with 2 df: 0.07418
    assert r["p"] == pytest.approx(0.07418, abs=1e-4)
    tight = pd.DataFrame({"A": [0.60, 0.61, 0.59, 0.60], "B": [0.70, 0.70, 0.70, 0.71]}, index=[1, 2, 3, 4])
    assert paired_comparison(tight, "A", "B", "MAE")["verdict"] == "better"  # lower MAE is better
    assert paired_comparison(tight, "A", "B", "F1_non0")["verdict"] == "worse"  # lower F1 is worse
    assert paired_comparison(tight.iloc[:1], "A", "B", "MAE")["verdict"] == "too few seeds"
    # seeds are paired: a seed only one model has is left out
    partial = pd.DataFrame({"A": [0.60, 0.61, np.nan], "B": [0.70, 0.70, 0.70]}, index=[1, 2, 3])
    assert paired_comparison(partial, "A", "B", "MAE")["seeds"] == 2


def test_reference_rows_are_the_probe_and_the_input_blind_predictor():
    from msa_lib.report import BLIND_LABEL, RIDGE_LABEL, reference_results, ridge_probe

    data = make_synthetic("mosi", size=0.05, seed=1)
    refs = reference_results(data, ["complete", "modality:a"])
    assert set(refs["variant"]) == {RIDGE_LABEL, BLIND_LABEL} and set(refs["protocol"]) == {"complete", "modality:a"}
    ridge = refs[(refs.variant == RIDGE_LABEL) & (refs.protocol == "modality:a")].set_index("metric")["value"]
    assert ridge["MAE"] == pytest.approx(ridge_probe(data, "modality:a")["MAE"])
    blind = refs[(refs.variant == BLIND_LABEL) & (refs.protocol == "complete")].set_index("metric")["value"]
    y, mean = data["test"].labels, data["train"].labels.mean()
    assert blind["MAE"] == pytest.approx(np.abs(y - mean).mean(), rel=1e-5)

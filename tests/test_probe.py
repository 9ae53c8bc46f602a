"""Tests for msa_lib.probe, written from its module docstring: the orderings table flags planted
violations, computes its seed noise and tolerance as documented, and every synthetic preset keeps
every claimed ordering at the book profile's sizes."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import msa_lib.probe as probe
from msa_lib.data import PRESETS, make_synthetic
from msa_lib.probe import held_out, orderings, orderings_summary

pytestmark = pytest.mark.usefixtures("single_thread")

SUBSET_ROWS = ["complete ≥ {l}", "complete ≥ {a}", "complete ≥ {v}", "complete ≥ {l,a}", "complete ≥ {l,v}",
               "complete ≥ {a,v}"]


@pytest.fixture(scope="module")
def mosi():
    """Small MOSI-shaped data: 320 training, 200 + 200 held-out samples, 20 frames."""
    return make_synthetic("mosi", size=0.25, max_len=20, eval_samples=200)


@pytest.fixture(scope="module")
def mosi_table(mosi):
    return orderings(mosi)


def _row(table, ordering, metric):
    rows = table[(table.ordering == ordering) & (table.metric == metric)]
    assert len(rows) == 1, (ordering, metric)
    return rows.iloc[0]


def _with(data, split_fn):
    """``data`` with ``split_fn(split)`` applied to every split."""
    return replace(data, splits={name: split_fn(split) for name, split in data.splits.items()})


# --------------------------------------------------------------------------------------------
# The table's shape
# --------------------------------------------------------------------------------------------

def test_rows_per_kind(mosi_table):
    table = mosi_table
    assert list(table.columns) == ["ordering", "metric", "compared", "better", "worse", "noise", "tolerance",
                                   "result", "note"]
    assert set(table.metric) == {"MAE", "Corr"}
    expected = (["text ≥ audio (unimodal)", "text ≥ vision (unimodal)", "audio ≥ vision (unimodal)"] + SUBSET_ROWS
                + ["non-increasing in frame-drop rate", "frame-drop rate: any frames beat none"])
    assert list(table[table.metric == "MAE"].ordering) == expected
    # Corr is undefined at p=1 (constant prediction): no "any frames beat none" row for it
    assert list(table[table.metric == "Corr"].ordering) == expected[:-1]
    # audio vs vision is not claimed for the sentiment kinds, nor is p=0.9 vs the constant at p=1
    assert set(table[table.ordering == "audio ≥ vision (unimodal)"].result) == {"no claim"}
    assert set(table[table.ordering == "frame-drop rate: any frames beat none"].result) == {"no claim"}
    assert (table.note[table.result == "no claim"] != "").all()
    assert _row(table, "complete ≥ {l,a}", "MAE").compared == "{l,a,v} vs {l,a}"
    assert (table.tolerance == probe.TOLERANCE_FRACTION * table.noise).all()
    assert (table.noise > 0).all()


def test_iemocap_claims_audio_over_vision():
    data = make_synthetic("iemocap", size=0.1, max_len=20)
    table = orderings(data)
    assert set(table.metric) == {"Avg_F1"}
    assert _row(table, "audio ≥ vision (unimodal)", "Avg_F1").result in ("pass", "fail")
    assert "non-increasing in frame-drop rate" in set(table.ordering)


def test_held_out_joins_valid_and_test(mosi):
    joined = held_out(mosi)
    test, valid = mosi["test"], mosi["valid"]
    assert len(joined["test"]) == len(valid) + len(test)
    assert joined["test"].name == "test"
    assert np.array_equal(joined["test"].labels, np.concatenate([valid.labels, test.labels]))
    assert np.array_equal(joined["test"].audio[len(valid):], test.audio)
    assert joined["train"] is mosi["train"]


# --------------------------------------------------------------------------------------------
# Planted violations are flagged
# --------------------------------------------------------------------------------------------

def test_flags_audio_made_stronger_than_text(mosi):
    """Audio replaced by a near-copy of the label on every valid frame: audio-only now beats
    text-only, so "text ≥ audio" must fail."""
    rng = np.random.default_rng(0)

    def plant(split):
        audio = 0.1 * rng.standard_normal(split.audio.shape).astype(np.float32)
        audio[..., 0] += split.labels[:, None]
        return replace(split, audio=audio * split.valid_mask("audio")[..., None])

    table = orderings(_with(mosi, plant))
    for metric in ("MAE", "Corr"):
        row = _row(table, "text ≥ audio (unimodal)", metric)
        assert row.result == "fail", row.to_dict()
        assert _row(table, "text ≥ vision (unimodal)", metric).result == "pass"


def test_flags_a_modality_that_hurts_the_complete_set(mosi):
    """Vision shuffled across the held-out samples (its link to the labels scrambled): the probe fit
    on complete data is misled by it, so the complete set loses to {l,a}."""
    perm = np.random.default_rng(0).permutation

    def plant(split):
        return split if split.name == "train" else replace(split, vision=split.vision[perm(len(split))])

    table = orderings(_with(mosi, plant))
    for metric in ("MAE", "Corr"):
        assert _row(table, "complete ≥ {l,a}", metric).result == "fail", metric
        assert _row(table, "text ≥ audio (unimodal)", metric).result == "pass"


def _fake_probe(curve, jitter=0.01):
    """A stand-in for ridge_probe: MAE from ``curve`` (protocol -> value) plus ``jitter`` times a
    seed-dependent ±1, Corr = 1 - MAE."""
    def fake(data, protocol="complete", mask_seed=0):
        mae = curve(protocol) + (jitter * (1 if mask_seed % 2 else -1) if protocol.startswith("frame:") else 0.0)
        return {"MAE": mae, "Corr": 1.0 - mae}
    return fake


def _monotone(protocol):
    subsets = {"complete": 0.5, "modality:l": 0.6, "modality:a": 0.9, "modality:v": 0.8, "modality:la": 0.55,
               "modality:lv": 0.55, "modality:av": 0.7}
    if protocol in subsets:
        return subsets[protocol]
    return 0.5 + float(protocol.split(":")[1])  # frame:p


def test_flags_frames_that_help(monkeypatch, mosi):
    """Dropping half of the frames made better than dropping none: the frame ordering fails and
    names the worst pair."""
    monkeypatch.setattr(probe, "ridge_probe", _fake_probe(_monotone))
    table = orderings(mosi)
    assert set(table.result) == {"pass", "no claim"}

    def planted(protocol):
        return 0.3 if protocol == "frame:0.5" else _monotone(protocol)

    monkeypatch.setattr(probe, "ridge_probe", _fake_probe(planted))
    table = orderings(mosi)
    row = _row(table, "non-increasing in frame-drop rate", "MAE")
    assert row.result == "fail"
    # the worst pair: the highest MAE below p=0.5 (p=0.4: 0.9) against 0.3 at p=0.5
    assert row.compared == "p=0.4 vs p=0.5 (worst pair)"
    assert (row.better, row.worse) == pytest.approx((0.9, 0.3))
    assert set(table.result[table.ordering != "non-increasing in frame-drop rate"]) == {"pass", "no claim"}


def test_noise_and_tolerance(monkeypatch, mosi):
    """Seed noise: std between the FRAME_DRAWS draws of each rate, root mean square over the rates;
    a violation within the tolerance (half of it) passes, a larger one fails."""
    jitter = 0.01
    draws = [(-1) ** (k + 1) for k in range(probe.FRAME_DRAWS[mosi.task])]  # the fake's ±1 for seeds 0, 1, ...
    noise = jitter * float(np.std(draws, ddof=1))
    tol = probe.TOLERANCE_FRACTION * noise

    for excess, expected in ((0.5 * tol, "pass"), (2 * tol, "fail")):
        def curve(protocol, excess=excess):
            # text-only better than audio-only... except by `excess` the wrong way round
            fixed = {"modality:l": 0.9 + excess, "modality:a": 0.9}
            return fixed.get(protocol, _monotone(protocol))

        monkeypatch.setattr(probe, "ridge_probe", _fake_probe(curve, jitter))
        table = orderings(mosi)
        row = _row(table, "text ≥ audio (unimodal)", "MAE")
        assert row.noise == pytest.approx(noise)
        assert row.tolerance == pytest.approx(tol)
        assert row.result == expected, (excess, row.to_dict())
        # the frame sweep averages the draws: the jitter cancels
        sweep = _row(table, "non-increasing in frame-drop rate", "MAE")
        assert sweep.result == "pass"


def test_default_mask_seed_is_deterministic(mosi, mosi_table):
    again = orderings(mosi)
    assert again.equals(mosi_table)
    other = orderings(mosi, mask_seed=7)
    assert not np.allclose(other.noise, mosi_table.noise)


# --------------------------------------------------------------------------------------------
# The synthetic presets keep their promises at the book profile's sizes
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def book():
    return orderings_summary("book", display=False)


def test_every_preset_passes_at_book_sizes(book):
    assert list(book.dataset.unique()) == [f"synthetic:{p}" for p in PRESETS]
    claimed = book[book.result != "no claim"]
    failed = claimed[claimed.result != "pass"]
    assert failed.empty, failed.to_string()
    # every claimed ordering is there for every preset: 2 or 3 unimodal, 6 subsets, the frame sweep
    for dataset, rows in claimed.groupby("dataset"):
        per_metric = 10 if dataset == "synthetic:iemocap" else 9
        assert len(rows) == per_metric * rows.metric.nunique(), dataset


def test_book_sizes_are_the_profiles(book):
    from msa_lib.data import load_dataset
    from msa_lib.experiments import data_options, get_profile

    caption, prof = book.attrs["caption"], get_profile("book")
    assert "`book` profile" in caption
    for p in PRESETS:
        name = f"synthetic:{p}"
        data = load_dataset(name, **data_options(name, None, prof))
        assert f"{name} {len(data['train'])}/{len(data['valid'])}/{len(data['test'])}" in caption
    assert f"sequences ≤ {prof.max_len} frames" in caption


def test_complete_probe_is_not_saturated(book):
    """Complete-data Corr stays well below 1 (the probe does not solve the data)."""
    corr = book[(book.ordering == "complete ≥ {l}") & (book.metric == "Corr")].better
    assert (corr < 0.95).all() and (corr > 0.7).all()
    f1 = book[(book.ordering == "complete ≥ {l}") & (book.metric == "Avg_F1")].better
    assert (f1 < 0.9).all() and (f1 > 0.65).all()


def test_display_values_are_printed_like_the_pages(monkeypatch):
    """display=True: accuracies and F1 in % with 2 decimals (noise and tolerance 3)."""
    small = make_synthetic("iemocap", size=0.05, max_len=10)
    monkeypatch.setattr(probe, "load_dataset", lambda name, **options: small)
    raw = orderings_summary("smoke", ["synthetic:iemocap"], display=False)
    shown = orderings_summary("smoke", ["synthetic:iemocap"])
    assert np.allclose(shown.better, (100 * raw.better).round(2))
    assert np.allclose(shown.tolerance, (100 * raw.tolerance).round(3))
    assert list(shown.result) == list(raw.result)

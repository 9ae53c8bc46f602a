"""Tests for msa_lib.missing, written from the module docstring (the specification).

Expected values come from the protocol definitions in the docstring: drop rates, which frames
may change, and how masks are seeded. Large-draw checks use hand-built splits with ~2000
samples and tolerances several standard deviations wide, so they are cheap and not flaky
(every draw is seeded, so each run sees the same numbers anyway).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from msa_lib.data.container import MODALITIES, MSASplit
from msa_lib.missing import (
    SUBSETS,
    UNK_ID,
    mask_batch,
    mask_split,
    observed_rate,
    parse_protocol,
    stable_seed,
)
from msa_lib.train import SplitTensors

PAD = 7.0  # sentinel written into padding so that any change to it is visible
CLS, SEP = 101, 102
LETTER = {"text": "l", "audio": "a", "vision": "v"}


# --------------------------------------------------------------------------------------------
# Hand-built splits
# --------------------------------------------------------------------------------------------

def make_split(n: int, seq_lens: dict[str, int], min_len: dict[str, int] | None = None,
               aligned: bool = False, seed: int = 0, name: str = "train",
               with_bert: bool = False, dims: dict[str, int] | None = None) -> MSASplit:
    """A split with non-zero valid frames (values in [0.5, 1.5)) and padding filled with PAD."""
    rng = np.random.default_rng(seed)
    dims = dims or {"text": 3, "audio": 2, "vision": 2}
    min_len = min_len or {m: 1 for m in MODALITIES}
    lengths: dict[str, np.ndarray] = {}
    if aligned:
        common = rng.integers(min_len["text"], seq_lens["text"] + 1, size=n)
        lengths = {m: common.copy() for m in MODALITIES}
    else:
        lengths = {m: rng.integers(min_len[m], seq_lens[m] + 1, size=n) for m in MODALITIES}
    feats = {}
    for m in MODALITIES:
        t = seq_lens[m]
        x = rng.uniform(0.5, 1.5, size=(n, t, dims[m])).astype(np.float32)
        valid = np.arange(t)[None, :] < lengths[m][:, None]
        x[~valid] = PAD
        feats[m] = x
    text_bert = None
    if with_bert:
        t = seq_lens["text"]
        ids = np.zeros((n, 3, t), dtype=np.int64)
        for i, length in enumerate(lengths["text"]):
            ids[i, 0, :length] = rng.integers(1000, 30000, size=length)
            ids[i, 0, 0] = CLS
            ids[i, 0, length - 1] = SEP
            ids[i, 1, :length] = 1  # attention mask
            ids[i, 2, :length] = rng.integers(0, 2, size=length)  # segment ids (arbitrary, must not change)
        text_bert = ids
    return MSASplit(text=feats["text"], audio=feats["audio"], vision=feats["vision"], lengths=lengths,
                    labels=rng.normal(size=n).astype(np.float32), ids=[f"s{i}" for i in range(n)],
                    text_bert=text_bert, name=name, source="hand-built")


def valid_of(split: MSASplit, m: str) -> np.ndarray:
    t = split.features(m).shape[1]
    return np.arange(t)[None, :] < split.lengths[m][:, None]


@pytest.fixture(scope="module")
def big_split() -> MSASplit:
    """2000 samples, unaligned lengths 1..T (T = 50/40/30)."""
    return make_split(2000, {"text": 50, "audio": 40, "vision": 30}, seed=1)


@pytest.fixture(scope="module")
def aligned_split() -> MSASplit:
    return make_split(300, {"text": 30, "audio": 30, "vision": 30}, aligned=True, seed=2)


@pytest.fixture(scope="module")
def long_split() -> MSASplit:
    """Long sequences (90..100 valid frames) so per-sample observed rates are precise."""
    return make_split(2000, {m: 100 for m in MODALITIES}, min_len={m: 90 for m in MODALITIES}, seed=3)


@pytest.fixture(scope="module")
def bert_split() -> MSASplit:
    return make_split(400, {"text": 24, "audio": 10, "vision": 10}, min_len={"text": 2, "audio": 1, "vision": 1},
                      seed=4, with_bert=True)


def full_batch(split: MSASplit):
    tensors = SplitTensors(split)
    return tensors.batch(torch.arange(tensors.n))


def per_sample_drop_rate(keep: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return ((valid & ~keep).sum(1) / valid.sum(1))


# --------------------------------------------------------------------------------------------
# parse_protocol / Protocol
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, canonical", [
    ("complete", "complete"),
    ("frame:0.3", "frame:0.3"),
    ("frame:0.3:fixed", "frame:0.3"),
    ("frame:0.3:resample", "frame:0.3:resample"),
    ("frame:0", "frame:0"),
    ("frame:1", "frame:1"),
    ("modality:la", "modality:la"),
    ("modality:{l,a}", "modality:la"),
    ("modality:al", "modality:la"),
    ("modality:{v}", "modality:v"),
    ("modality:lav", "modality:lav"),
    ("erasure:0.5", "erasure:0.5"),
    ("erasure:0.9:random", "erasure:0.9:random"),
    ("mixed", "mixed:0.9"),
    ("mixed:0.5", "mixed:0.5"),
])
def test_parse_protocol_spec_round_trip(spec, canonical):
    p = parse_protocol(spec)
    assert p.spec == canonical
    assert parse_protocol(p.spec) == p
    assert parse_protocol(p) is p


@pytest.mark.parametrize("spec, kind, rate, subset, random, resample", [
    ("frame:0.3", "frame", 0.3, "lav", False, False),
    ("frame:0.3:resample", "frame", 0.3, "lav", False, True),
    ("erasure:0.9:random", "erasure", 0.9, "lav", True, False),
    ("erasure:0.5", "erasure", 0.5, "lav", False, False),
    ("modality:{l,v}", "modality", 0.0, "lv", False, False),
    ("mixed", "mixed", 0.9, "lav", False, False),
])
def test_parse_protocol_fields(spec, kind, rate, subset, random, resample):
    p = parse_protocol(spec)
    assert (p.kind, p.rate, p.random, p.resample) == (kind, pytest.approx(rate), random, resample)
    if kind == "modality":
        assert p.subset == subset


@pytest.mark.parametrize("spec, per_batch", [
    ("complete", False), ("frame:0.3", False), ("frame:0.3:resample", True), ("modality:la", False),
    ("erasure:0.5", False), ("erasure:0.9:random", True), ("mixed", True), ("mixed:0.5", True),
])
def test_per_batch_flag(spec, per_batch):
    assert parse_protocol(spec).per_batch is per_batch


def test_label_for_tables():
    assert parse_protocol("modality:la").label == "{l,a}"
    assert parse_protocol("frame:0.3").label == "frame:0.3"


@pytest.mark.parametrize("spec", [
    "", "frame", "frame:abc", "frame:0.5:random", "erasure:0.5:resample", "frame:0.5:resample:x",
    "modality", "modality:", "modality:x", "modality:ll", "modality:lavx", "mixed:0.5:1", "dropout:0.5",
    "completee", "frame:1.5", "frame:-0.1", "erasure:2", "erasure:-1:random", "mixed:1.01", "frame:nan",
])
def test_parse_protocol_rejects_unknown_or_out_of_range(spec):
    with pytest.raises(ValueError) as info:
        parse_protocol(spec)
    msg = str(info.value)
    assert "valid forms" in msg
    for form in ("complete", "frame:P", "frame:P:resample", "modality:", "erasure:R", "erasure:R:random", "mixed"):
        assert form in msg


# --------------------------------------------------------------------------------------------
# frame:P on a large draw
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_frame_rate_matches_p_among_valid_frames(big_split, p):
    masked = mask_split(big_split, f"frame:{p}", seed=0)
    for m in MODALITIES:
        valid = valid_of(big_split, m)
        keep = masked.keep[m]
        assert keep.shape == valid.shape and keep.dtype == bool
        dropped_frac = 1.0 - keep[valid].mean()
        # ~25k/20k/15k valid frames -> std of the fraction < 0.004
        assert abs(dropped_frac - p) < 0.015, (m, dropped_frac)
        assert abs(observed_rate(keep, big_split.lengths[m]) - p) < 0.015


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_frame_values_padding_and_kept_frames(big_split, p):
    masked = mask_split(big_split, f"frame:{p}", seed=0)
    for m in MODALITIES:
        x, y, keep = big_split.features(m), masked.features(m), masked.keep[m]
        valid = valid_of(big_split, m)
        # padding: never kept, never changed
        assert not keep[~valid].any()
        assert np.all(y[~valid] == PAD)
        # kept frames bit-for-bit identical
        assert np.array_equal(y[keep], x[keep])
        # dropped valid frames exactly zero vectors
        dropped = valid & ~keep
        assert dropped.any()
        assert np.all(y[dropped] == 0.0)
    # the source split is not modified in place
    assert np.all(big_split.text[valid_of(big_split, "text")] != 0.0)


def test_frame_zero_keeps_everything_and_one_drops_everything(big_split):
    m0 = mask_split(big_split, "frame:0", seed=0)
    m1 = mask_split(big_split, "frame:1", seed=0)
    for m in MODALITIES:
        valid = valid_of(big_split, m)
        assert np.array_equal(m0.keep[m], valid)
        assert np.array_equal(m0.features(m), big_split.features(m))
        assert not m1.keep[m].any()
        assert np.all(m1.features(m)[valid] == 0.0)
        assert np.all(m1.features(m)[~valid] == PAD)


def test_frame_one_with_special_tokens_keeps_only_first_and_last_text_frame(big_split):
    masked = mask_split(big_split, "frame:1", seed=0, protect_special_tokens=True)
    n, t = big_split.text.shape[:2]
    lengths = big_split.lengths["text"]
    expected = np.zeros((n, t), dtype=bool)
    expected[np.arange(n), 0] = True
    expected[np.arange(n), lengths - 1] = True
    assert np.array_equal(masked.keep["text"], expected)
    assert np.array_equal(masked.text[expected], big_split.text[expected])
    # audio / vision are not protected
    assert not masked.keep["audio"].any() and not masked.keep["vision"].any()


# --------------------------------------------------------------------------------------------
# Reproducibility and seed scope
# --------------------------------------------------------------------------------------------

def test_mask_split_same_seed_identical_different_seed_differs(big_split):
    a = mask_split(big_split, "frame:0.5", seed=3)
    b = mask_split(big_split, "frame:0.5", seed=3)
    c = mask_split(big_split, "frame:0.5", seed=4)
    for m in MODALITIES:
        assert np.array_equal(a.keep[m], b.keep[m])
        assert np.array_equal(a.features(m), b.features(m))
        assert not np.array_equal(a.keep[m], c.keep[m])
        # different seeds: the masks agree only as often as two independent p=0.5 draws (~50 %)
        valid = valid_of(big_split, m)
        agree = (a.keep[m] == c.keep[m])[valid].mean()
        assert 0.45 < agree < 0.55


def test_per_modality_masks_are_independent(aligned_split):
    masked = mask_split(aligned_split, "frame:0.5", seed=0)
    valid = valid_of(aligned_split, "text")
    for m1, m2 in (("text", "audio"), ("text", "vision"), ("audio", "vision")):
        assert np.array_equal(valid_of(aligned_split, m1), valid_of(aligned_split, m2))
        agree = (masked.keep[m1] == masked.keep[m2])[valid].mean()
        assert 0.4 < agree < 0.6, (m1, m2, agree)


def test_split_name_is_part_of_seed_scope_but_rate_is_shared(big_split):
    rates, masks = {}, {}
    for name in ("train", "valid", "test"):
        masked = mask_split(replace(big_split, name=name), "frame:0.3", seed=0)
        masks[name] = masked.keep
        rates[name] = [observed_rate(masked.keep[m], big_split.lengths[m]) for m in MODALITIES]
    for name in ("valid", "test"):
        for i, m in enumerate(MODALITIES):
            assert not np.array_equal(masks[name][m], masks["train"][m])
            assert abs(rates[name][i] - 0.3) < 0.015
            assert abs(rates[name][i] - rates["train"][i]) < 0.02


def test_protocol_is_part_of_seed_scope(big_split):
    # frame:0.5 and frame:0.5:resample are different protocols -> different fixed masks
    a = mask_split(big_split, "frame:0.5", seed=0)
    b = mask_split(big_split, parse_protocol("frame:0.5"), seed=0)
    c = mask_split(big_split, "erasure:0.5", seed=0)
    assert np.array_equal(a.keep["text"], b.keep["text"])
    assert not np.array_equal(a.keep["text"], c.keep["text"])


# --------------------------------------------------------------------------------------------
# Text special tokens and BERT ids
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["frame:0.5", "frame:0.9", "erasure:0.8", "mixed"])
def test_special_text_positions_always_kept(big_split, spec):
    masked = mask_split(big_split, spec, seed=0, protect_special_tokens=True)
    n = len(big_split)
    last = big_split.lengths["text"] - 1
    keep = masked.keep["text"]
    if spec == "mixed":  # whole-text-missing subsets may drop them; check frame-level samples only
        valid = valid_of(big_split, "text")
        partial = (keep & valid).any(1) & ~(keep == valid).all(1)
        rows = np.nonzero(partial)[0]
        assert len(rows) > 500
    else:
        rows = np.arange(n)
    assert keep[rows, 0].all()
    assert keep[rows, last[rows]].all()
    assert np.array_equal(masked.text[rows, 0], big_split.text[rows, 0])
    # the protection is not vacuous: other valid text frames are dropped
    if spec != "mixed":
        assert (1.0 - keep[valid_of(big_split, "text")].mean()) > 0.3


def test_text_bert_ids_masked_with_unk(bert_split):
    masked = mask_split(bert_split, "frame:0.6", seed=0, protect_special_tokens=True)
    orig, new = bert_split.text_bert, masked.text_bert
    assert new.shape == orig.shape
    lengths = bert_split.lengths["text"]
    n, _, t = orig.shape
    valid = np.arange(t)[None, :] < lengths[:, None]
    keep = masked.keep["text"]
    rows = np.arange(n)
    # CLS / SEP untouched
    assert np.all(new[rows, 0, 0] == CLS)
    assert np.all(new[rows, 0, lengths - 1] == SEP)
    # dropped tokens -> [UNK]; kept tokens unchanged
    dropped = valid & ~keep
    assert dropped.sum() > 0.4 * valid.sum()
    assert np.all(new[:, 0, :][dropped] == UNK_ID)
    assert np.array_equal(new[:, 0, :][keep], orig[:, 0, :][keep])
    # padding ids and the attention-mask / segment rows untouched
    assert np.all(new[:, 0, :][~valid] == 0)
    assert np.array_equal(new[:, 1:, :], orig[:, 1:, :])
    # the input split is not modified
    assert not np.any(orig[:, 0, :] == UNK_ID)


def test_text_bert_ids_when_text_modality_missing(bert_split):
    masked = mask_split(bert_split, "modality:av", seed=0)
    lengths = bert_split.lengths["text"]
    n, _, t = bert_split.text_bert.shape
    pos = np.arange(t)[None, :]
    inner = (pos > 0) & (pos < lengths[:, None] - 1)
    ids = masked.text_bert[:, 0, :]
    assert np.all(ids[inner] == UNK_ID)
    assert np.all(ids[np.arange(n), 0] == CLS) and np.all(ids[np.arange(n), lengths - 1] == SEP)
    assert np.all(ids[pos >= lengths[:, None]] == 0)


def test_mask_batch_masks_text_ids(bert_split):
    batch = full_batch(bert_split)
    out = mask_batch(batch, "frame:0.5", torch.Generator().manual_seed(0), protect_special_tokens=True)
    ids, orig = out.text_ids.numpy(), batch.text_ids.numpy()
    keep = out.keep["text"].numpy()
    valid = valid_of(bert_split, "text")
    dropped = valid & ~keep
    assert dropped.any()
    assert np.all(ids[:, 0, :][dropped] == UNK_ID)
    assert np.array_equal(ids[:, 0, :][keep], orig[:, 0, :][keep])
    assert np.array_equal(ids[:, 1:, :], orig[:, 1:, :])
    assert np.array_equal(orig, bert_split.text_bert)  # input batch untouched


# --------------------------------------------------------------------------------------------
# modality:<subset>
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("subset", SUBSETS)
def test_modality_subsets(big_split, subset):
    assert len(SUBSETS) == 7
    masked = mask_split(big_split, f"modality:{subset}", seed=0)
    for m in MODALITIES:
        if LETTER[m] in subset:
            assert np.array_equal(masked.features(m), big_split.features(m))
            assert np.array_equal(masked.keep[m], valid_of(big_split, m))
        else:
            assert masked.features(m).shape == big_split.features(m).shape
            assert np.all(masked.features(m) == 0.0)
            assert not masked.keep[m].any()


@pytest.mark.parametrize("subset", ["l", "av", "lav"])
def test_modality_subsets_in_batches(big_split, subset):
    batch = full_batch(big_split)
    out = mask_batch(batch, f"modality:{subset}", torch.Generator().manual_seed(0))
    for m in MODALITIES:
        if LETTER[m] in subset:
            assert torch.equal(out.features[m], batch.features[m])
            assert torch.equal(out.keep[m], torch.from_numpy(valid_of(big_split, m)))
        else:
            assert torch.count_nonzero(out.features[m]) == 0
            assert not out.keep[m].any()


# --------------------------------------------------------------------------------------------
# erasure
# --------------------------------------------------------------------------------------------

def test_erasure_random_rates(long_split):
    r_max = 0.6
    out = mask_batch(full_batch(long_split), f"erasure:{r_max}:random", torch.Generator().manual_seed(0))
    intact = {}
    for m in MODALITIES:
        keep = out.keep[m].numpy()
        valid = valid_of(long_split, m)
        rates = per_sample_drop_rate(keep, valid)
        intact[m] = rates == 0
        # half the samples have r = 0 (plus ~0.5 % with a tiny r that dropped nothing)
        assert abs(intact[m].mean() - 0.5) < 0.04, (m, intact[m].mean())
        others = rates[~intact[m]]
        # r ~ U(0, R): observed rates stay within [0, R] up to binomial noise (std <= 0.05 here)
        assert others.min() >= 0.0
        assert np.mean(others > r_max + 0.1) < 0.01
        assert abs(others.mean() - r_max / 2) < 0.03, (m, others.mean())
        # roughly uniform: about half of them below R/2
        assert abs(np.mean(others < r_max / 2) - 0.5) < 0.06
        # dropped frames are zero, padding untouched
        x = out.features[m].numpy()
        assert np.all(x[valid & ~keep] == 0.0) and np.all(x[~valid] == PAD)
    # the zero-rate choice is independent across modalities
    for m1, m2 in (("text", "audio"), ("text", "vision"), ("audio", "vision")):
        both = np.mean(intact[m1] & intact[m2])
        assert abs(both - 0.25) < 0.035, (m1, m2, both)


@pytest.mark.parametrize("rate", [0.3, 0.7])
def test_erasure_fixed_rate(long_split, rate):
    masked = mask_split(long_split, f"erasure:{rate}", seed=0)
    out = mask_batch(full_batch(long_split), f"erasure:{rate}", torch.Generator().manual_seed(0))
    for m in MODALITIES:
        valid = valid_of(long_split, m)
        assert abs(observed_rate(masked.keep[m], long_split.lengths[m]) - rate) < 0.01
        assert abs(observed_rate(out.keep[m], out.lengths[m]) - rate) < 0.01
        # one rate for every sample: no half-intact population, per-sample rates concentrated at R
        rates = per_sample_drop_rate(masked.keep[m], valid)
        assert np.mean(rates == 0) < 0.01
        assert np.mean(np.abs(rates - rate) < 0.15) > 0.97


# --------------------------------------------------------------------------------------------
# mixed
# --------------------------------------------------------------------------------------------

def test_mixed_protocol(long_split):
    out = mask_batch(full_batch(long_split), "mixed", torch.Generator().manual_seed(0))
    n = len(long_split)
    full, none = {}, {}
    for m in MODALITIES:
        keep, valid = out.keep[m].numpy(), valid_of(long_split, m)
        full[m] = (keep == valid).all(1)
        none[m] = ~keep.any(1)
    whole = np.ones(n, dtype=bool)
    for m in MODALITIES:
        whole &= full[m] | none[m]
    assert abs(whole.mean() - 0.5) < 0.04, whole.mean()
    # the seven subsets all occur, each for ~1/14 of the samples; never "nothing present"
    present = ["".join(LETTER[m] for m in MODALITIES if full[m][i]) for i in np.nonzero(whole)[0]]
    counts = {s: present.count(s) for s in set(present)}
    assert set(counts) == set(SUBSETS)
    for s in SUBSETS:
        assert abs(counts[s] / n - 1 / 14) < 0.025, (s, counts[s])
    # the other half: intra-modality missingness with r ~ U(0, 0.9)
    frame_rows = ~whole
    rates = np.concatenate([
        per_sample_drop_rate(out.keep[m].numpy(), valid_of(long_split, m))[frame_rows] for m in MODALITIES])
    assert abs(rates.mean() - 0.45) < 0.04
    assert np.mean(rates > 0.9 + 0.1) < 0.01
    # features follow the masks
    for m in MODALITIES:
        keep, valid = out.keep[m].numpy(), valid_of(long_split, m)
        x = out.features[m].numpy()
        assert np.all(x[valid & ~keep] == 0.0)
        assert np.array_equal(x[keep], long_split.features(m)[keep])


def test_mixed_rate_parameter(long_split):
    out = mask_batch(full_batch(long_split), "mixed:0.2", torch.Generator().manual_seed(1))
    valid = valid_of(long_split, "text")
    keep = out.keep["text"].numpy()
    rates = per_sample_drop_rate(keep, valid)
    partial = (rates > 0) & (rates < 1)
    assert partial.mean() > 0.35
    assert abs(rates[partial].mean() - 0.1) < 0.03
    assert np.mean(rates[partial] > 0.3) < 0.01


def _draw_kinds(split, out):
    """Per sample: is some modality absent entirely, and is some present modality partly dropped."""
    absent = np.zeros(len(split), dtype=bool)
    partial = np.zeros(len(split), dtype=bool)
    for m in MODALITIES:
        keep, valid = out.keep[m].numpy(), valid_of(split, m)
        absent |= ~keep.any(1)
        partial |= keep.any(1) & ~(keep == valid).all(1)
    return absent, partial


def test_mixed_combined_adds_subsets_with_frame_dropping(long_split):
    """``mixed`` never drops frames inside a subset; ``mixed:P:combined`` does for ~1/3 of samples,
    and keeps the frame-only and subset-only draws at ~1/3 each."""
    for spec, both_share in (("mixed:0.9", 0.0), ("mixed:0.9:combined", 1 / 3)):
        out = mask_batch(full_batch(long_split), spec, torch.Generator().manual_seed(2))
        absent, partial = _draw_kinds(long_split, out)
        both = absent & partial
        # a subset with frame drops: all three kinds are possible only in the combined draw
        assert abs(both.mean() - both_share * 6 / 7 * 0.99) < 0.04, (spec, both.mean())
        assert abs((partial & ~absent).mean() - (1 / 2 if both_share == 0 else 1 / 3 + 1 / 3 / 7)) < 0.04
    assert parse_protocol("mixed:0.5:combined").spec == "mixed:0.5:combined"


def test_protocol_summary_matches_the_definitions(long_split):
    from msa_lib.missing import protocol_summary

    complete = protocol_summary(long_split, "complete")
    assert complete == {"P(view complete)": 1.0, "P(no text)": 0.0, "mean drop rate": 0.0}
    frame = protocol_summary(long_split, "frame:0.3")
    assert abs(frame["mean drop rate"] - 0.3) < 0.01 and frame["P(view complete)"] == 0.0
    mixed = protocol_summary(long_split, "mixed")
    # half the views are subsets: 1/7 of them complete, 3/7 without text; frame halves drop ~U(0, .9)
    assert abs(mixed["P(view complete)"] - 0.5 / 7) < 0.02
    assert abs(mixed["P(no text)"] - 0.5 * 3 / 7) < 0.03
    # frame views drop E[r] = 0.45; a subset view drops each modality with probability 3/7
    assert abs(mixed["mean drop rate"] - (0.5 * 0.45 + 0.5 * 3 / 7)) < 0.03


# --------------------------------------------------------------------------------------------
# mask_batch
# --------------------------------------------------------------------------------------------

def test_mask_batch_complete_fresh_and_reproducible(big_split):
    batch = full_batch(big_split)
    originals = {m: batch.features[m].clone() for m in MODALITIES}
    g = torch.Generator().manual_seed(11)
    a = mask_batch(batch, "frame:0.5:resample", g)
    b = mask_batch(batch, "frame:0.5:resample", g)
    for m in MODALITIES:
        valid = torch.from_numpy(valid_of(big_split, m))
        for out in (a, b):
            assert torch.equal(out.complete[m], originals[m])
            dropped = valid & ~out.keep[m]
            assert dropped.any()
            assert torch.all(out.features[m][dropped] == 0)
            assert torch.equal(out.features[m][out.keep[m]], originals[m][out.keep[m]])
            assert not out.keep[m][~valid].any()
        # a fresh draw each call from the same generator
        assert not torch.equal(a.keep[m], b.keep[m])
        # input batch untouched
        assert torch.equal(batch.features[m], originals[m])
    # the same generator seed reproduces the same masks
    c = mask_batch(batch, "frame:0.5:resample", torch.Generator().manual_seed(11))
    for m in MODALITIES:
        assert torch.equal(c.keep[m], a.keep[m])
        assert torch.equal(c.features[m], a.features[m])
    # labels and lengths are carried over
    assert torch.equal(a.labels, batch.labels)
    assert all(torch.equal(a.lengths[m], batch.lengths[m]) for m in MODALITIES)


def test_mask_batch_remasks_from_complete(big_split):
    batch = full_batch(big_split)
    g = torch.Generator().manual_seed(0)
    once = mask_batch(batch, "frame:0.5", g)
    twice = mask_batch(once, "frame:0.5", g)
    for m in MODALITIES:
        # complete keeps the originals, and masking starts from them (rates do not compound)
        assert torch.equal(twice.complete[m], batch.features[m])
        assert abs(observed_rate(twice.keep[m], twice.lengths[m]) - 0.5) < 0.02
        kept = twice.keep[m]
        assert torch.equal(twice.features[m][kept], batch.features[m][kept])


def test_mask_batch_complete_protocol(big_split):
    batch = full_batch(big_split)
    out = mask_batch(batch, "complete", torch.Generator().manual_seed(0))
    for m in MODALITIES:
        assert torch.equal(out.features[m], batch.features[m])
        assert torch.equal(out.keep[m], torch.from_numpy(valid_of(big_split, m)))


# --------------------------------------------------------------------------------------------
# observed_rate / stable_seed
# --------------------------------------------------------------------------------------------

def test_observed_rate_ignores_padding():
    keep = np.array([[True, False, False, False],
                     [True, True, False, False],
                     [False, False, False, False]])
    lengths = np.array([2, 3, 0])
    # valid frames: row 0 -> 2 (1 dropped), row 1 -> 3 (1 dropped), row 2 -> none => 2 / 5
    assert observed_rate(keep, lengths) == pytest.approx(0.4)
    assert observed_rate(torch.from_numpy(keep), torch.from_numpy(lengths)) == pytest.approx(0.4)
    # all frames of row 1 kept, padding False: nothing dropped
    assert observed_rate(np.array([[True, True, False]]), np.array([2])) == 0.0
    assert np.isnan(observed_rate(np.zeros((2, 3), dtype=bool), np.array([0, 0])))


def test_stable_seed_pinned_and_distinct():
    # value computed once (sha256 of "0|frame:0.5|train|text", first 8 bytes little-endian, 63 bits);
    # pinning it guarantees masks are identical across processes and machines.
    assert stable_seed(0, "frame:0.5", "train", "text") == 9095047589570359123
    assert stable_seed(0, "frame:0.5", "train", "text") == stable_seed(0, "frame:0.5", "train", "text")
    seeds = {stable_seed(0, "frame:0.5", "train", m) for m in MODALITIES}
    seeds |= {stable_seed(1, "frame:0.5", "train", "text"), stable_seed(0, "frame:0.5", "test", "text")}
    assert len(seeds) == 5
    assert all(0 <= s < 2 ** 63 for s in seeds)


def test_modality_subset_combined_with_frame_rate(big_split):
    """UMDF Fig. 6 condition: only language, and half of its frames dropped."""
    p = parse_protocol("modality:{l}+frame:0.5")
    assert p.spec == "modality:l+frame:0.5" and parse_protocol(p.spec) == p
    masked = mask_split(big_split, p, seed=3)
    valid = valid_of(big_split, "text")
    dropped = valid & ~masked.keep["text"]
    assert abs(dropped.sum() / valid.sum() - 0.5) < 0.02
    assert np.all(masked.text[dropped] == 0)
    assert np.array_equal(masked.text[masked.keep["text"]], big_split.text[masked.keep["text"]])
    for m in ("audio", "vision"):
        assert not masked.keep[m].any() and np.all(masked.features(m) == 0)
    with pytest.raises(ValueError, match="valid forms"):
        parse_protocol("modality:l+erasure:0.5")

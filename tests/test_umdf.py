"""Tests for UMDF (msa_lib.models.umdf). Its losses (msa_lib.losses) are tested in test_losses.py."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from msa_lib.models.base import Batch
from msa_lib.chapters.umdf import SETTINGS
from msa_lib.models.umdf import UMDF, AttentionBlock, UMDFConfig

MODS = ("text", "audio", "vision")
DIMS = {
    "mosi": {"text": 768, "audio": 5, "vision": 20},
    "mosei": {"text": 768, "audio": 74, "vision": 35},
    "iemocap": {"text": 300, "audio": 74, "vision": 35},
}
N_CLASSES = {"mosi": None, "mosei": None, "iemocap": 4}
SMALL = UMDFConfig(d=12, n_heads=2, n_layers=2, dropout=0.0)


pytestmark = pytest.mark.usefixtures("single_thread")


def make_batch(dims: dict[str, int], n_classes: int | None = None, B: int = 6, T: int = 8,
               seed: int = 0, with_views: bool = True, p_drop: float = 0.3) -> Batch:
    """Aligned post-padded batch; views are two independently frame-masked copies."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    lengths[0] = T
    valid = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    complete = {m: torch.randn(B, T, d, generator=g) * valid.unsqueeze(-1) for m, d in dims.items()}

    def view() -> Batch:
        keep = {m: valid & (torch.rand(B, T, generator=g) > p_drop) for m in MODS}
        feats = {m: complete[m] * keep[m].unsqueeze(-1) for m in MODS}
        return Batch(features=feats, lengths={m: lengths.clone() for m in MODS}, keep=keep)

    labels = torch.randn(B, generator=g)
    class_labels = torch.randint(0, 2, (B, n_classes), generator=g) if n_classes else None
    views = [view(), view()] if with_views else None
    return Batch(features=complete, lengths={m: lengths.clone() for m in MODS},
                 keep={m: valid.clone() for m in MODS}, labels=labels, class_labels=class_labels,
                 complete=complete, views=views)


def task_loss(model: UMDF, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
    if model.n_classes is None:
        return F.mse_loss(pred, batch.labels)
    return F.cross_entropy(pred.reshape(-1, 2), batch.class_labels.reshape(-1))


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["mosi", "mosei", "iemocap"])
def test_shapes_through_every_module(dataset: str) -> None:
    torch.manual_seed(0)
    # the paper's d and heads for this dataset, one layer for speed
    config = UMDFConfig(d=SETTINGS[dataset]["d"], n_heads=SETTINGS[dataset]["n_heads"], n_layers=1, dropout=0.0)
    dims, n_classes = DIMS[dataset], N_CLASSES[dataset]
    model = UMDF(dims, config, n_classes=n_classes)
    B, T, d = 4, 6, config.d
    batch = make_batch(dims, n_classes, B=B, T=T)

    z, h = model.encode(batch.features, batch.lengths)
    assert set(z) == set(MODS)
    for m in MODS:
        assert z[m].shape == (B, T, d)
    assert h.shape == (B, T, 3 * d)
    h_e, e_len = model.integrate(h, h, batch.lengths["text"])
    assert h_e.shape == (B, T, 3 * d) and torch.equal(e_len, batch.lengths["text"])

    out = model(batch)
    expected = (B,) if n_classes is None else (B, 4, 2)
    assert out.prediction.shape == expected
    assert out.representation.shape == (B, 3 * d)
    assert set(out.losses) == {"fea", "logits"}
    for v in out.losses.values():
        assert v.dim() == 0 and torch.isfinite(v) and v >= 0
    assert torch.isfinite(out.prediction).all()


def test_head_validation() -> None:
    with pytest.raises(ValueError, match="divide"):
        UMDFConfig(d=40, n_heads=6)


# ---------------------------------------------------------------------------------------------
# ablation switches
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("switch, key", [("use_fea_distill", "fea"), ("use_logit_distill", "logits")])
@pytest.mark.parametrize("dataset", ["mosi", "iemocap"])
def test_distillation_switch_equals_zero_weight(switch: str, key: str, dataset: str) -> None:
    dims, n_classes = DIMS[dataset], N_CLASSES[dataset]
    other = "logits" if key == "fea" else "fea"
    lam_other = 0.7
    torch.manual_seed(0)
    full = UMDF(dims, replace(SMALL, n_layers=1), n_classes=n_classes)
    off = UMDF(dims, replace(SMALL, n_layers=1, **{switch: False}), n_classes=n_classes)
    missing, unexpected = off.load_state_dict(full.state_dict(), strict=False)
    assert not missing  # every parameter of the ablated model comes from the full one
    batch = make_batch(dims, n_classes)

    out_off = off(batch)
    assert key not in out_off.losses and other in out_off.losses
    (task_loss(off, out_off.prediction, batch) + lam_other * out_off.losses[other]).backward()
    g_off = grads(off)

    def full_grads(lam: float) -> dict[str, torch.Tensor]:
        full.zero_grad(set_to_none=True)
        out = full(batch)
        assert set(out.losses) == {"fea", "logits"}
        (task_loss(full, out.prediction, batch) + lam * out.losses[key] + lam_other * out.losses[other]).backward()
        return grads(full)

    g_zero = full_grads(0.0)
    for name, g in g_off.items():
        assert torch.allclose(g, g_zero[name], atol=1e-6, rtol=1e-5), name
    for name in unexpected:  # parameters only the full model has get no gradient at weight 0
        assert torch.count_nonzero(g_zero[name]) == 0, name
    g_one = full_grads(1.0)  # ... and the term does contribute when weighted
    assert any(not torch.allclose(g, g_one[n], atol=1e-6, rtol=1e-5) for n, g in g_off.items())


def test_logit_head_is_separate_or_shared() -> None:
    dims = DIMS["mosi"]
    torch.manual_seed(0)
    batch = make_batch(dims)
    own = UMDF(dims, replace(SMALL, share_logit_head=False))
    own(batch).losses["logits"].backward()
    assert torch.count_nonzero(own.logit_head.weight.grad) > 0  # f_y trained by L_logits
    assert all(p.grad is None for p in own.head.parameters())  # task head untouched by L_logits
    shared = UMDF(dims, replace(SMALL, share_logit_head=True))
    assert "logit_head" not in dict(shared.named_children())
    shared(batch).losses["logits"].backward()
    assert torch.count_nonzero(shared.head[-1].weight.grad) > 0
    assert "logit_head" not in dict(UMDF(dims, replace(SMALL, use_logit_distill=False)).named_children())


def _mha_key_lengths(model: UMDF, batch: Batch) -> set[int]:
    """The key lengths of every MCIM attention (an AttentionBlock's first argument is its source)."""
    seen: set[int] = set()
    hooks = [mod.register_forward_hook(lambda _m, args, _o: seen.add(int(args[0].shape[1])))
             for mod in model.mcim.layers.modules() if isinstance(mod, AttentionBlock)]
    with torch.no_grad():
        model(batch)
    for hook in hooks:
        hook.remove()
    return seen


def test_self_attention_ablation_changes_computation() -> None:
    dims = DIMS["mosi"]
    torch.manual_seed(0)
    cross = UMDF(dims, SMALL).eval()
    selfm = UMDF(dims, replace(SMALL, mcim="self")).eval()
    selfm.load_state_dict(cross.state_dict())  # same weights, different wiring
    T = 8
    batch = make_batch(dims, T=T, with_views=False)
    assert _mha_key_lengths(cross, batch) == {3 * T, 2 * T}
    assert _mha_key_lengths(selfm, batch) == {T}
    with torch.no_grad():
        assert not torch.allclose(cross(batch).prediction, selfm(batch).prediction, atol=1e-5)


def test_dfim_ablation_has_no_dfim_and_changes_output() -> None:
    dims = DIMS["mosi"]
    torch.manual_seed(0)
    with_dfim = UMDF(dims, SMALL).eval()
    no_dfim = UMDF(dims, replace(SMALL, dfim=False)).eval()
    assert "dfim" in dict(with_dfim.named_children())
    assert "dfim" not in dict(no_dfim.named_children())
    assert not any(n.startswith("dfim.") for n, _ in no_dfim.named_parameters())
    assert no_dfim.concat_proj.in_features == 6 * SMALL.d and no_dfim.concat_proj.out_features == 3 * SMALL.d
    no_dfim.load_state_dict(with_dfim.state_dict(), strict=False)  # share everything but DFIM
    batch = make_batch(dims, with_views=False)
    with torch.no_grad():
        assert not torch.allclose(with_dfim(batch).prediction, no_dfim(batch).prediction, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# inference, masking, alignment, determinism
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["mosi", "iemocap"])
def test_inference_clones_the_sample(dataset: str) -> None:
    dims, n_classes = DIMS[dataset], N_CLASSES[dataset]
    torch.manual_seed(0)
    model = UMDF(dims, replace(SMALL, dropout=0.1), n_classes=n_classes).eval()
    batch = make_batch(dims, n_classes, with_views=False)
    single = Batch(features=batch.features, lengths=batch.lengths, keep=batch.keep)
    twin = Batch(features=batch.features, lengths=batch.lengths, keep=batch.keep, views=[single, single])
    with torch.no_grad():
        out = model(batch)
        out_twin = model(twin)
    assert out.losses == {}
    assert set(out_twin.losses) == {"fea", "logits"}
    assert torch.allclose(out.prediction, out_twin.prediction, atol=1e-6)
    assert torch.allclose(out.representation, out_twin.representation, atol=1e-6)
    assert out_twin.losses["fea"].item() <= 1e-6 and out_twin.losses["logits"].item() <= 1e-6


def test_padding_content_is_ignored_and_missing_modality_changes_output() -> None:
    dims = DIMS["mosi"]
    torch.manual_seed(0)
    model = UMDF(dims, SMALL).eval()
    batch = make_batch(dims, with_views=False)
    T = batch.features["text"].shape[1]
    pad = torch.arange(T).unsqueeze(0) >= batch.lengths["text"].unsqueeze(1)
    assert pad.any()
    noisy = {m: x + 5.0 * torch.randn_like(x) * pad.unsqueeze(-1) for m, x in batch.features.items()}
    with torch.no_grad():
        ref = model(batch).prediction
        assert torch.allclose(ref, model(replace(batch, features=noisy)).prediction, atol=1e-5)
        # a whole modality missing (zeros, length 0) must not produce NaN (lengths clamped to >= 1)
        gone = dict(batch.features, audio=torch.zeros_like(batch.features["audio"]))
        lengths = dict(batch.lengths, audio=torch.zeros_like(batch.lengths["audio"]))
        out = model(replace(batch, features=gone, lengths=lengths))
    assert torch.isfinite(out.prediction).all()
    assert not torch.allclose(out.prediction, ref)


@pytest.mark.parametrize("weighting", ["softmax", "scaled", "residual", "pooled"])
def test_post_padding_matches_the_unpadded_sample(weighting: str) -> None:
    # A post-padded sample must give the same output as the same sample cut to its length: this
    # checks every padding mask (attention keys, DFIM softmax) and the "last valid element".
    dims = DIMS["iemocap"]
    torch.manual_seed(0)
    model = UMDF(dims, replace(SMALL, dfim_weighting=weighting), n_classes=4).eval()
    batch = make_batch(dims, 4, with_views=False)
    lengths = batch.lengths["text"]
    i = int(torch.argmin(lengths))
    n = int(lengths[i])
    assert n < batch.features["text"].shape[1]
    cut = Batch(features={m: x[i:i + 1, :n] for m, x in batch.features.items()},
                lengths={m: v[i:i + 1] for m, v in batch.lengths.items()},
                keep={m: v[i:i + 1, :n] for m, v in batch.keep.items()})
    with torch.no_grad():
        full = model(batch)
        alone = model(cut)
    assert torch.allclose(full.prediction[i], alone.prediction[0], atol=1e-5)
    assert torch.allclose(full.representation[i], alone.representation[0], atol=1e-5)


@pytest.mark.parametrize("mcim", ["crossmodal", "self"])
@pytest.mark.parametrize("gone", ["text", "audio"])
def test_zero_length_modality_gives_finite_output(mcim: str, gone: str) -> None:
    # lengths are clamped to >= 1, so no attention row ever sees only masked keys
    dims = DIMS["mosi"]
    torch.manual_seed(0)
    model = UMDF(dims, replace(SMALL, mcim=mcim)).train()
    batch = make_batch(dims)
    views = [replace(v, features=dict(v.features, **{gone: torch.zeros_like(v.features[gone])}),
                     lengths=dict(v.lengths, **{gone: torch.zeros_like(v.lengths[gone])}))
             for v in batch.views]
    out = model(replace(batch, views=views))
    assert torch.isfinite(out.prediction).all()
    assert all(torch.isfinite(v) for v in out.losses.values())
    (out.prediction.sum() + sum(out.losses.values())).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_unaligned_input_raises_clear_error() -> None:
    torch.manual_seed(0)
    model = UMDF(DIMS["mosi"], SMALL)
    batch = make_batch(DIMS["mosi"], with_views=False)
    feats = dict(batch.features, audio=torch.randn(6, 11, 5), vision=torch.randn(6, 13, 20))
    with pytest.raises(ValueError, match="UMDF needs aligned sequences.*text T=8, audio T=11, vision T=13"):
        model(replace(batch, features=feats))


def test_same_seed_gives_identical_outputs_and_grads() -> None:
    dims, n_classes = DIMS["iemocap"], N_CLASSES["iemocap"]
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        def run() -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
            torch.manual_seed(123)
            model = UMDF(dims, replace(SMALL, dropout=0.1), n_classes=n_classes).train()
            batch = make_batch(dims, n_classes)
            out = model(batch)
            total = task_loss(model, out.prediction, batch) + out.losses["fea"] + out.losses["logits"]
            total.backward()
            return out.prediction.detach(), {k: v.detach() for k, v in out.losses.items()}, grads(model)

        pred1, loss1, g1 = run()
        pred2, loss2, g2 = run()
    finally:
        torch.use_deterministic_algorithms(previous)
    assert torch.equal(pred1, pred2)
    assert all(torch.equal(loss1[k], loss2[k]) for k in loss1)
    assert g1.keys() == g2.keys() and all(torch.equal(g1[k], g2[k]) for k in g1)
    assert any(torch.count_nonzero(g) > 0 for g in g1.values())


# ---------------------------------------------------------------------------------------------
# The readings the paper leaves open (DFIM weighting, L_fea, f_y dropout, representation)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("weighting", ["softmax", "scaled", "residual", "pooled"])
def test_dfim_weightings_against_uniform_scores(weighting: str) -> None:
    """With zero score weights M_k is uniform over the valid frames (1/T_valid): each reading has a
    closed form."""
    from msa_lib.models.umdf import DFIM

    dfim = DFIM(6, weighting)
    nn.init.zeros_(dfim.score_a.weight), nn.init.zeros_(dfim.score_a.bias)
    h = torch.randn(2, 5, 6)
    lengths = torch.tensor([5, 3])
    pad = torch.arange(5)[None, :] >= lengths[:, None]
    got = dfim._enhance(h, dfim.score_a, pad)
    valid = (~pad).unsqueeze(-1)
    t = lengths.view(2, 1, 1).float()
    expected = {"softmax": h * valid / t, "scaled": h * valid, "residual": (h + h / t) * valid,
                "pooled": (h * valid).sum(1, keepdim=True) / t}[weighting]
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-6)


def test_at_length_one_the_dfim_weightings_coincide_but_residual_doubles() -> None:
    """Sequences of length 1 (the utterance-level MOSI features): M_k = 1 whatever the scores, so
    softmax, scaled and pooled give H~_k = H_k, and residual 2 H_k (the real-data page says so)."""
    from msa_lib.models.umdf import DFIM

    torch.manual_seed(0)
    h, pad = torch.randn(4, 1, 6), torch.zeros(4, 1, dtype=torch.bool)
    enhanced = {}
    for weighting in ("softmax", "scaled", "pooled", "residual"):
        dfim = DFIM(6, weighting)
        enhanced[weighting] = dfim._enhance(h, dfim.score_a, pad)  # random score weights
    for weighting in ("softmax", "scaled", "pooled"):
        assert torch.allclose(enhanced[weighting], h, atol=1e-6), weighting
    assert torch.allclose(enhanced["residual"], 2 * h, atol=1e-6)


def test_pooled_dfim_reads_one_vector() -> None:
    model = UMDF(DIMS["mosi"], replace(SMALL, dfim_weighting="pooled")).eval()
    batch = make_batch(DIMS["mosi"], with_views=False)
    h = torch.randn(batch.size, 8, 3 * SMALL.d)
    h_e, lengths = model.integrate(h, h, batch.lengths["text"])
    assert h_e.shape == (batch.size, 1, 3 * SMALL.d) and lengths.tolist() == [1] * batch.size
    assert model(batch).prediction.shape == (batch.size,)


def test_fea_reading_switch_uses_the_paired_loss() -> None:
    from msa_lib.losses import mmd, paired_mmd

    batch = make_batch(DIMS["mosi"])
    values = {}
    for reading in ("batch", "paired"):
        torch.manual_seed(0)
        model = UMDF(DIMS["mosi"], replace(SMALL, fea_reading=reading)).eval()
        with torch.no_grad():
            values[reading] = float(model(batch).losses["fea"])
    # the two readings give different numbers on the same weights and views
    torch.manual_seed(0)
    model = UMDF(DIMS["mosi"], SMALL).eval()
    feats = {m: torch.cat([v.features[m] for v in batch.views]) for m in MODS}
    lens = {m: torch.cat([v.lengths[m] for v in batch.views]) for m in MODS}
    from msa_lib.core import last_valid
    with torch.no_grad():
        _, h = model.mcim(feats, lens, lens["text"])
    last = last_valid(h, lens["text"])
    a, b = last[:batch.size], last[batch.size:]
    assert values["batch"] == pytest.approx(float(mmd(a, b)), rel=1e-5)
    assert values["paired"] == pytest.approx(float(paired_mmd(a, b)), rel=1e-5)


@pytest.mark.parametrize("logits_dropout", [False, True])
def test_f_y_dropout_switch(logits_dropout: bool) -> None:
    model = UMDF(DIMS["mosi"], replace(SMALL, dropout=0.5, logits_dropout=logits_dropout)).train()
    h = torch.randn(64, 3 * SMALL.d)
    same = torch.equal(model.f_y(h), model.f_y(h))
    assert same != logits_dropout


def test_representation_is_h_k_and_h_bar_is_named() -> None:
    from msa_lib.core import last_valid

    model = UMDF(DIMS["mosi"], SMALL).eval()
    batch = make_batch(DIMS["mosi"], with_views=False)
    out = model(batch)
    _, h = model.mcim(batch.features, batch.lengths, batch.lengths["text"])
    assert torch.allclose(out.representation, last_valid(h, batch.lengths["text"]), atol=1e-6)
    assert out.representations["h_bar"].shape == out.representation.shape
    assert not torch.allclose(out.representations["h_bar"], out.representation)


@pytest.mark.parametrize("field, value", [("dfim_weighting", "mean"), ("fea_reading", "pairs"), ("mcim", "x")])
def test_unknown_reading_is_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        UMDFConfig(**{field: value})

"""The speed rewrites keep the math ("Scale and speed"; ``benchmarks/throughput.py`` measures them).

* UMDF's :class:`~msa_lib.models.umdf.AttentionBlock` runs ``scaled_dot_product_attention`` on the
  parameters of its ``nn.MultiheadAttention``; the oracle is that module itself (:func:`mha_forward`,
  the block's first implementation) with the same parameters: outputs and gradients agree, and
  in training the dropout masks are the same, so a UMDF training step gives the same loss.
* ``TrainConfig.fused_adam``: off builds exactly the former optimizers, on builds fused Adams whose
  parameters stay within 1e-5 of the unfused ones.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from msa_lib.data import make_synthetic
from msa_lib.models import MODELS, build_model
from msa_lib.models.umdf import AttentionBlock
from msa_lib.train import SplitTensors, TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("single_thread")

D = 40  # UMDF's paper width: 10 heads of size 4 on MOSI


def mha_forward(self: AttentionBlock, source: Tensor, target: Tensor, source_pad: Tensor) -> Tensor:
    """The oracle: ``AttentionBlock.forward`` as first written, through ``nn.MultiheadAttention``."""
    x_st = self.attn(target, source, source, key_padding_mask=source_pad, need_weights=False)[0]
    return self.norm(target + self.drop(x_st))


def heads_split_wrong(self: AttentionBlock, source: Tensor, target: Tensor, source_pad: Tensor) -> Tensor:
    """A broken rewrite the comparison must catch: (B, T, d) viewed as (B, h, T, d_k) instead of
    split per frame into heads."""
    attn, (b, t, d), s = self.attn, target.shape, source.shape[1]
    h = attn.num_heads
    q, k, v = (F.linear(x, w, bias).view(b, h, n, d // h) for x, w, bias, n in zip(
        (target, source, source), attn.in_proj_weight.chunk(3), attn.in_proj_bias.chunk(3), (t, s, s)))
    heads = F.scaled_dot_product_attention(q, k, v, attn_mask=~source_pad[:, None, None, :])
    return self.norm(target + self.drop(attn.out_proj(heads.transpose(1, 2).reshape(b, t, d))))


def block(heads: int, dropout: float = 0.0, attn_dropout: float = 0.0) -> AttentionBlock:
    """A block whose every parameter matters (random biases and LayerNorm affine, not 0 / 1)."""
    torch.manual_seed(0)
    out = AttentionBlock(D, heads, dropout, attn_dropout)
    with torch.no_grad():
        for p in out.parameters():
            p.normal_(0.0, 0.3)
    return out


def inputs(b: int = 5, t: int = 7, s: int = 11) -> tuple[Tensor, Tensor, Tensor]:
    """source (B, S, d), target (B, T, d) and a key padding mask that differs per sample (one
    sample with a single valid key, one with none padded)."""
    g = torch.Generator().manual_seed(1)
    source = torch.randn(b, s, D, generator=g, requires_grad=True)
    target = torch.randn(b, t, D, generator=g, requires_grad=True)
    lengths = torch.tensor([s, 1, 5, 9, 3])[:b]
    return source, target, torch.arange(s)[None, :] >= lengths[:, None]


def run(blk: AttentionBlock, forward, seed: int = 0) -> tuple[Tensor, list[Tensor]]:
    """Output of ``forward`` and the gradients of a fixed random projection of it with respect to
    both inputs and every parameter."""
    source, target, pad = inputs()
    blk.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = forward(blk, source, target, pad)
    cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    grads = torch.autograd.grad(out, [source, target, *blk.parameters()], cotangent)
    return out.detach(), list(grads)


def gap(blk: AttentionBlock, forward, seed: int = 0) -> float:
    """Largest |difference| between ``forward`` and the oracle, over the output and every gradient."""
    (out, grads), (ref, ref_grads) = run(blk, forward, seed), run(blk, mha_forward, seed)
    return max((a - b).abs().max().item() for a, b in zip([out, *grads], [ref, *ref_grads]))


@pytest.mark.parametrize("heads", [1, 2, 10])
def test_sdpa_block_equals_multihead_attention(heads: int) -> None:
    blk = block(heads).eval()
    assert gap(blk, AttentionBlock.forward) < 1e-5


def test_the_comparison_catches_a_wrong_head_split() -> None:
    blk = block(10).eval()
    assert gap(blk, heads_split_wrong) > 1e-2


def test_sdpa_block_draws_the_same_dropout_masks_in_training() -> None:
    """Dropout on the attention weights and on the residual branch: same seed, the same output bit
    for bit (same masks: the output is laid out in memory as nn.MultiheadAttention lays it out).
    The gradients agree to 1e-5, not bitwise: with attention dropout PyTorch runs its explicit
    attention, whose backward sees differently strided q, k, v."""
    blk = block(10, dropout=0.2, attn_dropout=0.3).train()
    assert torch.equal(run(blk, AttentionBlock.forward, seed=5)[0], run(blk, mha_forward, seed=5)[0])
    assert gap(blk, AttentionBlock.forward, seed=5) < 1e-5
    # the dropout is live: another seed changes the output
    assert (run(blk, AttentionBlock.forward, seed=6)[0] - run(blk, mha_forward, seed=5)[0]).abs().max() > 1e-2


def test_self_attention_reading_matches_too() -> None:
    """UMDF's "self" ablation passes the target as its own source (MHA's packed-projection case)."""
    blk = block(10, dropout=0.2, attn_dropout=0.3).train()
    _, target, pad = inputs(s=7)
    outs = []
    for forward in (AttentionBlock.forward, mha_forward):
        torch.manual_seed(3)
        outs.append(forward(blk, target, target, pad))
    assert torch.equal(*outs)


@pytest.fixture(scope="module")
def tiny_mosi():
    return make_synthetic("mosi", size=0.02, max_len=8)


def one_umdf_step(data, monkeypatch: pytest.MonkeyPatch | None) -> tuple[dict[str, float], dict[str, Tensor]]:
    """One ``Trainer.train_step`` of a paper-width UMDF (10 heads of size 4, attention dropout on)
    from a fixed seed: the loss terms and the gradients. ``monkeypatch`` given: the oracle path."""
    if monkeypatch is not None:
        monkeypatch.setattr(AttentionBlock, "forward", mha_forward)
    torch.manual_seed(0)
    model = build_model("umdf", data.dims, {"d": D, "n_heads": 10, "n_layers": 2, "attn_dropout": 0.1})
    trainer = Trainer(model, data, TrainConfig(batch_size=8, progress=False, device="cpu"), "mixed", seed=0)
    trainer.start_stage()
    trainer.train_mode()
    train = SplitTensors(data["train"])
    torch.manual_seed(1)
    terms = trainer.train_step(train.batch(torch.arange(8), train))
    if monkeypatch is not None:
        monkeypatch.undo()
    return {k: v.item() for k, v in terms.items()}, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_umdf_training_step_equals_the_multihead_attention_path(tiny_mosi, monkeypatch) -> None:
    terms, grads = one_umdf_step(tiny_mosi, None)
    ref_terms, ref_grads = one_umdf_step(tiny_mosi, monkeypatch)
    assert set(terms) == {"task", "fea", "logits", "total"}
    assert terms == ref_terms  # bit-identical: same projections, kernel and dropout masks
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        assert torch.allclose(g, ref_grads[name], atol=1e-5, rtol=0), name


def test_state_dict_keys_are_those_of_multihead_attention() -> None:
    assert list(block(10).state_dict()) == ["attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
                                            "attn.out_proj.bias", "norm.weight", "norm.bias"]


# ---------------------------------------------------------------------------------------------
# fused Adam
# ---------------------------------------------------------------------------------------------

TINY_DIMS = {"text": 12, "audio": 5, "vision": 6}


def optimizers(name: str, config: TrainConfig) -> list[torch.optim.Optimizer]:
    torch.manual_seed(0)
    return [step.optimizer for step in build_model(name, TINY_DIMS).configure_optimizers(config)]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fused_adam_off_builds_the_former_optimizers(name: str) -> None:
    config = TrainConfig(lr=2e-3, weight_decay=0.01)
    for opt in optimizers(name, config):
        assert type(opt) is torch.optim.Adam and opt.defaults["fused"] is None
        former = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=opt.defaults["lr"],
                                  weight_decay=opt.defaults["weight_decay"])
        assert opt.defaults == former.defaults
    main = optimizers(name, config)[0]
    assert (main.defaults["lr"], main.defaults["weight_decay"]) == (2e-3, 0.01)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fused_adam_on_reaches_every_optimizer(name: str) -> None:
    off = optimizers(name, TrainConfig(lr=2e-3, weight_decay=0.01))
    on = optimizers(name, TrainConfig(lr=2e-3, weight_decay=0.01, fused_adam=True))
    assert len(on) == len(off)
    for a, b in zip(on, off):
        assert a.defaults == {**b.defaults, "fused": True}
        assert [[p.shape for p in g["params"]] for g in a.param_groups] == \
               [[p.shape for p in g["params"]] for g in b.param_groups]


def test_dar_estimator_adam_keeps_no_weight_decay() -> None:
    main, estimator = optimizers("dar", TrainConfig(weight_decay=0.01, fused_adam=True))
    assert main.defaults["weight_decay"] == 0.01 and estimator.defaults["weight_decay"] == 0


def key_bias(name: str, value: Tensor) -> Tensor:
    """True on the entries of an attention key bias b_K: q . (k + b_K) adds the same number to
    every score of a query, which softmax removes, so their gradient is exactly 0 in exact
    arithmetic and rounding noise in practice, which Adam scales up to steps of size ~lr."""
    mask = torch.zeros_like(value, dtype=torch.bool)
    if name.endswith("in_proj_bias"):
        mask[len(value) // 3: 2 * len(value) // 3] = True
    elif name.startswith("cross.") and name.endswith(".k.bias"):  # DAR's cross-modal attention
        mask[:] = True
    return mask


@pytest.mark.parametrize("name", ["tfn", "dar"])
def test_fused_adam_parameters_stay_within_1e5_of_unfused(tiny_mosi, name: str) -> None:
    """A few training steps (DAR: its estimator's Adam too) from the same weights and draws: every
    parameter within 1e-5 except the attention key biases (see :func:`key_bias`: they drift apart
    by up to ~lr in either run), which the predictions do not depend on: those agree to 1e-5."""
    states, predictions = [], []
    for fused in (False, True):
        torch.manual_seed(0)
        model = build_model(name, tiny_mosi.dims)
        start = copy.deepcopy(model.state_dict())
        config = TrainConfig(batch_size=8, lr=1e-2, fused_adam=fused, progress=False, device="cpu")
        trainer = Trainer(model, tiny_mosi, config, "frame:0.3:resample", seed=0)
        trainer.start_stage()
        trainer.train_mode()
        train = SplitTensors(tiny_mosi["train"])
        torch.manual_seed(1)
        for i in range(3):
            trainer.train_step(train.batch(torch.arange(8 * i, 8 * i + 8), train))
        assert any(not torch.equal(v, start[k]) for k, v in model.state_dict().items())  # it trained
        states.append(model.state_dict())
        model.eval()
        with torch.no_grad():
            predictions.append(model(train.batch(torch.arange(16))).prediction)
    for key, value in states[0].items():
        keep = ~key_bias(key, value)
        assert torch.allclose(value[keep], states[1][key][keep], atol=1e-5, rtol=0), key
    assert torch.allclose(*predictions, atol=1e-5, rtol=0)

"""Tests for DAR (msa_lib.models.dar), its chapter (msa_lib.chapters.dar) and the trainer's selection
on the validation total loss; InfoNCE and CLUB are tested in test_dar_losses."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from msa_lib.chapters import dar, leaderboard
from msa_lib.core import Batch
from msa_lib.data.container import MODALITIES
from msa_lib.experiments import get_profile
from msa_lib.losses import club_upper_bound
from msa_lib.missing import parse_protocol
from msa_lib.models.dar import DAR, TERMS, DARConfig, Gate, pool_matrix
from msa_lib.train import VALID_LOSS, TrainConfig, Trainer
from test_extension import tiny_dataset  # the toy dataset of the trainer's tests (6/3/4-d, T = 5)

pytestmark = pytest.mark.usefixtures("single_thread")

DIMS = {"text": 7, "audio": 3, "vision": 5}
SMALL = dict(d=8, t=4, heads=2, sa_layers=1, club_hidden=6, club_steps=2, dropout=0.0)


def make_batch(B: int = 6, T: int = 9, seed: int = 0, erase: float = 0.5) -> Batch:
    """A batch whose features are erased at ``erase`` with the complete input beside them."""
    g = torch.Generator().manual_seed(seed)
    lengths = {m: torch.randint(min(2, T), T + 1, (B,), generator=g) for m in MODALITIES}
    valid = {m: torch.arange(T)[None, :] < lengths[m][:, None] for m in MODALITIES}
    complete = {m: torch.randn(B, T, DIMS[m], generator=g) * valid[m][..., None] for m in MODALITIES}
    keep = {m: valid[m] & (torch.rand(B, T, generator=g) >= erase) for m in MODALITIES}
    return Batch(features={m: complete[m] * keep[m][..., None] for m in MODALITIES}, lengths=lengths, keep=keep,
                 labels=torch.randn(B, generator=g) * 2, complete=complete)


def model(**config) -> DAR:
    torch.manual_seed(0)
    return DAR(DIMS, DARConfig(**{**SMALL, **config}))


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------

def test_pool_matrix_averages_each_samples_own_valid_frames() -> None:
    w = pool_matrix(torch.tensor([6, 1, 3]), t_in=6, t_out=3)
    assert torch.allclose(w.sum(-1), torch.ones(3, 3))
    assert torch.equal(w[:, :, 6:].sum(), torch.tensor(0.0))
    x = torch.randn(1, 6, 2)
    assert torch.allclose(w[:1] @ x, F.adaptive_avg_pool1d(x.transpose(1, 2), 3).transpose(1, 2), atol=1e-6)
    assert torch.equal(w[1, :, 0], torch.ones(3)), "a one-frame sample is repeated"
    assert (w[2, :, 3:] == 0).all(), "padding is never read"


def test_aligned_length_is_t_or_the_longest_input() -> None:
    net = model(t=4)
    assert net.decouple(make_batch(T=9).features, make_batch(T=9).lengths).aligned["text"].shape == (6, 4, 8)
    one = make_batch(T=1)
    assert all(v.shape == (6, 1, 8) for v in net.decouple(one.features, one.lengths).common.values())


def test_gate_output_lies_between_its_two_inputs() -> None:
    torch.manual_seed(0)
    gate = Gate(5)
    with torch.no_grad():
        gate.w.weight.mul_(20)  # saturate some gates: the bound must still hold
    a, b = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    out = gate(a, b)
    assert (out >= torch.minimum(a, b) - 1e-6).all() and (out <= torch.maximum(a, b) + 1e-6).all()
    assert not torch.allclose(out, a) and not torch.allclose(out, b)


def test_training_terms_and_inference_reads_only_the_erased_input() -> None:
    net = model().train()
    batch = make_batch()
    out = net(batch)
    assert set(out.losses) == set(TERMS) and all(torch.isfinite(v) for v in out.losses.values())
    assert out.prediction.shape == (6,) and out.representation.shape == (6, 9 * SMALL["d"])
    net.eval()
    plain = Batch(features=batch.features, lengths=batch.lengths, keep=batch.keep)
    inference = net(plain)
    assert inference.losses == {}
    changed = Batch(**{**batch.__dict__, "complete": {m: torch.randn_like(v) for m, v in batch.complete.items()}})
    assert torch.equal(net(changed).prediction, inference.prediction), "the complete input never reaches ŷ"


def test_each_term_matches_its_equation() -> None:
    net = model().train()
    batch = make_batch(seed=1)
    out = net(batch)
    erased = net.decouple(batch.features, batch.lengths)
    complete = net.decouple(batch.complete, batch.lengths)
    diff = sum(club_upper_bound(*net.estimator[m](erased.specific[m]), erased.common[m]) for m in MODALITIES)
    assert torch.allclose(out.losses["diff"], diff)  # DAR Eq. 5, 9
    boot = net.boot_head(torch.cat([complete.common[m].mean(1) for m in MODALITIES], -1)).squeeze(-1)
    assert torch.allclose(out.losses["boot"], F.mse_loss(boot, batch.labels))  # DAR Eq. 22-23
    l_re = F.mse_loss(net.restore["text"](torch.cat([erased.common["audio"], erased.common["vision"],
                                                       erased.specific["text"]], -1)), erased.aligned["text"])
    others = sum(F.mse_loss(net.restore[m](torch.cat([*(erased.common[o] for o in MODALITIES if o != m),
                                                      erased.specific[m]], -1)), erased.aligned[m])
                 for m in ("audio", "vision"))
    assert torch.allclose(out.losses["re"], l_re + others)  # DAR Eq. 10-11


@pytest.mark.parametrize("switch,term", [(s, t) for t, s in TERMS.items() if s])
def test_each_switch_removes_exactly_its_term(switch: str, term: str) -> None:
    full, ablated = model(), model(**{switch: False})
    ablated.load_state_dict(full.state_dict())
    batch = make_batch(seed=2)
    a, b = full.train()(batch).losses, ablated.train()(batch).losses
    assert set(a) - set(b) == {term} and set(b) <= set(a)
    for name in b:
        assert torch.equal(a[name], b[name]), name


def test_estimator_and_main_optimizers_never_touch_each_others_parameters() -> None:
    net = model().train()
    steps = net.configure_optimizers(TrainConfig(lr=1e-2))
    main, aux = [s for s in steps if s.loss is None][0], [s for s in steps if s.loss is not None][0]
    est = {id(p) for p in net.estimator.parameters()}
    assert aux.steps == SMALL["club_steps"]
    assert not est & {id(p) for g in main.optimizer.param_groups for p in g["params"]}
    assert {id(p) for g in aux.optimizer.param_groups for p in g["params"]} == est
    batch = make_batch(seed=3)

    def snapshot():
        return {n: p.detach().clone() for n, p in net.named_parameters()}

    def changed(before):
        return {n for n, p in net.named_parameters() if not torch.equal(before[n], p)}

    before = snapshot()
    net.zero_grad()
    aux.loss(batch).backward()
    aux.optimizer.step()
    moved = changed(before)
    assert moved and all(n.startswith("estimator.") for n in moved)
    before = snapshot()
    net.zero_grad()
    out = net(batch)
    (F.mse_loss(out.prediction, batch.labels) + sum(out.losses.values())).backward()
    assert any(p.grad is not None for p in net.estimator.parameters()), "L_diff's gradient reaches q_θ ..."
    main.optimizer.step()
    moved = changed(before)
    assert moved and not any(n.startswith("estimator.") for n in moved), "... but the main step never applies it"
    assert model(use_diff=False).configure_optimizers(TrainConfig()).__len__() == 1


def test_fitting_the_estimator_raises_its_likelihood() -> None:
    net = model().train()
    aux = [s for s in net.configure_optimizers(TrainConfig(lr=1e-2)) if s.loss is not None][0]
    batch = make_batch(B=16, seed=4)
    first = float(aux.loss(batch).detach())
    for _ in range(60):
        net.zero_grad()
        aux.loss(batch).backward()
        aux.optimizer.step()
    assert float(aux.loss(batch).detach()) < first - 1.0


def test_bad_configs_and_classification_are_refused_with_the_field_named() -> None:
    for bad, field in ((dict(heads=3), "heads"), (dict(kernel=2), "kernel"), (dict(temperature=0), "temperature"),
                       (dict(t=0), "t"), (dict(boot_loss="huber"), "boot_loss"), (dict(dropout=1.0), "dropout")):
        with pytest.raises(ValueError, match=field):
            DARConfig(**bad)
    with pytest.raises(ValueError, match="classification"):
        DAR(DIMS, DARConfig(**SMALL), n_classes=4)


def test_same_seed_gives_identical_metrics() -> None:
    from msa_lib.results import RunSpec
    from msa_lib.runs import run_one

    data = tiny_dataset()
    spec = RunSpec(model="dar", dataset="tiny", seed=3, train_protocol="frame:0.3:resample",
                   eval_protocols=("erasure:0", "erasure:0.5"), model_config=SMALL,
                   train_config={"epochs": 2, "batch_size": 8, "loss_weights": dar.LOSS_WEIGHTS,
                                 "select_metric": VALID_LOSS})
    a, b = run_one(spec, data, device="cpu", progress=False), run_one(spec, data, device="cpu", progress=False)
    assert a["metrics"] == b["metrics"] and a["history"] == b["history"]
    other = run_one(RunSpec(**{**spec.to_dict(), "seed": 4}), data, device="cpu", progress=False)
    assert other["metrics"] != a["metrics"], "the seed must matter"
    assert all("train/diff" in h and np.isfinite(h["train/diff"]) for h in a["history"]), "the CLUB bound is logged"


def test_selection_on_the_validation_total_loss() -> None:
    data = tiny_dataset()
    cfg = TrainConfig(epochs=4, batch_size=8, patience=None, select_metric=VALID_LOSS, progress=False,
                      loss_weights=dar.LOSS_WEIGHTS, device="cpu")
    torch.manual_seed(0)
    trainer = Trainer(DAR(data.dims, DARConfig(**SMALL)), data, cfg, train_protocol="frame:0.3:resample", seed=1)
    history = trainer.fit()
    losses = [h[f"valid/{VALID_LOSS}"] for h in history]
    assert trainer.best_epoch == int(np.argmin(losses))
    assert trainer.health["selected_on"] == VALID_LOSS and trainer.health["select_metric"] == "MAE"
    # the loss is the weighted total on the masked validation split with the complete input beside it
    from msa_lib.missing import mask_split
    from msa_lib.train import SplitTensors

    valid = mask_split(data["valid"], "frame:0.3:resample", cfg.mask_seed)
    expected = trainer.validation_loss(valid, SplitTensors(data["valid"]))
    trainer.model.eval()
    batch = SplitTensors(valid).batch(torch.arange(len(valid)), SplitTensors(data["valid"]))
    with torch.no_grad():
        direct = trainer.total_loss(trainer.loss_terms(batch))
    assert expected == pytest.approx(float(direct), rel=1e-6)


# ---------------------------------------------------------------------------------------------
# the chapter
# ---------------------------------------------------------------------------------------------

def test_settings_weights_and_training_rates_follow_the_paper() -> None:
    model_cfg, train = dar.model_setup("dar", "mosi", get_profile("paper"))
    w = train["loss_weights"]
    assert model_cfg == {} and train["select_metric"] == VALID_LOSS
    assert (w["sim"], w["diff"], w["re"], w["recon"], w["boot"]) == pytest.approx((0.07, 0.07, 0.1, 0.1, 1.0))
    assert dar.TRAIN_PROTOCOLS["dar"] == "frame:0.3:resample" and dar.train_protocol(0.0) == "complete"
    assert parse_protocol(dar.train_protocol(0.4)).per_batch
    specs = {s.label: s for s in dar.specs("synthetic:mosei", None, get_profile("smoke"), [1], rates=dar.TABLE3_RATES)}
    assert specs[dar.MAIN].train_protocol == "frame:0.4:resample"  # MOSEI's k
    assert [specs[dar.k_label(k)].train_protocol for k in dar.TABLE3_RATES] == [
        "complete", "frame:0.2:resample", "frame:0.4:resample", "frame:0.6:resample", "frame:0.8:resample"]
    for label, switches in dar.TABLE2.items():
        assert specs[label].model_config == switches and set(dar.ERASURE_EVALS) <= set(specs[label].eval_protocols)
    with pytest.raises(ValueError, match="unknown DAR variant"):
        dar.variant_specs("DAR w/o everything", "synthetic:mosi", None, get_profile("smoke"), [1], "mosi")


def test_the_chapter_and_the_leaderboard_share_dars_runs() -> None:
    prof = get_profile("smoke")
    ours = dar.variant_specs(dar.MAIN, "synthetic:mosi", None, prof, [1, 2], "mosi")
    board = [s for s in leaderboard.model_specs("dar", "synthetic:mosi", None, prof, [1, 2], "mosi", per_rate=False)
             if s.label == "DAR"]
    assert [s.key for s in ours] == [s.key for s in board]
    specs, rows = dar.comparison_specs("synthetic:mosi", None, prof, [1])
    assert set(rows) == {leaderboard.labels(m)["paper"] for m in leaderboard.model_names()}
    assert all(set(dar.ERASURE_EVALS) <= set(s.eval_protocols) for s in specs)


def test_rate_mean_averages_the_ten_erasure_rates_per_seed() -> None:
    rows = [{"variant": label, "seed": seed, "protocol": p, "metric": "MAE",
             "value": base + seed + i / 10 + (0.01 * seed * seed if label == "TFN" else 0.0)}
            for label, base in (("DAR", 0.0), ("TFN", 1.0)) for seed in (1, 2, 3)
            for i, p in enumerate(dar.ERASURE_EVALS)]
    rows.append({"variant": "DAR", "seed": 1, "protocol": "complete", "metric": "MAE", "value": 99.0})
    results = pd.DataFrame(rows)
    assert np.allclose(dar.rate_mean(results, "DAR", "MAE").to_numpy(), [1.45, 2.45, 3.45])
    v = dar.verdicts(results, "DAR", ["DAR", "TFN"], "MAE")
    assert len(v) == 1 and v.iloc[0]["verdict"] == "better"
    assert v.iloc[0]["difference"] == pytest.approx(-1.0 - 0.01 * (1 + 4 + 9) / 3)
    with pytest.raises(ValueError, match="erasure:0.9"):
        dar.rate_mean(results[results["protocol"] != "erasure:0.9"], "DAR", "MAE")


def test_reported_tables_and_the_paper_margins() -> None:
    t1 = dar.reported_table("dar_table1")
    assert t1.loc["DAR", ("MOSI", "MAE")] == 1.069 and t1.loc["DAR", ("MOSEI", "Acc-2_non0")] == 78.14
    t2, t3 = dar.reported_table("dar_table2"), dar.reported_table("dar_table3")
    assert set(t2.index) == set(dar.TABLE2) and set(t3.index) == {dar.k_label(k) for k in dar.TABLE3_RATES}
    assert all(t2.loc["DAR", ("MOSI", m)] == t1.loc["DAR", ("MOSI", m)] for m in dar.TABLE_METRICS)
    margins = [dar.paper_margin(c) for c in dar.CLAIMS]
    assert margins == pytest.approx([1.070 - 1.069, 73.18 - 71.08, 1.123 - 1.069])
    assert len(dar.open_choices()) >= 12 and not dar.settings_table().isna().any().any()

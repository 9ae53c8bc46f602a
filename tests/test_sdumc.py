"""Tests for SDUMC (msa_lib.models.sdumc) and its chapter (msa_lib.chapters.sdumc); Rank-N-Contrast
and RMSE are tested in test_losses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from msa_lib.chapters import sdumc
from msa_lib.core import Batch
from msa_lib.data.container import MODALITIES
from msa_lib.experiments import get_profile
from msa_lib.losses import rank_n_contrast, rmse
from msa_lib.models.base import MaskView
from msa_lib.models.sdumc import COMBINATIONS, SDUMC, TERMS, CrossAttention, SDUMCConfig, TextRemoved, multi_view_query
from msa_lib.missing import parse_protocol
from msa_lib.train import TrainConfig, Trainer, evaluate
from test_extension import tiny_dataset  # the toy dataset of the trainer's tests (6/3/4-d, T = 5)

pytestmark = pytest.mark.usefixtures("single_thread")

DIMS = {"text": 7, "audio": 3, "vision": 5}
SMALL = dict(d=8, mia_hidden=6, sim_dim=4, sim_heads=2, dropout=0.0)


def make_batch(B: int = 6, T: int = 9, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    lengths = {m: torch.randint(2, T + 1, (B,), generator=g) for m in MODALITIES}
    valid = {m: torch.arange(T)[None, :] < lengths[m][:, None] for m in MODALITIES}
    feats = {m: torch.randn(B, T, DIMS[m], generator=g) * valid[m][..., None] for m in MODALITIES}
    return Batch(features=feats, lengths=lengths, keep=dict(valid), labels=torch.randn(B, generator=g) * 2,
                 complete={m: v.clone() for m, v in feats.items()})


def two_flows(batch: Batch) -> Batch:
    """The trainer's two views: the batch, and the batch with the text removed."""
    views = [MaskView(parse_protocol("complete"))(batch, None), TextRemoved(MaskView(parse_protocol("complete")))(batch, None)]
    return Batch(**{**views[0].__dict__, "views": views})


def model(**config) -> SDUMC:
    torch.manual_seed(0)
    return SDUMC(DIMS, SDUMCConfig(**{**SMALL, **config}))


# ---------------------------------------------------------------------------------------------
# UMCA (SDUMC Eq. 1-2, AFG)
# ---------------------------------------------------------------------------------------------

def test_cross_attention_is_eq_1_2_and_ignores_padding() -> None:
    torch.manual_seed(0)
    unit = CrossAttention(4, scale=2.0)
    q, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    out = unit(q, v, pad)
    for b in range(2):
        n = int((~pad[b]).sum())
        keys = torch.tanh(v[b, :n] @ unit.key.weight.T + unit.key.bias)  # Eq. 1
        expected = torch.softmax(q[b] @ keys.T / 2.0, dim=-1) @ v[b, :n]  # Eq. 2
        assert torch.allclose(out[b], expected, atol=1e-6)
    changed = v.clone()
    changed[1, 3:] = 100.0  # padding frames
    assert torch.equal(unit(q, changed, pad)[1], out[1])


def test_afg_combinations_give_zero_weight_to_the_unused_modality() -> None:
    torch.manual_seed(0)
    r = torch.randn(4, 3, 6, requires_grad=True)
    w = torch.softmax(torch.randn(4, 3), dim=-1)
    q = multi_view_query(r, w)
    assert q.shape == (4, 7, 6)
    for s, used in enumerate(COMBINATIONS.tolist()):  # rows: l, a, v, la, lv, av, lav over (text, audio, vision)
        expected = sum(w[:, m, None] * r[:, m] for m in range(3) if used[m])
        assert torch.allclose(q[:, s], expected, atol=1e-6)
        for m in range(3):
            grad, = torch.autograd.grad(q[:, s].sum(), r, retain_graph=True)
            assert (grad[:, m].abs().sum() == 0) == (not used[m]), (s, m)
    # the kept weights are not renormalised: a bimodal query's weights sum to less than one
    la = COMBINATIONS.tolist().index([1.0, 1.0, 0.0])
    assert torch.allclose(q[:, la], w[:, :1] * r[:, 0] + w[:, 1:2] * r[:, 1])


# ---------------------------------------------------------------------------------------------
# the double flow and the objective (SDUMC Eq. 5-12)
# ---------------------------------------------------------------------------------------------

def test_training_returns_every_term_and_each_matches_its_equation() -> None:
    net = model().train()
    batch = two_flows(make_batch())
    torch.manual_seed(1)
    out = net(batch)
    assert set(out.losses) == set(TERMS)
    net.eval()  # dropout is 0: the same numbers outside train mode
    full, miss = net.complete_flow(batch.views[0]), net.missing_flow(batch.views[1])
    y = batch.labels
    assert torch.allclose(out.prediction, full["out"], atol=1e-6)
    assert torch.allclose(out.losses["task_missing"], ((miss["out"] - y) ** 2).mean(), atol=1e-6)
    assert torch.allclose(out.losses["mkd1"], rmse(full["R"][:, 0], miss["R"][:, 0]), atol=1e-6)
    assert torch.allclose(out.losses["mkd2"], rmse(full["Rseq"][..., 0, :], miss["Rseq"][..., 0, :]), atol=1e-6)
    assert torch.allclose(out.losses["rs"], rmse(full["r"], miss["r"]), atol=1e-6)
    reps, labels = torch.cat([full["r"], miss["r"]]), torch.cat([y, y])
    assert torch.allclose(out.losses["rnc"], rank_n_contrast(reps, labels, 2.0), atol=1e-5)


def test_mkd_passes_no_gradient_into_the_complete_flow() -> None:
    net = model().train()
    batch = two_flows(make_batch())
    real_text = batch.views[0].features["text"].requires_grad_(True)
    out = net(batch)
    mkd = out.losses["mkd1"] + out.losses["mkd2"]
    grad_text, grad_mia = torch.autograd.grad(mkd, [real_text, net.mia1.encode.weight], allow_unused=True)
    assert grad_text is None or grad_text.abs().sum() == 0, "the real text representation is detached"
    assert grad_mia is not None and grad_mia.abs().sum() > 0, "MKD trains the text-missing flow's MIA"
    # L_RS is not detached: it reaches the real text through the complete flow
    grad_rs, = torch.autograd.grad(out.losses["rs"], [real_text])
    assert grad_rs.abs().sum() > 0


def test_mia_is_inactive_when_text_is_present() -> None:
    net = model().eval()
    batch = make_batch()
    full, miss = net.complete_flow(batch)["out"], net.missing_flow(batch)["out"]
    with torch.no_grad():
        for p in [*net.mia1.parameters(), *net.mia2.parameters()]:
            p.add_(torch.randn_like(p))
    assert torch.equal(net.complete_flow(batch)["out"], full)
    assert not torch.allclose(net.missing_flow(batch)["out"], miss)


def test_text_missing_flow_reads_no_text_and_inference_picks_the_flow_per_sample() -> None:
    net = model().eval()
    batch = make_batch()
    miss = net.missing_flow(batch)["out"]
    other = make_batch(seed=5)
    changed = Batch(**{**batch.__dict__, "features": {**batch.features, "text": other.features["text"]}})
    assert torch.equal(net.missing_flow(changed)["out"], miss), "the text-missing flow must not read the text"
    # auto: samples 0 and 3 have their text removed, the others keep it
    removed = torch.tensor([True, False, False, True, False, False])
    keep = {**batch.keep, "text": batch.keep["text"] & ~removed[:, None]}
    mixed = Batch(**{**batch.__dict__, "keep": keep,
                     "features": {**batch.features, "text": batch.features["text"] * ~removed[:, None, None]}})
    pred = net(mixed).prediction
    assert torch.allclose(pred[removed], net.missing_flow(mixed)["out"][removed], atol=1e-6)
    assert torch.allclose(pred[~removed], net.complete_flow(mixed)["out"][~removed], atol=1e-6)
    net.config.text_present = True
    assert torch.allclose(net(mixed).prediction, net.complete_flow(mixed)["out"])
    net.config.text_present = False
    assert torch.allclose(net(batch).prediction, miss)


@pytest.mark.parametrize("switch, removed", [("use_mkd", {"mkd1", "mkd2"}), ("use_rs", {"rs"}), ("use_rnc", {"rnc"})])
def test_each_loss_switch_removes_exactly_its_terms(switch: str, removed: set[str]) -> None:
    out = model(**{switch: False}).train()(two_flows(make_batch()))
    assert set(out.losses) == set(TERMS) - removed


def test_structural_switches_remove_their_module() -> None:
    full = model()
    assert full.mia1 is not None and full.mia2 is not None and full.simulator is not None
    no_mia = model(use_mia=False)
    assert no_mia.mia1 is None and no_mia.mia2 is None
    assert set(no_mia.train()(two_flows(make_batch())).losses) == set(TERMS)  # MKD stays: on the simulated text
    none = model(text_sim="none")
    assert none.simulator is None
    out = none.train()(two_flows(make_batch()))
    assert set(out.losses) == set(TERMS) - {"text_sim"}
    # without a simulator, the text slot of stage 1 is what MIA-1 imagines from zeros, audio and vision
    batch = make_batch()
    r = none.eval().missing_flow(batch)["R"][:, 0]
    zeros = torch.zeros_like(r)
    assert torch.allclose(r, none.mia1(zeros, none.missing_flow(batch)["R"][:, 1], none.missing_flow(batch)["R"][:, 2]))
    projected = model(rnc_dim=5)
    assert projected.rnc_proj.out_features == 5 and model().rnc_proj is None


def test_bad_configs_and_classification_are_refused_with_the_field_named() -> None:
    for bad, field in (({"text_sim": "llm"}, "text_sim"), ({"text_sim": "precomputed"}, "text_sim_key"),
                       ({"sim_heads": 3}, "sim_heads"), ({"rnc_temperature": 0.0}, "rnc_temperature"),
                       ({"text_present": "yes"}, "text_present")):
        with pytest.raises(ValueError, match=field):
            SDUMCConfig(**bad)
    with pytest.raises(ValueError, match="regresses sentiment valence"):
        SDUMC(DIMS, SDUMCConfig(**SMALL), n_classes=4)


def test_precomputed_text_reads_the_named_extra_and_says_when_it_is_missing() -> None:
    net = model(text_sim="precomputed", text_sim_key="sim_text").eval()
    batch = make_batch()
    with pytest.raises(ValueError, match="'sim_text'.*extra_keys"):
        net.missing_flow(batch)
    sim = torch.randn(6, 4, DIMS["text"])
    with_sim = Batch(**{**batch.__dict__, "extras": {"sim_text": sim}, "extra_lengths": {"sim_text": torch.full((6,), 4)}})
    out = net.missing_flow(with_sim)["out"]
    other = Batch(**{**with_sim.__dict__, "extras": {"sim_text": sim + 1.0}})
    assert not torch.allclose(net.missing_flow(other)["out"], out), "the simulated text must be read"
    narrow = Batch(**{**batch.__dict__, "extras": {"sim_text": torch.randn(6, 4, 2)}})
    with pytest.raises(ValueError, match="width 2"):
        net.missing_flow(narrow)


def test_precomputed_text_trains_from_a_pickle(tmp_path: Path) -> None:
    from msa_lib.data import load_dataset
    from test_loaders import D_TEXT, SPLITS, dump, mmsa_data

    data = mmsa_data()
    rng = np.random.default_rng(0)
    for s in SPLITS:  # simulated text in the text space
        data[s]["sim_text"] = rng.normal(size=(len(data[s]["regression_labels"]), 3, D_TEXT))
    path = dump(data, tmp_path / "mosi" / "aligned_50.pkl")
    ds = load_dataset("mine", str(path), extra_keys=("sim_text",))
    net = SDUMC(ds.dims, SDUMCConfig(**{**SMALL, "text_sim": "precomputed", "text_sim_key": "sim_text"}))
    Trainer(net, ds, TrainConfig(epochs=1, batch_size=4, progress=False), seed=0).fit()
    assert np.isfinite(evaluate(net, ds, "modality:av")["MAE"])


def test_text_removed_view_zeroes_only_the_text() -> None:
    batch = make_batch()
    view = TextRemoved(MaskView(parse_protocol("complete")))(batch, torch.Generator())
    assert torch.equal(view.features["text"], torch.zeros_like(batch.features["text"]))
    assert not view.keep["text"].any()
    for m in ("audio", "vision"):
        assert torch.equal(view.features[m], batch.features[m]) and torch.equal(view.keep[m], batch.keep[m])


def test_same_seed_gives_identical_metrics() -> None:
    from msa_lib.results import RunSpec
    from msa_lib.runs import run_one

    data = tiny_dataset()
    spec = RunSpec(model="sdumc", dataset="tiny", seed=3, eval_protocols=("complete", "modality:av"),
                   model_config=SMALL, train_config={"epochs": 2, "batch_size": 8, "loss_weights": sdumc.PAPER_WEIGHTS})
    a, b = run_one(spec, data, device="cpu", progress=False), run_one(spec, data, device="cpu", progress=False)
    assert a["metrics"] == b["metrics"] and a["history"] == b["history"]
    other = run_one(RunSpec(**{**spec.to_dict(), "seed": 4}), data, device="cpu", progress=False)
    assert other["metrics"] != a["metrics"], "the seed must matter"


def test_a_training_batch_of_two_gives_finite_losses() -> None:
    out = model().train()(two_flows(make_batch(B=2)))
    assert all(torch.isfinite(v) for v in out.losses.values())


# ---------------------------------------------------------------------------------------------
# the chapter
# ---------------------------------------------------------------------------------------------

def test_presets_follow_the_paper_and_the_released_code() -> None:
    paper = get_profile("paper")
    model_cfg, train = sdumc.model_setup("sdumc", "mosei", paper)
    assert model_cfg == {} and (train["lr"], train["batch_size"], train["epochs"]) == (1e-4, 96, 25)
    assert train["patience"] == sdumc.PAPER_SETTING["patience"] and train["loss_weights"] == sdumc.PAPER_WEIGHTS
    model_cfg, train = sdumc.model_setup("sdumc", "mosei", paper, "released")
    assert model_cfg == {"use_mia": False, "use_mkd": False, "rnc_dim": 64}
    assert train["loss_weights"] == {"task": 0.5, "task_missing": 0.5, "rs": 0.13, "rnc": 0.5}
    assert (train["warmup_epochs"], train["lr_step_epochs"], train["lr_gamma"], train["patience"]) == (5, 10, 0.9, None)
    _, book = sdumc.model_setup("sdumc", "mosei", get_profile("book"), "released")
    assert (book["warmup_epochs"], book["lr_step_epochs"]) == (2, 3)  # scaled to 8 epochs
    assert (book["lr"], book["batch_size"]) == (sdumc.CPU_BUDGET["lr"], sdumc.CPU_BUDGET["batch_size"])
    with pytest.raises(ValueError, match="preset"):
        sdumc.model_setup("sdumc", "mosei", paper, "github")


def test_text_sim_parameter() -> None:
    assert sdumc.parse_text_sim("learned") == {}
    assert sdumc.parse_text_sim("none") == {"text_sim": "none"}
    assert sdumc.parse_text_sim("precomputed:sim_text") == {"text_sim": "precomputed", "text_sim_key": "sim_text"}
    assert sdumc.extra_keys("precomputed:sim_text") == ("sim_text",) and sdumc.extra_keys("learned") == ()
    for bad in ("precomputed", "llm", "none:x"):
        with pytest.raises(ValueError, match="text_sim"):
            sdumc.parse_text_sim(bad)


def test_table1_variants_switch_what_their_marks_say() -> None:
    prof = get_profile("smoke")
    specs = {label: sdumc.variant_specs(label, "synthetic:mosei", None, prof, [1], "mosei")[0]
             for label in [*sdumc.TABLE1, sdumc.RELEASED_LABEL]}
    assert len({s.key for s in specs.values()}) == len(specs)
    config = {"LLM_g": lambda c: c.get("text_sim", "learned") != "none", "MIA": lambda c: c.get("use_mia", True),
              "L_MKD": lambda c: c.get("use_mkd", True), "L_RS": lambda c: c.get("use_rs", True),
              "L_RNC": lambda c: c.get("use_rnc", True)}
    for label, (marks, _) in sdumc.TABLE1.items():
        cfg = specs[label].model_config
        assert tuple(config[s](cfg) for s in sdumc.SWITCHES) == marks, label
        assert specs[label].eval_protocols == ("complete", "modality:av")
    for label in sdumc.TABLE1:  # with precomputed simulated text, every row but "w/o LLM_g" reads it
        cfg = sdumc.variant_specs(label, "synthetic:mosei", None, prof, [1], "mosei", "precomputed:sim_text")[0].model_config
        SDUMCConfig(**cfg)
        assert (cfg.get("text_sim_key") == "sim_text") == sdumc.TABLE1[label][0][0], label
    with pytest.raises(ValueError, match="unknown SDUMC variant"):
        sdumc.variant_specs("SDUMC w/o everything", "synthetic:mosei", None, prof, [1], "mosei")


def test_gap_values_and_verdicts_per_seed() -> None:
    rows = []
    for seed, (a_with, a_without, b_with, b_without) in enumerate([(0.5, 0.55, 0.5, 0.9), (0.6, 0.62, 0.5, 0.95),
                                                                   (0.55, 0.6, 0.52, 0.8)], start=1):
        for label, w, wo in (("SDUMC", a_with, a_without), ("TFN", b_with, b_without)):
            rows += [{"variant": label, "seed": seed, "protocol": "complete", "metric": "MAE", "value": w},
                     {"variant": label, "seed": seed, "protocol": "modality:av", "metric": "MAE", "value": wo}]
    results = pd.DataFrame(rows)
    assert np.allclose(sdumc.gap_values(results, "SDUMC", "MAE").to_numpy(), [0.05, 0.02, 0.05])
    v = sdumc.gap_verdicts(results, "SDUMC", ["TFN"]).iloc[0]
    assert v["verdict"] == "better" and np.isclose(v["difference"], np.mean([0.05 - 0.4, 0.02 - 0.45, 0.05 - 0.28]))
    table = sdumc.gap_table(results, ["SDUMC", "TFN"], ("MAE",))
    assert list(table.columns) == ["with text MAE", "w/o text MAE", "Δ MAE"]
    assert "sdumc" in sdumc.verdict_sentences(sdumc.gap_verdicts(results, "SDUMC", ["TFN"]), "MAE gap").lower()


def test_comparison_runs_every_other_model_as_its_paper_trains_it() -> None:
    from msa_lib.chapters import leaderboard
    from msa_lib.models import MODELS

    specs, rows = sdumc.comparison_specs("synthetic:mosei", None, get_profile("smoke"), [1, 2])
    others = {leaderboard.labels(m)["paper"] for m in MODELS if m != "sdumc"}
    assert set(rows) == {sdumc.MAIN} | others
    assert rows["MITR-DNet"] == "mosi"  # MITR-DNet's paper has no MOSEI setting
    for spec in specs:
        assert "modality:av" in spec.eval_protocols and "complete" in spec.eval_protocols
        if spec.model != "sdumc":
            assert spec.train_protocol == parse_protocol(leaderboard.paper_training(spec.model)).spec
    assert "sdumc" in leaderboard.models_with_settings("synthetic:mosei")[0]


def test_reported_tables_hold_both_paper_tables() -> None:
    t1 = sdumc.reported_table("sdumc_table1")
    assert list(t1.index) == list(sdumc.TABLE1)
    assert t1.loc[sdumc.MAIN, ("w/o text", "MAE")] == 0.550
    t2 = sdumc.reported_table("sdumc_table2")
    assert t2.loc["SDUMC", ("gap", "MAE")] == pytest.approx(t2.loc["SDUMC", ("w/o text", "MAE")]
                                                            - t2.loc["SDUMC", ("with text", "MAE")])
    assert len(sdumc.open_choices()) >= 10 and not sdumc.settings_table().isna().any().any()
    objective = sdumc.objective_table()
    assert objective.loc["released", "α, β, γ, δ"] == "0, 0, 0.13, 0.5" and objective.loc["paper", "MIA"] == "on"
    margins = [sdumc.paper_margin(c["paper"]) for c in sdumc.CLAIMS]
    assert margins == pytest.approx([0.312 - 0.044, 0.572 - 0.550, 0.508 - 0.506])

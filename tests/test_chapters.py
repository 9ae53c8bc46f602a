"""Chapter modules: one source of every paper setting, errors naming the choices, and the same runs
from a notebook, the chapter API and the command line."""
from __future__ import annotations

import pytest

from msa_lib.missing import parse_protocol

from msa_lib.__main__ import main
from msa_lib.chapters import CHAPTERS, baselines, chapter_of_model, get_chapter, umdf
from msa_lib.experiments import PROFILES, get_profile, profile_table
from msa_lib.models import build_model
from msa_lib.results import ResultsStore

DIMS = {"text": 12, "audio": 5, "vision": 20}


@pytest.mark.parametrize("row", sorted(umdf.SETTINGS))
def test_umdf_paper_profile_builds_the_paper_network_and_cpu_profiles_the_budget(row):
    paper_cfg, paper_train = umdf.model_setup("umdf", row, get_profile("paper"))
    book_cfg, book_train = umdf.model_setup("umdf", row, get_profile("book"))
    model = build_model("umdf", DIMS, paper_cfg)
    heads = {m.num_heads for m in model.modules() if hasattr(m, "num_heads")}
    assert heads == {umdf.SETTINGS[row]["n_heads"]} and len(model.mcim.layers) == umdf.SETTINGS[row]["n_layers"]
    assert paper_train["epochs"] == umdf.SETTINGS[row]["epochs"] and paper_train["batch_size"] == umdf.SETTINGS[row]["batch_size"]
    budget = build_model("umdf", DIMS, book_cfg)
    assert len(budget.mcim.layers) == umdf.CPU_BUDGET["n_layers"] < umdf.SETTINGS[row]["n_layers"]
    assert book_train["batch_size"] <= umdf.CPU_BUDGET["max_batch"] and book_train["epochs"] == PROFILES["book"].epochs
    assert paper_train["loss_weights"] == book_train["loss_weights"] == umdf.LOSS_WEIGHTS[row]


def test_iemocap_gets_its_own_lambda_and_tfn_the_cheap_budget():
    for row in ("mosi", "iemocap"):  # each page re-runs its row's default against lambda_1 = 1
        weights = umdf.model_setup("umdf", row, get_profile("book"))[1]["loss_weights"]
        default, other = umdf.PAGE_LAMBDA_GRID[row]
        assert default == (weights["fea"], weights["logits"]) and other[0] == 1.0 != default[0]
    book, smoke = (baselines.model_setup("tfn", "mosi", get_profile(p))[1] for p in ("book", "smoke"))
    assert book["epochs"] == baselines.TFN_SETTING["epochs"] > PROFILES["book"].epochs  # TFN trains to convergence
    assert smoke["epochs"] == PROFILES["smoke"].light_epochs and book["lr"] == baselines.TFN_SETTING["lr"]


def test_umdf_pages_compare_with_fair_controls():
    specs = umdf.specs("synthetic:mosi", None, get_profile("smoke"), [1])
    trained_on = {(s.model, s.label): parse_protocol(s.train_protocol) for s in specs}
    mixed = parse_protocol(umdf.TRAIN_PROTOCOL)
    assert trained_on[("umdf", "UMDF")] == trained_on[("umdf", umdf.NO_DISTILLATION)] == mixed
    assert trained_on[("tfn", baselines.TRAINED_ON["mixed"])] == mixed
    assert trained_on[("tfn", baselines.TRAINED_ON["complete"])] == parse_protocol("complete")
    control = next(s for s in specs if s.label == umdf.NO_DISTILLATION).model_config
    assert control["use_fea_distill"] is False and control["use_logit_distill"] is False


def test_readings_are_one_switch_from_the_default_and_lambdas_override_the_row():
    from msa_lib.models.umdf import UMDFConfig

    variants = ("UMDF",) + tuple(umdf.READINGS) + tuple(umdf.TRAINING_READINGS)
    specs = {s.label: s for s in umdf.specs("synthetic:mosi", None, get_profile("smoke"), [1], variants=variants,
                                             with_tfn=False, lambdas="0.3,2")}
    base = specs["UMDF"]
    assert base.train_config["loss_weights"] == {"fea": 0.3, "logits": 2.0}
    default = UMDFConfig()
    for label, spec in specs.items():
        changed = {k: v for k, v in spec.model_config.items() if base.model_config.get(k) != v}
        assert all(getattr(default, k) != v for k, v in changed.items())  # never the default's value
        if label in umdf.TRAINING_READINGS:
            assert not changed and spec.train_protocol == parse_protocol(umdf.TRAINING_READINGS[label]).spec
        elif label != "UMDF":
            assert len(changed) == 1 and spec.train_protocol == base.train_protocol
    weightings = {s.model_config.get("dfim_weighting", default.dfim_weighting) for s in specs.values()}
    assert weightings == {"softmax", "scaled", "residual", "pooled"}  # every reading of DFIM is measured
    for bad in ("1", "a,b", "-1,1"):
        with pytest.raises(ValueError, match="lambdas"):
            umdf.parse_lambdas(bad)
    assert "given as the `lambdas` parameter" in umdf.setting_text(get_profile("book"), "0.3,2")
    assert umdf.parse_grid("full", "mosi") == umdf.LAMBDA_GRID
    assert umdf.parse_grid("0.1,1;1,1", "mosi") == ((0.1, 1.0), (1.0, 1.0))


def test_open_choices_table_reads_the_defaults_from_the_code():
    from msa_lib.models.umdf import UMDFConfig

    table = umdf.open_choices()
    cfg = UMDFConfig()
    assert f"dfim_weighting = {cfg.dfim_weighting}" in table.loc["DFIM frame-level self-enhancement", "our default"]
    assert f"fea_reading = {cfg.fea_reading}" in table.loc["L_fea, Eq. 3", "our default"]
    assert list(table.columns) == ["paper's words", "our default", "alternatives", "measured"]
    assert table.notna().all().all() and (table != "").all().all()


def test_rows_differ_where_the_paper_differs():
    mosi = umdf.model_setup("umdf", "mosi", get_profile("paper"))
    mosei = umdf.model_setup("umdf", "mosei", get_profile("paper"))
    assert mosi != mosei  # mosei must never silently get mosi's settings


def test_unknown_dataset_is_an_error_naming_the_choices_and_user_data_picks_a_row():
    prof = get_profile("smoke")
    with pytest.raises(ValueError, match=r"no settings for 'sims': choose one of \['iemocap', 'mosei', 'mosi'\]"):
        umdf.specs("synthetic:sims", None, prof, [1])
    with pytest.raises(ValueError, match="no settings for 'my_lab'.*`settings` parameter"):
        umdf.specs("my_lab", "/data/x.pkl", prof, [1])
    specs = umdf.specs("my_lab", "/data/x.pkl", prof, [1], settings="mosei", with_tfn=False)
    assert specs[0].train_config == umdf.model_setup("umdf", "mosei", prof)[1]
    assert specs[0].dataset == "my_lab" and specs[0].data_options == {"data_path": "/data/x.pkl"}
    with pytest.raises(ValueError, match="unknown UMDF variant"):
        umdf.specs("synthetic:mosi", None, prof, [1], variants=("UMDF w/o everything",))
    with pytest.raises(ValueError, match="unknown chapter 'lnln'"):
        get_chapter("lnln")


def test_every_model_has_a_chapter_and_every_chapter_the_interface():
    from msa_lib.models import MODELS

    assert {m for c in CHAPTERS.values() for m in c.MODELS} == set(MODELS)
    for c in CHAPTERS.values():
        for name in ("NAME", "TITLE", "MODELS", "SETTINGS", "model_setup", "specs", "run", "setting_text"):
            assert hasattr(c, name), (c.NAME, name)
    assert chapter_of_model("tfn") is baselines and chapter_of_model("umdf") is umdf
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        chapter_of_model("nope")


def test_umdf_pages_share_runs_tfn_comes_from_the_baselines_chapter():
    prof = get_profile("smoke")
    table1 = umdf.specs("synthetic:mosi", None, prof, [1, 2])
    tsne = umdf.specs("synthetic:mosi", None, prof, [1])
    assert {s.key for s in tsne} <= {s.key for s in table1}
    tfn = [s for s in table1 if s.model == "tfn"]
    assert [s.key for s in tfn] == [s.key for protocol in umdf.TFN_PROTOCOLS for s in baselines.tfn_specs(
        "synthetic:mosi", None, prof, [1, 2], eval_protocols=umdf.EVALS, train_protocol=protocol)]


def test_setting_text_and_profile_table_are_computed():
    assert f"{umdf.CPU_BUDGET['n_heads']} heads" in umdf.setting_text(get_profile("book"))
    assert "the paper's setting" in umdf.setting_text(get_profile("paper"))
    table = profile_table()
    assert list(table.index) == list(PROFILES) and table.loc["book", "epochs"] == PROFILES["book"].epochs


def test_cli_run_builds_the_chapter_runs_of_the_notebooks(tmp_path, capsys):
    args = ["run", "--chapter", "baselines", "--dataset", "synthetic:mosi", "--profile", "smoke", "--seeds", "1",
            "--results-dir", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "TFN (train once)" in out and "TFN (per-rate training)" in out
    store = ResultsStore(tmp_path)
    specs = baselines.specs("synthetic:mosi", None, get_profile("smoke"), [1])
    assert all(store.is_complete(s) for s in specs)  # exactly the notebook's runs, finished


def test_cli_train_uses_the_chapter_settings_for_the_dataset(tmp_path):
    args = ["train", "--model", "umdf", "--dataset", "synthetic:mosei", "--profile", "smoke", "--seeds", "1",
            "--protocol", "mixed", "--eval", "complete", "--results-dir", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    (record,) = ResultsStore(tmp_path).records()
    assert record["spec"]["train_config"] == umdf.model_setup("umdf", "mosei", get_profile("smoke"))[1]


def test_cli_train_on_a_user_file_is_labelled_by_the_file_not_a_preset(tmp_path, capsys):
    path = tmp_path / "my_lab.pkl"
    path.write_bytes(b"not a pickle")
    assert main(["train", "--model", "tfn", "--data-path", str(path), "--results-dir", str(tmp_path / "r"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "synthetic" not in err and ("my_lab" in err or str(path) in err)


def test_cli_help_describes_protocols_models_chapters_profiles(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for word in ("erasure:R", "modality:", "umdf", "baselines", "smoke", "paper"):
        assert word in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    from msa_lib.models import MODELS

    assert str(sorted(MODELS)) in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")


def test_dfim_sweep_ranks_every_weighting_on_validation(tmp_path):
    from msa_lib.models.umdf import DFIM_WEIGHTINGS

    table = umdf.dfim_sweep("synthetic:mosi", profile="smoke", seed=1, device="cpu", results_dir=str(tmp_path))
    assert sorted(table["DFIM weighting"]) == sorted(DFIM_WEIGHTINGS)
    assert table["valid MAE"].is_monotonic_increasing  # best (lowest MAE) first
    stored = ResultsStore(tmp_path).records("umdf")
    assert len(stored) == len(DFIM_WEIGHTINGS) and all(not r["metrics"] for r in stored)  # test never read


def test_tsne_representation_choice():
    assert umdf.representation_key("umdf", "h_k") == "representation"
    assert umdf.representation_key("umdf", "h_bar") == "representation_h_bar"
    assert umdf.representation_key("tfn", "h_bar") == "representation"  # one joint representation
    with pytest.raises(ValueError, match="h_k"):
        umdf.representation_key("umdf", "last")


def _diagnosis_values(complete: dict[str, list[float]], text: dict[str, list[float]]):
    import pandas as pd

    rows = []
    for label in complete:
        for seed, (c, t) in enumerate(zip(complete[label], text[label]), start=1):
            for split, protocol, value in (("valid", "complete", c), ("valid", "modality:l", t),
                                           ("valid", "modality:la", t), ("valid", "modality:lv", c),
                                           ("valid", "modality:v", 1.5), ("train", "modality:v", 0.8)):
                rows.append({"label": label, "seed": seed, "split": split, "protocol": protocol, "metric": "MAE",
                             "value": value, "best epoch": 0})
    values = pd.DataFrame(rows)
    values.attrs["seeds"] = [1, 2]
    return values


def test_diagnosis_table_and_text_say_whether_three_modalities_beat_text_alone():
    values = _diagnosis_values({"UMDF": [1.10, 1.06], "UMDF, trained complete": [0.95, 0.97]},
                               {"UMDF": [1.00, 1.00], "UMDF, trained complete": [1.05, 1.03]})
    table = umdf.diagnosis_table(values, "MAE")
    # + means the three modalities are better: MAE(text alone) - MAE(complete)
    assert table.loc["UMDF", "3 modalities vs text alone (valid) MAE"] == "-0.080 ± 0.028"
    assert table.loc["UMDF, trained complete", "3 modalities vs text alone (valid) MAE"] == "0.080 ± 0.028"
    assert table.loc["UMDF", "train {v} MAE"] == "0.800 ± 0.000"
    text = umdf.diagnosis_text(values)
    assert "**three modalities beat text alone** for: UMDF, trained complete." in text
    assert "**Text alone is as good or better** for: UMDF." in text
    assert "Best on complete validation data: UMDF, trained complete (0.960; default UMDF 1.080)" in text
    assert "0.800 on the training split and 1.500 on validation" in text


def test_diagnosis_reuses_the_leaderboards_runs_and_never_tests():
    from msa_lib.chapters import leaderboard

    prof = get_profile("book")
    diag = umdf.diagnosis_specs("mosi-utterance", None, prof, [1, 2, 3])
    assert all(s.eval_protocols == () for s in diag)  # validation only: the test split is not evaluated
    board = {s.key for s in leaderboard.specs("mosi-utterance", None, prof, [1, 2, 3, 4, 5], per_rate=False)}
    shared = {s.label for s in diag if s.key in board}
    assert shared == {"UMDF", "UMDF, trained complete", baselines.TRAINED_ON["complete"]}

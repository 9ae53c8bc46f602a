"""`python -m msa_lib`: sweeps outside notebooks, resumable, one clear line on bad input."""
from __future__ import annotations

from msa_lib.__main__ import main
from msa_lib.results import ResultsStore


def run_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "LAYOUT")


def test_cli_trains_per_rate_then_resumes(tmp_path, capsys):
    args = ["train", "--model", "tfn", "--dataset", "synthetic:mosi", "--protocol", "frame:0.3", "--seeds", "1,2",
            "--profile", "smoke", "--epochs", "1", "--results-dir", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    first = capsys.readouterr().out
    records = ResultsStore(tmp_path).records()
    assert len(records) == 2
    specs = [r["spec"] for r in records]
    assert {s["seed"] for s in specs} == {1, 2}
    assert all(s["design"] == "per_rate" and s["eval_protocols"] == ["frame:0.3"] for s in specs)
    assert "frame:0.3" in first and "MAE" in first
    files = run_files(tmp_path)
    mtimes = [p.stat().st_mtime_ns for p in files]
    assert main(args) == 0  # resumes: nothing recomputed, same table
    assert run_files(tmp_path) == files and [p.stat().st_mtime_ns for p in files] == mtimes
    assert capsys.readouterr().out == first


def test_cli_train_once_with_eval_list(tmp_path):
    args = ["train", "--model", "tfn", "--protocol", "complete", "--eval", "frame:0,modality:{l,a}", "--seeds", "3",
            "--profile", "smoke", "--epochs", "1", "--results-dir", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    (record,) = ResultsStore(tmp_path).records()
    assert set(record["metrics"]) == {"frame:0", "modality:la"}
    assert record["spec"]["design"] == "train_once"


def test_cli_bad_input_gives_one_clear_line(tmp_path, capsys):
    assert main(["train", "--model", "tfn", "--model-config", '{"hidden": 3}', "--results-dir", str(tmp_path),
                 "--profile", "smoke", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown tfn model config parameter(s) ['hidden']" in err[0]
    assert main(["train", "--model", "nope", "--results-dir", str(tmp_path), "--no-progress"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["train", "--model", "tfn", "--data-path", str(tmp_path / "missing.pkl"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", "--chapter", "umdf", "--dataset", "synthetic:sims", "--results-dir", str(tmp_path),
                 "--profile", "smoke", "--no-progress"]) == 2
    assert "no settings for 'sims'" in capsys.readouterr().err


def test_cli_summary(tmp_path, capsys):
    assert main(["summary", "--results-dir", str(tmp_path)]) == 1
    assert "no finished runs" in capsys.readouterr().out
    for seed in ("1", "2"):
        for hidden in ("4", "6"):  # two configurations x two seeds
            assert main(["train", "--model", "tfn", "--seeds", seed, "--profile", "smoke", "--epochs", "1",
                         "--model-config", f'{{"text_hidden": {hidden}}}', "--results-dir", str(tmp_path),
                         "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["summary", "--results-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    mae = [line for line in lines if " MAE " in f" {line} "]
    assert len(mae) == 2  # one line per configuration, never averaged together
    assert all(line.split()[-1] == "2" for line in mae)  # n_seeds
    header = lines[0].split()
    assert header[-3:] == ["mean", "std", "n_seeds"] and "config_key" in header  # every column, any width

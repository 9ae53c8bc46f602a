"""UMDF Table 1 on the files the paper used: MulT's MOSI and MOSEI pickles through the notebook.

The files are written here in MulT's layout (pre-padded GloVe 300-d / COVAREP / Facet, labels
(N, 1, 1), ids (N, 3)); MOSI with the 5/20-d audio/vision of the releases in circulation, MOSEI
with 74/35-d and one -inf in its training audio (COVAREP's convention, replaced by 0 with a trace).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import papermill as pm
import pytest

from msa_lib.results import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"train": 24, "valid": 10, "test": 12}
T = 6


def write_mult(path: Path, dims: tuple[int, int, int], seed: int, minus_inf: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in SIZES.items():
        lens = rng.integers(2, T + 1, size=n)
        real = np.arange(T)[None, :] >= (T - lens)[:, None]  # pre-padded: zeros first
        z = rng.normal(size=n)
        feats = {m: (rng.normal(size=(n, T, d)) + z[:, None, None] + 3.0) * real[..., None]
                 for m, d in zip(("text", "audio", "vision"), dims)}
        data[split] = {**{m: x.astype(np.float32) for m, x in feats.items()},
                       "labels": np.clip(z, -3, 3).reshape(n, 1, 1).astype(np.float32),
                       "id": np.array([[f"{split}v{i}", "0.0", "1.5"] for i in range(n)])}
    if minus_inf:
        data["train"]["audio"][0, -1, 0] = -np.inf
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)
    return path


def outputs_text(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            parts += out.get("data", {}).get("text/markdown", []) + out.get("data", {}).get("text/html", [])
            parts += out.get("text", [])
    return "".join(parts)


@pytest.mark.filterwarnings("ignore")
def test_mult_mosi_and_mosei_run_through_table1_and_the_caption_names_the_features(tmp_path: Path) -> None:
    mosi = write_mult(tmp_path / "mosi_data.pkl", (300, 5, 20), seed=0)
    mosei = write_mult(tmp_path / "mosei_senti_data.pkl", (300, 74, 35), seed=1, minus_inf=True)
    out = tmp_path / "table1.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / "umdf_table1.ipynb"), str(out), cwd=str(ROOT / "notebooks"),
                        kernel_name="python3", progress_bar=False,
                        parameters={"dataset": "mosi,mosei", "data_path": f"{mosi},{mosei}", "settings": "mosi,mosei",
                                    "profile": "smoke", "seeds": "1", "results_dir": str(tmp_path / "runs")})
    text = outputs_text(out)
    assert "MulT pickle: text GloVe 300-d, audio COVAREP 5-d, vision Facet 20-d" in text
    assert "MulT pickle: text GloVe 300-d, audio COVAREP 74-d, vision Facet 35-d" in text
    assert "non-finite values replaced by 0: train audio 1" in text
    assert "Table 1 (MOSI-shaped)" in text and "Table 1 (MOSEI-shaped)" in text
    records = ResultsStore(tmp_path / "runs").records("umdf")
    by_file = {r["data_source"]: r["provenance"] for r in records}
    assert by_file[str(mosei)]["replaced"] == {"train": {"audio": 1}}
    assert by_file[str(mosi)]["replaced"] == {}
    assert by_file[str(mosi)]["padding"]["train"] == {"text": "start", "audio": "start", "vision": "start"}

"""The book builds (smoke profile, stored notebooks) and every notebook is re-runnable with papermill."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))
from build import toc_files  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REQUIRED_PARAMETERS = {"dataset", "data_path", "profile", "seeds", "device"}


def test_toc_lists_every_notebook_and_page():
    toc = toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    listed = {f for f in toc if f.startswith("notebooks/")}
    assert listed == {f"notebooks/{p.stem}" for p in NOTEBOOKS}
    for entry in toc:
        assert (ROOT / f"{entry}.md").exists() or (ROOT / f"{entry}.ipynb").exists(), entry


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_parameters_and_is_stored_executed_under_smoke(path):
    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    names = {line.split(":")[0].split("=")[0].strip() for line in params[0].source.splitlines()
             if line and not line.startswith("#")}
    assert REQUIRED_PARAMETERS <= names, f"missing parameters {REQUIRED_PARAMETERS - names}"
    assert 'profile: str = "smoke"' in params[0].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "commit notebooks executed (papermill) so nbval compares"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert all("smoke" in c.source for c in injected)


def test_book_builds_without_warnings(tmp_path):
    out = tmp_path / "book"
    result = subprocess.run([sys.executable, str(ROOT / "book" / "build.py"), "--profile", "smoke",
                             "--no-execute", "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = out / "site" / "_build" / "html"
    for nb in NOTEBOOKS:
        page = (html / "notebooks" / f"{nb.stem}.html").read_text()
        stored = nbformat.read(nb, as_version=4)
        n_figures = sum("image/png" in o.get("data", {}) for c in stored.cells for o in c.get("outputs", []))
        assert page.count("<img") >= n_figures, f"{nb.name}: figures missing from the rendered page"
        assert "<table" in page, f"{nb.name}: results table missing from the rendered page"
        # the caption computed from the data (not the parameters cell, which names a preset anyway)
        assert "the embedded <strong>synthetic</strong> default" in page, f"{nb.name}: caption must name the data"
        warned = any(":::{warning}" in o.get("data", {}).get("text/markdown", "")
                     for c in stored.cells for o in c.get("outputs", []))
        assert ("admonition warning" in page) == warned, f"{nb.name}: a degenerate-run warning renders as a box"
    intro = (html / "book" / "intro.html").read_text()
    assert "computed on synthetic data" in intro
    # tables the prose includes are generated from msa_lib, never typed
    from msa_lib.chapters import umdf
    from msa_lib.experiments import PROFILES

    assert all(f"<td><p>{p}</p></td>" in intro for p in PROFILES)
    chapter = (html / "book" / "umdf.html").read_text()
    assert f"<td><p>{umdf.SETTINGS['mosei']['n_heads']}</p></td>" in chapter and "λ1 (L_fea)" in chapter

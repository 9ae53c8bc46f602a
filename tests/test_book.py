"""The book builds (smoke profile, stored notebooks) and every notebook is re-runnable with papermill."""
from __future__ import annotations

import html as html_lib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))
from build import notebook_status, statistics_markdown, stored_runs, toc_files  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REQUIRED_PARAMETERS = {"profile", "seeds", "device", "results_dir"}
#: every notebook names its data: one dataset list, or (claims pages) one dataset per paper table
DATA_PARAMETERS = ({"dataset", "data_path"}, {"mosi", "mosi_path", "iemocap", "iemocap_path"})


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
    assert any(data <= names for data in DATA_PARAMETERS), f"no data parameters in {sorted(names)}"
    # results first: every code cell's input is hidden (the reader expands it) or, for the parameters
    # cell (the run-configuration box says what ran), removed
    assert all({"hide-input", "remove-input"} & set(c.metadata.get("tags", [])) for c in nb.cells if c.cell_type == "code")
    assert "remove-input" in params[0].metadata["tags"]
    assert 'profile: str = "smoke"' in params[0].source
    # papermill reads every parameter (a line it cannot parse, e.g. with a second "=" in its help
    # comment, is dropped from --help-notebook and the type-aware injection, with only a log line)
    import papermill

    assert set(papermill.inspect_notebook(str(path))) == names
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "commit notebooks executed (papermill) so nbval compares"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert all("smoke" in c.source for c in injected)


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    """The book built once per module (smoke profile, stored notebooks, warnings are errors)."""
    out = tmp_path_factory.mktemp("book")
    result = subprocess.run([sys.executable, str(ROOT / "book" / "build.py"), "--profile", "smoke",
                             "--no-execute", "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "site" / "_build" / "html"


def _pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if p.relative_to(html).parts[0] not in ("_static", "_sources"))


def _text(page: str) -> str:
    """A page's visible text, lower case, whitespace collapsed."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", page)).lower().split())


def test_readme_status_table_is_the_generated_one():
    from build import markdown_table
    from msa_lib.chapters import status_table

    assert markdown_table(status_table()) in (ROOT / "README.md").read_text()


def test_injected_parameters_never_reach_a_page(tmp_path):
    from build import remove_injected_input

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("results_dir = '/tmp/build/results'", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["hide-input"]})]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    remove_injected_input(path)
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].metadata["tags"] == ["injected-parameters", "remove-input"] and cells[1].metadata["tags"] == ["hide-input"]


def test_book_builds_without_warnings(html):
    for nb in NOTEBOOKS:
        page = (html / "notebooks" / f"{nb.stem}.html").read_text()
        stored = nbformat.read(nb, as_version=4)
        # figures shown in a cell's output, or glued for a {glue:figure} block (papermill's record)
        n_figures = sum(any(m in o.get("data", {}) for m in ("image/png", "image/svg+xml",
                                                             "application/papermill.record/image/svg+xml"))
                        for c in stored.cells for o in c.get("outputs", []))
        assert page.count("<img") >= n_figures, f"{nb.name}: figures missing from the rendered page"
        assert "<table" in page, f"{nb.name}: results table missing from the rendered page"
        # one banner per page, computed from the data (not the parameters cell, which names a preset anyway);
        # none on the pages whose data is the real dataset fetched by name
        from build import fetched_dataset

        banners = 0 if fetched_dataset(nb) else 1
        assert page.count("<strong>Synthetic data</strong>") == banners, f"{nb.name}: {banners} synthetic-data banner"
        warned = any(":::{warning}" in o.get("data", {}).get("text/markdown", "")
                     for c in stored.cells for o in c.get("outputs", []))
        assert ("admonition warning" in page) == warned, f"{nb.name}: a degenerate-run warning renders as a box"
    intro = (html / "book" / "intro.html").read_text()
    assert "computed on synthetic data" in intro
    # tables the prose includes are generated from msa_lib, never typed
    from msa_lib.chapters import umdf
    from msa_lib.experiments import PROFILES

    assert all(f"<p>{p}</p></th>" in intro for p in PROFILES)  # one column per profile
    chapter = (html / "book" / "umdf.html").read_text()
    assert f"<td><p>{umdf.SETTINGS['mosei']['n_heads']}</p></td>" in chapter and "λ1 (L_fea)" in chapter


def test_every_page_loads_mathjax_once_and_no_inline_script_twice(html):
    pages = _pages(html)
    assert len(pages) > 10
    for page in pages:
        text = page.read_text()
        mathjax = re.findall(r'<script[^>]*src="[^"]*tex-mml-chtml\.js[^"]*"', text)
        assert len(mathjax) <= 1, f"{page.name}: MathJax loaded {len(mathjax)} times"
        assert text.count("THEBE_JS_URL =") <= 1, f"{page.name}: THEBE_JS_URL declared twice"
        inline = re.findall(r"<script>(.*?)</script>", text, flags=re.S)
        assert len(inline) == len(set(inline)), f"{page.name}: an inline script is repeated"
        assert text.count("search-button-field") == 1, f"{page.name}: one search box per page"
    umdf = (html / "book" / "umdf.html").read_text()  # a page with equations loads MathJax, deferred
    assert len(re.findall(r'<script defer="defer" src="[^"]*tex-mml-chtml\.js', umdf)) == 1


def test_front_page_is_a_page_not_a_blank_redirect(html):
    index = (html / "index.html").read_text()
    assert "http-equiv=\"Refresh\"" not in index
    assert 'href="book/intro.html"' in index
    for nb in toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text())):
        assert f'href="{nb}.html"' in index, f"front page lists {nb}"


def test_references_page_lists_every_entry_and_umdf_page_cites_it(html):
    from pybtex.database import parse_file

    bib = parse_file(ROOT / "book" / "references.bib")
    references = (html / "book" / "references.html").read_text()
    entries = re.findall(r'<div class="citation" id="([^"]+)" role="doc-biblioentry">(.*?)</div>', references, re.S)
    assert len(entries) == len(bib.entries)
    listed = _text(references)
    for key, entry in bib.entries.items():
        title = " ".join(entry.fields["title"].replace("{", "").replace("}", "").lower().split())
        assert title in listed, f"{key} missing from the references page"
    umdf = (html / "book" / "umdf.html").read_text()
    targets = dict(entries)
    cited = [targets.get(a, "") for a in re.findall(r'href="references\.html#([^"]+)"', umdf)]
    assert any("unified self-distillation framework" in _text(c) for c in cited), "umdf page cites the paper"
    protocols = (html / "book" / "protocols.html").read_text()
    cited = " ".join(_text(targets.get(a, "")) for a in re.findall(r'href="references\.html#([^"]+)"', protocols))
    for title in ("dual-level feature restoration", "transformer-based feature reconstruction",
                  "robust multimodal sentiment analysis with incomplete data", "m-sena"):
        assert title in cited, f"protocols page cites {title!r}"


def test_statistics_page_lists_every_notebook_with_time_and_status(html):
    page = (html / "book" / "statistics.html").read_text()
    text = _text(page)
    notebooks = [f for f in toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text())) if f.startswith("notebooks/")]
    table = re.search(r'<section id="notebooks">.*?</table>', page, re.S).group(0)
    for nb in notebooks:
        stored = json.loads((ROOT / f"{nb}.ipynb").read_text())["metadata"]["papermill"]
        row = re.search(rf'<tr[^>]*>(?:(?!</tr>).)*href="\.\./{nb}\.html".*?</tr>', table, re.S)
        assert row, f"{nb} missing from the statistics page"
        cells = _text(row.group(0))
        assert re.search(r"\bok\b", cells) and f"{stored['duration']:.1f} s" in cells, cells
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    assert (commit.stdout.strip() or "unknown") in text
    assert "profile smoke" in text and "torch" in text and "--no-execute" in text


def test_repository_button_is_the_pyproject_url(html):
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    for page in (html / "index.html", html / "book" / "intro.html", html / "notebooks" / "pipeline.html"):
        text = page.read_text()
        assert f'href="{url}"' in text, f"{page.name}: repository button"
        assert "executablebooks/jupyter-book" not in text


def _write_run(root: Path, model: str, key: str, label: str, seconds: float) -> None:
    (root / model / key).mkdir(parents=True)
    (root / model / key / "run.json").write_text(json.dumps(
        {"spec": {"model": model, "label": label, "seed": 1, "eval_protocols": []}, "train_seconds": seconds}))


def test_statistics_summarise_runs_per_model_and_label(tmp_path):
    assert stored_runs(tmp_path / "none") == [] and not (tmp_path / "none").exists()
    (tmp_path / "LAYOUT").write_text("msa_lib results v2\n")
    for i, s in enumerate((10.0, 30.0, 20.0)):
        _write_run(tmp_path, "umdf", f"{i:016x}", "", s)
    _write_run(tmp_path, "umdf", f"{9:016x}", "UMDF w/o DFIM", 5.0)
    _write_run(tmp_path, "tfn", f"{8:016x}", "TFN", 1.5)
    runs = {(r["model"], r["label"]): r for r in stored_runs(tmp_path)}
    assert runs[("umdf", "umdf")] == {"model": "umdf", "label": "umdf", "runs": 3, "total": 60.0, "median": 20.0}
    assert runs[("umdf", "UMDF w/o DFIM")]["runs"] == 1 and runs[("tfn", "TFN")]["total"] == 1.5
    info = {"commit": "abc1234", "date": "2026-01-01 00:00 UTC", "profile": "book", "executed": True,
            "torch": "2.13.0", "python": "3.11.7"}
    md = statistics_markdown(info, {"notebooks/x": {"seconds": 75.0, "status": "failed", "end_time": None}},
                             list(runs.values()), "results/book")
    assert "| {doc}`x.ipynb </notebooks/x>` | failed | 75.0 s (1.2 min) |" in md
    assert "| umdf | umdf | 3 | 60.0 s (1.0 min) | 20.0 s |" in md and "1 failed" in md


def test_notebook_status_reads_papermill_metadata(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1/0")]
    nb.metadata["papermill"] = {"duration": 2.5, "exception": None, "end_time": "2026-01-01T00:00:00+00:00"}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert notebook_status(path) == {"seconds": 2.5, "status": "ok", "end_time": "2026-01-01T00:00:00+00:00"}
    nb.cells[0].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])]
    nbformat.write(nb, path)
    assert notebook_status(path)["status"] == "failed"
    del nb.metadata["papermill"]
    nbformat.write(nb, path)
    assert notebook_status(path)["seconds"] is None


def test_offline_the_real_data_notebooks_are_named_with_the_reason(tmp_path, monkeypatch):
    """Without the cache and without the network, the notebooks whose `dataset` defaults to a fetched
    dataset are rendered from their stored outputs (build) and skipped by nbval (conftest)."""
    import pooch

    from build import fetched_dataset, unavailable_data

    assert fetched_dataset(ROOT / "notebooks" / "leaderboard.ipynb") == "mosi-utterance"
    assert fetched_dataset(ROOT / "notebooks" / "umdf_table1.ipynb") is None  # synthetic by default

    def offline(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setenv("MSA_BOOK_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(pooch, "retrieve", offline)
    found = unavailable_data(["notebooks/leaderboard", "notebooks/umdf_real", "notebooks/umdf_table1"])
    assert set(found) == {"notebooks/leaderboard", "notebooks/umdf_real"}
    assert found["notebooks/leaderboard"].startswith("mosi-utterance: ")
    assert "could not be downloaded" in found["notebooks/leaderboard"] and "no route to host" in found["notebooks/leaderboard"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_markers_are_exact(path):
    """nbval honours a marker only when the comment is exactly the marker: "# NBVAL_IGNORE_OUTPUT (why)"
    is silently ignored and the cell is compared after all. The reason goes on the next line."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for line in cell.source.splitlines() if cell.cell_type == "code" else []:
            if line.lstrip("# ").startswith("NBVAL"):
                assert line.strip() in ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP", "# NBVAL_CHECK_OUTPUT",
                                        "# NBVAL_RAISES_EXCEPTION"), f"{path.name}: {line!r}"

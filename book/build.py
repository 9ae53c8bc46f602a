"""Build the book: execute every notebook in ``_toc.yml`` with papermill, then ``jupyter-book build``.

    python book/build.py --profile book            # what `make book` runs
    python book/build.py --profile smoke --no-execute --out /tmp/b   # stored notebooks as they are

Executed notebooks go to ``<out>/site/notebooks`` (the committed notebooks stay as stored, executed
under the smoke profile for nbval). Runs are stored in ``<out>/results/<profile>`` and reused, so
an interrupted build resumes. The HTML lands in ``<out>/site/_build/html``. Sphinx runs with
warnings as errors.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MATHJAX = "mathjax@3"  # npm package; only the es5 bundle and its woff-v2 fonts are used (~1.6 MB)


def toc_files(toc: dict) -> list[str]:
    """Every ``file:`` entry of a jupyter-book ``_toc.yml``, in order."""
    found = [toc["root"]] if "root" in toc else []
    for key in ("parts", "chapters", "sections"):
        for entry in toc.get(key, []):
            if "file" in entry:
                found.append(entry["file"])
            found.extend(f for f in toc_files(entry) if f not in found)
    return found


def stage_sources(site: Path) -> list[str]:
    """Copy the book's sources into ``site``; return the notebooks the toc names."""
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, site / name)
    shutil.copytree(ROOT / "book", site / "book", ignore=shutil.ignore_patterns("build.py", "__pycache__"))
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [f for f in toc_files(toc) if f.startswith("notebooks/")]


def markdown_table(df) -> str:
    """A pandas frame as a Markdown pipe table (index included)."""
    df = df.reset_index()
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def generate_tables(site: Path) -> None:
    """Tables the prose includes (``{include}`` of ``book/_generated/*.md``), computed from msa_lib so
    no setting is typed twice."""
    from msa_lib.chapters import umdf
    from msa_lib.data.synthetic import preset_table
    from msa_lib.experiments import profile_table

    out = site / "book" / "_generated"
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("profiles", profile_table()), ("presets", preset_table()),
                        ("umdf_settings", umdf.settings_table())):
        (out / f"{name}.md").write_text(markdown_table(table))


def vendor_mathjax(site: Path, cache: Path) -> bool:
    """Put MathJax 3 under the site's ``_static`` so the rendered book shows equations offline.

    Fetched once with ``npm pack`` into ``cache``; without npm the pages still build, and their
    equations show as TeX source.
    """
    static = site / "_static"
    static.mkdir(exist_ok=True)
    target = cache / "mathjax"
    if not (target / "es5" / "tex-mml-chtml.js").exists():
        npm = shutil.which("npm")
        if npm is None:
            print("[book] npm not found: equations will show as TeX source", file=sys.stderr)
            return False
        with tempfile.TemporaryDirectory() as tmp:
            packed = subprocess.run([npm, "pack", MATHJAX, "--silent", "--pack-destination", tmp],
                                    capture_output=True, text=True)
            if packed.returncode != 0:
                print(f"[book] npm pack {MATHJAX} failed: equations will show as TeX source\n{packed.stderr}",
                      file=sys.stderr)
                return False
            with tarfile.open(next(Path(tmp).glob("mathjax-*.tgz"))) as tar:
                keep = [m for m in tar.getmembers() if m.name == "package/es5/tex-mml-chtml.js"
                        or m.name.startswith("package/es5/output/chtml/fonts/woff-v2/")]
                for member in keep:
                    member.name = member.name.removeprefix("package/")
                tar.extractall(target, members=keep, filter="data")
    shutil.copytree(target, static / "mathjax", dirs_exist_ok=True)
    return True


def report_degenerate(results: Path) -> None:
    """List, in the build log, every stored run that did not train (its page carries a warning)."""
    if not (results / "LAYOUT").exists():
        return
    from msa_lib.report import health_table
    from msa_lib.results import ResultsStore

    table = health_table(ResultsStore(results).records())
    bad = table[table["degenerate"].astype(bool)] if not table.empty else table
    print(f"[book] {len(bad)} of {len(table)} stored runs are degenerate (excluded from verdicts)", flush=True)
    for row in bad.itertuples():
        print(f"[book]   {row.run} seed {row.seed} ({row.key}): {row.degenerate}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="book", choices=["smoke", "book", "paper"])
    p.add_argument("--out", default=str(ROOT / "_build"))
    p.add_argument("--no-execute", action="store_true", help="render the stored notebooks without re-running them")
    args = p.parse_args(argv)
    os.environ["TQDM_DISABLE"] = "1"  # executed notebooks (and the kernels papermill starts) show no progress bars
    out = Path(args.out).resolve()
    site = out / "site"
    notebooks = stage_sources(site)
    generate_tables(site)
    vendor_mathjax(site, out)
    (site / "notebooks").mkdir()
    timings = {}
    for nb in notebooks:
        src, dst = ROOT / f"{nb}.ipynb", site / f"{nb}.ipynb"
        t0 = time.perf_counter()
        if args.no_execute:
            shutil.copy2(src, dst)
        else:
            import papermill

            print(f"[book] executing {nb} (profile {args.profile})", flush=True)
            papermill.execute_notebook(
                str(src), str(dst), kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False,
                parameters={"profile": args.profile, "results_dir": str(out / "results" / args.profile)},
            )
        timings[nb] = round(time.perf_counter() - t0, 1)
        print(f"[book] {nb}: {timings[nb]} s", flush=True)
    report_degenerate(out / "results" / args.profile)
    t0 = time.perf_counter()
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(site), "--warningiserror", "--nitpick", "--keep-going"]
    result = subprocess.run(cmd)
    timings["jupyter-book build"] = round(time.perf_counter() - t0, 1)
    (out / "timings.json").write_text(json.dumps({"profile": args.profile, **timings}, indent=1))
    if result.returncode != 0:
        print("[book] jupyter-book build failed", file=sys.stderr)
        return result.returncode
    print(f"[book] done: {site / '_build' / 'html' / 'index.html'}  timings: {timings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

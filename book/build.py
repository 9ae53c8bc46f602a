"""Build the book: execute every notebook in ``_toc.yml`` with papermill, then ``jupyter-book build``.

    python book/build.py --profile book            # what `make book` runs
    python book/build.py --profile smoke --no-execute --out /tmp/b   # stored notebooks as they are

Executed notebooks go to ``<out>/site/notebooks`` (the committed notebooks stay as stored, executed
under the smoke profile for nbval). Runs are stored in ``<out>/results/<profile>`` and reused, so
an interrupted build resumes. The HTML lands in ``<out>/site/_build/html``. Sphinx runs with
warnings as errors.

After the notebooks, the build writes ``book/_generated/statistics.md`` into the staged site (the
"Execution statistics" page: commit, date, profile, torch version, run time and status of every
notebook read from its papermill metadata, and the stored training runs per model), and adds the
repository URL (``[project.urls] Repository`` in ``pyproject.toml``) and the build's identity to the
staged ``_config.yml``. A notebook whose ``dataset`` defaults to a public dataset fetched by name
(``mosi-utterance``) that is neither cached nor downloadable (offline) is not executed: its page
shows its stored outputs, and the build says so in one line. A notebook that fails is marked ``failed`` on that page, the other notebooks
and the book are still built, and the command exits non-zero.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from importlib import metadata
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
    shutil.copytree(ROOT / "book", site / "book",
                    ignore=shutil.ignore_patterns("build.py", "check_pages.py", "__pycache__"))
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
    from msa_lib.chapters import dar, mitr, sdumc, status_table, umdf
    from msa_lib.data.synthetic import preset_table
    from msa_lib.experiments import profile_table

    out = site / "book" / "_generated"
    out.mkdir(parents=True, exist_ok=True)
    # profiles as columns: three narrow columns fit the text column, eight wide ones did not
    for name, table in (("profiles", profile_table().T.rename_axis("profile")), ("presets", preset_table()),
                        ("umdf_settings", umdf.settings_table()), ("umdf_choices", umdf.open_choices()),
                        ("mitr_settings", mitr.settings_table()), ("mitr_choices", mitr.open_choices()),
                        ("sdumc_settings", sdumc.settings_table()), ("sdumc_objective", sdumc.objective_table()),
                        ("sdumc_choices", sdumc.open_choices()),
                        ("dar_settings", dar.settings_table()), ("dar_choices", dar.open_choices()),
                        ("status", status_table())):
        (out / f"{name}.md").write_text(markdown_table(table))
    scale_tables(out)


#: The measured throughput the scale page shows and estimates hours from (`benchmarks/throughput.py --json`).
BENCHMARK = ROOT / "benchmarks" / "throughput-cpu.json"


def scale_tables(out: Path) -> None:
    """The "at scale" page's tables: one sweep command per chapter, runs per chapter and profile,
    hours from the stored benchmark and the benchmark itself."""
    from msa_lib.chapters import CHAPTERS
    from msa_lib.sweeps import (benchmark_source, compute_estimate, cost_table, read_benchmark, run_counts,
                                sweep_command, sweep_datasets, throughput_table)

    commands = [f"| {name} | {sweep_datasets(name).replace(',', ', ')} | `{sweep_command(name)}` |" for name in CHAPTERS]
    (out / "scale_commands.md").write_text("| chapter | datasets | command |\n|---|---|---|\n" + "\n".join(commands) + "\n")
    (out / "scale_runs.md").write_text(markdown_table(run_counts().drop(columns="datasets").set_index("chapter")))
    bench = read_benchmark(BENCHMARK)
    where = benchmark_source(bench)
    hours = compute_estimate(bench, "paper").set_index("chapter")
    hours["hours"] = hours["hours"].map(lambda h: f"{h:.1f}")
    hours = hours.rename(columns={"hours": "hours, upper bound"})
    (out / "scale_hours.md").write_text(markdown_table(hours) + "\n" + where + "\n")
    (out / "scale_throughput.md").write_text(markdown_table(throughput_table(bench)) + "\n" + where + "\n")
    (out / "scale_cost.md").write_text(markdown_table(cost_table(bench)))


def repository_url() -> str | None:
    """The project's repository (``[project.urls] Repository`` in ``pyproject.toml``), the one place
    the URL is written; ``None`` without it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("project", {})
    return project.get("urls", {}).get("Repository")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def build_info(profile: str, executed: bool) -> dict:
    """What identifies this build: commit (``unknown`` outside git; ``+ uncommitted changes`` when the
    tracked files differ from it), date, profile, torch and Python versions."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if commit != "unknown" and _git("status", "--porcelain", "--untracked-files=no"):
        commit += " + uncommitted changes"
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    return {"commit": commit, "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "profile": profile, "executed": executed, "torch": torch_version,
            "python": ".".join(map(str, sys.version_info[:3]))}


def configure_site(site: Path, info: dict, repo_url: str | None) -> None:
    """Add to the staged ``_config.yml`` what is known only at build time: the repository button and
    the build's identity (shown on the front page, ``book/_templates/landing.html``)."""
    path = site / "_config.yml"
    config = yaml.safe_load(path.read_text())
    if repo_url:
        config["repository"] = {**config.get("repository", {}), "url": repo_url}
        config["html"] = {**config.get("html", {}), "use_repository_button": True}
    context = config.setdefault("sphinx", {}).setdefault("config", {}).setdefault("html_context", {})
    context["book_build"] = {"commit": info["commit"], "date": info["date"], "profile": info["profile"],
                             "statistics": "book/statistics"}
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def notebook_status(path: Path) -> dict:
    """Run time, status and end time of an executed notebook, from papermill's metadata (so the stored
    notebooks of a ``--no-execute`` build report the run that produced them)."""
    nb = json.loads(path.read_text())
    pm = nb.get("metadata", {}).get("papermill")
    if not pm:
        return {"seconds": None, "status": "not run by papermill", "end_time": None}
    cells = nb.get("cells", [])
    failed = bool(pm.get("exception")) or any(
        c.get("metadata", {}).get("papermill", {}).get("status") == "failed"
        or any(o.get("output_type") == "error" for o in c.get("outputs", [])) for c in cells)
    return {"seconds": pm.get("duration"), "status": "failed" if failed else "ok", "end_time": pm.get("end_time")}


def stored_runs(results: Path) -> list[dict]:
    """Per (model, label): number of stored runs and their total and median training seconds."""
    if not (results / "LAYOUT").exists():  # ResultsStore would create the folder
        return []
    from msa_lib.results import ResultsStore

    groups: dict[tuple[str, str], list[float]] = {}
    for record in ResultsStore(results).records():
        spec = record.get("spec", {})
        model = spec.get("model", "?")
        groups.setdefault((model, spec.get("label") or model), []).append(float(record.get("train_seconds") or 0.0))
    return [{"model": m, "label": lab, "runs": len(s), "total": sum(s), "median": statistics.median(s)}
            for (m, lab), s in sorted(groups.items())]


def _seconds(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.1f} s" if s < 60 else f"{s:.1f} s ({s / 60:.1f} min)"


def _when(iso: str | None) -> str:
    if not iso:
        return "—"
    return dt.datetime.fromisoformat(iso).astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def statistics_markdown(info: dict, notebooks: dict[str, dict], runs: list[dict], results_label: str) -> str:
    """The body of the "Execution statistics" page (``book/statistics.md`` includes it)."""
    how = ("executed by papermill in this build" if info["executed"] else
           "**not re-run in this build** (`--no-execute`): times, status and dates are those stored in the "
           "committed notebooks")
    lines = [
        f"* **Commit** `{info['commit']}`, built {info['date']}",
        f"* **Profile** `{info['profile']}`",
        f"* **torch** {info['torch']}, **Python** {info['python']}", "",
        "## Notebooks", "", f"Notebooks {how}.", "",
        "| notebook | status | run time | finished |", "|---|---|---|---|",
    ]
    for nb, st in notebooks.items():
        name = nb.split("/")[-1]
        lines.append(f"| {{doc}}`{name}.ipynb </{nb}>` | {st['status']} | {_seconds(st['seconds'])} | "
                     f"{_when(st['end_time'])} |")
    total = sum(st["seconds"] or 0.0 for st in notebooks.values())
    failed = sum(st["status"] == "failed" for st in notebooks.values())
    lines += [f"| **all {len(notebooks)}** | {failed} failed | {_seconds(total)} | |", "", "## Stored training runs", ""]
    if runs:
        lines += [f"Runs in the results store `{results_label}` that the pages read (a run trained once is reused "
                  "by every page and later build that asks for it).", "",
                  "| model | label | runs | train time, total | train time, median |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['label']} | {r['runs']} | {_seconds(r['total'])} | {_seconds(r['median'])} |"
                  for r in runs]
    else:
        lines.append(f"No runs are stored in `{results_label}` for this build"
                     + (" (the notebooks were not executed in it)." if not info["executed"] else "."))
    return "\n".join(lines) + "\n"


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


def remove_injected_input(path: Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-input``: it holds this build's paths
    (``results_dir``), which must not leak into a page (the parameters cell itself is hidden by its
    ``hide-input`` tag)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-input" not in tags:
            cell.metadata["tags"] = tags + ["remove-input"]
    nbformat.write(nb, path)


def fetched_dataset(path: Path) -> str | None:
    """The public dataset fetched by name (``msa_lib.data.FETCHED``) that a notebook's ``dataset``
    parameter defaults to, or None (synthetic data)."""
    import papermill

    from msa_lib.data import FETCHED

    default = papermill.inspect_notebook(str(path)).get("dataset", {}).get("default", "")
    name = str(default).strip("\"'")
    return name if name in FETCHED else None


def unavailable_data(notebooks: list[str]) -> dict[str, str]:
    """Per notebook whose data cannot be had now (a fetched dataset neither cached nor downloadable):
    why. Such notebooks are rendered from their stored outputs."""
    from msa_lib.data import FETCHED

    reasons: dict[str, str] = {}
    out = {}
    for nb in notebooks:
        name = fetched_dataset(ROOT / f"{nb}.ipynb")
        if name is None:
            continue
        if name not in reasons:
            reasons[name] = FETCHED[name].unavailable()
        if reasons[name]:
            out[nb] = f"{name}: {reasons[name]}"
    return out


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
    results = out / "results" / args.profile
    notebooks = stage_sources(site)
    info = build_info(args.profile, executed=not args.no_execute)
    configure_site(site, info, repository_url())
    generate_tables(site)
    vendor_mathjax(site, out)
    (site / "notebooks").mkdir()
    timings = {}
    offline = {} if args.no_execute else unavailable_data(notebooks)
    for nb, why in offline.items():  # one line each; the page shows its stored (smoke-profile) outputs
        print(f"[book] {nb}: data unavailable, rendered from its stored outputs ({why.splitlines()[0]})", flush=True)
    for nb in notebooks:
        src, dst = ROOT / f"{nb}.ipynb", site / f"{nb}.ipynb"
        t0 = time.perf_counter()
        if args.no_execute or nb in offline:
            shutil.copy2(src, dst)
        else:
            import papermill
            from papermill.exceptions import PapermillExecutionError

            print(f"[book] executing {nb} (profile {args.profile})", flush=True)
            try:
                papermill.execute_notebook(
                    str(src), str(dst), kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False,
                    parameters={"profile": args.profile, "results_dir": str(results)},
                )
            except PapermillExecutionError as exc:  # the notebook is written with the error; the page shows it
                print(f"[book] {nb} FAILED: {exc.ename}: {exc.evalue}", file=sys.stderr, flush=True)
            remove_injected_input(dst)
        timings[nb] = round(time.perf_counter() - t0, 1)
        print(f"[book] {nb}: {timings[nb]} s", flush=True)
    report_degenerate(results)
    status = {nb: notebook_status(site / f"{nb}.ipynb") for nb in notebooks}
    for nb in offline:
        status[nb]["status"] = "not re-run: data unavailable (stored outputs)"
    failed = [nb for nb, st in status.items() if st["status"] == "failed"]
    (site / "book" / "_generated" / "statistics.md").write_text(
        statistics_markdown(info, status, stored_runs(results), f"results/{args.profile}"))
    t0 = time.perf_counter()
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(site), "--warningiserror", "--nitpick", "--keep-going"]
    result = subprocess.run(cmd)
    timings["jupyter-book build"] = round(time.perf_counter() - t0, 1)
    (out / "timings.json").write_text(json.dumps({"profile": args.profile, **timings}, indent=1))
    if result.returncode != 0:
        print("[book] jupyter-book build failed", file=sys.stderr)
        return result.returncode
    if failed:
        print(f"[book] {len(failed)} notebook(s) failed: {', '.join(failed)} (marked on the statistics page)",
              file=sys.stderr)
        return 1
    print(f"[book] done: {site / '_build' / 'html' / 'index.html'}  timings: {timings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The package's shape: imports point one way, and the reported tables ship as package data."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "msa_lib"

#: Lower layers never import higher ones. Base types and masking helpers at the bottom; chapters and
#: the command line at the top.
LAYERS: dict[str, int] = {
    "core": 0, "data": 0,
    "metrics": 1, "missing": 1, "losses": 1, "results": 1, "style": 1,
    "models": 2, "report": 2,
    "train": 3,
    "runs": 4,
    "experiments": 5,
    "chapters": 6, "probe": 6,
    "sweeps": 7,
    "__main__": 8,
}


def layer_of(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def imports_of(path: Path) -> list[str]:
    """msa_lib modules a file imports (relative or absolute), as dotted names inside the package."""
    rel = path.relative_to(PKG).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
                if target:
                    found.append(target)
                else:  # "from . import x" at the package root
                    found.extend(alias.name for alias in node.names)
            elif node.module and node.module.startswith("msa_lib"):
                found.append(node.module.removeprefix("msa_lib").lstrip("."))
        elif isinstance(node, ast.Import):
            found += [a.name.removeprefix("msa_lib").lstrip(".") for a in node.names if a.name.startswith("msa_lib.")]
    return [f for f in found if f]


def test_every_module_has_a_layer():
    top = {p.stem if p.is_file() else p.name for p in PKG.iterdir()
           if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())) and p.stem != "__init__"}
    assert top <= set(LAYERS), f"give {sorted(top - set(LAYERS))} a layer"


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path):
    name = ".".join(path.relative_to(PKG).with_suffix("").parts)
    own = max(LAYERS.values()) if name == "__init__" else layer_of(name)
    upward = [m for m in imports_of(path) if layer_of(m) > own]
    assert not upward, f"{path.relative_to(ROOT)} (layer {own}) imports higher modules {upward}"


def test_the_import_check_can_fail(tmp_path):
    """The checker reads relative imports correctly: a low module importing a high one is caught."""
    fake = PKG / "missing.py"
    assert "experiments" not in imports_of(fake)
    assert [m for m in imports_of(PKG / "chapters" / "umdf.py") if layer_of(m) > layer_of("chapters")] == []
    assert "experiments" in imports_of(PKG / "chapters" / "umdf.py")
    assert "core" in imports_of(PKG / "models" / "base.py") and layer_of("core") < layer_of("models")


def test_results_store_imports_no_torch_models():
    code = "import sys, msa_lib.results; print(sorted(m for m in sys.modules if m in ('torch', 'msa_lib.models')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_non_editable_install_ships_the_reported_tables_and_runs_a_notebook(tmp_path):
    """``pip install .`` (not editable) and a notebook run from elsewhere: the transcribed paper
    tables are package data, not files next to the repository."""
    import shutil

    source = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT / "msa_lib", source / "msa_lib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, cwd=tmp_path)
    assert (target / "msa_lib" / "reported" / "umdf_table1.csv").exists()
    env = {**os.environ, "PYTHONPATH": str(target), "TQDM_DISABLE": "1"}
    check = "import msa_lib, msa_lib.report as r; print(msa_lib.__file__); print(len(r.reported('umdf_table1')))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, cwd=tmp_path,
                         check=True).stdout.split()
    assert out[0].startswith(str(target)) and int(out[1]) > 0
    executed = tmp_path / "out.ipynb"
    run = subprocess.run([sys.executable, "-m", "papermill", "--no-progress-bar", "-k", "python3",
                          str(ROOT / "notebooks" / "pipeline.ipynb"), str(executed), "-p", "profile", "smoke",
                          "-p", "seeds", "1", "--cwd", str(tmp_path)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "MITR-DNet Tab. I" in executed.read_text()  # the reported column came from the installed package

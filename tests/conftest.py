"""Fixtures shared by the test modules."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """Tiny tensors: one intra-op thread is fastest and avoids oversubscription when other test
    processes share the CPU. Restored afterwards for the rest of the session."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_collection_modifyitems(config, items):
    """nbval on a machine without a fetched dataset (offline, no cache): the notebooks that need it
    are skipped with the reason, as the book build renders them from their stored outputs."""
    import sys
    from pathlib import Path

    notebooks = sorted({Path(str(item.fspath)) for item in items if str(item.fspath).endswith(".ipynb")})
    if not notebooks:
        return
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "book"))
    from build import unavailable_data  # noqa: E402

    offline = unavailable_data([f"notebooks/{p.stem}" for p in notebooks if p.parent == root / "notebooks"])
    for item in items:
        why = offline.get(f"notebooks/{Path(str(item.fspath)).stem}")
        if why and str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.skip(reason=f"data unavailable: {why.splitlines()[0]}"))

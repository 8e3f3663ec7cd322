"""notebooks/tour.ipynb: stored with the outputs of its current cells, and still runs end to end."""

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "tour.ipynb")
REGENERATE = "regenerate it with: python notebooks/make_tour.py"
MAX_BYTES = 4_000_000  # PNG outputs at 80 dpi; the stored file is ~2 MB


def _make_tour():
    spec = importlib.util.spec_from_file_location("make_tour", os.path.join(ROOT, "notebooks", "make_tour.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outputs(nb, kind=None):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if kind is None or o.get("output_type") == kind]


def _images(nb):
    return sum(1 for o in _outputs(nb) if "image/png" in o.get("data", {}))


def test_stored_notebook_is_built_from_make_tour_and_shows_its_outputs():
    nbformat = pytest.importorskip("nbformat")
    stored = nbformat.read(NOTEBOOK, as_version=4)
    built = _make_tour().build()
    assert [(c.cell_type, c.source) for c in stored.cells] == [(c.cell_type, c.source) for c in built.cells], (
        f"notebooks/tour.ipynb differs from notebooks/make_tour.py: {REGENERATE}"
    )
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), f"not run top to bottom: {REGENERATE}"
    assert not _outputs(stored, "error")
    assert _images(stored) >= 4
    assert os.path.getsize(NOTEBOOK) < MAX_BYTES


@pytest.mark.slow
def test_tour_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:  # judge this run's outputs, not the stored ones
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # The kernel is this interpreter's environment with this checkout's torchsim: the first cell checks it.
    check = nbformat.v4.new_code_cell(
        "import sys, os, torchsim\n"
        f"assert os.path.realpath(sys.prefix) == {os.path.realpath(sys.prefix)!r}, sys.prefix\n"
        f"assert os.path.realpath(torchsim.__file__).startswith({os.path.realpath(ROOT) + os.sep!r}), torchsim.__file__"
    )
    check["id"] = "test-check"
    nb.cells.insert(0, check)
    _make_tour().execute(nb, cwd=str(tmp_path))
    assert not _outputs(nb, "error")
    assert _images(nb) >= 4
    text = "".join(o.get("text", "") for o in _outputs(nb))
    assert "streamed:" in text and "loss: first 5 steps" in text

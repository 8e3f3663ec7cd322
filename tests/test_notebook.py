"""notebooks/tour.ipynb runs end to end (nbclient, the python3 kernel of this interpreter)."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "tour.ipynb")


@pytest.mark.slow
def test_tour_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    # Run in this interpreter's environment with this checkout's torchsim: the first cell checks it.
    check = nbformat.v4.new_code_cell(
        "import sys, os\n"
        f"assert os.path.realpath(sys.prefix) == {os.path.realpath(sys.prefix)!r}, sys.prefix\n"
        f"sys.path.insert(0, {ROOT!r})"
    )
    check["id"] = "test-check"
    nb.cells.insert(0, check)
    env_path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env_path  # "python" in the kernelspec
    try:
        client = nbclient.NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        )
        client.execute()
    finally:
        os.environ["PATH"] = env_path
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert images >= 4
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "streamed:" in text and "loss: first 5 steps" in text

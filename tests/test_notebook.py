"""examples/notebook.ipynb runs end to end in a real Jupyter kernel (issue 17): it trains two settings over
three seeds with `train`, reads them with `load_runs`, groups them and plots inline; on real MNIST when
it is here, else on the tiny data it writes itself. Any error in a cell fails the test."""

import shutil

import pytest
from conftest import REAL_DATA, ROOT

nbclient = pytest.importorskip("nbclient", reason="the notebook extra (nbclient, ipykernel) is not installed")
nbformat = pytest.importorskip("nbformat", reason="the notebook extra (nbformat) is not installed")


@pytest.mark.slow
def test_the_example_notebook_runs(tmp_path, monkeypatch):
    pytest.importorskip("ipykernel", reason="the notebook extra (ipykernel, the Jupyter kernel) is not installed")
    shutil.copy(ROOT / "examples" / "notebook.ipynb", tmp_path)  # its outputs/ go here, not into the checkout
    if (REAL_DATA / "MNIST" / "raw").is_dir():
        monkeypatch.setenv("MNIST_RUNNER_DATA", str(REAL_DATA))
    else:
        monkeypatch.delenv("MNIST_RUNNER_DATA", raising=False)
    nb = nbformat.read(tmp_path / "notebook.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert text.count(": completed, final test accuracy") == 6
    assert "subset - full: " in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the plot, inline
    assert len(list((tmp_path / "outputs" / "c3_question").glob("*/*/summary.json"))) == 6

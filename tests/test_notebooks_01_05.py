"""Notebooks 1 (tour) and 5 (training) run top to bottom on a CPU and save their figures."""

from pathlib import Path

import nbformat
import pytest

from lgd_tutorial.notebooks import run_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FIGURES = {
    "01_tour": ["01_receptive_fields.png", "01_synthetic_classes.png", "01_first_training.png"],
    "05_training": ["05_learning_curves.png", "05_confusion.png", "05_per_class.png", "05_ablation.png"],
}


# The workbook trains notebook 5's two variants with the full teaching recipe (minutes each); here the same
# cells run on a small synthetic set for two epochs.
SMALL = ["data.synthetic_videos_per_class=24", "data.synthetic_val_per_class=8", "optim.epochs=2",
         "run.log_every=1", "run.progress=false"]


# Each trains the teaching model briefly: about a minute on an idle 2-core CPU, several on a busy one.
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_on_a_cpu_and_saves_its_figures(name, tmp_path):
    figures = tmp_path / "figures"
    params = {"CPU_OVERRIDES": [f"data.root={tmp_path / 'synthetic'}", *SMALL]} if name == "05_training" else None
    run = run_notebook(NOTEBOOKS / f"{name}.ipynb", out_dir=tmp_path / "executed", timeout=600,
                       env={"LGD_FIGURES_DIR": str(figures), "LGD_PROFILE": "cpu"}, params=params)
    assert run.ok, run.error
    executed = nbformat.read(run.executed, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [o for c in code for o in c.outputs if o.output_type == "error"] == []
    assert all(c.execution_count for c in code)
    for figure in FIGURES[name]:
        assert (figures / figure).stat().st_size > 5000, f"{figure} missing or empty"
    if name == "05_training":
        assert (NOTEBOOKS.parent / "runs" / "notebook05_lgd" / "best.pt").stat().st_size > 0

"""Notebooks 6 (scaling up) and 7 (visualising diffusion) run top to bottom on a CPU and save their figures.

Notebook 7 does not need notebook 5 to have run: without its checkpoint it trains a stand-in.
"""

from pathlib import Path

import nbformat
import pytest

from lgd_tutorial.notebooks import run_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FIGURES = {
    "06_scaling_up": ["06_throughput.png"],
    "07_visualising_diffusion": ["07_diffusion_grid.png", "07_gradcam_strip.png", "07_cosine_grid.png",
                                 "07_ablation.png", "07_evidence.png", "07_gradcam_variants.png",
                                 "07_diffusion_per_block.png", "07_diffusion.gif"],
}


def run(name, tmp_path):
    figures = tmp_path / "figures"
    result = run_notebook(NOTEBOOKS / f"{name}.ipynb", out_dir=tmp_path / "executed", timeout=600,
                          env={"LGD_FIGURES_DIR": str(figures), "LGD_PROFILE": "cpu"})
    assert result.ok, result.error
    executed = nbformat.read(result.executed, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [o for c in code for o in c.outputs if o.output_type == "error"] == []
    assert all(c.execution_count for c in code)
    for figure in FIGURES[name]:
        assert (figures / figure).stat().st_size > 5000, f"{figure} missing or nearly empty"
    return executed


def text_of(notebook) -> str:
    return "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow
def test_scaling_up_resumes_a_download_trains_with_two_processes_and_resumes_after_sigterm(tmp_path):
    out = text_of(run("06_scaling_up", tmp_path))
    assert "Range: bytes=" in out                                   # the cut transfer was resumed, not restarted
    assert "verified: True" in out
    assert "1 missing" in out and "1 unreadable" in out              # validate caught the gone and the broken clip
    assert "resumed from" in out                                    # the torchrun run continued from its checkpoint
    assert "exit status: 75" in out and "each step exactly once: True" in out


@pytest.mark.slow
def test_visualising_diffusion_runs_and_shows_an_explorer_with_a_frame_slider(tmp_path):
    executed = run("07_visualising_diffusion", tmp_path)
    widgets = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "no explorer was displayed as a cell output"
    state = executed.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    if state:                                                       # saved widget state: the slider is there
        assert any(w["model_name"] == "IntSliderModel" and w["state"].get("description") == "frame"
                   for w in state.values())

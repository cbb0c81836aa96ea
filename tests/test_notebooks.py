"""The workbook's notebooks: stored without outputs, generated from their scripts, and they run headless."""

import re
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from lgd_tutorial.cli import main as lgd
from lgd_tutorial.notebooks import (build_notebook, install_source, launch_links, list_notebooks, read_timings,
                                    release_tag, run_notebook, run_notebooks)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SCRIPTS = sorted((NOTEBOOKS / "src").glob("[0-9][0-9]_*.py"))
FIGURES = {
    "01_tour": ["01_receptive_fields.png", "01_synthetic_classes.png", "01_first_training.png"],
    "02_building_blocks": ["02_pool_broadcast.png"],
    "03_networks": ["03_static_video_check.png", "03_parameter_budget.png"],
    "04_kernelized_classifier": ["04_kernels.png", "04_class_evidence.png"],
    "05_training": ["05_learning_curves.png", "05_confusion.png", "05_per_class.png", "05_ablation.png"],
    "06_scaling_up": ["06_throughput.png"],
    "07_visualising_diffusion": ["07_signpost_reach_near.png", "07_signpost_reach_far.png", "07_dose_response.png",
                                 "07_counterfactual.png", "07_counterfactual_seeds.png", "07_probes.png",
                                 "07_effective_fields.png",
                                 "07_ablation.png", "07_diffusion_grid.png", "07_cosine_grid.png", "07_evidence.png",
                                 "07_gradcam_variants.png", "07_gradcam_strip.png", "07_diffusion.gif"],
    "08_two_stream": ["08_flow.png", "08_flow_curves.png", "08_two_stream.png"],
    "09_other_global_context": ["09_competitors.png"],
}


@pytest.mark.parametrize("path", list_notebooks(NOTEBOOKS), ids=lambda p: p.name)
def test_stored_notebooks_carry_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} was saved with outputs"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_notebooks_are_in_sync_with_their_scripts(script):
    """jupytext's py:percent reading of the script, plus the standard header, is the stored notebook."""
    stored = nbformat.read(NOTEBOOKS / f"{script.stem}.ipynb", as_version=4)
    generated = build_notebook(script, read_timings(NOTEBOOKS))
    assert [(c.cell_type, c.source, c.metadata.get("tags")) for c in stored.cells] == \
        [(c.cell_type, c.source, c.metadata.get("tags")) for c in generated.cells], \
        "run: python notebooks/src/build_notebooks.py"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_every_notebook_opens_with_the_standard_header(script):
    """Title, then the run line (the measured time, never typed; the launch links of the student version at
    this version's tag), then the install cell, before any other code."""
    cells = nbformat.read(NOTEBOOKS / f"{script.stem}.ipynb", as_version=4).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ") \
        and "**What you will learn**" in cells[0].source
    run_line, install = cells[1], cells[2]
    timings = read_timings(NOTEBOOKS)
    assert timings is not None and script.stem in timings["seconds"], "run: lgd workbook --update-timings"
    assert f"It ran in {timings['seconds'][script.stem]:.0f} s on {timings['cores']} CPU cores" in run_line.source
    links = launch_links(script.stem)
    assert re.fullmatch(rf"https://colab\.research\.google\.com/github/[\w-]+/[\w-]+/blob/{release_tag()}/"
                        rf"notebooks/exercises/{script.stem}\.ipynb", links["colab"])
    assert re.fullmatch(rf"https://mybinder\.org/v2/gh/[\w-]+/[\w-]+/{release_tag()}\?labpath="
                        rf"notebooks%2Fexercises%2F{script.stem}\.ipynb", links["binder"])
    assert f"]({links['colab']})" in run_line.source and f"]({links['binder']})" in run_line.source
    assert install.cell_type == "code" and install.source == install_source()
    assert (NOTEBOOKS / "exercises" / f"{script.stem}.ipynb").is_file()      # what the links open


def test_the_install_cell_does_nothing_where_the_package_is_installed_and_pins_the_version_where_not(monkeypatch):
    import importlib.util
    import subprocess as sp

    from lgd_tutorial import __version__

    calls = []
    monkeypatch.setattr(sp, "run", lambda *args, **kwargs: calls.append(args[0]))
    exec(install_source(), {})
    assert calls == []                                        # importable here: no pip, nothing else
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    exec(install_source(), {})
    assert len(calls) == 1 and calls[0][1:5] == ["-m", "pip", "install", "-q"]
    assert calls[0][-1].endswith(f"@v{__version__}") and calls[0][-1].startswith("lgd_tutorial @ git+https://")


def test_every_notebook_is_executed_by_a_test():
    assert sorted(FIGURES) == [script.stem for script in SCRIPTS]


def execute(name, tmp_path, params=None, default_figures=False) -> nbformat.NotebookNode:
    """Run notebook ``name`` on the CPU profile; no cell may fail, and its figures must be written.

    Figures and scratch runs go to ``tmp_path``, never into the checkout or its ``runs/``. With
    ``default_figures`` the figures go where a notebook puts them by default (``LGD_FIGURES_DIR`` unset: the
    git-ignored ``notebooks/executed/figures/``), and the checkout's ``git status`` must not change."""
    figures = NOTEBOOKS / "executed" / "figures" if default_figures else tmp_path / "figures"
    env = {"LGD_PROFILE": "cpu", "LGD_WORK_DIR": str(tmp_path / "work"),
           # the kernel draws inline, as in Jupyter (this process uses Agg)
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if not default_figures:
        env["LGD_FIGURES_DIR"] = str(figures)
    before = git_status()
    started = time.time()
    run = run_notebook(NOTEBOOKS / f"{name}.ipynb", out_dir=tmp_path / "executed", timeout=600,
                       env=env, params=params)
    assert run.ok, run.error
    assert git_status() == before, f"running {name} changed the checkout: {before!r} -> {git_status()!r}"
    if default_figures:
        assert all((figures / f).stat().st_mtime >= started - 1 for f in FIGURES[name]), "a figure went elsewhere"
    executed = nbformat.read(run.executed, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [o for c in code for o in c.outputs if o.output_type == "error"] == []
    assert all(c.execution_count for c in code)
    for figure in FIGURES[name]:
        assert (figures / figure).stat().st_size > 5000, f"{figure} missing or nearly empty"
    assert unrendered_figures(executed) == [], "figures shown as text, not images"
    shown = image_outputs(executed)
    saved = [f for f in FIGURES[name] if f.endswith(".png")]
    assert shown >= len(saved), f"{shown} image outputs for {len(saved)} saved figures: some figure is not shown"
    return executed


def git_status() -> str:
    """The checkout's ``git status --porcelain`` (tracked changes and untracked files; ignored ones are not shown)."""
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def image_outputs(notebook) -> int:
    """How many outputs of the executed notebook show an image (a rendered figure or an explorer's view)."""
    return sum("image/png" in o.get("data", {}) for c in notebook.cells if c.cell_type == "code" for o in c.outputs)


def text_of(notebook) -> str:
    return "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)


# A few seconds each on an idle 2-core CPU; 01 and 04 train a teaching model briefly.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith(("01", "04")) else n
                                  for n in ("01_tour", "02_building_blocks", "03_networks",
                                            "04_kernelized_classifier", "09_other_global_context")])
def test_notebook_runs_top_to_bottom_and_saves_its_figures(name, tmp_path):
    execute(name, tmp_path)


# The workbook trains notebook 5's two variants with the full teaching recipe (minutes each); here the same
# cells run on a small synthetic set for two epochs.
SMALL = ["data.synthetic_videos_per_class=24", "data.synthetic_val_per_class=8", "optim.epochs=2",
         "run.log_every=1", "run.progress=false"]


@pytest.mark.slow
def test_training_notebook_trains_evaluates_and_reads_the_shipped_study(tmp_path):
    executed = execute("05_training", tmp_path, default_figures=True,
                       params={"CPU_OVERRIDES": [f"data.root={tmp_path / 'synthetic'}", *SMALL]})
    assert (tmp_path / "work" / "notebook05_lgd" / "best.pt").stat().st_size > 0
    text = text_of(executed)
    assert "made by: lgd study" in text
    assert "shipped runs made by: lgd two-stream" in text and "LGD - no diffusion over 3 seeds" in text
    assert "(3 of the" in text and "clips a GPU run validates)" in text       # the manifest on three clips, not all
    assert "lgd precision" not in "".join(c.source for c in executed.cells)   # precision lives in notebook 6


@pytest.mark.slow
@pytest.mark.parametrize("train_flow", [False, True])
def test_two_stream_notebook_extracts_flow_evaluates_or_trains_the_flow_stream_and_reads_the_shipped_results(
        tmp_path, train_flow):
    executed = execute("08_two_stream", tmp_path, params={
        "DATA_DIR": str(tmp_path / "synthetic"), "VIDEOS_PER_CLASS": 6, "VAL_PER_CLASS": 2, "RATE_SIZES": (48, 64),
        "RATE_PAIRS": 1, "TRAIN_FLOW": train_flow, "OVERRIDES": ["optim.epochs=1", "run.log_every=1"]})
    stored = len(list((tmp_path / "synthetic" / "flow_dis").rglob("*.flow.npz")))
    assert stored == 4 * ((6 + 2) if train_flow else 2)             # the training set's flow only to train here
    text = text_of(executed)
    assert "made by: lgd two-stream" in text and "core-hours with TV-L1" in text and "[ok] horizontal flip" in text
    assert ("flow stream, this run" if train_flow else "flow stream, the shipped seed-0 model") in text
    if not train_flow:
        assert "it was scored on 128 validation videos, this set has 8: no comparison" in text


def test_scaling_up_resumes_a_download_trains_with_two_processes_and_resumes_after_sigterm(tmp_path):
    out = text_of(execute("06_scaling_up", tmp_path))
    assert "Range: bytes=" in out                                   # the cut transfer was resumed, not restarted
    assert "verified: True" in out
    assert "1 missing" in out and "1 unreadable" in out              # validate caught the gone and the broken clip
    assert "resumed from" in out                                    # the torchrun run continued from its checkpoint
    assert "exit status: 75" in out and "each step exactly once: True" in out
    assert "made by: lgd precision" in out and "on this machine it picks" in out     # moved here from notebook 5


@pytest.mark.slow
def test_visualising_diffusion_runs_and_shows_an_explorer_with_a_frame_slider(tmp_path):
    """Notebook 7 needs no earlier notebook: it loads the shipped teaching checkpoints."""
    executed = execute("07_visualising_diffusion", tmp_path, default_figures=True)
    assert "every change is exactly 0 (asserted)" in text_of(executed)
    widgets = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "no explorer was displayed as a cell output"
    assert_explorers_survive_a_static_render(executed, widgets)


def assert_explorers_survive_a_static_render(executed, widgets):
    """Saved explorers show an image both where widgets render (from the saved widget state, as nbviewer or
    an HTML export does) and where they do not (from the PNG each explorer output carries, as on GitHub)."""
    from nbconvert import HTMLExporter

    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(w["model_name"] == "IntSliderModel" and w["state"].get("description") == "frame"
               for w in state.values())
    images = [w for w in state.values() if w["model_name"] == "ImageModel"]
    assert len(images) >= len(widgets) and all(w.get("buffers") for w in images), "an explorer image was not saved"
    for output in widgets:
        assert output["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] in state
        assert len(output["data"]["image/png"]) > 1000, "an explorer output lacks its PNG fallback"
    with_widgets, _ = HTMLExporter().from_notebook_node(executed)
    assert "application/vnd.jupyter.widget-state+json" in with_widgets
    without = HTMLExporter(config=_no_widget_priority())
    html, _ = without.from_notebook_node(executed)
    assert html.count("<img") >= len(widgets), "without widget support the explorers show nothing"


def _no_widget_priority():
    from traitlets.config import Config

    config = Config()
    config.NbConvertBase.display_data_priority = ["text/html", "text/markdown", "image/svg+xml", "image/png",
                                                  "image/jpeg", "text/plain"]
    return config


def test_an_explorer_saved_by_the_runner_renders_statically(tmp_path):
    write_notebook(tmp_path / "01_explorer.ipynb",
                   "import torch\nfrom lgd_tutorial.models import build_model\n"
                   "from lgd_tutorial.viz import diffusion_explorer\n"
                   "diffusion_explorer(build_model('lgd3d_tiny', 3).eval(), torch.randn(1, 3, 8, 32, 32))")
    run = run_notebook(tmp_path / "01_explorer.ipynb", out_dir=tmp_path / "executed", timeout=300)
    assert run.ok, run.error
    executed = nbformat.read(run.executed, as_version=4)
    widgets = [o for o in executed.cells[0].outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1
    assert_explorers_survive_a_static_render(executed, widgets)


def write_notebook(path, *sources):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)


def test_a_failing_notebook_is_reported_and_does_not_stop_the_next(tmp_path, capsys):
    write_notebook(tmp_path / "01_broken.ipynb", "x = 1", "raise ValueError('no such clip')", "y = 2")
    write_notebook(tmp_path / "02_fine.ipynb", "import sys\nprint(sys.executable)")
    runs = run_notebooks(list_notebooks(tmp_path), out_dir=tmp_path / "executed", timeout=120)
    assert [r.ok for r in runs] == [False, True]
    assert "cell 1 raised ValueError: no such clip" in runs[0].error
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("01_broken.ipynb") and "FAILED" in lines[0]
    assert lines[1].startswith("02_fine.ipynb") and lines[1].endswith("ok")
    printed = runs[1].notebook.cells[0].outputs[0]["text"].strip()
    assert Path(printed).parent == Path(__import__("sys").executable).parent, "the kernel is not this venv's python"


def test_parameters_are_injected_after_the_parameters_cell(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("steps = 100", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("assert steps == 3, steps")])
    nbformat.write(nb, tmp_path / "01_params.ipynb")
    run = run_notebook(tmp_path / "01_params.ipynb", out_dir=None, timeout=120, params={"steps": 3})
    assert run.ok, run.error


def test_workbook_runs_only_the_selected_notebooks_and_fails_when_one_fails(tmp_path, capfd):
    write_notebook(tmp_path / "01_first.ipynb", "pass")
    write_notebook(tmp_path / "02_second.ipynb", "1 / 0")
    assert lgd(["workbook", "--notebooks", str(tmp_path), "--only", "01", "--profile", "cpu"]) == 0
    out, err = capfd.readouterr()                       # fd-level: the kernels' own stderr is caught too
    assert "02_second" not in out
    assert "without encryption" not in out + err, "the kernel's transport warning reached the job's output"
    assert [line for line in out.splitlines() if "01_first" in line and " s  ok" in line]
    assert lgd(["workbook", "--notebooks", str(tmp_path), "--profile", "cpu"]) == 1
    assert "ZeroDivisionError" in capfd.readouterr().out
    assert (tmp_path / "executed" / "02_second.ipynb").exists()


def test_workbook_figures_go_next_to_the_executed_copies_and_update_figures_needs_a_checkout(tmp_path, capfd,
                                                                                             monkeypatch):
    monkeypatch.delenv("LGD_FIGURES_DIR", raising=False)
    write_notebook(tmp_path / "01_fig.ipynb", "from lgd_tutorial.notebooks import figure_path\n"
                                              "figure_path('x.png').write_bytes(b'png')")
    assert lgd(["workbook", "--notebooks", str(tmp_path), "--profile", "cpu"]) == 0
    assert (tmp_path / "executed" / "figures" / "x.png").read_bytes() == b"png"
    assert f"figures in {(tmp_path / 'executed' / 'figures').resolve()}" in capfd.readouterr().out
    assert lgd(["workbook", "--notebooks", str(tmp_path), "--profile", "cpu", "--update-figures"]) == 2
    assert "not inside a checkout of the repository" in capfd.readouterr().err


def unrendered_figures(notebook) -> list[int]:
    """Indices of code cells that show a matplotlib figure only as its text repr (``<Figure size ...>``)."""
    bad = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "<Figure size" in str(data.get("text/plain", "")) and "image/png" not in data:
                bad.append(index)
    return bad

"""The workbook's notebooks: stored without outputs, generated from their scripts, and they run headless."""

from pathlib import Path

import nbformat
import pytest

from lgd_tutorial import workbook
from lgd_tutorial.notebooks import list_notebooks, notebook_from_script, run_notebook, run_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SCRIPTS = sorted((NOTEBOOKS / "src").glob("[0-9][0-9]_*.py"))
FIGURES = {
    "02_building_blocks": ["02_pool_broadcast.png"],
    "03_networks": ["03_static_video_check.png", "03_parameter_budget.png"],
    "04_kernelized_classifier": ["04_kernels.png", "04_class_evidence.png"],
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
    stored = nbformat.read(NOTEBOOKS / f"{script.stem}.ipynb", as_version=4)
    generated = notebook_from_script(script.read_text(), script.stem)
    assert [(c.cell_type, c.source) for c in stored.cells] == [(c.cell_type, c.source) for c in generated.cells], \
        "run: python notebooks/src/build_notebooks.py"


# 04 trains a teaching model for 30 steps: about 10 s on an idle 2-core CPU, minutes on a busy one.
RUNS = [pytest.param(name, marks=pytest.mark.slow) if name.startswith("04") else name for name in sorted(FIGURES)]


@pytest.mark.parametrize("name", RUNS)
def test_notebook_runs_top_to_bottom_and_saves_its_figures(name, tmp_path):
    figures = tmp_path / "figures"
    run = run_notebook(NOTEBOOKS / f"{name}.ipynb", out_dir=tmp_path / "executed", timeout=600,
                       env={"LGD_FIGURES_DIR": str(figures), "LGD_PROFILE": "cpu"})
    assert run.ok, run.error
    executed = nbformat.read(run.executed, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert all(c.execution_count for c in executed.cells if c.cell_type == "code")
    for figure in FIGURES[name]:
        assert (figures / figure).stat().st_size > 1000, f"{figure} missing or empty"


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


def test_workbook_runs_only_the_selected_notebooks_and_fails_when_one_fails(tmp_path, capsys):
    write_notebook(tmp_path / "01_first.ipynb", "pass")
    write_notebook(tmp_path / "02_second.ipynb", "1 / 0")
    assert workbook.main(["--notebooks", str(tmp_path), "--only", "01", "--profile", "cpu"]) == 0
    assert "02_second" not in capsys.readouterr().out
    assert workbook.main(["--notebooks", str(tmp_path), "--profile", "cpu"]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().out
    assert (tmp_path / "executed" / "02_second.ipynb").exists()

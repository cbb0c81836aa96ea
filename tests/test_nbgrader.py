"""The exercises in real nbgrader: `lgd exercises build --format nbgrader` writes a source folder that nbgrader
turns into a release (generate_assignment) and grades (autograde), for a correct and a broken submission."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lgd_tutorial.cli import main as lgd
from lgd_tutorial.exercises import grading

pytest.importorskip("nbgrader")
ROOT = Path(__file__).resolve().parents[1]
# (notebook, grade ids, points, the answer cell written wrongly, its wrong source)
CASES = {
    "02_building_blocks": (6, 6, "pool_broadcast-answer-1", "def my_pool(x):\n    return x.sum(dim=(2, 3, 4))\n\n"
                           "def my_broadcast(g):\n    return g[:, :, None, None, None]\n"),
    "09_other_global_context": (2, 3, "global_context-answer-1",
                                "def gc_forward(block, x):\n    c = x.flatten(2).mean(-1)\n    return x + block.expand("
                                "torch.relu(block.norm(block.reduce(c))))[:, :, None, None, None]\n"),
}


def nbgrader(course: Path, *args: str, env: dict):
    command = [sys.executable, "-m", "nbgrader", *args, "--CourseDirectory.root=" + str(course)]
    result = subprocess.run(command, cwd=course, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _course(notebook: str, tmp_path: Path) -> tuple[Path, dict, list]:
    """An nbgrader course whose source folder holds ``notebook`` as ``lgd exercises build --format nbgrader`` writes
    it, with the release generated: (course folder, environment, the source's nbgrader metadata per cell)."""
    course = tmp_path / "course"
    source = course / "source" / "ps1"
    source.mkdir(parents=True)
    sources = tmp_path / "sources"
    sources.mkdir()
    shutil.copy(ROOT / "notebooks" / f"{notebook}.ipynb", sources)
    assert lgd(["exercises", "build", "--sources", str(sources), "--out", str(source), "--format", "nbgrader"]) == 0
    meta = [c.metadata.get("nbgrader") for c in nbformat.read(source / f"{notebook}.ipynb", as_version=4).cells]
    env = dict(os.environ, LGD_FIGURES_DIR=str(tmp_path / "figures"), LGD_WORK_DIR=str(tmp_path / "work"),
               LGD_PROFILE="cpu", MPLBACKEND="Agg",
               # nbgrader runs its database migrations with the `alembic` script of this environment
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    nbgrader(course, "generate_assignment", "ps1", "--force", env=env)
    return course, env, meta


@pytest.mark.slow
@pytest.mark.parametrize("notebook", list(CASES))
def test_nbgrader_generates_the_release_and_autogrades_two_submissions(notebook, tmp_path):
    n_ids, points, wrong_cell, wrong_source = CASES[notebook]
    course, env, meta = _course(notebook, tmp_path)
    ids = [m["grade_id"] for m in meta if m]
    assert len(ids) == len(set(ids)) == n_ids                         # an answer and a check per exercise
    assert sum(m["points"] for m in meta if m and m["grade"]) == points            # points:N tags
    release = nbformat.read(course / "release" / "ps1" / f"{notebook}.ipynb", as_version=4)
    assert not any(grading.BEGIN in c.source or "BEGIN HIDDEN TESTS" in c.source for c in release.cells)
    assert any("NotImplementedError" in c.source for c in release.cells)

    good = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    broken = nbformat.from_dict(release)                              # the release as handed out, one answer
    for cell in broken.cells:                                         # written wrongly, the others not at all
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == f"{notebook}-{wrong_cell}":
            cell.source = wrong_source
    for student, nb in (("ada", _with_release_metadata(good, release)), ("bob", broken)):
        folder = course / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{notebook}.ipynb")
    nbgrader(course, "autograde", "ps1", "--force", env=env)

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission("ps1", s).score for s in ("ada", "bob")}
        maxima = gradebook.find_assignment("ps1").max_score
    assert maxima == points
    assert scores["ada"] == points, scores
    assert scores["bob"] == 0, scores


def _with_release_metadata(solved, release):
    """The instructor's solved notebook with the release's nbgrader metadata, as a student who solved
    everything would hand it in (nbgrader matches cells by their metadata)."""
    out = nbformat.from_dict(release)
    solved_code = [c for c in solved.cells if c.cell_type == "code"]
    release_code = [c for c in out.cells if c.cell_type == "code"]
    assert len(solved_code) == len(release_code)
    for mine, theirs in zip(release_code, solved_code):
        if mine.metadata.get("nbgrader", {}).get("solution"):
            mine.source = theirs.source
    return out


@pytest.mark.slow
def test_nbgrader_autogrades_the_stretch_intervention_exercise_of_notebook_7(tmp_path):
    name = "07_visualising_diffusion"
    course, env, _ = _course(name, tmp_path)
    release = nbformat.read(course / "release" / "ps1" / f"{name}.ipynb", as_version=4)
    good = _with_release_metadata(nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4), release)
    wrong = nbformat.from_dict(good)                                   # the intervention zeroes instead of fixing
    for cell in wrong.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == f"{name}-fixed_mean-answer-1":
            cell.source = ("def fixed_mean_logits(model, train_clips, clips, block):\n"
                           "    tap = model.blocks()[block].tap_global_to_local\n"
                           "    handle = tap.register_forward_hook(lambda m, i, o: torch.zeros_like(o))\n"
                           "    try:\n        return model(clips, return_heads=True)['local_logits']\n"
                           "    finally:\n        handle.remove()\n")
    for student, nb in (("ada", good), ("bob", wrong)):
        folder = course / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{name}.ipynb")
    nbgrader(course, "autograde", "ps1", "--force", env=env)

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        graded = {s: gradebook.find_grade(f"{name}-fixed_mean-check-1", name, "ps1", s) for s in ("ada", "bob")}
        scores = {s: g.auto_score for s, g in graded.items()}
        maximum = graded["ada"].max_score
    assert maximum == 3 and scores == {"ada": 3, "bob": 0}, scores

"""Exercises: student versions without solutions, checks that name the mistake, a grader that survives bad work."""

import csv
from pathlib import Path

import nbformat
import pytest
import torch

from lgd_tutorial import exercises
from lgd_tutorial.exercises import grading
from lgd_tutorial.exercises import ExerciseError
from lgd_tutorial.models import lgd, p3d
from lgd_tutorial.notebooks import list_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def forward_without_global_to_local(block, x, g):
    g_new = torch.relu(block.local_to_global(lgd.pool(x)) + block.global_to_global(g))
    return torch.relu(block.residual(x) + block.shortcut(x)), g_new


def forward_without_local_to_global(block, x, g):
    g_new = torch.relu(block.global_to_global(g))
    return torch.relu(block.residual(x) + block.shortcut(x) + lgd.broadcast(block.global_to_local(g_new))), g_new


def test_the_reference_block_passes_as_a_class_and_as_a_function(capsys):
    assert exercises.check_lgd_block(lgd.LGDBlock)
    assert exercises.check_lgd_block(lambda block, x, g: block(x, g))
    assert "[ok] LGD block" in capsys.readouterr().out


@pytest.mark.parametrize("forward, named", [
    (forward_without_global_to_local, "global-to-local diffusion U(W_xg g_new) is missing"),
    (forward_without_local_to_global, "local-to-global diffusion W_gx P(x) is missing"),
])
def test_a_block_missing_a_diffusion_is_told_which(forward, named):
    with pytest.raises(ExerciseError, match=named.replace("(", r"\(").replace(")", r"\)")):
        exercises.check_lgd_block(forward)


def test_a_block_returning_the_wrong_shape_is_told_the_expected_shape():
    def pooled_too_early(block, x, g):
        x_new, g_new = block(x, g)
        return x_new.mean(2), g_new
    with pytest.raises(ExerciseError, match=r"x_new \(the local output\) has shape \(2, 32, 4, 4\), expected \(2, 32, 4, 4, 4\)"):
        exercises.check_lgd_block(pooled_too_early)


def test_pool_that_sums_is_told_to_average():
    with pytest.raises(ExerciseError, match="sums over"):
        exercises.check_pool_broadcast(lambda x: x.sum((2, 3, 4)), lgd.broadcast)
    with pytest.raises(ExerciseError, match=r"\(N, C, 1, 1, 1\)"):
        exercises.check_pool_broadcast(lgd.pool, lambda g: g)


@pytest.mark.parametrize("kind", ["A", "B", "C"])
def test_each_p3d_unit_passes_against_itself_and_fails_against_another(kind):
    assert exercises.check_p3d_unit(kind, exercises.P3D_KINDS[kind])
    other = {"A": p3d.P3DC, "B": p3d.P3DA, "C": p3d.P3DA}[kind]
    with pytest.raises(ExerciseError, match=f"P3D-{kind}"):
        exercises.check_p3d_unit(kind, other)


def test_projection_with_a_wrong_bottleneck_is_told_the_expected_width():
    assert exercises.check_projection(lgd.projection)
    wrong = lambda c_in, c_out: torch.nn.Sequential(torch.nn.Linear(c_in, c_out // 4), torch.nn.Linear(c_out // 4, c_out))
    with pytest.raises(ExerciseError, match=r"expected max\(256 // 16, 8\) = 16"):
        exercises.check_projection(wrong)


def test_i3d_style_inflation_and_a_wrong_exponent_are_named():
    with pytest.raises(ExerciseError, match="I3D-style"):
        exercises.check_inflate_kernel(lambda w, t: w[:, :, None].repeat(1, 1, t, 1, 1) / t)
    with pytest.raises(ExerciseError, match="factor 2"):
        exercises.check_gaussian_kernel(
            lambda f, u, s, a: a * torch.exp(-((f[..., None, :] - u) ** 2).sum(-1) / s**2))


# --- student versions -----------------------------------------------------------

SOURCE_WITH_TWO_REGIONS = '''def f(x):
    ### BEGIN SOLUTION
    secret = x * 2
    return secret
    ### END SOLUTION

class G:
    def __call__(self):
        ### BEGIN SOLUTION
        return "hidden"
        ### END SOLUTION'''


def test_stubs_replace_every_region_at_its_indentation_and_raise():
    stubbed = grading.stub_solutions(SOURCE_WITH_TWO_REGIONS, "demo")
    assert "secret" not in stubbed and "hidden" not in stubbed and "SOLUTION" not in stubbed
    namespace = {}
    exec(stubbed, namespace)
    for call in (lambda: namespace["f"](1), lambda: namespace["G"]()()):
        with pytest.raises(NotImplementedError, match="Exercise: demo"):
            call()


def test_unbalanced_markers_are_refused():
    with pytest.raises(ValueError, match="without"):
        grading.stub_solutions("### BEGIN SOLUTION\nx = 1", "demo")


def test_built_student_versions_keep_prose_and_contain_no_solution(tmp_path):
    written = grading.build_exercises(NOTEBOOKS, tmp_path, echo=False)
    assert written
    for path in written:
        source = nbformat.read(NOTEBOOKS / path.name, as_version=4)
        student = nbformat.read(path, as_version=4)
        assert [c.source for c in student.cells if c.cell_type == "markdown" and not grading.is_manual(c)] == \
               [c.source for c in source.cells if c.cell_type == "markdown" and not grading.is_manual(c)]
        for mine, theirs in zip(student.cells, source.cells):
            if mine.cell_type == "code" and grading.BEGIN in theirs.source:
                assert "NotImplementedError" in mine.source and "SOLUTION" not in mine.source
            if grading.is_manual(theirs):                                # a written answer: the question stays,
                assert "YOUR ANSWER HERE" in mine.source                  # the model answer and rubric go
                assert "Rubric" not in mine.source and "SOLUTION" not in mine.source
                assert mine.source.split("YOUR ANSWER HERE")[0] == theirs.source.split(grading.BEGIN)[0]
        assert all(not c.get("outputs") for c in student.cells)


@pytest.mark.parametrize("path", list_notebooks(NOTEBOOKS), ids=lambda p: p.name)
def test_committed_student_versions_are_in_sync_with_the_sources(path):
    built = grading.build_student_notebook(nbformat.read(path, as_version=4))
    committed = nbformat.read(NOTEBOOKS / "exercises" / path.name, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in built.cells], "run: lgd exercises build"


def test_every_source_notebook_with_exercises_has_a_check_per_exercise():
    for path in list_notebooks(NOTEBOOKS):
        nb = nbformat.read(path, as_version=4)
        for name in grading.exercises_of(nb):
            cells = [c.source for c in nb.cells if name in grading.exercise_names(c)]
            assert any(grading.BEGIN in s for s in cells), f"{path.name}: {name} has no solution region"
            if any(grading.is_manual(c) for c in nb.cells if name in grading.exercise_names(c)):
                assert any("Rubric" in s for s in cells), f"{path.name}: written answer {name} has no rubric"
            else:
                assert any("check_" in s for s in cells), f"{path.name}: {name} has no check cell"


# --- grading ----------------------------------------------------------------------

def exercise_notebook(solution: str, extra: str = "") -> nbformat.NotebookNode:
    """A small notebook with two exercises, the first solved by ``solution``."""
    cells = [
        nbformat.v4.new_markdown_cell("# Two exercises"),
        nbformat.v4.new_code_cell(f"def double(x):\n    ### BEGIN SOLUTION\n    {solution}\n    ### END SOLUTION",
                                  metadata={"tags": ["exercise:double"]}),
        nbformat.v4.new_code_cell("assert double(3) == 6, 'double(3) should be 6'", metadata={"tags": ["exercise:double"]}),
        nbformat.v4.new_code_cell(extra or "pass"),
        nbformat.v4.new_code_cell("def pool(x):\n    ### BEGIN SOLUTION\n    return x.mean((2, 3, 4))\n    ### END SOLUTION",
                                  metadata={"tags": ["exercise:pool"]}),
        nbformat.v4.new_code_cell("from lgd_tutorial.exercises import check_pool_broadcast\n"
                                  "from lgd_tutorial.models.lgd import broadcast\n"
                                  "check_pool_broadcast(pool, broadcast)", metadata={"tags": ["exercise:pool"]}),
    ]
    return nbformat.v4.new_notebook(cells=cells)


@pytest.fixture
def submissions(tmp_path):
    folder = tmp_path / "submissions"
    for student, nb in {
        "correct": exercise_notebook("return 2 * x"),
        "stub": grading.build_student_notebook(exercise_notebook("return 2 * x")),
        "wrong": exercise_notebook("return x + 1"),
        "crash": exercise_notebook("return 2 * x", extra="import os\nos._exit(1)"),
        "hang": exercise_notebook("return 2 * x", extra="while True:\n    pass"),
    }.items():
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, folder / student / "01_demo.ipynb")
    (folder / "corrupt").mkdir()
    (folder / "corrupt" / "01_demo.ipynb").write_text("{ not json")
    return folder


def test_grader_scores_every_submission_and_explains_each_zero(submissions, tmp_path):
    grading.grade_folder(submissions, timeout=20, out=tmp_path, sources=None, echo=False)
    with open(tmp_path / "grades_long.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(grading.CSV_FIELDS)
    grade = {(Path(r["notebook"]).parent.name, r["exercise"]): (int(r["score"]), int(r["max"]), r["reason"]) for r in rows}

    assert grade["correct", "double"] == (1, 1, "passed") and grade["correct", "pool"] == (1, 1, "passed")
    score, _, reason = grade["stub", "double"]
    assert score == 0 and reason.startswith("not attempted: NotImplementedError: Exercise: double")
    assert grade["stub", "pool"][0] == 0
    assert grade["wrong", "double"] == (0, 1, "AssertionError: double(3) should be 6")
    assert grade["wrong", "pool"] == (1, 1, "passed"), "one wrong exercise must not cost the other"
    assert grade["crash", "double"] == (1, 1, "passed")
    assert grade["crash", "pool"][0] == 0 and "kernel died" in grade["crash", "pool"][2]
    assert grade["hang", "double"] == (1, 1, "passed")
    assert grade["hang", "pool"][0] == 0 and "time limit of 20 s" in grade["hang", "pool"][2]
    assert grade["corrupt", "(notebook)"][0] == 0 and "cannot be read" in grade["corrupt", "(notebook)"][2]
    assert {r["student"] for r in rows} == {"correct", "stub", "wrong", "crash", "hang", "corrupt"}

    with open(tmp_path / "grades.csv") as handle:                 # wide: one row per student, ready for a gradebook
        wide = {row["student"]: row for row in csv.DictReader(handle)}
    assert set(wide) == {"correct", "stub", "wrong", "crash", "hang", "corrupt"}
    assert (wide["correct"]["double"], wide["correct"]["pool"], wide["correct"]["total"]) == ("1", "1", "2")
    assert (wide["wrong"]["double"], wide["wrong"]["pool"], wide["wrong"]["total"]) == ("0", "1", "1")
    for row in wide.values():
        parts = [int(row[c]) for c in row if c not in ("student", "total", "max") and row[c] != ""]
        assert int(row["total"]) == sum(parts)
    feedback = (tmp_path / "feedback" / "wrong").with_suffix(".md").read_text()     # one file per student
    assert "Total: 1 of 2 points graded automatically." in feedback and "double(3) should be 6" in feedback


@pytest.mark.parametrize("name, points", [
    ("02_building_blocks", {"pool_broadcast": 1, "lgd_block": 3, "p3d_b": 2}),
    pytest.param("09_other_global_context", {"global_context": 3}, marks=pytest.mark.slow),
    pytest.param("07_visualising_diffusion", {"cut_global_to_local": 2, "outside_reach": 2, "outside_reach_explained": 3,
                                              "ablation_explained": 3, "fixed_mean": 3, "fixed_mean_explained": 3,
                                              "global_to_local_ratio": 2}, marks=pytest.mark.slow),
])
def test_grading_the_source_notebook_gives_full_marks_and_its_student_version_zero(name, points, tmp_path):
    source = NOTEBOOKS / f"{name}.ipynb"
    folder = tmp_path / "subs"
    (folder / "teacher").mkdir(parents=True)
    (folder / "student").mkdir()
    (folder / "teacher" / source.name).write_bytes(source.read_bytes())
    nbformat.write(grading.build_student_notebook(nbformat.read(source, as_version=4)), folder / "student" / source.name)
    grades = grading.grade_folder(folder, timeout=300, out=tmp_path / "g", sources=NOTEBOOKS, echo=False)
    teacher = [g for g in grades if g.notebook.startswith("teacher")]
    student = [g for g in grades if g.notebook.startswith("student")]
    assert {g.exercise: g.max for g in teacher} == points                          # points:N tags
    automatic = [g for g in teacher if g.score is not None]
    assert automatic and all(g.score == g.max for g in automatic), teacher
    assert all("graded by hand" in g.reason for g in teacher if g.score is None)     # written answers: a rubric
    assert all(g.score == 0 and "not attempted" in g.reason for g in student if g.score is not None), student


def _cheat(nb, exercise: str, solution: str | None, check: str | None):
    """The submission with the exercise's solution cell and/or its check cell replaced."""
    nb = nbformat.from_dict(nb)
    cells = [c for c in nb.cells if c.cell_type == "code" and exercise in grading.exercise_names(c)]
    for cell in cells:
        if grading.BEGIN in cell.source and solution is not None:
            cell.source = solution
        elif grading.BEGIN not in cell.source and check is not None:
            cell.source = check
    return nb


@pytest.mark.slow
def test_the_grader_runs_the_instructors_checks_and_refuses_the_packages_answers(tmp_path):
    """With the instructor's source, a submission cannot earn points by emptying or patching the check, or
    by handing in the package's own answer; a correct answer still scores; a partly right LGD block earns
    part of the points, with the reason."""
    source = nbformat.read(NOTEBOOKS / "02_building_blocks.ipynb", as_version=4)
    wrong = ("def lgd_forward(block, x, g):\n"
             "    g_new = torch.relu(block.local_to_global(lgd.pool(x)) + block.global_to_global(g))\n"
             "    return torch.relu(block.residual(x) + block.shortcut(x)), g_new\n")
    useless = ("def lgd_forward(block, x, g):\n    g_new = torch.relu(block.global_to_global(g))\n"
               "    return torch.relu(block.residual(x) + block.shortcut(x)), g_new\n")
    submissions = {
        "emptied": _cheat(source, "lgd_block", useless, ""),
        "noop": _cheat(source, "lgd_block", useless, "check_lgd_block = lambda f: True\ncheck_lgd_block(lgd_forward)"),
        "patched": _cheat(source, "lgd_block", wrong,
                          "import lgd_tutorial.exercises as e, lgd_tutorial.exercises.checks as c\n"
                          "e.check_lgd_block = c.check_lgd_block = lambda f: True"),
        "reference": _cheat(source, "lgd_block", "lgd_forward = lambda block, x, g: block(x, g)\n", "pass"),
        "alias": _cheat(source, "p3d_b", "MyP3DB = p3d.P3DB\n", "pass"),
        "hidden": _cheat(source, "lgd_block", "def lgd_forward(block, x, g):\n"
                                              "    try:\n        return block(x, g)\n"
                                              "    except Exception:\n        return x, g\n", "pass"),
    }
    folder = tmp_path / "subs"
    for student, nb in submissions.items():
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, folder / student / "02_building_blocks.ipynb")
    grades = grading.grade_folder(folder, timeout=300, out=tmp_path / "g", sources=NOTEBOOKS, echo=False)
    got = {(g.student, g.exercise): g for g in grades}
    for student in ("emptied", "noop"):                  # a wrong answer behind an emptied or no-op check: nothing
        assert got[student, "lgd_block"].score == 0, got[student, "lgd_block"]
        assert "local-to-global" in got[student, "lgd_block"].reason                 # the instructor's message
    # a patched check changes nothing either; this answer has local-to-global right and global-to-local
    # missing, which the instructor's check gives half the points (of 3), with the reason
    assert got["patched", "lgd_block"].score == 1.5, got["patched", "lgd_block"]
    assert "global-to-local diffusion U(W_xg g_new) is missing" in got["patched", "lgd_block"].reason
    for student in ("emptied", "noop", "patched"):
        assert got[student, "pool_broadcast"].score == 1 and got[student, "p3d_b"].score == 2
    for student in ("reference", "hidden"):
        assert got[student, "lgd_block"].score == 0
        assert "the package's reference" in got[student, "lgd_block"].reason and "forward" in \
            got[student, "lgd_block"].reason, got[student, "lgd_block"]
    assert got["alias", "p3d_b"].score == 0 and "P3DB" in got["alias", "p3d_b"].reason
    assert got["alias", "lgd_block"].score == 3


def test_points_come_from_the_source_and_only_the_source_checks_count(tmp_path):
    source = exercise_notebook("return 2 * x")
    source.cells[1].metadata["tags"].append("points:3")
    (tmp_path / "sources").mkdir()
    nbformat.write(source, tmp_path / "sources" / "01_demo.ipynb")
    right = nbformat.from_dict(source)
    right.cells[2].source = "raise RuntimeError('the student broke their own check cell')"
    wrong = exercise_notebook("return x + 2")                       # double(2) == 4 passes, double(3) does not
    wrong.cells[2].source = "assert double(2) == 4"
    for student, nb in (("right", right), ("wrong", wrong)):
        (tmp_path / "subs" / student).mkdir(parents=True)
        nbformat.write(nb, tmp_path / "subs" / student / "01_demo.ipynb")
    grades = grading.grade_folder(tmp_path / "subs", timeout=120, out=tmp_path / "g", sources=tmp_path / "sources",
                                  echo=False)
    got = {(g.student, g.exercise): (g.score, g.max, g.reason) for g in grades}
    assert got["right", "double"] == (3, 3, "passed")               # its own broken check cell costs nothing
    assert got["wrong", "double"] == (0, 3, "AssertionError: double(3) should be 6")
    assert got["right", "pool"] == (1, 1, "passed")
    assert "max" in (tmp_path / "g" / "grades.csv").read_text().splitlines()[0]


def test_hidden_cases_catch_an_answer_that_memorised_the_visible_one():
    from lgd_tutorial.exercises import checks

    visible = torch.randn(2, 6, 3, 4, 5, generator=torch.Generator().manual_seed(0)).mean((2, 3, 4))
    memorised = lambda x: visible.clone()  # noqa: E731
    assert checks.CASE_SEED == 0
    assert exercises.check_pool_broadcast(memorised, lgd.broadcast)             # the visible case passes
    try:
        checks.CASE_SEED = 7                                                     # what the grader does
        with pytest.raises(ExerciseError):
            exercises.check_pool_broadcast(memorised, lgd.broadcast)
        assert exercises.check_pool_broadcast(lgd.pool, lgd.broadcast)          # a real answer passes both
    finally:
        checks.CASE_SEED = 0


def test_written_answers_are_left_to_the_instructor_and_marked_so(tmp_path):
    source = exercise_notebook("return 2 * x")
    source.cells.append(nbformat.v4.new_markdown_cell(
        "Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION",
        metadata={"tags": ["exercise:why", "manual", "points:2"]}))
    student = grading.build_student_notebook(source)
    assert "YOUR ANSWER HERE" in student.cells[-1].source and "Because" not in student.cells[-1].source
    (tmp_path / "sources").mkdir()
    nbformat.write(source, tmp_path / "sources" / "01_demo.ipynb")
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    nbformat.write(source, tmp_path / "subs" / "ann" / "01_demo.ipynb")
    grades = grading.grade_folder(tmp_path / "subs", timeout=120, out=tmp_path / "g", sources=tmp_path / "sources",
                                  echo=False)
    why = next(g for g in grades if g.exercise == "why")
    assert why.score is None and why.max == 2 and "by hand" in why.reason
    with open(tmp_path / "g" / "grades.csv") as handle:
        row = next(csv.DictReader(handle))
    assert row["why"] == "manual" and row["total"] == "2" and row["max"] == "2"     # double 1 + pool 1, why apart
    with open(tmp_path / "g" / "grades_long.csv") as handle:
        long_row = next(r for r in csv.DictReader(handle) if r["exercise"] == "why")
    assert long_row["score"] == "" and "by hand" in long_row["reason"]
    assert "graded by hand" in (tmp_path / "g" / "feedback" / "ann").with_suffix(".md").read_text()


def test_the_fixed_arithmetic_checks_draw_hidden_cases_a_lookup_table_cannot_pass():
    from lgd_tutorial.exercises import checks

    def table_of(check, answer):
        """An 'answer' that records the visible cases' results and replays them, failing on anything new."""
        seen = {}

        def record(*args):
            key = tuple(tuple(a) if isinstance(a, list) else a for a in args)
            seen[key] = answer(*args)
            return seen[key]
        check(record)

        def replay(*args):
            return seen[tuple(tuple(a) if isinstance(a, list) else a for a in args)]
        return replay

    import math
    answers = {
        exercises.check_receptive_field: lambda k, s: checks._receptive_field(k, s),
        exercises.check_workers_needed: lambda target, rate: math.ceil(target / rate),
        exercises.check_scaled_lr: lambda base, lr_batch, batch, processes, accumulate:
            base * batch * processes * accumulate / lr_batch,
    }
    for check, answer in answers.items():
        replay = table_of(check, answer)
        assert check(replay)                                                     # the visible cases replay
        try:
            checks.CASE_SEED = 7                                                 # what the grader does
            with pytest.raises((KeyError, ExerciseError)):
                check(replay)
            assert check(answer)
        finally:
            checks.CASE_SEED = 0


def first_n(annotations, n):
    return annotations.sort_values(["youtube_id", "time_start", "time_end"]).groupby("label").head(n)


def test_checks_with_several_parts_give_the_share_that_passed():
    class AlwaysReLU(torch.nn.Module):                   # P3D-B right, but ignores activate=False (the 3rd part)
        def __init__(self, in_channels, out_channels, stride=1, activate=True):
            super().__init__()
            self.spatial = p3d.spatial_conv(in_channels, out_channels, stride)
            self.temporal = p3d.temporal_conv(in_channels, out_channels, stride)
            self.bn = torch.nn.BatchNorm3d(out_channels)

        def forward(self, x):
            return torch.relu(self.bn(self.spatial(x) + self.temporal(x)))

    with pytest.raises(ExerciseError, match="activate=False") as error:
        exercises.check_p3d_unit("B", AlwaysReLU)
    assert error.value.credit == pytest.approx(2 / 3)

    with pytest.raises(ExerciseError, match="seed has no effect") as error:
        exercises.check_split_per_class(lambda annotations, n, seed: (          # the first n of each class,
            annotations.drop(index=first_n(annotations, n).index), first_n(annotations, n)))   # sorted: no seed
    assert error.value.credit == pytest.approx(6 / 7)

    with pytest.raises(ExerciseError, match="= 5, expected 4") as error:     # one too many on an exact multiple
        exercises.check_workers_needed(lambda target, rate: int(target // rate) + 1)
    assert error.value.credit == pytest.approx(1 / 8)                      # the 2nd of 8 cases: 100 clips/s at 25


# --- the grader, tried as a new user would ---------------------------------------------------------------

def test_exercises_a_timeout_stops_before_keep_their_points_as_maximum(tmp_path):
    source = nbformat.read(NOTEBOOKS / "02_building_blocks.ipynb", as_version=4)
    nb = nbformat.from_dict(source)
    first = next(i for i, c in enumerate(nb.cells) if "exercise:pool_broadcast" in c.metadata.get("tags", []))
    nb.cells.insert(first, nbformat.v4.new_code_cell("while True:\n    pass"))
    (tmp_path / "subs" / "ada").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "subs" / "ada" / "02_building_blocks.ipynb")
    grades = grading.grade_folder(tmp_path / "subs", timeout=25, out=tmp_path / "g", sources=NOTEBOOKS, echo=False)
    assert {g.exercise: g.max for g in grades} == {"pool_broadcast": 1, "lgd_block": 3, "p3d_b": 2}
    assert all(g.score == 0 and "time limit" in g.reason for g in grades), grades


def test_grade_takes_one_notebook_and_refuses_an_empty_folder(tmp_path, capsys):
    from lgd_tutorial.cli import main as lgd

    empty = tmp_path / "empty"
    empty.mkdir()
    assert lgd(["exercises", "grade", str(empty), "--out", str(tmp_path / "g0")]) == 2
    assert "no notebooks (*.ipynb) found in" in capsys.readouterr().err
    assert lgd(["exercises", "grade", str(tmp_path / "missing"), "--out", str(tmp_path / "g0")]) == 2
    text = tmp_path / "notes.txt"
    text.write_text("not a notebook")
    assert lgd(["exercises", "grade", str(text), "--out", str(tmp_path / "g0")]) == 2
    single = tmp_path / "ada.ipynb"
    nbformat.write(exercise_notebook("return 2 * x"), single)
    assert lgd(["exercises", "grade", str(single), "--timeout", "120", "--out", str(tmp_path / "g1"),
                "--sources", str(tmp_path / "none")]) == 0
    rows = list(csv.DictReader((tmp_path / "g1" / "grades_long.csv").open()))
    assert {(r["exercise"], r["score"]) for r in rows} == {("double", "1"), ("pool", "1")}


def test_a_block_that_broadcasts_g_instead_of_g_new_gets_half_and_plain_words():
    def uses_incoming_g(block, x, g):
        g_new = torch.relu(block.local_to_global(lgd.pool(x)) + block.global_to_global(g))
        return torch.relu(block.residual(x) + block.shortcut(x) + lgd.broadcast(block.global_to_local(g))), g_new

    with pytest.raises(exercises.ExerciseError, match="global-to-local reads the incoming global vector g") as error:
        exercises.check_lgd_block(uses_incoming_g)
    assert error.value.credit == 0.5


def test_without_sources_a_timed_out_notebook_still_shows_each_exercise_s_points(tmp_path):
    nb = grading.build_student_notebook(nbformat.read(NOTEBOOKS / "02_building_blocks.ipynb", as_version=4))
    first = next(i for i, c in enumerate(nb.cells) if "exercise:pool_broadcast" in c.metadata.get("tags", []))
    nb.cells.insert(first, nbformat.v4.new_code_cell("while True:\n    pass"))
    (tmp_path / "subs").mkdir()
    nbformat.write(nb, tmp_path / "subs" / "02_building_blocks.ipynb")
    grades = grading.grade_folder(tmp_path / "subs", timeout=20, out=None, sources=None, echo=False)
    assert {g.exercise: g.max for g in grades} == {"pool_broadcast": 1, "lgd_block": 3, "p3d_b": 2}
    assert all(g.score == 0 for g in grades)

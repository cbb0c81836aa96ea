"""Exercises for instructors (``lgd exercises build|grade``), nbgrader-style.

In a source notebook, the cells of an exercise carry the tag
``exercise:NAME``: the cell where the student writes code, with its solution
between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, and the check cell
that calls a ``lgd_tutorial.exercises`` check.

- ``build_student_notebook`` keeps the prose and every cell, replaces each
  solution region by a stub that raises ``NotImplementedError`` and strips the
  outputs. ``lgd exercises build`` writes them to ``notebooks/exercises/``.
- ``grade_notebook`` runs one submission in a fresh kernel, in a private copy
  of its folder, with a time limit for the whole notebook, going on after
  errors. With the instructor's source notebook (``lgd exercises grade`` finds
  it by file name in ``--sources``), every exercise is scored by the source's
  check cells, inserted after the submission's own cells of that exercise: the
  submission's check cells count for nothing, the checks are reloaded (patches
  are gone), the package's own answer is off limits (``guard.reference_guard``)
  and a check only passes when it prints a one-time token at its end. Points
  come from a ``points:N`` tag in the source (1 without one). A notebook that
  hangs, crashes or cannot be read scores 0 on every exercise that did not
  pass, with the reason.
- ``grade_folder`` grades a folder of submissions (a student per subfolder, or per file name) and writes
  ``grades.csv`` (wide), ``grades_long.csv`` and a feedback file per student (``write_reports``).
"""

from __future__ import annotations

import ast
import csv
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..notebooks import execute_notebook, list_notebooks, strip_outputs

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
TAG_PREFIX = "exercise:"
CSV_FIELDS = ("student", "notebook", "exercise", "score", "max", "reason")


def exercise_names(cell) -> list[str]:
    """The exercises a cell belongs to, from its ``exercise:NAME`` tags."""
    return [tag[len(TAG_PREFIX):] for tag in cell.get("metadata", {}).get("tags", []) if tag.startswith(TAG_PREFIX)]


def exercises_of(nb: nbformat.NotebookNode) -> list[str]:
    """Every exercise of a notebook, in order of first appearance."""
    names: list[str] = []
    for cell in nb.cells:
        names += [name for name in exercise_names(cell) if name not in names]
    return names


def is_manual(cell) -> bool:
    """A written answer graded by hand (tag ``manual``)."""
    return "manual" in cell.get("metadata", {}).get("tags", [])


def stub_solutions(source: str, name: str, markdown: bool = False) -> str:
    """Replace every BEGIN/END SOLUTION region of ``source`` by a stub raising NotImplementedError
    (in a markdown cell: by "YOUR ANSWER HERE")."""
    out, inside = [], False
    for line in source.splitlines():
        marker = line.strip()
        if marker.startswith(BEGIN):
            if inside:
                raise ValueError(f"exercise {name!r}: {BEGIN} inside another solution region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            if markdown:
                out.append("YOUR ANSWER HERE")
            else:
                out.append(f"{indent}# YOUR CODE HERE")
                out.append(f'{indent}raise NotImplementedError("Exercise: {name or "write this part"}")')
        elif marker.startswith(END):
            if not inside:
                raise ValueError(f"exercise {name!r}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"exercise {name!r}: {BEGIN} without {END}")
    return "\n".join(out)


def build_student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A student version of a source notebook: solution regions stubbed, outputs stripped."""
    student = strip_outputs(nbformat.from_dict(nb))
    for cell in student.cells:
        if BEGIN in cell.source:
            names = exercise_names(cell)
            cell.source = stub_solutions(cell.source, names[0] if names else "", markdown=cell.cell_type == "markdown")
    return student


def nbgrader_source(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The instructor's notebook with nbgrader's cell metadata, for an nbgrader course's ``source/`` folder.

    Solution cells become autograded-answer cells (nbgrader replaces their ``### BEGIN SOLUTION`` regions
    itself); check cells become locked autograder-test cells worth the exercise's points (``points:N``
    tags, 1 without one), with a hidden run of the same check on inputs the visible run does not use.
    Every other cell is left as it is. Grade ids are ``NOTEBOOK-EXERCISE-KIND-K`` and unique.
    """
    out = strip_outputs(nbformat.from_dict(nb))
    counts: dict[str, int] = {}
    for cell in out.cells:
        names = exercise_names(cell)
        if not names or (cell.cell_type == "markdown" and not is_manual(cell)):
            continue
        exercise = names[0]
        if is_manual(cell):                                    # a written answer nbgrader leaves to the grader
            cell.metadata["nbgrader"] = {"grade": True, "solution": True, "locked": False, "task": False,
                                         "points": points_of([cell]), "grade_id": f"{name}-{exercise}-written",
                                         "schema_version": 3}
            continue
        kind = "answer" if BEGIN in cell.source else "check"
        counts[(exercise, kind)] = counts.get((exercise, kind), 0) + 1
        grade_id = f"{name}-{exercise}-{kind}-{counts[(exercise, kind)]}"
        meta = {"grade": kind == "check", "solution": kind == "answer", "locked": kind == "check",
                "grade_id": grade_id, "schema_version": 3}
        if kind == "check":
            exercise_cells = [c for c in nb.cells if c.cell_type == "code" and exercise in exercise_names(c)]
            meta["points"] = points_of(exercise_cells)
            cell.source += ("\n### BEGIN HIDDEN TESTS\nimport lgd_tutorial.exercises.checks as __lgd_checks\n"
                            "__lgd_checks.CASE_SEED = 7\n" + cell.source + "\n__lgd_checks.CASE_SEED = 0\n"
                            "### END HIDDEN TESTS")
        cell.metadata["nbgrader"] = meta
    return out


def build_exercises(sources: str | Path = "notebooks", out_dir: str | Path = "notebooks/exercises",
                    echo: bool = True, format: str = "student") -> list[Path]:
    """Write the student version of every numbered notebook of ``sources`` to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in list_notebooks(sources):
        nb = nbformat.read(path, as_version=4)
        target = out / path.name
        if format == "nbgrader":
            nbformat.write(nbgrader_source(nb, path.stem), target)
        else:
            nbformat.write(build_student_notebook(nb), target)
        written.append(target)
        if echo:
            print(f"{path.name:<36} {len(exercises_of(nb))} exercise(s) -> {target}")
    return written


@dataclass
class Grade:
    notebook: str
    exercise: str
    score: float | None                  # None: graded by hand
    max: int
    reason: str
    student: str = ""


def student_of(relative: Path) -> str:
    """The student a submission belongs to: its top folder under the submissions folder, else its file name."""
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _cell_error(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            lines = [line for line in str(output.get("evalue", "")).strip().splitlines() if line.strip()]
            return f"{output.get('ename', 'Error')}: {lines[0] if lines else ''}".rstrip(": ")
    return ""


def _ran(cell) -> bool:
    return cell.get("execution_count") is not None or bool(cell.get("outputs"))


def _answer_names(source: str) -> list[str]:
    """The top-level names a solution cell defines (functions, classes, assignments)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


def points_of(cells) -> int:
    """An exercise's points from a ``points:N`` tag on any of its source cells (1 without one)."""
    for cell in cells:
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith("points:"):
                return int(tag.split(":", 1)[1])
    return 1


def canonical_checks(source: nbformat.NotebookNode, name: str, nonce: str, case_seed: int = 1) -> list:
    """The instructor's check cells of exercise ``name``, made to run as the grader's own.

    Each reloads the checks (patches a submission made are gone), draws the checks' random cases from
    ``case_seed`` (hidden cases: the visible checks use 0), runs the check under
    ``reference_guard`` (the package's own answer is off limits) and prints ``nonce`` only when it got
    through, so an error the submission hides still costs the points.
    """
    cells = [c for c in source.cells if c.cell_type == "code" and name in exercise_names(c)]
    answers = sorted({n for c in cells if BEGIN in c.source for n in _answer_names(c.source)})
    checks = [c for c in cells if BEGIN not in c.source]
    header = ("import importlib as __lgd_il\n"
              "import lgd_tutorial.exercises.checks as __lgd_checks\n"
              "import lgd_tutorial.exercises.guard as __lgd_guard\n"
              "import lgd_tutorial.exercises as __lgd_exercises\n"
              "for __lgd_m in (__lgd_checks, __lgd_guard, __lgd_exercises):\n"
              "    __lgd_il.reload(__lgd_m)\n"
              f"__lgd_checks.CASE_SEED = {case_seed}\n"
              f"with __lgd_guard.reference_guard({name!r}, {{__n: globals()[__n] for __n in {answers!r} "
              "if __n in globals()}):\n")
    out = []
    for cell in checks:
        body = "\n".join("        " + line for line in cell.source.splitlines()) or "        pass"
        code = (header.replace("\nwith ", "\ntry:\n    with ") + body
                + f"\nexcept __lgd_checks.ExerciseError as __lgd_e:\n"
                  f"    print({nonce!r} + ':credit=' + str(__lgd_e.credit))\n    raise\n"
                  f"print({nonce!r})\n")
        out.append(nbformat.v4.new_code_cell(code, metadata={"tags": [f"grader:{name}"]}))
    return out


def _with_canonical_checks(nb, source, names, nonce) -> None:
    """Insert each exercise's canonical checks after the submission's last cell of that exercise."""
    for name in names:
        positions = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and name in exercise_names(c)]
        if positions:
            at = positions[-1] + 1
            nb.cells[at:at] = canonical_checks(source, name, nonce, case_seed=secrets.randbelow(10_000) + 1)


def _score(nb, name: str, label: str, points: int, stopped: str, nonce: str | None, manual: bool = False) -> Grade:
    if manual:
        return Grade(label, name, None, points, "graded by hand: a written answer (rubric in the instructor's notebook)")
    cells = [cell for cell in nb.cells if cell.cell_type == "code" and name in exercise_names(cell)]
    if not cells:
        return Grade(label, name, 0, points, "the exercise's cells are missing from the notebook")
    errors = [error for error in map(_cell_error, cells) if error]
    if errors and errors[0].startswith("NotImplementedError"):
        return Grade(label, name, 0, points, "not attempted: " + errors[0])
    if nonce is None:                                          # no source: the submission's own cells decide
        if errors:
            return Grade(label, name, 0, points, errors[0])
        if not all(_ran(cell) for cell in cells):
            return Grade(label, name, 0, points, f"not reached: {stopped}" if stopped else "not run")
        return Grade(label, name, points, points, "passed")
    checks = [c for c in nb.cells if f"grader:{name}" in c.get("metadata", {}).get("tags", [])]
    for check in checks:
        error = _cell_error(check)
        text = "".join(str(o.get("text", "")) for o in check.get("outputs", []))
        if error:
            credit = re.search(re.escape(nonce) + r":credit=([0-9.]+)", text)
            score = round(points * float(credit.group(1)), 2) if credit else 0
            score = int(score) if float(score).is_integer() else score
            return Grade(label, name, score, points, error.replace("ReferenceUsed: ", "the package's reference: "))
        if nonce not in text:
            return Grade(label, name, 0, points, f"the check did not finish: {stopped}" if stopped
                         else "the check did not finish")
    return Grade(label, name, points, points, "passed")


def grade_notebook(path: str | Path, timeout: float = 300, expected: list[str] | None = None,
                   label: str | None = None, source: nbformat.NotebookNode | None = None) -> list[Grade]:
    """Grade one submitted notebook.

    With the instructor's ``source`` notebook, each exercise is scored by the source's check cells,
    inserted after the submission's own (which count for nothing), run under ``reference_guard``, with the
    points the source's ``points:N`` tags give. Without it, an exercise scores when its cells in the
    submission ran without error. ``expected`` lists the exercises (default: the source's, else the
    submission's).
    """
    path = Path(path)
    label = label or path.name
    names = expected or (exercises_of(source) if source is not None else None)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:                                  # unreadable JSON, wrong format
        return [Grade(label, name, 0, 1, f"the notebook cannot be read: {error}") for name in names or ["(notebook)"]]
    names = names or exercises_of(nb)
    if not names:
        return [Grade(label, "(notebook)", 0, 0, "no cells tagged exercise:NAME")]
    nonce = f"grader-ok-{secrets.token_hex(8)}" if source is not None else None
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if source is not None:
        _with_canonical_checks(nb, source, names, nonce)
    with tempfile.TemporaryDirectory(prefix="lgd-grade-") as tmp:
        workdir = Path(tmp) / "work"
        shutil.copytree(path.parent, workdir, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        env = {"LGD_FIGURES_DIR": str(workdir / "figures"), "LGD_PROFILE": "cpu", "MPLBACKEND": "Agg"}
        ok, stopped = execute_notebook(nb, workdir, timeout, env=env, allow_errors=True)
    reference = source if source is not None else nb
    cells_of = {name: [c for c in reference.cells if name in exercise_names(c)] for name in names}
    # points from the source's points:N tags; without a source, from the submission's own (the student versions
    # keep them), so an exercise a time-out never reached still shows what it was worth
    points = {name: points_of(cells) for name, cells in cells_of.items()}
    manual = {name for name, cells in cells_of.items() if any(is_manual(c) for c in cells)}
    return [_score(nb, name, label, points[name], stopped, nonce, name in manual) for name in names]


def grade_folder(submissions: str | Path, timeout: float = 300, out: str | Path | None = "grades",
                 sources: str | Path | None = "notebooks", echo: bool = True) -> list[Grade]:
    """Grade every ``*.ipynb`` under ``submissions`` (subfolders too), or the one notebook ``submissions``
    names; write ``grades.csv`` into the folder ``out``.

    A submission named like a source notebook is graded on the source's
    exercises, so deleted exercise cells still count as 0.
    """
    submissions = Path(submissions)
    source_notebooks = {}
    if sources and Path(sources).is_dir():
        source_notebooks = {p.name: nbformat.read(p, as_version=4) for p in list_notebooks(sources)}
    grades = []
    if submissions.is_file():
        paths, submissions = [submissions], submissions.parent
    else:
        paths = sorted(p for p in submissions.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    for path in paths:
        label = str(path.relative_to(submissions))
        result = grade_notebook(path, timeout, label=label, source=source_notebooks.get(path.name))
        for grade in result:
            grade.student = student_of(path.relative_to(submissions))
        grades += result
        if echo:
            score, best = sum(g.score or 0 for g in result), sum(g.max for g in result if g.score is not None)
            print(f"{label:<48} {score}/{best}", flush=True)
    if out is not None:
        write_reports(grades, Path(out))
    return grades


def write_reports(grades: list[Grade], out: Path) -> None:
    """``grades.csv`` (one row per student: a column per exercise, the total and the maximum, ready for a
    gradebook), ``grades_long.csv`` (one row per student and exercise, with the reason) and
    a Markdown file per student in ``feedback/`` (every exercise's score and the reason for every lost point)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "grades_long.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        writer.writerows((g.student, g.notebook, g.exercise, "" if g.score is None else g.score, g.max, g.reason)
                         for g in grades)
    exercises = list(dict.fromkeys(g.exercise for g in grades))
    students = list(dict.fromkeys(g.student for g in grades))
    with open(out / "grades.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", *exercises, "total", "max"])
        for student in students:
            mine = [g for g in grades if g.student == student]
            score = {e: ("manual" if any(g.score is None for g in mine if g.exercise == e)
                         else sum(g.score for g in mine if g.exercise == e)) for e in exercises}
            writer.writerow([student, *(score[e] for e in exercises), sum(g.score or 0 for g in mine),
                             sum(g.max for g in mine if g.score is not None)])
    (out / "feedback").mkdir(exist_ok=True)
    for student in students:
        mine = [g for g in grades if g.student == student]
        lines = [f"# Feedback for {student}", "",
                 f"Total: {sum(g.score or 0 for g in mine)} of {sum(g.max for g in mine if g.score is not None)} "
                 "points graded automatically" + (", and written answers graded by hand."
                                                  if any(g.score is None for g in mine) else "."), ""]
        for notebook in dict.fromkeys(g.notebook for g in mine):
            lines += [f"## {notebook}", "", "| exercise | points | why |", "| --- | --- | --- |"]
            lines += [f"| {g.exercise} | {'by hand' if g.score is None else g.score} / {g.max} | "
                      f"{'' if g.score == g.max else g.reason.replace('|', '/')} |" for g in mine if g.notebook == notebook]
            lines.append("")
        (out / "feedback" / f"{student}.md").write_text("\n".join(lines), encoding="utf-8")

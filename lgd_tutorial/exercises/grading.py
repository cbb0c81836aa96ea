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
  errors. An exercise scores 1 when every cell tagged with it ran without
  error, else 0 with the first error as the reason. A notebook that hangs or
  crashes scores 0 on every exercise that did not pass before, with the reason.
- ``grade_folder`` grades a folder of submissions (a student per subfolder, or per file name) and writes
  ``grades.csv`` (wide), ``grades_long.csv`` and a feedback file per student (``write_reports``).
"""

from __future__ import annotations

import csv
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


def stub_solutions(source: str, name: str) -> str:
    """Replace every BEGIN/END SOLUTION region of ``source`` by a stub raising NotImplementedError."""
    out, inside = [], False
    for line in source.splitlines():
        marker = line.strip()
        if marker.startswith(BEGIN):
            if inside:
                raise ValueError(f"exercise {name!r}: {BEGIN} inside another solution region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
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
        if cell.cell_type == "code" and BEGIN in cell.source:
            names = exercise_names(cell)
            cell.source = stub_solutions(cell.source, names[0] if names else "")
    return student


def build_exercises(sources: str | Path = "notebooks", out_dir: str | Path = "notebooks/exercises",
                    echo: bool = True) -> list[Path]:
    """Write the student version of every numbered notebook of ``sources`` to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in list_notebooks(sources):
        nb = nbformat.read(path, as_version=4)
        target = out / path.name
        nbformat.write(build_student_notebook(nb), target)
        written.append(target)
        if echo:
            print(f"{path.name:<36} {len(exercises_of(nb))} exercise(s) -> {target}")
    return written


@dataclass
class Grade:
    notebook: str
    exercise: str
    score: int
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


def grade_notebook(path: str | Path, timeout: float = 300, expected: list[str] | None = None,
                   label: str | None = None) -> list[Grade]:
    """Grade one submitted notebook; ``expected`` lists the exercises (default: those tagged in it)."""
    path = Path(path)
    label = label or path.name
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:                                  # unreadable JSON, wrong format
        names = expected or ["(notebook)"]
        return [Grade(label, name, 0, 1, f"the notebook cannot be read: {error}") for name in names]
    names = expected or exercises_of(nb)
    if not names:
        return [Grade(label, "(notebook)", 0, 0, "no cells tagged exercise:NAME")]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    with tempfile.TemporaryDirectory(prefix="lgd-grade-") as tmp:
        workdir = Path(tmp) / "work"
        shutil.copytree(path.parent, workdir, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        env = {"LGD_FIGURES_DIR": str(workdir / "figures"), "LGD_PROFILE": "cpu", "MPLBACKEND": "Agg"}
        ok, stopped = execute_notebook(nb, workdir, timeout, env=env, allow_errors=True)
    grades = []
    for name in names:
        cells = [cell for cell in nb.cells if cell.cell_type == "code" and name in exercise_names(cell)]
        if not cells:
            grades.append(Grade(label, name, 0, 1, "the exercise's cells are missing from the notebook"))
            continue
        errors = [error for error in map(_cell_error, cells) if error]
        if errors:
            reason = errors[0]
            if reason.startswith("NotImplementedError"):
                reason = "not attempted: " + reason
            grades.append(Grade(label, name, 0, 1, reason))
        elif not all(_ran(cell) for cell in cells):
            grades.append(Grade(label, name, 0, 1, f"not reached: {stopped}" if stopped else "not run"))
        else:
            grades.append(Grade(label, name, 1, 1, "passed"))
    return grades


def grade_folder(submissions: str | Path, timeout: float = 300, out: str | Path | None = "grades",
                 sources: str | Path | None = "notebooks", echo: bool = True) -> list[Grade]:
    """Grade every ``*.ipynb`` under ``submissions`` (subfolders too); write ``grades.csv`` into the folder ``out``.

    A submission named like a source notebook is graded on the source's
    exercises, so deleted exercise cells still count as 0.
    """
    submissions = Path(submissions)
    source_exercises = {}
    if sources and Path(sources).is_dir():
        source_exercises = {p.name: exercises_of(nbformat.read(p, as_version=4)) for p in list_notebooks(sources)}
    grades = []
    paths = sorted(p for p in submissions.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    for path in paths:
        label = str(path.relative_to(submissions))
        result = grade_notebook(path, timeout, expected=source_exercises.get(path.name), label=label)
        for grade in result:
            grade.student = student_of(path.relative_to(submissions))
        grades += result
        if echo:
            score, best = sum(g.score for g in result), sum(g.max for g in result)
            print(f"{label:<48} {score}/{best}", flush=True)
    if out is not None:
        write_reports(grades, Path(out))
    return grades


def write_reports(grades: list[Grade], out: Path) -> None:
    """``grades.csv`` (one row per student: a column per exercise, the total and the maximum, ready for a
    gradebook), ``grades_long.csv`` (one row per student and exercise, with the reason) and
    ``feedback/STUDENT.md`` (every exercise's score and the reason for every lost point)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "grades_long.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        writer.writerows((g.student, g.notebook, g.exercise, g.score, g.max, g.reason) for g in grades)
    exercises = list(dict.fromkeys(g.exercise for g in grades))
    students = list(dict.fromkeys(g.student for g in grades))
    with open(out / "grades.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", *exercises, "total", "max"])
        for student in students:
            mine = [g for g in grades if g.student == student]
            score = {e: sum(g.score for g in mine if g.exercise == e) for e in exercises}
            writer.writerow([student, *(score[e] for e in exercises), sum(g.score for g in mine),
                             sum(g.max for g in mine)])
    (out / "feedback").mkdir(exist_ok=True)
    for student in students:
        mine = [g for g in grades if g.student == student]
        lines = [f"# Feedback for {student}", "",
                 f"Total: {sum(g.score for g in mine)} of {sum(g.max for g in mine)} points.", ""]
        for notebook in dict.fromkeys(g.notebook for g in mine):
            lines += [f"## {notebook}", "", "| exercise | points | why |", "| --- | --- | --- |"]
            lines += [f"| {g.exercise} | {g.score} / {g.max} | {'' if g.score == g.max else g.reason.replace('|', '/')} |"
                      for g in mine if g.notebook == notebook]
            lines.append("")
        (out / "feedback" / f"{student}.md").write_text("\n".join(lines), encoding="utf-8")

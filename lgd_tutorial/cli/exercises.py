"""``lgd exercises``: student versions of the notebooks, and grading of submissions."""

from __future__ import annotations

import argparse

HELP = "student versions of the notebooks and grading (lgd exercises build|grade)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = sub.add_parser("build", help="write student versions (solutions stubbed, outputs stripped)")
    b.add_argument("--sources", default="notebooks", help="folder of the source notebooks")
    b.add_argument("--out", default="notebooks/exercises", help="folder for the student versions")
    b.add_argument("--format", default="student", choices=["student", "nbgrader"],
                   help="student: solutions stubbed (default); nbgrader: the instructor's notebooks with nbgrader's "
                        "metadata, for an nbgrader course's source/ASSIGNMENT/ folder")
    b.set_defaults(run=build)
    g = sub.add_parser("grade", help="run every submitted notebook in isolation and write a CSV of scores")
    g.add_argument("submissions", help="folder of submitted notebooks (searched recursively), or one notebook")
    g.add_argument("--timeout", type=float, default=300, help="seconds allowed per notebook (default 300)")
    g.add_argument("--out", default="grades",
                   help="folder for grades.csv (a row per student), grades_long.csv and a feedback file per student in feedback/")
    g.add_argument("--sources", default="notebooks", help="source notebooks naming the expected exercises")
    g.set_defaults(run=grade)


def build(args) -> int:
    from ..exercises.grading import build_exercises

    build_exercises(args.sources, args.out, format=args.format)
    return 0


def grade(args) -> int:
    import sys
    from pathlib import Path

    from ..exercises.grading import grade_folder
    from . import fail

    submissions = Path(args.submissions)
    if not submissions.exists():
        return fail("exercises grade", f"no such folder or notebook: {submissions}")
    if submissions.is_file() and submissions.suffix != ".ipynb":
        return fail("exercises grade", f"{submissions} is not a notebook (.ipynb)")
    if submissions.is_dir() and not any(p for p in submissions.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts):
        return fail("exercises grade", f"no notebooks (*.ipynb) found in {submissions} or its subfolders")
    grades = grade_folder(submissions, args.timeout, args.out, args.sources)
    print(f"{sum(g.score or 0 for g in grades)}/{sum(g.max for g in grades if g.score is not None)} points "
          f"graded automatically; wrote {Path(args.out) / 'grades.csv'}",
          file=sys.stderr)
    return 0

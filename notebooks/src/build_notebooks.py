"""Regenerate notebooks/NN_*.ipynb from the percent scripts in this folder (jupytext's py:percent format).

    .venv/bin/python notebooks/src/build_notebooks.py

The scripts are the sources under review; the notebooks are generated from
them, without outputs, with the standard header (the run time measured by
`lgd workbook --update-timings`, read from notebooks/timings.json; the launch
links; the install cell). A test checks the two are in sync.
"""

from pathlib import Path

import nbformat

from lgd_tutorial.notebooks import build_notebook, read_timings

SOURCES = Path(__file__).resolve().parent


def main() -> None:
    timings = read_timings(SOURCES.parent)
    for script in sorted(SOURCES.glob("[0-9][0-9]_*.py")):
        target = SOURCES.parent / f"{script.stem}.ipynb"
        nbformat.write(build_notebook(script, timings), target)
        print(f"{script.name} -> {target.relative_to(SOURCES.parent.parent)}")


if __name__ == "__main__":
    main()

"""Regenerate notebooks/NN_*.ipynb from the percent scripts in this folder.

    .venv/bin/python notebooks/src/build_notebooks.py

The scripts are the sources under review; the notebooks are generated from
them, without outputs. A test checks the two are in sync.
"""

from pathlib import Path

import nbformat

from lgd_tutorial.notebooks import notebook_from_script

SOURCES = Path(__file__).resolve().parent


def main() -> None:
    for script in sorted(SOURCES.glob("[0-9][0-9]_*.py")):
        target = SOURCES.parent / f"{script.stem}.ipynb"
        nbformat.write(notebook_from_script(script.read_text(), script.stem), target)
        print(f"{script.name} -> {target.relative_to(SOURCES.parent.parent)}")


if __name__ == "__main__":
    main()

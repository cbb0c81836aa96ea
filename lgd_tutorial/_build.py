"""Build hook (``[tool.setuptools.cmdclass]`` in pyproject.toml): the wheel carries the results and the
annotations the notebooks read, under ``lgd_tutorial/shipped/``.

In a checkout they live at the top of the repository (``figures/<study>/``, ``data/kinetics/``); an installed
package finds the same files under ``lgd_tutorial/shipped/`` with the same relative paths
(``lgd_tutorial.notebooks.shipped_path``). Used only while building; nothing imports it at run time.
"""

import shutil
from pathlib import Path

from setuptools.command.build_py import build_py

CHECKOUT = Path(__file__).resolve().parents[1]


def shipped_folders(checkout: Path = CHECKOUT) -> list[Path]:
    """Every results folder under figures/ and the official annotations, relative to the checkout."""
    figures = checkout / "figures"
    folders = sorted(f.relative_to(checkout) for f in figures.iterdir() if f.is_dir()) if figures.is_dir() else []
    return folders + [Path("data") / "kinetics"]


class BuildWithShipped(build_py):
    def run(self):
        super().run()
        for relative in shipped_folders():
            if (CHECKOUT / relative).is_dir():
                shutil.copytree(CHECKOUT / relative, Path(self.build_lib) / "lgd_tutorial" / "shipped" / relative,
                                dirs_exist_ok=True)

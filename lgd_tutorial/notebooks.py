"""Run the workbook's notebooks headless, and the few helpers the notebooks share.

``run_notebooks(paths)`` executes each notebook top to bottom in a fresh
Jupyter kernel (this interpreter's ``python3`` kernel, so the same ``.venv``),
prints one progress line per notebook and writes the executed copy (with its
outputs) to ``notebooks/executed/``, which git ignores.

Inside a notebook:

- ``profile()`` reads ``LGD_PROFILE``: "cpu" (the default: small sizes that run
  in about a minute on a 2-core laptop) or "gpu" (the real recipe);
- ``figure_path("02_pool_broadcast.png")`` is where a figure is saved:
  ``$LGD_FIGURES_DIR`` if set, else ``notebooks/executed/figures/`` in the
  repository (git-ignored), else ``figures/`` in the working folder. The
  figures tracked in the repository's ``figures/`` change only on purpose
  (``lgd workbook --update-figures``);
- ``show_figure(fig, figure_path(name))`` saves a figure and shows that same
  picture, rendering it once (saving and then displaying renders it twice).
"""

from __future__ import annotations

import json
import os
import time
from fnmatch import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .viz.figcheck import write_figure

if TYPE_CHECKING:                     # nbformat takes about a second to import: only where a notebook is run
    import nbformat

PROFILES = ("cpu", "gpu")
KERNEL_NAME = "python3"


def profile() -> str:
    """The recipe a notebook should follow: "cpu" (default) or "gpu", from ``LGD_PROFILE``."""
    value = os.environ.get("LGD_PROFILE", "cpu").strip().lower() or "cpu"
    if value not in PROFILES:
        raise ValueError(f"LGD_PROFILE must be one of {PROFILES}, got {value!r}")
    return value


def repository_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working dir) holding notebooks/ and pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def figure_path(name: str) -> Path:
    """Where a notebook saves the figure ``name``; the folder is created if needed.

    Never the tracked ``figures/`` unless ``LGD_FIGURES_DIR`` names it: a run leaves the repository as it found it.
    """
    if os.environ.get("LGD_FIGURES_DIR"):
        folder = Path(os.environ["LGD_FIGURES_DIR"])
    else:
        root = repository_root()
        folder = root / "notebooks" / "executed" / "figures" if root else Path.cwd() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def show_figure(fig, path: str | Path | None = None, dpi: int = 100) -> None:
    """Render ``fig`` once to PNG, write it to ``path`` (if given), show it, and close the figure.

    Displaying a Figure renders it again after ``savefig`` (as long again: 0.3 to 1 s for the workbook's
    larger figures), so the notebook shows the file's bytes instead: what the reader sees is the saved file.
    Outside IPython it only saves.
    """
    import io

    import matplotlib.pyplot as plt

    buffer = write_figure(fig, io.BytesIO(), dpi=dpi, name=Path(path).name if path is not None else None)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
    plt.close(fig)                    # else the inline backend shows it a second time at the end of the cell
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(data=buffer.getvalue(), format="png"))


def inline_figures() -> None:
    """In Jupyter, show every matplotlib ``Figure`` a cell returns as an image.

    The package's plot helpers build ``Figure`` objects without pyplot; Jupyter
    renders those only once its inline backend is active, which otherwise
    happens at the first pyplot figure. Outside IPython this does nothing.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")


def work_path(name: str) -> Path:
    """A scratch folder for a notebook's runs: ``$LGD_WORK_DIR/name``, else ``notebooks/executed/work/name`` in
    the repository, else ``lgd_work/name`` in the working folder (a notebook run outside the repository).

    All are outside the tracked files and outside ``runs/``, which belongs to the user's own experiments.
    """
    if os.environ.get("LGD_WORK_DIR"):
        folder = Path(os.environ["LGD_WORK_DIR"])
    else:
        root = repository_root()
        folder = root / "notebooks" / "executed" / "work" if root else Path.cwd() / "lgd_work"
    return folder / name


def data_dir() -> Path:
    """Where a notebook keeps generated datasets: ``$LGD_DATA_DIR``, else ``data/`` of the repository, else
    ``data/`` in the working folder."""
    if os.environ.get("LGD_DATA_DIR"):
        return Path(os.environ["LGD_DATA_DIR"])
    return (repository_root() or Path.cwd()) / "data"


PACKAGE = Path(__file__).resolve().parent


def shipped_path(relative: str) -> Path:
    """A shipped result or annotation file by its path in the repository ("figures/reach_study",
    "data/kinetics/kinetics-400_val.csv"): from the checkout the package runs from, else from the copy the
    wheel carries in ``lgd_tutorial/shipped/`` (``setup.py`` puts it there), so a notebook reads the same
    files from an installed package in any folder."""
    checkout = PACKAGE.parent
    candidates = [PACKAGE / "shipped" / relative]
    if (checkout / "pyproject.toml").is_file():
        candidates.insert(0, checkout / relative)
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError(f"no shipped {relative!r}: looked in {' and '.join(str(p) for p in candidates)}")


@dataclass
class NotebookRun:
    """What happened when one notebook ran: ``ok`` is False after an error, a time-out or a dead kernel."""

    path: Path
    seconds: float
    ok: bool
    error: str = ""
    executed: Path | None = None
    notebook: nbformat.NotebookNode | None = field(default=None, repr=False)


def inject_parameters(nb: nbformat.NotebookNode, params: dict) -> None:
    """Insert a cell assigning ``params`` right after the cell tagged "parameters" (or first).

    The same convention as papermill: the notebook's own defaults live in the
    tagged cell, the injected cell overrides them.
    """
    import nbformat
    source = "# injected parameters\n" + "".join(f"{name} = {value!r}\n" for name, value in params.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    position = 0
    for index, existing in enumerate(nb.cells):
        if "parameters" in existing.get("metadata", {}).get("tags", []):
            position = index + 1
            break
    nb.cells.insert(position, cell)


def _first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _mark_failed(nb: nbformat.NotebookNode, index: int, ename: str, reason: str) -> None:
    """Give the cell where a run stopped an error output, so the executed copy shows why."""
    import nbformat
    if 0 <= index < len(nb.cells) and nb.cells[index].cell_type == "code":
        nb.cells[index].outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=reason, traceback=[]))


def execute_notebook(nb: nbformat.NotebookNode, cwd: Path, timeout: float, env: dict | None = None,
                     allow_errors: bool = False) -> tuple[bool, str]:
    """Execute ``nb`` in place in a fresh kernel started in ``cwd``; the whole notebook gets ``timeout`` seconds.

    Returns (ok, reason). With ``allow_errors`` the run goes on after a cell
    raises (its error is kept as the cell's output, as a grader needs); without
    it the run stops at the first error. A time-out or a dead kernel always
    stops the run; the kernel is shut down in every case.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    client = NotebookClient(nb, timeout=max(1, int(timeout)), kernel_name=KERNEL_NAME,
                            allow_errors=allow_errors, shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(cwd)}},
                            # The kernel is local, on 127.0.0.1; its warning about plain TCP would print once per
                            # notebook into the main job's output. Its errors still reach stderr.
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    kernel_env = {**os.environ, **(env or {})}
    deadline = time.monotonic() + timeout
    index = -1
    try:
        with client.setup_kernel(env=kernel_env):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CellTimeoutError(f"no time left before cell {index}")
                client.timeout = max(1, int(remaining))
                client.execute_cell(cell, index)
            client.set_widgets_metadata()           # the widgets' state, so saved copies show them (nbviewer)
    except CellTimeoutError:
        reason = f"time limit of {timeout:g} s reached in cell {index} (the notebook hangs or is too slow)"
        _mark_failed(nb, index, "TimeoutError", reason)
        return False, reason
    except DeadKernelError as error:
        reason = f"the kernel died in cell {index}: {_first_line(error) or 'no message'}"
        _mark_failed(nb, index, "DeadKernelError", reason)
        return False, reason
    except CellExecutionError as error:
        return False, f"cell {index} raised {error.ename}: {_first_line(error.evalue)}"
    return True, ""


def run_notebook(path: str | Path, out_dir: str | Path | None = "notebooks/executed", timeout: float = 600,
                 params: dict | None = None, env: dict | None = None) -> NotebookRun:
    """Execute one notebook in its own folder; write the executed copy to ``out_dir`` (None: don't)."""
    import nbformat
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if params:
        inject_parameters(nb, params)
    start = time.perf_counter()
    ok, reason = execute_notebook(nb, path.parent.resolve(), timeout, env=env)
    run = NotebookRun(path, time.perf_counter() - start, ok, reason, notebook=nb)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        run.executed = out / path.name
        nbformat.write(nb, run.executed)
    return run


def format_run(run: NotebookRun) -> str:
    status = "ok" if run.ok else f"FAILED: {run.error}"
    return f"{run.path.name:<36} {run.seconds:7.1f} s  {status}"


def run_notebooks(paths, out_dir: str | Path | None = "notebooks/executed", timeout: float = 600,
                  params: dict | None = None, env: dict | None = None, echo: bool = True) -> list[NotebookRun]:
    """Execute ``paths`` in order, one fresh kernel each; a failure never stops the next notebook.

    Prints a progress line per notebook (name, seconds, ok or the error) when
    ``echo``. ``params`` are injected after each notebook's "parameters" cell;
    ``env`` is added to the kernels' environment (e.g. ``{"LGD_PROFILE": "gpu"}``).
    """
    runs = []
    for path in paths:
        run = run_notebook(path, out_dir=out_dir, timeout=timeout, params=params, env=env)
        runs.append(run)
        if echo:
            print(format_run(run), flush=True)
    return runs


def list_notebooks(folder: str | Path = "notebooks", only: str | None = None) -> list[Path]:
    """The numbered notebooks (01_..., 02_...) of ``folder`` in order.

    ``only`` keeps the names that contain it or match it as a glob ("02", "0[23]_*").
    """
    paths = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if only in p.name or fnmatch(p.name, only)]
    return paths


def strip_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs and execution counts (how notebooks are stored in git)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    return nb


def notebook_from_script(text: str, stem: str) -> nbformat.NotebookNode:
    """Build a notebook from a "percent" script (how the workbook's sources are written), with jupytext.

    ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose lines drop their leading "# ";
    ``# %% tags=["exercise:lgd_block"]`` adds cell tags. Cell ids are ``{stem}-{n}`` and only the tags are
    kept as cell metadata, so regenerating gives the same file.
    """
    import jupytext
    import nbformat

    nb = jupytext.reads(text, fmt="py:percent")
    cells = []
    for index, cell in enumerate(nb.cells):
        new = (nbformat.v4.new_markdown_cell(cell.source) if cell.cell_type == "markdown"
               else nbformat.v4.new_code_cell(cell.source))
        if cell.metadata.get("tags"):
            new.metadata["tags"] = list(cell.metadata["tags"])
        new.id = f"{stem}-{index}"
        cells.append(new)
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": KERNEL_NAME},
                    "language_info": {"name": "python"}}
    return out


# --------------------------------------------------------------------------- the notebooks' standard header

REPOSITORY = "lgd-tutorial/lgd_tutorial"          # where the workbook is published on GitHub (owner/name)
TIMINGS = "timings.json"                          # in notebooks/: seconds per notebook, lgd workbook --update-timings


def release_tag() -> str:
    return f"v{__version__}"


def launch_links(stem: str) -> dict[str, str]:
    """Colab and Binder addresses of the student version of notebook ``stem``, at this version's tag."""
    path = f"notebooks/exercises/{stem}.ipynb"
    tag = release_tag()
    return {"colab": f"https://colab.research.google.com/github/{REPOSITORY}/blob/{tag}/{path}",
            "binder": f"https://mybinder.org/v2/gh/{REPOSITORY}/{tag}?labpath={path.replace('/', '%2F')}"}


def install_source() -> str:
    """The first code cell: install the package at this workbook's version where it cannot be imported."""
    return ("# Set-up for hosted notebooks (Colab): installs lgd_tutorial at this workbook's version where it is\n"
            "# missing; where it is installed (make, Binder, pip) this does nothing.\n"
            "import importlib.util, subprocess, sys\n\n"
            f"PACKAGE = \"lgd_tutorial @ git+https://github.com/{REPOSITORY}@{release_tag()}\"\n"
            "if importlib.util.find_spec(\"lgd_tutorial\") is None:\n"
            "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", PACKAGE], check=True)")


def header_markdown(stem: str, timings: dict | None) -> str:
    """The run line under a notebook's title: its measured time and the launch links."""
    links = launch_links(stem)
    seconds = (timings or {}).get("seconds", {}).get(stem)
    if seconds is None:
        time = "Its run time has not been measured yet (`lgd workbook --update-timings`)."
    else:
        time = (f"It ran in {seconds:.0f} s on {timings['cores']} CPU cores ({timings['cpu']}, "
                f"CPU profile), the last time `lgd workbook --update-timings` measured it.")
    return (f"**Run it:** {time} [Open in Colab]({links['colab']}) · [Launch on Binder]({links['binder']}) "
            "(the student version, without solutions; the hosted services are not tested by this project: "
            "see the README).")


def read_timings(folder: str | Path) -> dict | None:
    path = Path(folder) / TIMINGS
    return json.loads(path.read_text()) if path.is_file() else None


def build_notebook(script: str | Path, timings: dict | None = None) -> nbformat.NotebookNode:
    """The stored notebook for the percent script ``script``: its cells (``notebook_from_script``) with the
    standard header after the title cell: the run line (time and launch links) and the install cell."""
    import nbformat

    script = Path(script)
    nb = notebook_from_script(script.read_text(encoding="utf-8"), script.stem)
    run_line = nbformat.v4.new_markdown_cell(header_markdown(script.stem, timings))
    run_line.id = f"{script.stem}-header"
    install = nbformat.v4.new_code_cell(install_source())
    install.id = f"{script.stem}-install"
    nb.cells[1:1] = [run_line, install]
    return nb

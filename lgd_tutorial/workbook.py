"""The main job (``lgd workbook``): run every notebook of the workbook headless, in order.

This is what the README's first command runs after setting up ``.venv/``.
Each numbered notebook of ``notebooks/`` (01_..., 02_..., ...) runs top to
bottom in a fresh kernel; executed copies go to ``notebooks/executed/``
and their figures to ``notebooks/executed/figures/`` (both git-ignored: the
run leaves the repository as it found it). The figures tracked in
``figures/`` (the ones the README shows) are rewritten only with
``--update-figures``. One progress line per notebook
says how long it took and whether it ran. The exit status is 1 if any
notebook failed.

The recipe follows ``LGD_PROFILE``: "cpu" (small sizes, synthetic data) or
"gpu" (the real recipe); by default "gpu" when PyTorch sees a GPU.
``--models`` first prints every registered model's parameter and FLOP budget.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .models import list_models, model_info
from .models.summary import format_summary, summarize
from .notebooks import TIMINGS, list_notebooks, repository_root, run_notebooks
from .utils import cpu_name


def print_model_summaries(num_classes: int) -> None:

    for name in list_models():
        start = time.perf_counter()
        info = model_info(name)
        summary = summarize(name, frames=info.frames, size=info.size, num_classes=num_classes)
        print(format_summary(summary))
        print(f"  built and counted in {time.perf_counter() - start:.1f} s\n", flush=True)


def default_profile() -> str:
    if os.environ.get("LGD_PROFILE"):
        return os.environ["LGD_PROFILE"]
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def write_timings(folder: Path, runs, profile: str) -> Path:
    """Merge the seconds of the notebooks that ran into ``folder/timings.json`` (a CPU-profile run only: the
    headers quote the time on CPU cores)."""
    path = Path(folder) / TIMINGS
    timings = json.loads(path.read_text()) if path.is_file() else {"seconds": {}}
    timings.update({"cpu": cpu_name(), "cores": os.cpu_count(), "profile": profile})
    timings["seconds"].update({run.path.stem: round(run.seconds, 1) for run in runs if run.ok})
    timings["seconds"] = dict(sorted(timings["seconds"].items()))
    path.write_text(json.dumps(timings, indent=1) + "\n")
    return path


def run_workbook(notebooks=None, only: str | None = None, out=None, timeout: float = 900,
                 profile: str | None = None, models: bool = False, num_classes: int = 400,
                 update_figures: bool = False, update_timings: bool = False) -> int:
    """Run the numbered notebooks of ``notebooks`` (default: the repository's) in order; 1 if any failed.

    Figures go to ``out/figures``; with ``update_figures`` to the repository's tracked ``figures/`` instead.
    With ``update_timings`` the seconds each notebook took (CPU profile only) go to ``notebooks/timings.json``,
    which the notebooks' headers quote (``notebooks/src/build_notebooks.py`` writes them in).
    """
    folder = Path(notebooks) if notebooks else (repository_root() or Path.cwd()) / "notebooks"
    paths = list_notebooks(folder, only)
    if not paths:
        raise FileNotFoundError(f"no notebooks named NN_*.ipynb in {folder}" + (f" matching {only!r}" if only else ""))
    if models:
        print_model_summaries(num_classes)
    profile = profile or default_profile()
    if update_timings and profile != "cpu":
        raise ValueError("--update-timings records the CPU profile's times (the headers quote them): "
                         "run with --profile cpu")
    out = Path(out) if out else folder / "executed"
    if update_figures:
        root = repository_root(folder)
        if root is None:
            raise FileNotFoundError(f"--update-figures rewrites the repository's figures/, but {folder} is not "
                                    "inside a checkout of the repository")
        figures = root / "figures"
    else:
        figures = out / "figures"
    print(f"running {len(paths)} notebook(s) from {folder} (profile {profile}); executed copies in {out}, "
          f"figures in {figures}", flush=True)
    start = time.perf_counter()
    runs = run_notebooks(paths, out_dir=out, timeout=timeout,
                         env={"LGD_PROFILE": profile, "LGD_FIGURES_DIR": str(figures.resolve())})
    failed = [run.path.name for run in runs if not run.ok]
    if update_timings:
        print(f"timings: {write_timings(folder, runs, profile)}", flush=True)
    print(f"{len(runs) - len(failed)}/{len(runs)} notebooks ran in {time.perf_counter() - start:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0

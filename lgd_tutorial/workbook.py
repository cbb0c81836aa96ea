"""The main job (``lgd workbook``): run every notebook of the workbook headless, in order.

This is what the README's first command runs after setting up ``.venv/``.
Each numbered notebook of ``notebooks/`` (01_..., 02_..., ...) runs top to
bottom in a fresh kernel; executed copies go to ``notebooks/executed/``
(git-ignored), figures to ``figures/``, and one progress line per notebook
says how long it took and whether it ran. The exit status is 1 if any
notebook failed.

The recipe follows ``LGD_PROFILE``: "cpu" (small sizes, synthetic data) or
"gpu" (the real recipe); by default "gpu" when PyTorch sees a GPU.
``--models`` first prints every registered model's parameter and FLOP budget.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .notebooks import list_notebooks, repository_root, run_notebooks


def print_model_summaries(num_classes: int) -> None:
    from .models import list_models, model_info
    from .models.summary import format_summary, summarize

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


def run_workbook(notebooks=None, only: str | None = None, out=None, timeout: float = 900,
                 profile: str | None = None, models: bool = False, num_classes: int = 400) -> int:
    """Run the numbered notebooks of ``notebooks`` (default: the repository's) in order; 1 if any failed."""
    folder = Path(notebooks) if notebooks else (repository_root() or Path.cwd()) / "notebooks"
    paths = list_notebooks(folder, only)
    if not paths:
        raise FileNotFoundError(f"no notebooks named NN_*.ipynb in {folder}" + (f" matching {only!r}" if only else ""))
    if models:
        print_model_summaries(num_classes)
    profile = profile or default_profile()
    out = Path(out) if out else folder / "executed"
    print(f"running {len(paths)} notebook(s) from {folder} (profile {profile}); executed copies in {out}", flush=True)
    start = time.perf_counter()
    runs = run_notebooks(paths, out_dir=out, timeout=timeout, env={"LGD_PROFILE": profile})
    failed = [run.path.name for run in runs if not run.ok]
    print(f"{len(runs) - len(failed)}/{len(runs)} notebooks ran in {time.perf_counter() - start:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0

"""How an experiment writes its results: every table as CSV and its provenance as JSON, each file atomically.

``write_results(out, {"runs.csv": runs, ...}, "study.json", meta)`` is the only writer the experiments use, so
an interrupted run never leaves a half-written CSV, and every shipped folder has the same shape: its tables and
one JSON with ``provenance`` (the command, the commit with a '+dirty' mark, the machine) and the settings.
``stamp`` adds the command and commit as columns of every table (the studies' CSVs carry them row by row).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..utils import atomic_path, cpu_name, cpu_native_bf16


def write_results(out, tables: dict, meta_name: str | None = None, meta: dict | None = None, indent: int = 1,
                  stamp: dict | None = None) -> None:
    """Write each DataFrame of ``tables`` (file name -> table) as CSV into the folder ``out``, atomically (with
    the columns of ``stamp`` added to every row), then ``meta`` as ``meta_name`` in JSON (skipped when None)."""
    out = Path(out)
    for name, table in tables.items():
        with atomic_path(out / name) as tmp:
            (table.assign(**stamp) if stamp else table).to_csv(tmp, index=False)
    if meta_name is not None:
        with atomic_path(out / meta_name) as tmp:
            tmp.write_text(json.dumps(meta, indent=indent) + "\n")


def provenance(command: str, argv) -> dict:
    """The ``lgd`` command, the commit (with a '+dirty' mark) and the machine that produced a result."""
    import platform
    import subprocess

    import torch

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        commit += "+dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"command": " ".join(["lgd", command, *argv]), "commit": commit,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            "cpu": f"{cpu_name()}{', native bf16' if cpu_native_bf16() else ''}"}

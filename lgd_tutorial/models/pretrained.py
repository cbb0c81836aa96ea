"""Teaching checkpoints shipped with the package: ``list_pretrained()`` and ``load_pretrained(name)``.

The files live in ``lgd_tutorial/pretrained/`` next to a ``manifest.json``
that records, for every checkpoint, how it was made (recipe, command, commit,
seed, data seed), what it scored and its sha256. ``lgd study
--pretrained-dir`` writes the diffusion study's models and ``lgd two-stream
--pretrained-dir`` the teaching set's flow stream; nothing else does. A file
whose sha256 does not match its manifest entry is refused by name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from ..utils import atomic_path
from .registry import build_model

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
MANIFEST = "manifest.json"


class PretrainedError(RuntimeError):
    """A teaching checkpoint is unknown, missing, altered or unreadable."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path | None = None) -> dict:
    path = Path(folder or PRETRAINED_DIR) / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PretrainedError(f"{path}: not valid JSON ({e})") from None


def list_pretrained(folder: Path | None = None) -> list[str]:
    """Names accepted by ``load_pretrained``, sorted."""
    return sorted(read_manifest(folder))


def save_pretrained(model: nn.Module, folder: Path, name: str, info: dict) -> Path:
    """Save ``model`` as ``folder/name.pt`` and record it in the folder's manifest.

    ``info`` must hold ``classes``, ``frames`` and ``size``; the model's
    ``arch``, ``diffusion``, its constructor arguments and the file's sha256 are
    added here.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    missing = {"classes", "frames", "size"} - set(info)
    if missing:
        raise ValueError(f"info for {name!r} lacks {sorted(missing)}")
    path = folder / f"{name}.pt"
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"model": state}, tmp)
    build_args = {"diffusion": model.diffusion, "dropout": model.classifier.dropout.p,
                  "kernel": model.classifier.kernel,
                  "pooled_global_head": model.diffusion == "none" and model.classifier.global_head is not None}
    if model.modality != "rgb":
        build_args["modality"] = model.modality
    if getattr(model, "context", None) is not None:
        build_args["context"] = model.context
    entry = {**info, "arch": model.arch, "diffusion": model.diffusion, "build_args": build_args,
             "file": path.name, "bytes": path.stat().st_size, "sha256": sha256_of(path)}
    manifest = read_manifest(folder)
    manifest[name] = entry
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def load_pretrained(name: str, folder: Path | None = None) -> tuple[nn.Module, dict]:
    """(model in eval mode, info) for a shipped teaching checkpoint.

    ``info`` holds at least ``arch``, ``diffusion``, ``frames``, ``size``,
    ``classes``, ``val_acc``, ``sha256`` and ``command``. Raises
    ``PretrainedError`` naming the file when it is missing, altered or unreadable.
    """
    folder = Path(folder or PRETRAINED_DIR)
    manifest = read_manifest(folder)
    if name not in manifest:
        raise PretrainedError(f"unknown teaching checkpoint {name!r}; available: {', '.join(sorted(manifest)) or 'none'}"
                              f" (in {folder / MANIFEST})")
    info = dict(manifest[name])
    path = folder / info["file"]
    if not path.exists():
        raise PretrainedError(f"{path}: the file of teaching checkpoint {name!r} is missing")
    actual = sha256_of(path)
    if actual != info["sha256"]:
        raise PretrainedError(f"{path}: sha256 {actual[:16]}... does not match the manifest's {info['sha256'][:16]}...: "
                              "the file is corrupt or was altered (restore it with git checkout)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        raise PretrainedError(f"{path}: unreadable checkpoint ({type(e).__name__}: {str(e)[:200]})") from e
    model = build_model(info["arch"], len(info["classes"]), **info["build_args"])
    model.load_state_dict(state)
    return model.eval(), info

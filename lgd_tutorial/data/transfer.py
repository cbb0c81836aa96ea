"""UCF101 and HMDB51 for transfer learning: manifests from the official split files.

UCF101 (``ucfTrainTestlist/``): ``classInd.txt`` ("1 ApplyEyeMakeup"),
``trainlist0S.txt`` ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1", 1-based
labels) and ``testlist0S.txt`` (paths only). Videos under ``root/<Class>/``.

HMDB51 (``testTrainMulti_7030_splits/``): ``<class>_test_split<S>.txt`` with
lines "video.avi ID", ID 1 = train, 2 = test, 0 = unused. Videos under
``root/<class>/``.

Class names are matched across files regardless of case: copies of UCF101's
``classInd.txt`` in circulation spell ``HandStandPushups`` where the list
files and folders have ``HandstandPushups``. The class keeps the spelling of
``classInd.txt`` (HMDB51: of its split file), paths keep the list file's, and
a warning names every variant found.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from .kinetics import MANIFEST_COLUMNS, AnnotationError, file_status, safe_join, save_manifest

log = logging.getLogger("lgd_tutorial.data.transfer")


def _warn_variants(variants: dict[str, set[str]], where: str) -> None:
    for name, spellings in sorted(variants.items()):
        log.warning("%s: class %r is spelled %s elsewhere; matched regardless of case", where, name,
                    " and ".join(repr(s) for s in sorted(spellings)))


def _rows(root: Path, items: list[tuple[str, int]], classes: list[str], split: str, source: str) -> list[dict]:
    rows = []
    for rel, index in items:
        path = safe_join(root, rel, source)
        status, reason = file_status(path)
        rows.append({"youtube_id": Path(rel).stem, "time_start": 0, "time_end": 0, "label": classes[index],
                     "label_index": index, "split": split, "path": Path(rel).as_posix(), "status": status,
                     "reason": reason})
    return rows


def ucf101_manifests(root, split_dir, split: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    root, split_dir = Path(root), Path(split_dir)
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split}")
    classes: dict[int, str] = {}
    index_file = split_dir / "classInd.txt"
    for n, line in enumerate(index_file.read_text().splitlines(), start=1):
        if line.strip():
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise AnnotationError(f"{index_file}: line {n}: expected 'index ClassName', got {line!r}")
            classes[int(parts[0])] = parts[1]
    names = [classes[i] for i in sorted(classes)]
    by_name = {c.lower(): i for i, c in enumerate(names)}
    if len(by_name) != len(names):
        raise AnnotationError(f"{index_file}: two classes differ only in case")
    variants: dict[str, set[str]] = {}
    out = []
    for kind in ("train", "test"):
        f = split_dir / f"{kind}list0{split}.txt"
        items = []
        for n, line in enumerate(f.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            rel = parts[0]
            cls = rel.split("/")[0]
            if cls.lower() not in by_name:
                raise AnnotationError(f"{f}: line {n}: class folder {cls!r} not in {index_file.name}")
            index = by_name[cls.lower()]
            if cls != names[index]:
                variants.setdefault(names[index], set()).add(cls)
            if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
                raise AnnotationError(f"{f}: line {n}: expected 'Class/video.avi [label]', got {line!r}")
            if len(parts) > 1 and int(parts[1]) - 1 != index:
                raise AnnotationError(f"{f}: line {n}: label {parts[1]} does not match folder {cls!r}")
            items.append((rel, index))
        out.append(pd.DataFrame(_rows(root, items, names, kind, str(f)), columns=MANIFEST_COLUMNS))
    _warn_variants(variants, f"{split_dir}")
    return out[0], out[1], names


def hmdb51_manifests(root, split_dir, split: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    root, split_dir = Path(root), Path(split_dir)
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split}")
    files = sorted(split_dir.glob(f"*_test_split{split}.txt"))
    if not files:
        raise AnnotationError(f"{split_dir}: no *_test_split{split}.txt files")
    names = [f.name[: -len(f"_test_split{split}.txt")] for f in files]
    folders = {p.name.lower(): p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else {}
    variants = {n: {folders[n.lower()]} for n in names if folders.get(n.lower(), n) != n}
    train, test = [], []
    for index, f in enumerate(files):
        for n, line in enumerate(f.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AnnotationError(f"{f}: line {n}: expected 'video.avi 0|1|2', got {line!r}")
            rel = f"{folders.get(names[index].lower(), names[index])}/{parts[0]}"
            if parts[1] == "1":
                train.append((rel, index))
            elif parts[1] == "2":
                test.append((rel, index))
    _warn_variants(variants, f"{split_dir} and the folders of {root}")
    return (pd.DataFrame(_rows(root, train, names, "train", str(split_dir)), columns=MANIFEST_COLUMNS),
            pd.DataFrame(_rows(root, test, names, "test", str(split_dir)), columns=MANIFEST_COLUMNS), names)


def split_manifests(dataset: str, root, split_dir, split: int = 1) -> tuple[Path, Path]:
    """Write ``root/manifest_{dataset}_split{S}_{train,test}.csv``; returns their paths."""
    build = {"ucf101": ucf101_manifests, "hmdb51": hmdb51_manifests}[dataset]
    train, test, _ = build(root, split_dir or root, split)
    paths = []
    for kind, frame in (("train", train), ("test", test)):
        paths.append(save_manifest(frame, Path(root) / f"manifest_{dataset}_split{split}_{kind}.csv"))
    return paths[0], paths[1]

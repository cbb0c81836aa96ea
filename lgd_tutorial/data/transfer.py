"""UCF101 and HMDB51 for transfer learning: manifests from the official split files.

UCF101 (``ucfTrainTestlist/``): ``classInd.txt`` ("1 ApplyEyeMakeup"),
``trainlist0S.txt`` ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1", 1-based
labels) and ``testlist0S.txt`` (paths only). Videos under ``root/<Class>/``.

HMDB51 (``testTrainMulti_7030_splits/``): ``<class>_test_split<S>.txt`` with
lines "video.avi ID", ID 1 = train, 2 = test, 0 = unused. Videos under
``root/<class>/``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .kinetics import MANIFEST_COLUMNS, AnnotationError, file_status, safe_join, save_manifest


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
    by_name = {c: i for i, c in enumerate(names)}
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
            if cls not in by_name:
                raise AnnotationError(f"{f}: line {n}: class folder {cls!r} not in {index_file.name}")
            if len(parts) > 1 and int(parts[1]) - 1 != by_name[cls]:
                raise AnnotationError(f"{f}: line {n}: label {parts[1]} does not match folder {cls!r}")
            items.append((rel, by_name[cls]))
        out.append(pd.DataFrame(_rows(root, items, names, kind, str(f)), columns=MANIFEST_COLUMNS))
    return out[0], out[1], names


def hmdb51_manifests(root, split_dir, split: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    root, split_dir = Path(root), Path(split_dir)
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split}")
    files = sorted(split_dir.glob(f"*_test_split{split}.txt"))
    if not files:
        raise AnnotationError(f"{split_dir}: no *_test_split{split}.txt files")
    names = [f.name[: -len(f"_test_split{split}.txt")] for f in files]
    train, test = [], []
    for index, f in enumerate(files):
        for n, line in enumerate(f.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AnnotationError(f"{f}: line {n}: expected 'video.avi 0|1|2', got {line!r}")
            rel = f"{names[index]}/{parts[0]}"
            if parts[1] == "1":
                train.append((rel, index))
            elif parts[1] == "2":
                test.append((rel, index))
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

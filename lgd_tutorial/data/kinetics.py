"""Kinetics annotations, class lists, on-disk layouts and manifests.

Official CSVs (Kinetics-400/600/700): ``label,youtube_id,time_start,time_end,split[,is_cc]``.
Kinetics-400 quotes multi-word labels, Kinetics-600 does not; test splits
have no label. A clip is keyed by ``(youtube_id, time_start, time_end)``
(in Kinetics-600 a few ``youtube_id`` values appear twice) and stored as
``{youtube_id}_{start:06d}_{end:06d}.mp4``.

Layouts found in the wild, all accepted by ``find_videos``:
- ``root/split/label/file`` (the CVDF archives sorted by label; torchvision),
  with the label as the folder name, or MMAction2's underscore form
  (``air_drumming``, parentheses and quotes dropped);
- flat ``root/split/file`` or ``root/file``;
- list files of PySlowFast and MMAction2: one ``path label_index`` per line
  (``read_list_file``).

A manifest is a CSV (pandas reads it) with one row per annotated clip:
``youtube_id,time_start,time_end,label,label_index,split,path,status,reason``;
status is ``present``, ``missing`` or ``unreadable``; ``path`` is relative to
the dataset root.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pandas as pd

from ..utils import atomic_path
from .video import VideoDecodeError, open_video

RESOURCES = Path(__file__).resolve().parent / "resources"       # package data: installed with the package
CLASS_LISTS = RESOURCES / "kinetics"                              # kinetics{400,600,700}_classes.txt
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")
MANIFEST_COLUMNS = ["youtube_id", "time_start", "time_end", "label", "label_index", "split",
                    "path", "status", "reason"]
STATUSES = ("present", "missing", "unreadable")
_FILE_RE = re.compile(r"^(?P<yid>.+)_(?P<start>\d{6})_(?P<end>\d{6})$")


class AnnotationError(ValueError):
    """A malformed annotation or list file; the message names the file and the line."""


# --------------------------------------------------------------------------- names

def clip_filename(youtube_id: str, time_start: int, time_end: int, ext: str = ".mp4") -> str:
    """``{youtube_id}_{start:06d}_{end:06d}.mp4``, the name the CVDF archives use."""
    return f"{youtube_id}_{int(time_start):06d}_{int(time_end):06d}{ext}"


def parse_clip_filename(name: str) -> tuple[str, int, int] | None:
    """The clip key of a file name, or None when the name does not follow the pattern."""
    m = _FILE_RE.match(Path(name).stem)
    if not m:
        return None
    return m["yid"], int(m["start"]), int(m["end"])


def folder_key(name: str) -> str:
    """A spelling-insensitive key for a label folder: ``air drumming``, ``air_drumming`` and
    MMAction2's ``passing_American_football_in_game`` for "passing American football (in game)"
    all map to the same key."""
    return re.sub(r"[\s_()'\"]+", "", name).lower()


def mmaction_folder(label: str) -> str:
    """The folder name MMAction2's Kinetics scripts use for a label."""
    return re.sub(r"[()'\"]", "", label).replace(" ", "_")


# --------------------------------------------------------------------------- class lists

def class_list_path(name: str) -> Path:
    """``kinetics400`` / ``kinetics600`` / ``kinetics700`` -> the class list file shipped with the package."""
    digits = re.sub(r"\D", "", name)
    path = CLASS_LISTS / f"kinetics{digits}_classes.txt"
    if not digits or not path.exists():
        raise ValueError(f"unknown class list {name!r}; have: "
                         f"{sorted(p.name for p in CLASS_LISTS.glob('*_classes.txt'))}")
    return path


def load_classes(name_or_path) -> list[str]:
    """A class list: one label per line, in index order. Accepts a file path or a Kinetics name."""
    path = Path(name_or_path)
    if not path.exists():
        path = class_list_path(str(name_or_path))
    classes = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(set(classes)) != len(classes):
        raise AnnotationError(f"{path}: duplicate labels in class list")
    return classes


# --------------------------------------------------------------------------- CSVs

def read_annotations(path, split: str | None = None) -> pd.DataFrame:
    """Read an official Kinetics CSV into a DataFrame (label may be None: test split).

    Every row is checked; a malformed row raises ``AnnotationError`` with the
    file and line number. Duplicate clip keys are dropped (first kept). A byte-order
    mark (spreadsheet programs write one) is ignored. ``frame.attrs["source"]`` names
    the file, so later checks (``build_manifest``) can name the line of a bad row
    (``annotation_line``; a small value: pandas copies ``attrs`` in every operation).
    """
    path = Path(path)
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise AnnotationError(f"{path}: empty file") from None
        need = ["youtube_id", "time_start", "time_end"]
        missing = [c for c in need if c not in header]
        if missing:
            raise AnnotationError(f"{path}: line 1: header lacks {missing} (got {header})")
        col = {name: i for i, name in enumerate(header)}
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise AnnotationError(f"{path}: line {line_no}: expected {len(header)} fields, got {len(row)}: {row}")
            yid = row[col["youtube_id"]].strip()
            if not yid:
                raise AnnotationError(f"{path}: line {line_no}: empty youtube_id")
            try:
                start, end = int(float(row[col["time_start"]])), int(float(row[col["time_end"]]))
            except ValueError:
                raise AnnotationError(f"{path}: line {line_no}: time_start/time_end must be numbers, "
                                      f"got {row[col['time_start']]!r}, {row[col['time_end']]!r}") from None
            if start < 0 or end <= start:
                raise AnnotationError(f"{path}: line {line_no}: bad time range {start}..{end}")
            label = row[col["label"]].strip() if "label" in col else ""
            rows.append({"label": label or None, "youtube_id": yid, "time_start": start, "time_end": end,
                         "split": row[col["split"]].strip() if "split" in col else (split or "")})
    frame = pd.DataFrame(rows, columns=["label", "youtube_id", "time_start", "time_end", "split"])
    frame = frame.drop_duplicates(["youtube_id", "time_start", "time_end"]).reset_index(drop=True)
    frame.attrs["source"] = str(path)
    if split is not None:
        frame = frame[frame["split"] == split].reset_index(drop=True)
    return frame


def annotation_line(path, youtube_id: str, time_start: int, time_end: int) -> int | None:
    """The line of ``path`` (a Kinetics CSV) that holds this clip, or None: read again only to name a bad row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader)]
            col = {name: i for i, name in enumerate(header)}
            for line_no, row in enumerate(reader, start=2):
                try:
                    if (row[col["youtube_id"]].strip() == youtube_id and int(float(row[col["time_start"]])) ==
                            time_start and int(float(row[col["time_end"]])) == time_end):
                        return line_no
                except (IndexError, KeyError, ValueError):
                    continue
    except (OSError, StopIteration):
        return None
    return None


def write_annotations(frame: pd.DataFrame, path) -> Path:
    """Write annotations in the official format (labels quoted when they contain spaces, as K400 does)."""
    path = Path(path)
    cols = ["label", "youtube_id", "time_start", "time_end", "split"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        w.writerow(cols)
        for r in frame[cols].itertuples(index=False):
            label = r.label if isinstance(r.label, str) else ""
            w.writerow([label, r.youtube_id, int(r.time_start), int(r.time_end), r.split])
    return path


# --------------------------------------------------------------------------- paths

def safe_join(root, relative, source: str = "") -> Path:
    """``root / relative``, refusing absolute paths and ``..`` (with ``source`` in the message)."""
    rel = str(relative).strip()
    where = f"{source}: " if source else ""
    p = Path(rel)
    if p.is_absolute() or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel):
        raise AnnotationError(f"{where}absolute path {rel!r} not allowed; paths must be relative to {root}")
    if ".." in p.parts or ".." in re.split(r"[\\/]", rel):
        raise AnnotationError(f"{where}path {rel!r} leaves the dataset root {root}")
    return Path(root) / p


def read_list_file(path, root=None, num_classes: int | None = None) -> pd.DataFrame:
    """A PySlowFast / MMAction2 list file: ``path label_index`` per line (the path may contain spaces).

    Returns columns ``path, label_index`` (paths relative to ``root``, checked to stay inside it).
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise AnnotationError(f"{path}: line {line_no}: expected 'path label', got {line!r}")
        rel, label = parts
        numbers = _trailing_integers(rel)
        if numbers:
            raise AnnotationError(
                f"{path}: line {line_no}: more than one number follows the path ({' '.join(numbers + [label])}): "
                "a multi-label line or a rawframes list (path, frame count, label). This reader takes one "
                "'path label' per line; convert the file or keep one label per video")
        try:
            index = int(label)
        except ValueError:
            raise AnnotationError(f"{path}: line {line_no}: label must be an integer, got {label!r}") from None
        if index < 0 or (num_classes is not None and index >= num_classes):
            raise AnnotationError(f"{path}: line {line_no}: label {index} outside 0..{(num_classes or 1) - 1}")
        safe_join(root, rel, f"{path}: line {line_no}")
        rows.append({"path": rel.strip(), "label_index": index})
    return pd.DataFrame(rows, columns=["path", "label_index"])


def _trailing_integers(text: str) -> list[str]:
    """The whitespace-separated integers at the end of ``text`` ("clip.mp4 0" -> ["0"])."""
    words = text.split()
    numbers = []
    while len(words) > 1 and re.fullmatch(r"-?\d+", words[-1]):
        numbers.insert(0, words.pop())
    return numbers


def find_videos(root, split: str | None = None) -> dict[tuple[str, int, int], Path]:
    """Map clip keys to files under ``root`` in any of the accepted layouts.

    Looks in ``root/split`` when it exists, else in ``root``; descends into label
    folders. Files whose names do not follow the Kinetics pattern are skipped.
    """
    root = Path(root)
    base = root / split if split and (root / split).is_dir() else root
    found: dict[tuple[str, int, int], Path] = {}
    if not base.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        # A directory named like a video is not a video: keep it, let the status check report it.
        for name in sorted(filenames) + [d for d in dirnames if d.lower().endswith(VIDEO_EXTENSIONS)]:
            if not name.lower().endswith(VIDEO_EXTENSIONS) or name.startswith("."):
                continue
            key = parse_clip_filename(name)
            if key is not None:
                found.setdefault(key, Path(dirpath, name).relative_to(root))
    return found


# --------------------------------------------------------------------------- manifests

def build_manifest(annotations: pd.DataFrame, root, classes: list[str] | None = None,
                   check: str = "exists", backend: str = "auto") -> pd.DataFrame:
    """One row per annotated clip with its file and status.

    ``check="exists"``: present when a file is found (directories and empty files
    are unreadable). ``check="decode"``: also open it and decode a frame.
    Labels outside ``classes`` raise ``AnnotationError`` naming the label.
    """
    if check not in ("exists", "decode"):
        raise ValueError(f"check must be 'exists' or 'decode', got {check!r}")
    root = Path(root)
    if classes is None:
        classes = sorted({l for l in annotations["label"] if isinstance(l, str)})
    index_of = {c: i for i, c in enumerate(classes)}
    by_key = {folder_key(c): c for c in classes}
    files: dict[tuple[str, int, int], Path] = {}
    for split in sorted(set(annotations["split"])) or [None]:
        for key, rel in find_videos(root, split or None).items():
            files.setdefault(key, rel)
    rows = []
    for r in annotations.itertuples(index=False):
        label = r.label if isinstance(r.label, str) else None
        if label is not None and label not in index_of:
            canonical = by_key.get(folder_key(label))
            if canonical is None:
                source = annotations.attrs.get("source")
                line = annotation_line(source, r.youtube_id, int(r.time_start), int(r.time_end)) if source else None
                place = f"{source}: line {line}: " if line else ""
                raise AnnotationError(f"{place}label {label!r} (clip {r.youtube_id}) is not in the class list")
            label = canonical
        key = (r.youtube_id, int(r.time_start), int(r.time_end))
        rel = files.get(key)
        status, reason = "present", ""
        if rel is None:
            status, reason = "missing", "no file"
            rel = Path(r.split or "") / clip_filename(*key)
        else:
            status, reason = file_status(root / rel, check, backend)
        rows.append({"youtube_id": key[0], "time_start": key[1], "time_end": key[2], "label": label,
                     "label_index": index_of[label] if label is not None else -1, "split": r.split,
                     "path": rel.as_posix(), "status": status, "reason": reason})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def file_status(path: Path, check: str = "exists", backend: str = "auto") -> tuple[str, str]:
    """(status, reason) of one file: present, missing or unreadable."""
    if not path.exists():
        return "missing", "no file"
    if not path.is_file():
        return "unreadable", "not a regular file"
    if path.stat().st_size == 0:
        return "unreadable", "empty file"
    if check == "decode":
        try:
            with open_video(path, backend=backend) as video:
                n = len(video)
                video.get_frames([0, n - 1] if n > 1 else [0])
        except VideoDecodeError as e:
            return "unreadable", e.reason
    return "present", ""


def _manifest_rows(entries, root: Path, classes: list[str], check: str, backend: str) -> pd.DataFrame:
    """Manifest rows for (relative path, class index) pairs of videos without Kinetics ids: the file's name
    stands in for the clip id, and its times are 0."""
    rows = []
    for rel, index in entries:
        status, reason = file_status(root / rel, check, backend)
        rows.append({"youtube_id": Path(rel).stem, "time_start": 0, "time_end": 0, "label": classes[index],
                     "label_index": index, "split": "", "path": Path(rel).as_posix(), "status": status,
                     "reason": reason})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def manifest_from_folders(root, classes: list[str] | None = None, check: str = "exists",
                          backend: str = "auto") -> pd.DataFrame:
    """A manifest of a folder whose subfolders are the classes (as torchvision's ``ImageFolder`` and MMAction2's
    tools lay videos out): every video file under ``root/<class>/`` (recursively) with its class. ``classes``
    fixes the class order (default: the subfolders' names, sorted); a subfolder not in it raises
    ``AnnotationError`` naming it."""
    root = Path(root)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise AnnotationError(f"{root}: no class subfolders (expected {root}/<class>/<video>)")
    classes = list(classes) if classes is not None else folders
    unknown = [f for f in folders if f not in classes]
    if unknown:
        raise AnnotationError(f"{root}: subfolder(s) {unknown[:5]} are not in the class list")
    entries = [(path.relative_to(root), classes.index(folder))
               for folder in folders for path in sorted((root / folder).rglob("*"))
               if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS]
    if not entries:
        raise AnnotationError(f"{root}: no video files ({', '.join(VIDEO_EXTENSIONS)}) in its class subfolders")
    return _manifest_rows(entries, root, classes, check, backend)


def manifest_from_list(path, root, classes: list[str] | None = None, check: str = "exists",
                       backend: str = "auto") -> pd.DataFrame:
    """A manifest from a PySlowFast / MMAction2 list file (``read_list_file``: ``path label_index`` per line);
    ``classes`` names the indices (default ``class 0``, ``class 1``, ...)."""
    listed = read_list_file(path, root, len(classes) if classes is not None else None)
    if classes is None:
        classes = [f"class {i}" for i in range(int(listed["label_index"].max()) + 1)]
    return _manifest_rows(zip(listed["path"], listed["label_index"]), Path(root), classes, check, backend)


def save_manifest(manifest: pd.DataFrame, path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        manifest.to_csv(tmp, index=False)
    return path


def load_manifest(path) -> pd.DataFrame:
    """Read a manifest CSV and check its columns and statuses (errors name the file and row)."""
    path = Path(path)
    frame = pd.read_csv(path, dtype={"youtube_id": str, "path": str, "label": str, "reason": str},
                        keep_default_na=False)
    missing = [c for c in ("path", "label_index", "status") if c not in frame.columns]
    if missing:
        raise AnnotationError(f"{path}: manifest lacks columns {missing}")
    bad = frame.index[~frame["status"].isin(STATUSES)]
    if len(bad):
        raise AnnotationError(f"{path}: row {bad[0] + 2}: status {frame['status'][bad[0]]!r} not in {STATUSES}")
    for i, rel in enumerate(frame["path"]):
        safe_join(path.parent, rel, f"{path}: row {i + 2}")
    return frame


def summarize_manifest(manifest: pd.DataFrame) -> str:
    counts = manifest["status"].value_counts()
    parts = [f"{counts.get(s, 0)} {s}" for s in STATUSES]
    return f"{len(manifest)} clips: " + ", ".join(parts)

"""Preparing Kinetics at full scale: ``lgd prepare download | validate | resize | subset``.

    lgd prepare download --version 400 --split val --root data/videos/k400
    lgd prepare validate --annotations data/kinetics/kinetics-400_val.csv --root data/videos/k400 \
                         --classes kinetics400 --out data/videos/k400 --manifest manifest_val.csv
    lgd prepare resize --src data/videos/k400 --dst data/videos/k400_320 --short-side 320
    lgd prepare subset --annotations data/kinetics/kinetics-400_val.csv --classes 50 --clips 40

Every step can be interrupted and run again: it continues where it stopped.
Files are written atomically (a temporary file, then a rename); sources are
never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from ..utils import atomic_path
from ..utils import progress as progress_bar
from .kinetics import VIDEO_EXTENSIONS, build_manifest, file_status, parse_clip_filename, read_annotations, save_manifest

CVDF_BASE = "https://s3.amazonaws.com/kinetics"
VERSIONS = {"400": "400", "600": "600", "700": "700_2020"}


# --------------------------------------------------------------------------- validate

def _check_one(job):
    root, rel, backend = job
    return rel, *file_status(Path(root) / rel, "decode", backend)


def validate(annotations, root, classes=None, out=None, workers: int = 2, backend: str = "auto",
             progress: bool = True) -> pd.DataFrame:
    """Decode-check every annotated clip in parallel; write the manifest to ``out``.

    Results are appended to ``out + ".partial"`` as they come, so an interrupted
    run continues where it stopped.
    """
    root = Path(root)
    if isinstance(annotations, (str, Path)):
        annotations = read_annotations(annotations)
    manifest = build_manifest(annotations, root, classes, check="exists")
    out = Path(out) if out else root / "manifest.csv"
    partial = out.with_name(out.name + ".partial")
    done: dict[str, tuple[str, str]] = {}
    if partial.exists():
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                done[rec["path"]] = (rec["status"], rec["reason"])
            except (json.JSONDecodeError, KeyError):
                continue                                # a half-written last line from an interruption
    todo = [p for p, s in zip(manifest["path"], manifest["status"]) if s == "present" and p not in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "a", encoding="utf-8") as log:
        jobs = [(str(root), p, backend) for p in todo]
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
        try:
            results = pool.map(_check_one, jobs, chunksize=4) if pool else map(_check_one, jobs)
            for rel, status, reason in progress_bar(results, progress, total=len(jobs), desc="validate",
                                                    unit="video"):
                done[rel] = (status, reason)
                log.write(json.dumps({"path": rel, "status": status, "reason": reason}) + "\n")
                log.flush()
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
    for i, rel in enumerate(manifest["path"]):
        if manifest.at[i, "status"] == "present" and rel in done:
            manifest.at[i, "status"], manifest.at[i, "reason"] = done[rel]
    save_manifest(manifest, out)
    partial.unlink(missing_ok=True)
    return manifest


# --------------------------------------------------------------------------- resize

def ffmpeg_exe() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def resize_one(src: Path, dst: Path, short_side: int = 320, crf: int = 23) -> str:
    """Re-encode ``src`` with its short side at ``short_side`` (H.264, no audio). Returns a status word."""
    if dst.exists():
        return "kept"
    if src.resolve() == dst.resolve():
        raise ValueError(f"refusing to overwrite the source {src}")
    s = int(short_side)
    scale = f"scale='if(gt(iw,ih),-2,{s})':'if(gt(iw,ih),{s},-2)'"
    try:
        with atomic_path(dst) as tmp:
            cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(src), "-vf", scale, "-an",
                   "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
                   "-threads", "1", "-movflags", "+faststart", str(tmp)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise _EncodeFailed((proc.stderr.strip().splitlines() or ["ffmpeg error"])[-1])
    except _EncodeFailed as e:
        return f"failed: {e}"
    return "resized"


class _EncodeFailed(RuntimeError):
    pass


def resize(src, dst, short_side: int = 320, workers: int = 2, progress: bool = True) -> dict[str, int]:
    """Resize every video under ``src`` into the same layout under ``dst`` (resumable)."""
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if src == dst or dst in src.parents:
        raise ValueError(f"--dst {dst} must differ from --src {src} and not contain it")
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                   and dst not in p.parents)
    jobs = [(p, (dst / p.relative_to(src)).with_suffix(".mp4")) for p in files]
    counts: dict[str, int] = {}
    failures = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = pool.map(lambda j: resize_one(j[0], j[1], short_side), jobs)
        bar = progress_bar(results, progress, total=len(jobs), desc="resize", unit="video")
        for (srcfile, _), status in zip(jobs, bar):
            word = status.split(":")[0]
            counts[word] = counts.get(word, 0) + 1
            if word == "failed":
                failures.append(f"{srcfile}: {status}")
    for line in failures:
        print(line, file=sys.stderr)
    return counts


# --------------------------------------------------------------------------- download

class DownloadError(RuntimeError):
    pass


def _transfer(url: str, part: Path, have: int, total: int | None, chunk: int, timeout: float) -> int | None:
    """One request: append to ``part`` from byte ``have`` on (or rewrite it when the server ignores the
    range). Returns the file's total size as the server reports it (``total`` when it says nothing)."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {have}-"):
                raise DownloadError(f"{url}: server sent range {content_range!r}, asked for {have}-")
            total = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else total
            mode = "ab"
        else:                                     # 200: the whole file (no range support)
            length = response.headers.get("Content-Length")
            total = int(length) if length else total
            mode = "wb"
        with open(part, mode) as f:
            for block in iter(lambda: response.read(chunk), b""):
                f.write(block)
    return total


def _verify(url: str, part: Path, total: int | None, md5: str | None) -> None:
    """Size against the server's total, then the MD5; a wrong MD5 removes the partial file."""
    have = part.stat().st_size
    if total is not None and have != total:
        raise DownloadError(f"{url}: got {have} bytes, expected {total}")
    if md5:
        digest = hashlib.md5()
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != md5.lower():
            part.unlink()
            raise DownloadError(f"{url}: MD5 {digest.hexdigest()} does not match {md5}; the partial file was removed")


def fetch(url: str, dest: Path, expected_size: int | None = None, md5: str | None = None,
          retries: int = 5, chunk: int = 1 << 20, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` with resume (HTTP Range) and verification.

    Bytes go to ``dest.part``; an interrupted transfer continues from there (on
    this call's retries or a later run). The size is checked against the
    server's total, and the MD5 when given; then ``.part`` is renamed to ``dest``.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    total, last_error = expected_size, None
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have == total:
            break
        try:
            total = _transfer(url, part, have, total, chunk, timeout)
            have = part.stat().st_size
            if total is None or have == total:
                break
            last_error = DownloadError(f"{url}: transfer ended at {have} of {total} bytes")
        except urllib.error.HTTPError as e:
            if e.code == 416 and total is not None and have == total:
                break
            if e.code in (403, 404):
                raise DownloadError(f"{url}: HTTP {e.code}") from e
            last_error = e
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            last_error = e
        time.sleep(min(2 ** attempt * 0.1, 5))
    else:
        raise DownloadError(f"{url}: gave up after {retries + 1} attempts; {have} bytes kept in {part} "
                            f"for the next run ({last_error})")
    _verify(url, part, total, md5)
    os.replace(part, dest)
    return dest


def read_url_list(text: str) -> list[tuple[str, str | None]]:
    """Lines of ``URL`` or ``URL MD5`` (the CVDF lists have one URL per line)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#"):
            out.append((parts[0], parts[1] if len(parts) > 1 else None))
    return out


def safe_extract(archive: Path, into: Path) -> list[Path]:
    """Extract a tar archive, refusing members that would land outside ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    base = into.resolve()
    extracted = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            target = (into / member.name).resolve()
            if base not in target.parents and target != base:
                raise DownloadError(f"{archive}: member {member.name!r} would be written outside {into}")
            if member.issym() or member.islnk():
                raise DownloadError(f"{archive}: member {member.name!r} is a link; refusing")
        for member in tar.getmembers():
            if member.isfile():
                tar.extract(member, into, filter="data") if hasattr(tarfile, "data_filter") else tar.extract(member, into)
                extracted.append(into / member.name)
    return extracted


def sort_into_layout(files: list[Path], root: Path, split: str, labels: dict[tuple[str, int, int], str]) -> int:
    """Move extracted clips to ``root/split/label/`` (``root/split/`` when unlabelled). Returns files moved."""
    moved = 0
    for f in files:
        key = parse_clip_filename(f.name)
        if key is None:
            continue
        label = labels.get(key)
        dest = root / split / label / f.name if label else root / split / f.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            os.replace(f, dest)
            moved += 1
    return moved


def download(version: str, split: str, root, base_url: str = CVDF_BASE, annotations=None,
             keep_archives: bool = False, progress: bool = True) -> dict[str, int]:
    """Fetch the CVDF archives of a Kinetics split, extract them and sort the clips by label.

    Archive lists live at ``{base_url}/{version}/{split}/k{version}_{split}_path.txt``
    (one archive URL per line, optionally followed by an MD5); the annotation CSV
    at ``{base_url}/{version}/annotations/{split}.csv`` unless ``annotations`` is given.
    """
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {sorted(VERSIONS)}, got {version!r}")
    root = Path(root)
    downloads = root / ".downloads" / split
    v = VERSIONS[version]
    list_url = f"{base_url}/{v}/{split}/k{version}_{split}_path.txt"
    list_file = fetch(list_url, downloads / Path(list_url).name)
    if annotations is None:
        annotations = fetch(f"{base_url}/{v}/annotations/{split}.csv", root / "annotations" / f"{split}.csv")
    frame = read_annotations(annotations)
    labels = {(r.youtube_id, int(r.time_start), int(r.time_end)): r.label
              for r in frame.itertuples(index=False) if isinstance(r.label, str)}
    counts = {"archives": 0, "videos": 0}
    entries = read_url_list(list_file.read_text(encoding="utf-8"))
    for url, md5 in progress_bar(entries, progress, desc=f"k{version} {split}", unit="archive"):
        name = Path(urllib.request.url2pathname(url.rsplit("/", 1)[-1]))
        done_marker = downloads / f"{name}.done"
        if done_marker.exists():
            counts["archives"] += 1
            continue
        archive = fetch(url, downloads / name, md5=md5)
        staging = downloads / f"{name}.extract"
        files = safe_extract(archive, staging)
        counts["videos"] += sort_into_layout(files, root, split, labels)
        shutil.rmtree(staging, ignore_errors=True)
        if not keep_archives:
            archive.unlink()
        done_marker.write_text("ok\n")
        counts["archives"] += 1
    return counts

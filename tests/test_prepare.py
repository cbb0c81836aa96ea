"""lgd prepare: validate, resize, download (against a local HTTP server), subset."""

import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import pandas as pd
import pytest

from lgd_tutorial.cli import main as lgd
from lgd_tutorial.data import prepare
from lgd_tutorial.data.encode import pattern_frames, write_video
from lgd_tutorial.data.kinetics import clip_filename, load_manifest
from lgd_tutorial.data.video import open_video

CSV = ("label,youtube_id,time_start,time_end,split\n"
       '"air drumming",aa-1,0,10,val\n'
       '"passing American football (in game)",bb_2,5,15,val\n'
       '"air drumming",cc3,1,11,val\n')


@pytest.fixture()
def videos(tmp_path):
    root = tmp_path / "k400"
    frames = pattern_frames(10, 60, 80)
    write_video(root / "val" / "air drumming" / clip_filename("aa-1", 0, 10), frames)
    write_video(root / "val" / "passing American football (in game)" / clip_filename("bb_2", 5, 15), frames,
                rotation=90)
    (root / "val" / "air drumming" / clip_filename("cc3", 1, 11)).write_bytes(b"\x00" * 4000)
    csv = tmp_path / "val.csv"
    csv.write_text(CSV)
    return root, csv


def test_validate_writes_manifest_and_resumes(videos, tmp_path):
    root, csv = videos
    out = tmp_path / "manifest.csv"
    partial = out.with_name(out.name + ".partial")
    # An earlier run was interrupted after checking one clip (and left half a line).
    rel = f"val/air drumming/{clip_filename('aa-1', 0, 10)}"
    partial.write_text(json.dumps({"path": rel, "status": "present", "reason": "from the earlier run"}) + "\n{\"pa")
    manifest = prepare.validate(csv, root, ["air drumming", "passing American football (in game)"], out,
                                workers=1, progress=False)
    assert not partial.exists()
    status = dict(zip(manifest["youtube_id"], manifest["status"]))
    assert status == {"aa-1": "present", "bb_2": "present", "cc3": "unreadable"}
    assert manifest.set_index("youtube_id").loc["aa-1", "reason"] == "from the earlier run"   # not re-checked
    assert load_manifest(out)["status"].tolist() == manifest["status"].tolist()


def test_resize_keeps_layout_and_never_overwrites(videos, tmp_path):
    root, _ = videos
    dst = tmp_path / "small"
    counts = prepare.resize(root, dst, short_side=32, workers=2, progress=False)
    assert counts == {"resized": 2, "failed": 1}
    a = open_video(dst / "val" / "air drumming" / clip_filename("aa-1", 0, 10))
    assert a.get_frames([0]).shape == (1, 32, 42, 3) and len(a) == 10
    b = open_video(dst / "val" / "passing American football (in game)" / clip_filename("bb_2", 5, 15))
    assert b.get_frames([0]).shape[1:3] == (42, 32)                   # portrait: rotation applied
    assert prepare.resize(root, dst, short_side=32, progress=False) == {"kept": 2, "failed": 1}   # resumable
    assert not list(dst.rglob(".*tmp*"))
    with pytest.raises(ValueError, match="must differ"):
        prepare.resize(root, root, 32, progress=False)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def serve(files: dict[str, bytes], cut_first: set[str]):
    """A local server with HTTP Range support; the first transfer of each path in ``cut_first``
    stops half-way (the connection closes mid-file)."""
    served = {"cut": set(cut_first), "requests": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            data = files.get(self.path)
            served["requests"].append((self.path, self.headers.get("Range")))
            if data is None:
                self.send_error(404)
                return
            start = 0
            if self.headers.get("Range"):
                start = int(self.headers["Range"].split("=")[1].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if self.path in served["cut"]:
                served["cut"].discard(self.path)
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, served


def make_archive(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_download_resumes_verifies_extracts_and_sorts(tmp_path):
    video = tmp_path / "v.mp4"
    write_video(video, pattern_frames(6, 32, 48))
    clip = video.read_bytes()
    part0 = make_archive({clip_filename("aa-1", 0, 10): clip, clip_filename("bb_2", 5, 15): clip})
    part1 = make_archive({"sub/" + clip_filename("zz", 0, 10): clip})          # not in the annotations
    files = {"/400/annotations/val.csv": CSV.encode(),
             "/400/val/part_0.tar.gz": part0, "/400/val/part_1.tar.gz": part1}
    server, served = serve(files, cut_first={"/400/val/part_0.tar.gz"})
    base = f"http://127.0.0.1:{server.server_address[1]}"
    md5 = hashlib.md5(part1).hexdigest()
    files["/400/val/k400_val_path.txt"] = (f"{base}/400/val/part_0.tar.gz\n{base}/400/val/part_1.tar.gz {md5}\n").encode()
    try:
        root = tmp_path / "k400"
        counts = prepare.download("400", "val", root, base_url=base, progress=False)
        assert counts == {"archives": 2, "videos": 3}
        assert (root / "val" / "air drumming" / clip_filename("aa-1", 0, 10)).read_bytes() == clip
        assert (root / "val" / "passing American football (in game)" / clip_filename("bb_2", 5, 15)).exists()
        assert (root / "val" / clip_filename("zz", 0, 10)).exists()
        # The interrupted transfer was resumed with a Range request, not restarted.
        ranges = [r for p, r in served["requests"] if p == "/400/val/part_0.tar.gz"]
        assert ranges[0] is None and ranges[1] == f"bytes={len(part0) // 2}-"
        # A second run finds everything done and fetches no archive again.
        served["requests"].clear()
        assert prepare.download("400", "val", root, base_url=base, progress=False)["archives"] == 2
        assert not [p for p, _ in served["requests"] if p.endswith(".tar.gz")]
    finally:
        server.shutdown()


def test_download_rejects_bad_checksum_and_unsafe_archives(tmp_path):
    good = make_archive({"a_000000_000010.mp4": b"x" * 100})
    evil = make_archive({"../../evil_000000_000010.mp4": b"x"})
    files = {"/good.tar.gz": good, "/evil.tar.gz": evil}
    server, _ = serve(files, cut_first=set())
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(prepare.DownloadError, match="MD5"):
            prepare.fetch(f"{base}/good.tar.gz", tmp_path / "good.tar.gz", md5="0" * 32)
        assert not (tmp_path / "good.tar.gz").exists()
        with pytest.raises(prepare.DownloadError, match="HTTP 404"):
            prepare.fetch(f"{base}/missing.tar.gz", tmp_path / "m.tar.gz")
        archive = prepare.fetch(f"{base}/evil.tar.gz", tmp_path / "evil.tar.gz")
        with pytest.raises(prepare.DownloadError, match="outside"):
            prepare.safe_extract(archive, tmp_path / "x")
        assert not (tmp_path.parent / "evil_000000_000010.mp4").exists()
    finally:
        server.shutdown()


def test_subset_and_validate_from_the_command_line(videos, tmp_path, capsys):
    annotations = Path(__file__).resolve().parents[1] / "data" / "kinetics"
    out = tmp_path / "sub"
    assert lgd(["prepare", "subset", "--annotations", str(annotations / "kinetics-400_val.csv"),
                "--classes", "3", "--clips", "2", "--out", str(out)]) == 0
    assert len(pd.read_csv(out / "annotations.csv")) == 6
    root, csv = videos
    assert lgd(["prepare", "validate", "--annotations", str(csv), "--root", str(root), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "3 clips: 2 present, 0 missing, 1 unreadable" in printed and "cc3" in printed
    bad = tmp_path / "bad.csv"
    bad.write_text("label,youtube_id,time_start,time_end,split\nx,y,oops,2,val\n")
    assert lgd(["prepare", "validate", "--annotations", str(bad), "--root", str(root)]) == 2
    assert "line 2" in capsys.readouterr().err


def test_lgd_data_manifest_writes_the_named_manifest_into_the_out_folder(videos, tmp_path, capsys):
    root, csv = videos
    assert lgd(["data", "manifest", "--annotations", str(csv), "--root", str(root), "--out", str(tmp_path),
                "--manifest", "manifest_val.csv"]) == 0
    manifest = load_manifest(tmp_path / "manifest_val.csv")
    assert list(manifest["status"]) == ["present"] * 3          # without --decode only existence is checked
    assert "manifest_val.csv" in capsys.readouterr().out
    assert lgd(["data", "manifest", "--annotations", str(csv), "--root", str(root), "--out", str(tmp_path),
                "--decode"]) == 0
    decoded = load_manifest(tmp_path / "manifest.csv")
    assert sorted(decoded["status"]) == ["present", "present", "unreadable"]
    assert decoded.loc[decoded["status"] == "unreadable", "path"].str.contains("cc3").all()

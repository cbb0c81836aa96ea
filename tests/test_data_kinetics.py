"""Kinetics CSVs, class lists, layouts, manifests and subsets."""

from pathlib import Path

import pandas as pd
import pytest

from lgd_tutorial.data.encode import pattern_frames, write_video
from lgd_tutorial.data.kinetics import (AnnotationError, build_manifest, clip_filename,
                                        find_videos, folder_key, load_classes, load_manifest, mmaction_folder,
                                        parse_clip_filename, read_annotations, read_list_file, safe_join,
                                        save_manifest, write_annotations)
from lgd_tutorial.data.subsets import SubsetSpec, make_subset, write_subset

ANNOTATIONS = Path(__file__).resolve().parents[1] / "data" / "kinetics"   # the official CSVs in the repository
K400 = ANNOTATIONS / "kinetics-400_val.csv"
K600 = ANNOTATIONS / "kinetics-600_val.csv"


def test_official_csvs_and_class_lists():
    k400, k600 = read_annotations(K400), read_annotations(K600)
    assert len(k400) == 19906 and len(k600) == 30000
    assert set(k400["label"]) == set(load_classes("kinetics400"))           # quoted multi-word labels
    assert set(k600["label"]) == set(load_classes("kinetics600"))           # unquoted ones
    assert len(load_classes("kinetics700")) == 700
    assert "passing American football (in game)" in set(k400["label"])
    assert k400["time_start"].dtype.kind == "i"


def test_csv_quirks(tmp_path):
    csv = tmp_path / "test.csv"
    csv.write_text('label,youtube_id,time_start,time_end,split\n'
                   '"air drumming",a_b-c1,10,20,train\n'
                   'air drumming,a_b-c1,30,40,train\n'            # same id, other clip: kept
                   'air drumming,a_b-c1,30,40,train\n'            # duplicate key: dropped
                   ',zz,0,10,test\n\n')                           # test split: no label; blank line
    frame = read_annotations(csv)
    assert list(frame["youtube_id"]) == ["a_b-c1", "a_b-c1", "zz"]
    assert frame["label"].iloc[2] is None
    assert list(read_annotations(csv, split="test")["youtube_id"]) == ["zz"]


@pytest.mark.parametrize("row,message", [("abc,1,2,train", "line 2: expected 5 fields"),
                                         ("a,b,x,2,train", "line 2: time_start/time_end must be numbers"),
                                         ("a,b,5,2,train", "line 2: bad time range"),
                                         ("a,,1,2,train", "line 2: empty youtube_id")])
def test_malformed_rows_name_file_and_line(tmp_path, row, message):
    csv = tmp_path / "bad.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\n" + row + "\n")
    with pytest.raises(AnnotationError, match=message) as e:
        read_annotations(csv)
    assert str(csv) in str(e.value)


def test_annotations_round_trip(tmp_path):
    frame = read_annotations(K400).head(50)
    again = read_annotations(write_annotations(frame, tmp_path / "a.csv"))
    pd.testing.assert_frame_equal(frame, again)


def test_file_names():
    assert clip_filename("-abc_DEF-12", 5, 15) == "-abc_DEF-12_000005_000015.mp4"
    assert parse_clip_filename("-abc_DEF-12_000005_000015.mp4") == ("-abc_DEF-12", 5, 15)
    assert parse_clip_filename("notes.mp4") is None


def test_label_folder_spellings_match():
    label = "passing American football (in game)"
    assert mmaction_folder(label) == "passing_American_football_in_game"
    assert folder_key(label) == folder_key(mmaction_folder(label)) == folder_key("passing american football (in game)")
    assert folder_key("making a cake") != folder_key("making a sandwich")
    assert folder_key("tasting food") != folder_key("tasting beer")
    keys = [folder_key(c) for c in load_classes("kinetics700")]
    assert len(set(keys)) == len(keys)                    # no two Kinetics-700 labels collide


def test_path_traversal_rejected(tmp_path):
    assert safe_join(tmp_path, "train/a b/x.mp4") == tmp_path / "train/a b/x.mp4"
    for bad in ["../x.mp4", "train/../../x.mp4", "/etc/passwd", "C:\\x.mp4", "a\\..\\..\\x.mp4"]:
        with pytest.raises(AnnotationError, match="not allowed|leaves the dataset root"):
            safe_join(tmp_path, bad, "list.txt: line 3")
    lst = tmp_path / "list.txt"
    lst.write_text("train/air drumming/a_000001_000011.mp4 0\n../../secret.mp4 1\n")
    with pytest.raises(AnnotationError, match="line 2"):
        read_list_file(lst)


def test_list_files(tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("train/air drumming/a_000001_000011.mp4 0\n# comment\nb.mp4 3\n")
    frame = read_list_file(lst)
    assert list(frame["path"]) == ["train/air drumming/a_000001_000011.mp4", "b.mp4"]
    assert list(frame["label_index"]) == [0, 3]
    with pytest.raises(AnnotationError, match="outside"):
        read_list_file(lst, num_classes=2)
    lst.write_text("a.mp4 abc\n")
    with pytest.raises(AnnotationError, match="line 1: label must be an integer"):
        read_list_file(lst)


@pytest.fixture()
def dataset(tmp_path):
    """Five annotated clips in mixed layouts: torchvision folders, MMAction2 folders, flat, missing, broken."""
    classes = ["air drumming", "passing American football (in game)"]
    csv = tmp_path / "val.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\n"
                   '"air drumming",vid-1,0,10,val\n'
                   '"passing American football (in game)",vid_2,5,15,val\n'
                   '"air drumming",vid3,1,11,val\n'
                   '"air drumming",vid4,2,12,val\n'
                   '"air drumming",vid5,3,13,val\n')
    frames = pattern_frames(8, 32, 48)
    root = tmp_path / "k400"
    write_video(root / "val" / "air drumming" / clip_filename("vid-1", 0, 10), frames)
    write_video(root / "val" / "passing_American_football_in_game" / clip_filename("vid_2", 5, 15), frames)
    write_video(root / "val" / clip_filename("vid3", 1, 11), frames)                        # flat
    (root / "val" / "air drumming" / clip_filename("vid5", 3, 13)).write_bytes(b"")         # broken
    return read_annotations(csv), root, classes


def test_layouts_found(dataset):
    _, root, _ = dataset
    found = find_videos(root, "val")
    assert set(found) == {("vid-1", 0, 10), ("vid_2", 5, 15), ("vid3", 1, 11), ("vid5", 3, 13)}


def test_manifest_statuses_and_round_trip(dataset, tmp_path):
    annotations, root, classes = dataset
    manifest = build_manifest(annotations, root, classes)
    status = dict(zip(manifest["youtube_id"], manifest["status"]))
    assert status == {"vid-1": "present", "vid_2": "present", "vid3": "present", "vid4": "missing",
                      "vid5": "unreadable"}
    assert list(manifest["label_index"]) == [0, 1, 0, 0, 0]
    saved = load_manifest(save_manifest(manifest, root / "manifest.csv"))
    assert list(saved["path"]) == list(manifest["path"])
    assert saved["label"].iloc[1] == "passing American football (in game)"
    with pytest.raises(AnnotationError, match="not in the class list"):
        build_manifest(annotations, root, ["air drumming"])


def test_manifest_with_decode_check(dataset):
    annotations, root, classes = dataset
    (root / "val" / clip_filename("vid3", 1, 11)).write_bytes(b"not a video at all" * 100)
    manifest = build_manifest(annotations, root, classes, check="decode")
    row = manifest[manifest["youtube_id"] == "vid3"].iloc[0]
    assert row["status"] == "unreadable" and row["reason"]


def test_corrupt_manifest_rejected(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("path,label_index,status\nval/a.mp4,0,present\nval/b.mp4,0,lost\n")
    with pytest.raises(AnnotationError, match="row 3"):
        load_manifest(bad)
    bad.write_text("path,label_index,status\n../a.mp4,0,present\n")
    with pytest.raises(AnnotationError, match="row 2"):
        load_manifest(bad)


def test_subsets_are_deterministic_and_balanced(tmp_path):
    k400 = read_annotations(K400)
    a = make_subset(k400, 10, 7, seed=3)
    b = make_subset(k400.sample(frac=1, random_state=1), 10, 7, seed=3)      # row order does not matter
    pd.testing.assert_frame_equal(a, b)
    assert a["label"].nunique() == 10 and (a["label"].value_counts() == 7).all()
    assert not make_subset(k400, 10, 7, seed=4, choose="random").equals(a)
    named = make_subset(k400, 0, 3, classes=["zumba", "abseiling"], choose="names")
    assert sorted(set(named["label"])) == ["abseiling", "zumba"]
    out = write_subset(SubsetSpec("t", str(K400), 5, 4, 0), tmp_path / "t")
    assert len(read_annotations(out / "annotations.csv")) == 20
    assert (out / "classes.txt").read_text().count("\n") == 5


def test_ready_subset_definition_is_reproducible():
    import json
    from lgd_tutorial.data.subsets import SUBSETS_DIR, load_spec
    folder = SUBSETS_DIR / "k400_50classes"
    spec = load_spec(folder / "subset.json")
    assert spec.num_classes == 50
    rebuilt = make_subset(read_annotations(ANNOTATIONS / spec.source), spec.num_classes, spec.clips_per_class,
                          spec.seed, spec.choose)
    pd.testing.assert_frame_equal(rebuilt, read_annotations(folder / "annotations.csv"))
    assert json.loads((folder / "subset.json").read_text())["source"] == "kinetics-400_val.csv"


def test_a_csv_with_a_byte_order_mark_keeps_its_labels_and_an_unknown_label_names_its_line(tmp_path):
    from lgd_tutorial.data.kinetics import AnnotationError, build_manifest, read_annotations

    text = "label,youtube_id,time_start,time_end,split\nabseiling,aaa,0,10,val\nair drumming,bbb,5,15,val\n"
    (tmp_path / "excel.csv").write_bytes(text.encode("utf-8-sig"))              # as spreadsheet programs save it
    frame = read_annotations(tmp_path / "excel.csv")
    assert list(frame["label"]) == ["abseiling", "air drumming"]
    manifest = build_manifest(frame, tmp_path, ["abseiling", "air drumming"])
    assert list(manifest["label_index"]) == [0, 1]
    (tmp_path / "typo.csv").write_text(text + "abseilling,ccc,0,10,val\n")
    typo = read_annotations(tmp_path / "typo.csv")
    with pytest.raises(AnnotationError, match=r"typo\.csv: line 4: label 'abseilling' \(clip ccc\)"):
        build_manifest(typo[typo["split"] == "val"], tmp_path, ["abseiling", "air drumming"])


def _videos(root, names):
    from lgd_tutorial.data.encode import pattern_frames, write_video

    for i, name in enumerate(names):
        write_video(root / name, pattern_frames(8, 32, 48, seed=i), fps=8)


def test_a_folder_of_class_subfolders_becomes_a_manifest_a_dataset_reads(tmp_path, capsys):
    from lgd_tutorial.cli import main as lgd
    from lgd_tutorial.data import ClipDataset, load_manifest, manifest_from_folders

    root = tmp_path / "videos"
    _videos(root, ["jump/a.mp4", "jump/more/b.mkv", "run/c.mp4"])
    (root / "run" / "notes.txt").write_text("not a video")
    table = manifest_from_folders(root)
    assert list(zip(table["path"], table["label"], table["label_index"], table["status"])) == [
        ("jump/a.mp4", "jump", 0, "present"), ("jump/more/b.mkv", "jump", 0, "present"), ("run/c.mp4", "run", 1, "present")]
    assert lgd(["data", "manifest", "--folders", "--root", str(root), "--out", str(tmp_path / "m")]) == 0
    assert "3 present" in capsys.readouterr().out
    data = ClipDataset(tmp_path / "m" / "manifest.csv", root, mode="test", num_frames=4, stride=1)
    assert len(data) == 3 and data.labels == [0, 0, 1]
    assert len(load_manifest(tmp_path / "m" / "manifest.csv")) == 3
    (tmp_path / "classes.txt").write_text("run\njump\n")                   # a class list fixes the order
    assert list(manifest_from_folders(root, ["run", "jump"])["label_index"]) == [1, 1, 0]
    with pytest.raises(AnnotationError, match="subfolder"):
        manifest_from_folders(root, ["run"])


def test_a_list_file_becomes_a_manifest_with_named_or_numbered_classes(tmp_path):
    from lgd_tutorial.data import manifest_from_list

    root = tmp_path / "videos"
    _videos(root, ["x/one clip.mp4", "y/two.mp4"])
    listing = tmp_path / "train.txt"
    listing.write_text("x/one clip.mp4 1\ny/two.mp4 0\ny/gone.mp4 0\n")
    table = manifest_from_list(listing, root)
    assert list(table["label"]) == ["class 1", "class 0", "class 0"]
    assert list(table["status"]) == ["present", "present", "missing"]
    named = manifest_from_list(listing, root, ["walk", "wave"])
    assert list(named["label"]) == ["wave", "walk", "walk"]
    listing.write_text("x/one clip.mp4 1 3\n")
    with pytest.raises(AnnotationError, match="line 1: more than one number"):
        manifest_from_list(listing, root)

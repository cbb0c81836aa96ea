"""UCF101 and HMDB51 manifests from official-format split files that the tests write."""

import pandas as pd
import pytest

from lgd_tutorial.data.kinetics import AnnotationError, load_manifest
from lgd_tutorial.data.transfer import hmdb51_manifests, split_manifests, ucf101_manifests

UCF_CLASSES = ["ApplyEyeMakeup", "Archery", "Biking"]


def touch(path, size=16):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)


@pytest.fixture
def ucf(tmp_path):
    """root/<Class>/v_<Class>_gNN_c01.avi and ucfTrainTestlist/ as the official archive lays them out."""
    root, splits = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, start=1)))
    train, test = [], []
    for i, c in enumerate(UCF_CLASSES, start=1):
        for g in (8, 9):
            train.append(f"{c}/v_{c}_g{g:02d}_c01.avi {i}")
            touch(root / c / f"v_{c}_g{g:02d}_c01.avi")
        test.append(f"{c}/v_{c}_g01_c01.avi")
        touch(root / c / f"v_{c}_g01_c01.avi")
    (splits / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (splits / "testlist01.txt").write_text("\n".join(test) + "\n")
    return root, splits


def test_ucf101_labels_follow_class_ind_and_paths_stay_relative(ucf):
    root, splits = ucf
    train, test, names = ucf101_manifests(root, splits, 1)
    assert names == UCF_CLASSES
    assert len(train) == 6 and len(test) == 3
    assert set(train["split"]) == {"train"} and set(test["split"]) == {"test"}
    assert (train["label"] == [UCF_CLASSES[i] for i in train["label_index"]]).all()
    assert train["path"].iloc[0] == "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"
    assert (train["status"] == "present").all()
    (root / "Archery" / "v_Archery_g01_c01.avi").unlink()
    _, test, _ = ucf101_manifests(root, splits, 1)
    missing = test[test["status"] != "present"]
    assert list(missing["path"]) == ["Archery/v_Archery_g01_c01.avi"] and missing["status"].iloc[0] == "missing"


@pytest.mark.parametrize("line, message", [
    ("Archery/v_Archery_g08_c01.avi 3", "line 1: label 3 does not match folder 'Archery'"),
    ("Rowing/v_Rowing_g08_c01.avi 2", "line 1: class folder 'Rowing' not in classInd.txt"),
    ("../escape.avi 1", "line 1: class folder '..' not in classInd.txt"),
    ("Archery/../../escape.avi 2", "leaves the dataset root"),
])
def test_ucf101_refuses_a_bad_list_line_naming_file_and_line(ucf, line, message):
    root, splits = ucf
    (splits / "trainlist01.txt").write_text(line + "\n")
    with pytest.raises(AnnotationError, match="trainlist01.txt") as error:
        ucf101_manifests(root, splits, 1)
    assert message in str(error.value)


def test_ucf101_refuses_a_malformed_class_index_and_a_bad_split(ucf):
    root, splits = ucf
    with pytest.raises(ValueError, match="split must be 1, 2 or 3"):
        ucf101_manifests(root, splits, 4)
    (splits / "classInd.txt").write_text("1 ApplyEyeMakeup\nArchery\n")
    with pytest.raises(AnnotationError, match="classInd.txt: line 2"):
        ucf101_manifests(root, splits, 1)


@pytest.fixture
def hmdb(tmp_path):
    root, splits = tmp_path / "hmdb51", tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    for c in ("brush_hair", "cartwheel"):
        lines = [f"{c}_{k}.avi {mark}" for k, mark in enumerate(("1", "1", "2", "0"))]
        (splits / f"{c}_test_split1.txt").write_text("\n".join(lines) + "\n")
        for k in range(4):
            touch(root / c / f"{c}_{k}.avi")
    return root, splits


def test_hmdb51_marks_train_test_and_unused_videos(hmdb):
    root, splits = hmdb
    train, test, names = hmdb51_manifests(root, splits, 1)
    assert names == ["brush_hair", "cartwheel"]
    assert len(train) == 4 and len(test) == 2                      # the "0" (unused) videos are left out
    assert list(test["path"]) == ["brush_hair/brush_hair_2.avi", "cartwheel/cartwheel_2.avi"]
    assert list(test["label_index"]) == [0, 1]
    with pytest.raises(AnnotationError, match="no \\*_test_split2.txt"):
        hmdb51_manifests(root, splits, 2)
    (splits / "cartwheel_test_split1.txt").write_text("cartwheel_0.avi 1\ncartwheel_1.avi train\n")
    with pytest.raises(AnnotationError, match="cartwheel_test_split1.txt: line 2"):
        hmdb51_manifests(root, splits, 1)


def test_split_manifests_writes_csvs_that_load_back(ucf, hmdb):
    for dataset, (root, splits) in (("ucf101", ucf), ("hmdb51", hmdb)):
        train_path, test_path = split_manifests(dataset, root, splits, 1)
        assert train_path == root / f"manifest_{dataset}_split1_train.csv"
        train = load_manifest(train_path)
        assert len(train) == len(pd.read_csv(train_path)) > 0
        assert test_path.exists() and not list(root.glob(".*tmp*"))


def test_ucf101_matches_class_names_regardless_of_case_and_names_the_variants(ucf, caplog):
    """A circulating classInd.txt spells 'HandStandPushups'; the official lists and folders 'HandstandPushups'."""
    root, splits = ucf
    (splits / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 ARCHERY\n3 Biking\n")
    with caplog.at_level("WARNING", logger="lgd_tutorial.data.transfer"):
        train, test, names = ucf101_manifests(root, splits, 1)
    assert names == ["ApplyEyeMakeup", "ARCHERY", "Biking"]
    archery = train[train["label_index"] == 1]
    assert set(archery["label"]) == {"ARCHERY"} and archery["path"].str.startswith("Archery/").all()
    assert (archery["status"] == "present").all()
    assert "'ARCHERY' is spelled 'Archery'" in caplog.text


def test_hmdb51_finds_a_class_folder_spelled_in_another_case(hmdb, caplog):
    root, splits = hmdb
    (root / "cartwheel").rename(root / "Cartwheel")
    with caplog.at_level("WARNING", logger="lgd_tutorial.data.transfer"):
        train, _, names = hmdb51_manifests(root, splits, 1)
    assert names == ["brush_hair", "cartwheel"]
    wheel = train[train["label"] == "cartwheel"]
    assert wheel["path"].str.startswith("Cartwheel/").all() and (wheel["status"] == "present").all()
    assert "'cartwheel' is spelled 'Cartwheel'" in caplog.text


def test_a_multi_label_list_line_is_refused_naming_file_and_line(tmp_path):
    from lgd_tutorial.data.kinetics import read_list_file

    good = tmp_path / "good.txt"
    good.write_text("a/clip one.mp4 2\nb/clip_2.mp4 0\n")
    assert list(read_list_file(good)["path"]) == ["a/clip one.mp4", "b/clip_2.mp4"]
    for name, text in (("multi.txt", "a/clip.mp4 1\nvideo.mp4 0 3\n"), ("rawframes.txt", "frames/v1 300 4\n")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(AnnotationError, match=f"{name}: line {1 if 'raw' in name else 2}: more than one number"):
            read_list_file(path)

import json
import os
import subprocess
import sys

from core.annotations import folders, hmdb51, kinetics, main, ucf101
from tests.conftest import ROOT


def make_frames(root, videos):
    """videos: {"<class>/<video_id>": n_frames}; empty image files are enough to count."""
    for relative, n_frames in videos.items():
        folder = root / relative
        folder.mkdir(parents=True)
        for i in range(1, n_frames + 1):
            (folder / f"image_{i:05d}.jpg").write_bytes(b"")
        if n_frames:
            (folder / ".done").write_text(str(n_frames))


def write_lines(path, lines, newline="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode())


def test_ucf101_matches_the_reference_format(tmp_path, capsys):
    splits, frames = tmp_path / "ucfTrainTestlist", tmp_path / "jpg"
    # UCF-101's files end lines with \r\n; labels keep classInd's order, not alphabetical.
    write_lines(splits / "classInd.txt", ["1 YoYo", "2 Archery"], "\r\n")
    write_lines(splits / "trainlist01.txt", ["YoYo/v_YoYo_g08_c01.avi 1", "Archery/v_Archery_g08_c02.avi 2",
                                             "YoYo/v_YoYo_g09_c01.avi 1"], "\r\n")
    write_lines(splits / "testlist01.txt", ["Archery/v_Archery_g01_c01.avi", "YoYo/v_YoYo_g01_c01.avi",
                                            "YoYo/v_YoYo_g02_c01.avi"], "\r\n")
    write_lines(splits / "trainlist02.txt", ["YoYo/v_YoYo_g01_c01.avi 1"], "\r\n")
    write_lines(splits / "testlist02.txt", ["Archery/v_Archery_g08_c02.avi"], "\r\n")
    make_frames(frames, {"YoYo/v_YoYo_g08_c01": 3, "Archery/v_Archery_g08_c02": 5, "Archery/v_Archery_g01_c01": 4,
                         "YoYo/v_YoYo_g01_c01": 2, "YoYo/v_YoYo_g02_c01": 0})
    expected = {
        "labels": ["YoYo", "Archery"],
        "database": {
            "v_YoYo_g08_c01": {"subset": "training", "annotations": {"label": "YoYo", "segment": [1, 4]}},
            "v_Archery_g08_c02": {"subset": "training", "annotations": {"label": "Archery", "segment": [1, 6]}},
            "v_Archery_g01_c01": {"subset": "validation", "annotations": {"label": "Archery", "segment": [1, 5]}},
            "v_YoYo_g01_c01": {"subset": "validation", "annotations": {"label": "YoYo", "segment": [1, 3]}},
        },
    }
    assert ucf101(str(splits), str(frames), 1) == expected
    assert "2 videos listed in" in capsys.readouterr().err

    main(["ucf101", str(splits), str(frames), str(tmp_path / "json")])
    assert sorted(os.listdir(tmp_path / "json")) == ["ucf101_01.json", "ucf101_02.json"]
    # Same bytes as kenshohara's json.dump, key order included.
    assert (tmp_path / "json" / "ucf101_01.json").read_text() == json.dumps(expected)
    assert json.loads((tmp_path / "json" / "ucf101_02.json").read_text())["database"] == {
        "v_YoYo_g01_c01": {"subset": "training", "annotations": {"label": "YoYo", "segment": [1, 3]}},
        "v_Archery_g08_c02": {"subset": "validation", "annotations": {"label": "Archery", "segment": [1, 6]}}}
    err = capsys.readouterr().err
    assert "left out: v_YoYo_g09_c01, v_YoYo_g02_c01" in err


def test_hmdb51_split_files(tmp_path):
    splits, frames = tmp_path / "testTrainMulti_7030_splits", tmp_path / "jpg"
    # HMDB-51 lines end with a space: "<video>.avi <0|1|2> ".
    write_lines(splits / "brush_hair_test_split1.txt", ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 ",
                                                        "April_09_brush_hair_u_nm_np1_ba_goo_1.avi 2 ",
                                                        "April_09_brush_hair_u_nm_np1_ba_goo_2.avi 0 "])
    write_lines(splits / "brush_hair_test_split2.txt", ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 "])
    write_lines(splits / "cartwheel_test_split1.txt", ["(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi 1 "])
    make_frames(frames, {"brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0": 7,
                         "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1": 8,
                         "cartwheel/(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0": 9})
    assert hmdb51(str(splits), str(frames), 1) == {
        "labels": ["brush_hair", "cartwheel"],
        "database": {
            "April_09_brush_hair_u_nm_np1_ba_goo_0": {"subset": "training",
                                                      "annotations": {"label": "brush_hair", "segment": [1, 8]}},
            "April_09_brush_hair_u_nm_np1_ba_goo_1": {"subset": "validation",
                                                      "annotations": {"label": "brush_hair", "segment": [1, 9]}},
            "(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0": {"subset": "training",
                                                                  "annotations": {"label": "cartwheel",
                                                                                  "segment": [1, 10]}},
        },
    }
    main(["hmdb51", str(splits), str(frames), str(tmp_path / "json")])
    assert sorted(os.listdir(tmp_path / "json")) == ["hmdb51_1.json", "hmdb51_2.json"]
    second = json.loads((tmp_path / "json" / "hmdb51_2.json").read_text())
    assert second == {"labels": ["brush_hair", "cartwheel"], "database": {
        "April_09_brush_hair_u_nm_np1_ba_goo_0": {"subset": "validation",
                                                  "annotations": {"label": "brush_hair", "segment": [1, 8]}}}}


def test_kinetics_csvs(tmp_path):
    csvs, frames = tmp_path / "kinetics", tmp_path / "jpg"
    write_lines(csvs / "kinetics_train.csv", ["label,youtube_id,time_start,time_end,split", "zumba,aaa,0,10,train",
                                              "abseiling,bbb,5,15,train", "zumba,ccc,30,40,train"])
    write_lines(csvs / "kinetics_val.csv", ["label,youtube_id,time_start,time_end,split", "abseiling,ddd,1,11,val"])
    write_lines(csvs / "kinetics_test.csv", ["youtube_id,time_start,time_end,split", "eee,0,10,test"])
    make_frames(frames, {"zumba/aaa_000000_000010": 3, "abseiling/bbb_000005_000015": 4,
                         "abseiling/ddd_000001_000011": 5, "test/eee_000000_000010": 6})
    assert kinetics(str(csvs), str(frames)) == {
        "labels": ["zumba", "abseiling"],  # order of first appearance in the train CSV, as kenshohara's
        "database": {
            "aaa_000000_000010": {"subset": "training", "annotations": {"label": "zumba", "segment": [1, 4]}},
            "bbb_000005_000015": {"subset": "training", "annotations": {"label": "abseiling", "segment": [1, 5]}},
            # No frames: kept without a segment, as kenshohara's kinetics_json.py does.
            "ccc_000030_000040": {"subset": "training", "annotations": {"label": "zumba"}},
            "ddd_000001_000011": {"subset": "validation", "annotations": {"label": "abseiling", "segment": [1, 6]}},
            "eee_000000_000010": {"subset": "testing", "annotations": {"segment": [1, 7]}},
        },
    }


def test_split_folders_need_no_split_files(tmp_path, capsys):
    videos, frames = tmp_path / "fights", tmp_path / "jpg"
    for relative in ("train/Fight/a.mkv", "train/NonFight/b.mp4", "train/NonFight/same.avi", "val/Fight/c.avi",
                     "val/NonFight/same.mkv", "test/Fight/d.mp4"):
        (videos / relative).parent.mkdir(parents=True, exist_ok=True)
        (videos / relative).write_bytes(b"")  # only the names matter here
    make_frames(frames, {"Fight/a": 3, "NonFight/b": 4, "NonFight/train_same": 5, "Fight/c": 6,
                         "NonFight/val_same": 7})
    expected = {
        "labels": ["Fight", "NonFight"],
        "database": {
            "a": {"subset": "training", "annotations": {"label": "Fight", "segment": [1, 4]}},
            "b": {"subset": "training", "annotations": {"label": "NonFight", "segment": [1, 5]}},
            "train_same": {"subset": "training", "annotations": {"label": "NonFight", "segment": [1, 6]}},
            "c": {"subset": "validation", "annotations": {"label": "Fight", "segment": [1, 7]}},
            "val_same": {"subset": "validation", "annotations": {"label": "NonFight", "segment": [1, 8]}},
        },
    }
    assert folders(str(videos), str(frames)) == expected
    assert capsys.readouterr().err.rstrip().endswith("1 videos listed in " + str(videos)
                                                     + " have no frames under " + str(frames) + " and are left out: d")

    make_frames(frames, {"Fight/d": 2})
    data = folders(str(videos), str(frames), test_subset="testing")
    assert data["database"]["d"] == {"subset": "testing", "annotations": {"label": "Fight", "segment": [1, 3]}}
    assert list(data["database"]) == ["d", "a", "b", "train_same", "c", "val_same"]


def test_cli_help():
    run = subprocess.run([sys.executable, "-m", "core.annotations", "folders", "--help"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and "--test-subset {validation,testing}" in run.stdout


def test_unfinished_frame_folders_are_left_out(tmp_path, capsys):
    splits, frames = tmp_path / "splits", tmp_path / "jpg"
    write_lines(splits / "classInd.txt", ["1 Run"])
    write_lines(splits / "trainlist01.txt", ["Run/done.avi 1", "Run/interrupted.avi 1", "Run/stale.avi 1",
                                             "Run/absent.avi 1"])
    write_lines(splits / "testlist01.txt", [])
    make_frames(frames, {"Run/done": 4, "Run/interrupted": 3, "Run/stale": 5})
    (frames / "Run" / "interrupted" / ".done").unlink()  # killed before the marker was written
    (frames / "Run" / "stale" / ".done").write_text("9")  # the marker of an earlier, longer extraction
    assert ucf101(str(splits), str(frames), 1)["database"] == {
        "done": {"subset": "training", "annotations": {"label": "Run", "segment": [1, 5]}}}
    err = capsys.readouterr().err
    assert f"1 videos listed in {splits} split 1 have no frames under {frames} and are left out: absent" in err
    assert (f"2 videos listed in {splits} split 1 have unfinished frame folders under {frames} (no .done marker"
            in err and err.rstrip().endswith("need --no-markers) and are left out: interrupted, stale"))

    # Frames from another tool have no markers at all: --no-markers counts them as they are.
    main(["ucf101", "--no-markers", str(splits), str(frames), str(tmp_path / "json")])
    segments = {video_id: entry["annotations"]["segment"] for video_id, entry
                in json.loads((tmp_path / "json" / "ucf101_01.json").read_text())["database"].items()}
    assert segments == {"done": [1, 5], "interrupted": [1, 4], "stale": [1, 6]}


def test_a_tree_without_any_marker_is_read_and_an_empty_annotation_is_an_error(tmp_path, capsys):
    splits, frames = tmp_path / "splits", tmp_path / "jpg"
    write_lines(splits / "classInd.txt", ["1 Run", "2 Walk"])
    write_lines(splits / "trainlist01.txt", ["Run/r1.avi 1", "Walk/w1.avi 2"])
    write_lines(splits / "testlist01.txt", ["Walk/w2.avi"])
    make_frames(frames, {"Run/r1": 4, "Walk/w1": 3, "Walk/w2": 2})
    for marker in frames.glob("*/*/.done"):  # as kenshohara's generate_video_jpgs.py leaves them
        marker.unlink()
    main(["ucf101", str(splits), str(frames), str(tmp_path / "json")])
    captured = capsys.readouterr()
    assert f"{frames}: no frame folder has a .done marker: frames made by another tool, counted as they are" in \
        captured.err
    database = json.loads((tmp_path / "json" / "ucf101_01.json").read_text())["database"]
    assert {video_id: entry["annotations"]["segment"] for video_id, entry in database.items()} == {
        "r1": [1, 5], "w1": [1, 4], "w2": [1, 3]}

    # Frames under another root: no video at all is an error, and no file is written.
    (tmp_path / "elsewhere").mkdir()
    run = subprocess.run([sys.executable, "-m", "core.annotations", "ucf101", str(splits), str(tmp_path / "elsewhere"),
                          str(tmp_path / "json2")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0
    assert f"ucf101_01.json: no listed video has frames under {tmp_path / 'elsewhere'}; nothing written" in run.stderr
    assert not (tmp_path / "json2").exists()

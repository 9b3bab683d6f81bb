import os
import shutil
import subprocess
import sys

import cv2
import pytest

from core.extract_frames import MARKER, Outcome, detect_layout, extract_dataset, list_videos, main
from tests._data_videos import write_corrupted, write_faststart, write_tiny_video, write_truncated
from tests.conftest import CRICKET_GIF, ROOT


def frame_names(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("image_"))


def assert_extracted(folder, n_frames):
    assert frame_names(folder) == [f"image_{i:05d}.jpg" for i in range(1, n_frames + 1)]
    assert open(os.path.join(folder, MARKER)).read() == str(n_frames)


def test_real_clip_extracts_to_79_frames(tmp_path):
    src, dst = tmp_path / "videos", tmp_path / "frames"
    (src / "CricketShot").mkdir(parents=True)
    shutil.copy(CRICKET_GIF, src / "CricketShot" / "v_CricketShot_g04_c01.gif")
    summary = extract_dataset(str(src), str(dst), size=112)
    folder = dst / "CricketShot" / "v_CricketShot_g04_c01"
    assert summary.ok == [Outcome(str(src / "CricketShot" / "v_CricketShot_g04_c01.gif"), str(folder), 79)]
    assert_extracted(folder, 79)
    assert cv2.imread(str(folder / "image_00079.jpg")).shape == (112, 112, 3)

    resampled = extract_dataset(str(src), str(tmp_path / "frames10"), size=0, fps=10)
    assert resampled.ok[0].n_frames == 32
    assert cv2.imread(str(tmp_path / "frames10" / "CricketShot" / "v_CricketShot_g04_c01" / "image_00001.jpg")).shape \
        == (224, 224, 3)


def test_same_video_in_four_containers_gives_the_same_frames(tmp_path):
    src = tmp_path / "videos" / "Walk"
    src.mkdir(parents=True)
    for extension in ("avi", "mp4", "mkv", "webm"):
        write_tiny_video(src / f"clip_{extension}.{extension}", n_frames=10, height=32, width=48)
    summary = extract_dataset(str(tmp_path / "videos"), str(tmp_path / "frames"), size=16, quality=90)
    assert sorted((os.path.basename(o.frames_dir), o.n_frames) for o in summary.ok) == [
        ("clip_avi", 10), ("clip_mkv", 10), ("clip_mp4", 10), ("clip_webm", 10)]
    for extension in ("avi", "mp4", "mkv", "webm"):
        folder = tmp_path / "frames" / "Walk" / f"clip_{extension}"
        assert_extracted(folder, 10)
        assert cv2.imread(str(folder / "image_00010.jpg")).shape == (16, 24, 3)


def make_mixed_tree(src):
    """Two good videos and three bad files in class folders."""
    (src / "Jump").mkdir(parents=True)
    (src / "Run").mkdir()
    write_tiny_video(src / "Jump" / "good_a.avi", n_frames=8)
    write_tiny_video(src / "Run" / "good_b.webm", n_frames=6)
    write_tiny_video(src / "Run" / "whole.mp4", n_frames=16)
    write_truncated(src / "Jump" / "cut.mp4", src / "Run" / "whole.mp4", 0.6)
    os.remove(src / "Run" / "whole.mp4")
    (src / "Jump" / "empty.avi").write_bytes(b"")
    (src / "Run" / "notes.mkv").write_text("not a video\n" * 20)
    (src / "Run" / "README.txt").write_text("not listed: not a video extension")


def test_bad_files_are_reported_and_skipped(tmp_path, capsys):
    src, dst = tmp_path / "videos", tmp_path / "frames"
    make_mixed_tree(src)
    assert main([str(src), str(dst), "--size", "0"]) == 1
    output = capsys.readouterr().out
    assert "extracted 2 videos, skipped 0 already extracted, 3 failed" in output
    for name, reason in (("cut.mp4", "not a readable video"), ("empty.avi", "empty file (0 bytes)"),
                         ("notes.mkv", "not a readable video")):
        assert f"failed: {src / ('Run' if name == 'notes.mkv' else 'Jump') / name}: {reason}" in output
    assert_extracted(dst / "Jump" / "good_a", 8)
    assert_extracted(dst / "Run" / "good_b", 6)
    assert sorted(os.listdir(dst / "Jump")) == ["good_a"] and sorted(os.listdir(dst / "Run")) == ["good_b"]


def test_truncated_and_damaged_videos_are_reported_and_skipped(tmp_path, capsys):
    # Files that open and decode part of their frames: the decoder alone would not complain.
    src, dst, originals = tmp_path / "videos", tmp_path / "frames", tmp_path / "originals"
    (src / "Kick").mkdir(parents=True)
    originals.mkdir()
    for extension in ("avi", "mkv", "webm", "mp4"):
        write_tiny_video(originals / f"whole.{extension}", n_frames=40)
    write_faststart(src / "Kick" / "good_faststart.mp4", originals / "whole.mp4")
    write_tiny_video(src / "Kick" / "good.mkv", n_frames=40)
    write_truncated(src / "Kick" / "cut_faststart.mp4", src / "Kick" / "good_faststart.mp4", 0.8)
    write_truncated(src / "Kick" / "cut_mkv.mkv", originals / "whole.mkv", 0.8)
    write_truncated(src / "Kick" / "cut_webm.webm", originals / "whole.webm", 0.5)
    write_corrupted(src / "Kick" / "damaged.avi", originals / "whole.avi")
    assert main([str(src), str(dst), "--size", "0"]) == 1
    output = capsys.readouterr().out
    assert "extracted 2 videos, skipped 0 already extracted, 4 failed" in output
    for name in ("cut_faststart.mp4", "cut_mkv.mkv", "cut_webm.webm", "damaged.avi"):
        assert f"failed: {src / 'Kick' / name}: truncated or corrupt: decoded " in output
    assert output.count("of about 40 frames") == 2 and output.count(" s of 1.60 s") == 2  # mkv, webm: no count
    assert sorted(os.listdir(dst / "Kick")) == ["good", "good_faststart"]
    assert_extracted(dst / "Kick" / "good", 40)
    assert_extracted(dst / "Kick" / "good_faststart", 40)


def test_cli_exit_status_and_help(tmp_path):
    src = tmp_path / "videos"
    make_mixed_tree(src)
    run = subprocess.run([sys.executable, "-m", "core.extract_frames", str(src), str(tmp_path / "frames")],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 1 and "3 failed" in run.stdout and "notes.mkv" in run.stderr
    shutil.rmtree(src / "Jump")
    (src / "Run" / "notes.mkv").unlink()
    run = subprocess.run([sys.executable, "-m", "core.extract_frames", str(src), str(tmp_path / "frames")],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and "skipped 1 already extracted, 0 failed" in run.stdout
    help_text = subprocess.run([sys.executable, "-m", "core.extract_frames", "--help"],
                               cwd=ROOT, capture_output=True, text=True).stdout
    assert "--layout {auto,classes,splits,csv}" in help_text and "image_00001.jpg" in help_text


def test_interrupted_extraction_resumes(tmp_path):
    src, dst = tmp_path / "videos", tmp_path / "frames"
    (src / "Wave").mkdir(parents=True)
    write_tiny_video(src / "Wave" / "finished.avi", n_frames=8)
    write_tiny_video(src / "Wave" / "interrupted.mp4", n_frames=12)
    extract_dataset(str(src), str(dst))
    finished, interrupted = dst / "Wave" / "finished", dst / "Wave" / "interrupted"
    # Simulate a run killed while writing "interrupted": no marker, some frames missing, a stale extra file.
    os.remove(interrupted / MARKER)
    for name in frame_names(interrupted)[5:]:
        os.remove(interrupted / name)
    (interrupted / "image_00099.jpg").write_bytes(b"partial")
    os.utime(finished / "image_00001.jpg", (1_000_000, 1_000_000))

    summary = extract_dataset(str(src), str(dst))
    assert [(os.path.basename(o.frames_dir), o.n_frames) for o in summary.skipped] == [("finished", 8)]
    assert [(os.path.basename(o.frames_dir), o.n_frames) for o in summary.ok] == [("interrupted", 12)]
    assert_extracted(interrupted, 12)
    assert os.stat(finished / "image_00001.jpg").st_mtime == 1_000_000  # not rewritten


def test_split_folders_with_mixed_containers(tmp_path):
    src, dst = tmp_path / "fights", tmp_path / "frames"
    videos = {"train/Fight/fi001.mkv": 5, "train/NonFight/no001.mp4": 6, "train/NonFight/same.avi": 7,
              "val/Fight/fi002.avi": 8, "val/NonFight/same.mkv": 9}
    for relative, n_frames in videos.items():
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        write_tiny_video(src / relative, n_frames=n_frames)
    assert detect_layout(str(src)) == "splits"
    listed, duplicates = list_videos(str(src))
    # "same" is in both splits, so both copies are renamed after their split.
    assert [(v.split, v.label, v.video_id) for v in listed] == [
        ("train", "Fight", "fi001"), ("train", "NonFight", "no001"), ("train", "NonFight", "train_same"),
        ("val", "Fight", "fi002"), ("val", "NonFight", "val_same")]
    assert duplicates == []
    summary = extract_dataset(str(src), str(dst), size=0, workers=2)
    assert [(os.path.relpath(o.frames_dir, dst), o.n_frames) for o in summary.ok] == [
        ("Fight/fi001", 5), ("NonFight/no001", 6), ("NonFight/train_same", 7), ("Fight/fi002", 8),
        ("NonFight/val_same", 9)]
    assert_extracted(dst / "NonFight" / "val_same", 9)


def test_duplicate_ids_within_a_split_are_reported(tmp_path):
    for label in ("A", "B"):
        (tmp_path / "videos" / label).mkdir(parents=True)
        write_tiny_video(tmp_path / "videos" / label / "clip.avi", n_frames=4)
    summary = extract_dataset(str(tmp_path / "videos"), str(tmp_path / "frames"))
    assert [o.frames_dir for o in summary.ok] == [str(tmp_path / "frames" / "A" / "clip")]
    assert [(o.video, o.reason) for o in summary.failed] == [
        (str(tmp_path / "videos" / "B" / "clip.avi"), "duplicate video id clip")]


@pytest.mark.parametrize("header, rows", [
    ("label,youtube_id,time_start,time_end,split",
     ["riding a bike,abc,10,20,train", "juggling,xyz,0,10,val", ",tst,5,15,test", "juggling,gone,1,2,val"]),
    ("video,label", ["abc_000010_000020.mp4,riding a bike", "xyz_000000_000010,juggling", "tst_000005_000015,",
                     "gone_000001_000002.mp4,juggling"]),
])
def test_flat_folder_with_csv(tmp_path, header, rows):
    src, dst = tmp_path / "kinetics", tmp_path / "frames"
    src.mkdir()
    write_tiny_video(src / "abc_000010_000020.mp4", n_frames=4)
    write_tiny_video(src / "xyz_000000_000010.mkv", n_frames=5)
    write_tiny_video(src / "tst_000005_000015.webm", n_frames=6)
    (tmp_path / "list.csv").write_text("\n".join([header] + rows) + "\n")
    summary = extract_dataset(str(src), str(dst), csv=str(tmp_path / "list.csv"))
    assert [(os.path.relpath(o.frames_dir, dst), o.n_frames) for o in summary.ok] == [
        ("riding a bike/abc_000010_000020", 4), ("juggling/xyz_000000_000010", 5), ("test/tst_000005_000015", 6)]
    assert len(summary.failed) == 1 and "gone_000001_000002" in summary.failed[0].video
    assert "no such file" in summary.failed[0].reason


@pytest.mark.parametrize("option, value, message", [("--quality", "0", "--quality must be between 1 and 100, got 0"),
                                                    ("--quality", "101", "between 1 and 100, got 101"),
                                                    ("--fps", "-5", "--fps must be positive"),
                                                    ("--workers", "0", "--workers must be at least 1")])
def test_bad_options_are_refused(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as exit_status:
        main([str(tmp_path), str(tmp_path / "frames"), option, value])
    assert exit_status.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "frames").exists()


def test_concurrent_runs_on_one_destination_both_succeed(tmp_path):
    src, dst = tmp_path / "videos", tmp_path / "frames"
    (src / "Wave").mkdir(parents=True)
    for index in range(6):
        write_tiny_video(src / "Wave" / f"v{index}.avi", n_frames=30, seed=index)
    command = [sys.executable, "-m", "core.extract_frames", str(src), str(dst), "--size", "0"]
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [out[0] for out in outputs]
    for out, _ in outputs:
        assert ", 0 failed" in out
    assert sorted(os.listdir(dst / "Wave")) == [f"v{index}" for index in range(6)]  # no private folder left
    for index in range(6):
        assert_extracted(dst / "Wave" / f"v{index}", 30)


def test_a_name_with_a_newline_stays_on_its_report_line(tmp_path, capsys):
    (tmp_path / "videos" / "Wave").mkdir(parents=True)
    (tmp_path / "videos" / "Wave" / "two\nlines.avi").write_bytes(b"not a video" * 10)
    assert main([str(tmp_path / "videos"), str(tmp_path / "frames")]) == 1
    captured = capsys.readouterr()
    failed = [line for line in captured.out.splitlines() if "failed:" in line]
    assert len(failed) == 1 and "Wave/two\\nlines.avi: not a readable video" in failed[0]
    assert [line for line in captured.err.splitlines() if "failed:" in line][0].endswith(failed[0].split(": ", 1)[1])


def test_small_videos_keep_their_size_and_the_run_says_what_it_did(tmp_path, capsys):
    src, dst = tmp_path / "videos", tmp_path / "frames"
    for split in ("train", "val"):
        (src / split / "Walk").mkdir(parents=True)
        write_tiny_video(src / split / "Walk" / "clip.mkv", n_frames=4, height=32, width=48)  # same id in both
    write_tiny_video(src / "train" / "loose.mp4", n_frames=4)
    assert main([str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert "layout 'splits'" in out
    assert "2 video ids occur in several splits" in out and "train_clip" in out
    assert "1 video files are not in a class folder" in out and "loose.mp4" in out
    # Default --size 240 shrinks larger videos only: 32 x 48 stays (enlarging takes disk, adds nothing).
    assert cv2.imread(str(dst / "Walk" / "train_clip" / "image_00001.jpg")).shape == (32, 48, 3)
    assert main([str(src), str(tmp_path / "up"), "--upscale", "--size", "64"]) == 0
    assert cv2.imread(str(tmp_path / "up" / "Walk" / "val_clip" / "image_00001.jpg")).shape == (64, 96, 3)

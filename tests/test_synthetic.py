import os

import cv2
import numpy as np
import pytest

from core.synthetic import MOTIONS, main, make_background, make_dataset, render_clip
from core.video import iter_frames


def decode_all(paths):
    return [np.stack(list(iter_frames(path))) for path in paths]


def test_layout_split_files_and_determinism(tmp_path):
    options = dict(classes=2, videos_per_class=8, size=32, frames=8, containers=("avi", "mp4", "mkv", "webm"))
    paths = make_dataset(str(tmp_path / "a"), seed=5, **options)
    videos = tmp_path / "a" / "videos"
    assert [os.path.relpath(p, videos) for p in paths[:5]] == [
        "MoveLeft/v_MoveLeft_g01_c01.avi", "MoveLeft/v_MoveLeft_g01_c02.mp4", "MoveLeft/v_MoveLeft_g01_c03.mkv",
        "MoveLeft/v_MoveLeft_g01_c04.webm", "MoveLeft/v_MoveLeft_g02_c01.avi"]
    assert len(paths) == 16 and os.path.relpath(paths[-1], videos) == "MoveRight/v_MoveRight_g02_c04.webm"
    splits = tmp_path / "a" / "splits"
    assert (splits / "classInd.txt").read_bytes() == b"1 MoveLeft\r\n2 MoveRight\r\n"
    train = (splits / "trainlist01.txt").read_bytes().decode().splitlines()
    test = (splits / "testlist01.txt").read_bytes().decode().splitlines()
    assert train[:2] == ["MoveLeft/v_MoveLeft_g02_c01.avi 1", "MoveLeft/v_MoveLeft_g02_c02.mp4 1"]
    assert train[-1] == "MoveRight/v_MoveRight_g02_c04.webm 2" and len(train) == 8
    assert test[0] == "MoveLeft/v_MoveLeft_g01_c01.avi" and len(test) == 8

    first = decode_all(paths)
    assert all(video.shape == (8, 32, 32, 3) for video in first)
    again = decode_all(make_dataset(str(tmp_path / "b"), seed=5, **options))
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    other = decode_all(make_dataset(str(tmp_path / "c"), seed=6, **options))
    assert not any(np.array_equal(x, y) for x, y in zip(first, other))


def render(class_index, video, size=32, frames=4, background=None):
    rng = np.random.default_rng((11, class_index, video))
    if background is None:
        background = make_background(np.random.default_rng((12, class_index, video)), size)
    return render_clip(MOTIONS[class_index], size, frames, rng, background)


def test_a_single_frame_does_not_tell_the_class():
    # Nearest class centroid of one frame's statistics, leave-one-out: chance is 1/8.
    features, labels = [], []
    for class_index in range(len(MOTIONS)):
        for video in range(24):
            frame = render(class_index, video)[2].astype(float)
            gray = frame.mean(-1)
            # Colour, contrast and how much of the frame the dark and bright stripes cover (the shape's size).
            features.append(np.concatenate([frame.mean((0, 1)), frame.std((0, 1)),
                                            [(gray < 70).mean(), (gray > 185).mean()]]))
            labels.append(class_index)
    features, labels = np.array(features), np.array(labels)
    features = (features - features.mean(0)) / features.std(0)
    correct = 0
    for i in range(len(features)):
        others = np.arange(len(features)) != i
        centroids = np.stack([features[others & (labels == c)].mean(0) for c in range(len(MOTIONS))])
        correct += np.argmin(((centroids - features[i]) ** 2).sum(1)) == labels[i]
    assert correct / len(features) < 0.25


def test_motion_tells_the_class():
    black = np.zeros((64, 64, 3), np.float32)
    directions = {"MoveLeft": (-1, 0), "MoveRight": (1, 0), "MoveUp": (0, -1), "MoveDown": (0, 1)}
    for class_index, (sign_x, sign_y) in ((MOTIONS.index(m), d) for m, d in directions.items()):
        for video in range(3):
            clip = render(class_index, video, size=64, frames=2, background=black).astype(np.float32).mean(-1)
            (dx, dy), _ = cv2.phaseCorrelate(clip[0], clip[1])  # circular shift, as the shapes wrap around
            assert 1.8 < dx * sign_x + dy * sign_y < 3.2 and abs(dx * sign_y + dy * sign_x) < 0.3
    # Growing and shrinking shapes change their area in opposite directions (between cycle resets).
    for class_index, sign in ((MOTIONS.index("Grow"), 1), (MOTIONS.index("Shrink"), -1)):
        areas = [(render(class_index, v, size=64, frames=3, background=black).mean(-1) > 20).sum((1, 2))
                 for v in range(6)]
        steps = np.sign(np.concatenate([np.diff(a) for a in areas]))
        assert (steps == sign).mean() >= 0.75


def test_every_class_has_test_and_training_videos(tmp_path, capsys):
    # 5 videos: group 1 (4 clips) is the test list, group 2 (1 clip) the training list.
    make_dataset(str(tmp_path / "five"), classes=2, videos_per_class=5, size=32, frames=2, containers=("avi",))
    splits = tmp_path / "five" / "splits"
    assert (splits / "trainlist01.txt").read_text().split() == ["MoveLeft/v_MoveLeft_g02_c01.avi", "1",
                                                                "MoveRight/v_MoveRight_g02_c01.avi", "2"]
    assert [line.split("/")[0] for line in (splits / "testlist01.txt").read_text().split()] == \
        ["MoveLeft"] * 4 + ["MoveRight"] * 4
    # With 4 or fewer every video would be in one list: refused before anything is written.
    with pytest.raises(SystemExit):
        main([str(tmp_path / "four"), "--videos-per-class", "4"])
    assert "--videos-per-class) must be at least 5" in capsys.readouterr().err
    assert not (tmp_path / "four").exists()

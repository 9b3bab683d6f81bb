"""Training's start-up: the first line comes before the framework is imported, and the config and the annotation
JSON are read once (bench/startup.py measures the seconds; no timed asserts here)."""
import sys
import types

import pytest

from core import datasets
from core.cli import train_main
from tests._training_data import CLASSES, tiny_config, write_colour_dataset


@pytest.fixture
def config(tmp_path):
    write_colour_dataset(str(tmp_path / "data"), train_per_class=2, val_per_class=1, n_frames=4)
    # mean_dataset 0.5 on a ResNet is warned about: once per config read.
    return tiny_config(str(tmp_path / "data"), tmp_path / "out")


def fake_framework(monkeypatch, capsys, rank):
    """Modules 'fakefw' (launched() says `rank`) and 'fakefw.engine', whose first use records what was printed
    until then and stops the run."""
    printed = []

    class Engine(types.ModuleType):
        def __getattr__(self, name):
            printed.append(capsys.readouterr())
            raise SystemExit("framework reached")

    monkeypatch.setitem(sys.modules, "fakefw", types.SimpleNamespace(launched=lambda: (rank, 2, 0)))
    monkeypatch.setitem(sys.modules, "fakefw.engine", Engine("fakefw.engine"))
    return printed


def test_first_line_says_what_trains_before_the_framework_is_used(config, monkeypatch, capsys):
    printed = fake_framework(monkeypatch, capsys, rank=0)
    with pytest.raises(SystemExit, match="framework reached"):
        train_main("fakefw", "fakefw.engine", ["--config", config])
    out, err = printed[0]
    # 3 classes x 2 training videos, 3 validation videos; the config's warning said once.
    assert out == (f"[fakefw] training resnet10: 6 clips (validation: 3 videos), 4 epochs -> {config[:-5]}; "
                   "starting fakefw\n")
    assert err.count("warning:") == 1 and "mean_dataset '0.5'" in err


def test_other_ranks_of_a_launch_say_nothing_first(config, monkeypatch, capsys):
    printed = fake_framework(monkeypatch, capsys, rank=1)
    with pytest.raises(SystemExit, match="framework reached"):
        train_main("fakefw", "fakefw.engine", ["--config", config])
    assert printed[0].out == ""


def test_annotation_json_is_parsed_once_within_read_once(config, monkeypatch, tmp_path):
    parsed = []
    load = datasets.json.load
    monkeypatch.setattr(datasets.json, "load", lambda f: parsed.append(f.name) or load(f))
    annotation = str(tmp_path / "data" / "annotation.json")
    with datasets.read_once():
        for subset in ("training", "validation", "validation"):
            names, videos = datasets.load_annotations(annotation, subset)
            assert names == list(CLASSES) and len(videos) == {"training": 6, "validation": 3}[subset]
    assert parsed == [annotation]
    datasets.load_annotations(annotation, "training")  # outside: read again, nothing kept
    assert parsed == [annotation] * 2 and datasets._parsed is None

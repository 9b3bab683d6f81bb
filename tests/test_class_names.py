"""Class names and config stored with a checkpoint, read without a framework; --labels files."""
import json

import numpy as np
import pytest

from core.checkpoints import read_checkpoint, write_checkpoint
from core.checkpoints.ckpt import write_ckpt
from core.class_names import LabelsError, class_names_for, read_checkpoint_meta, read_labels_file
from tests.community import random_model


def test_labels_file_is_one_name_per_line_or_an_annotation_json(tmp_path):
    (tmp_path / "names.txt").write_text("Fight\n\nNonFight \n")
    assert read_labels_file(str(tmp_path / "names.txt")) == ["Fight", "NonFight"]
    (tmp_path / "ann.json").write_text(json.dumps({"labels": ["a", "b", "c"], "database": {}}))
    assert read_labels_file(str(tmp_path / "ann.json")) == ["a", "b", "c"]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(LabelsError, match="bad.json: not an annotation JSON"):
        read_labels_file(str(tmp_path / "bad.json"))


def test_names_fit_the_head_or_are_indices(tmp_path):
    said = []
    assert class_names_for(None, None, 3, log=said.append) == ["0", "1", "2"]
    assert "printing class indices 0..2" in said[0]
    # A head with more outputs than the training labels: the extra ones by index.
    assert class_names_for(["a", "b"], None, 3, log=said.append) == ["a", "b", "2"]
    with pytest.raises(LabelsError, match="3 class names, but the model has 2 classes"):
        class_names_for(["a", "b", "c"], None, 2)


def test_names_and_config_travel_through_convert(tmp_path):
    # A MindSpore training checkpoint as the engine writes it: weights plus text entries.
    state = {name: value.numpy() for name, value in random_model("resnet10", n_classes=2, widen_factor=0.125)
             .state_dict().items() if not name.endswith("num_batches_tracked")}
    from core.state_dict import to_mindspore
    meta = {"class_names": ["Fight", "NonFight"], "config": {"sample_size": 32, "model_depth": 10}}
    write_ckpt(str(tmp_path / "save_1.ckpt"), {**to_mindspore(state), "arch": "resnet10", "epoch": "1",
                                                **{key: json.dumps(value) for key, value in meta.items()}})
    assert read_checkpoint_meta(str(tmp_path / "save_1.ckpt")) == meta
    checkpoint = read_checkpoint(str(tmp_path / "save_1.ckpt"))
    for name, layout in (("a.pdparams", "neutral"), ("b.ckpt", "neutral"), ("c.pth", "kenshohara")):
        assert write_checkpoint(str(tmp_path / name), checkpoint, layout=layout, stored=checkpoint.stored)
        assert read_checkpoint_meta(str(tmp_path / name)) == meta, name
    # A flat file holds parameters only, and says so.
    assert not write_checkpoint(str(tmp_path / "d.npz"), checkpoint, stored=checkpoint.stored)
    assert read_checkpoint_meta(str(tmp_path / "d.npz")) == {"class_names": None, "config": None}
    np.testing.assert_array_equal(read_checkpoint(str(tmp_path / "c.pth")).state["fc.weight"], state["fc.weight"])

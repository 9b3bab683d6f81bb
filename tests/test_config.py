"""Config: YAML + --set overrides, coerced to the schema's types; errors name the key and where it came from."""
import pytest

from core.config import ConfigError, load_config


@pytest.fixture
def data(tmp_path):
    """An annotation file and a frames root that exist."""
    annotation = tmp_path / "annotation.json"
    annotation.write_text("{}")
    (tmp_path / "jpg").mkdir()
    return {"annotation_path": str(annotation), "video_path": str(tmp_path / "jpg")}


def write_yaml(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def ok_yaml(tmp_path, data, extra=""):
    return write_yaml(tmp_path, "ok.yaml", "".join(f"{k}: {v}\n" for k, v in data.items()) + extra)


@pytest.mark.parametrize("text, message", [
    ("foo: 1\n", "bad.yaml: unknown key 'foo'"),
    ("model_depth: ten\n", "bad.yaml: key 'model_depth' must be int, got 'ten'"),
    ("no_hflip: maybe\n", "bad.yaml: key 'no_hflip' must be bool, got 'maybe'"),
    ("multistep_milestones: [10, x]\n", "bad.yaml: key 'multistep_milestones' must be list, got [10, 'x']"),
    ("model: vgg\n", "bad.yaml: key 'model' must be one of i3d, i3d_mszoo, s3d_tf, resnet, r2plus1d, s3d, got 'vgg'"),
])
def test_yaml_errors_name_the_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_config(write_yaml(tmp_path, "bad.yaml", text), require_paths=())
    assert str(error.value) == f"{tmp_path}/{message}"


def test_unknown_set_key_suggests_the_closest(tmp_path, data):
    with pytest.raises(ConfigError) as error:
        load_config(ok_yaml(tmp_path, data), ["learning_rat=0.1"])
    assert str(error.value) == "--set: unknown key 'learning_rat' (did you mean 'learning_rate'?)"


def test_required_path_must_be_set_and_exist(tmp_path, data):
    config_path = ok_yaml(tmp_path, {"annotation_path": data["annotation_path"]})
    with pytest.raises(ConfigError) as error:
        load_config(config_path)
    assert str(error.value) == f"{config_path}: required key 'video_path' is not set"
    nowhere = str(tmp_path / "nowhere")
    config_path = ok_yaml(tmp_path, {**data, "video_path": nowhere})
    with pytest.raises(ConfigError) as error:
        load_config(config_path)
    assert str(error.value) == f"{config_path}: key 'video_path' points to '{nowhere}', which does not exist"


def test_a_bad_path_from_set_is_reported_as_from_set(tmp_path, data):
    with pytest.raises(ConfigError) as error:
        load_config(ok_yaml(tmp_path, data), ["pretrain_path=/nonexist"])
    assert str(error.value) == "--set: key 'pretrain_path' points to '/nonexist', which does not exist"


def test_a_flow_run_does_not_check_video_path(tmp_path, data):
    (tmp_path / "flow").mkdir()
    flow_run = {**data, "video_path": tmp_path / "nowhere", "flow_path": tmp_path / "flow", "modality": "flow"}
    config = load_config(ok_yaml(tmp_path, flow_run))
    assert config.flow_path == str(tmp_path / "flow")
    # Its own frames root is required; an RGB run of the same file checks video_path.
    with pytest.raises(ConfigError, match="required key 'flow_path' is not set"):
        load_config(ok_yaml(tmp_path, flow_run), ["flow_path="])
    with pytest.raises(ConfigError, match="key 'video_path' points to .*nowhere"):
        load_config(ok_yaml(tmp_path, flow_run), ["modality=rgb"])


def test_set_wins_over_yaml_and_values_are_coerced(tmp_path, data):
    config_path = ok_yaml(tmp_path, data, "learning_rate: 0.5\nmodel_depth: 50\nnesterov: 'true'\n"
                                          "multistep_milestones: [5, 10]\n")
    config = load_config(config_path, ["learning_rate=1e-3", "no_hflip=yes", "amp=false",
                                       "multistep_milestones=20,40"])
    assert config.learning_rate == 0.001 and isinstance(config.learning_rate, float)
    assert config.model_depth == 50
    assert config.nesterov is True and config.no_hflip is True and config.amp is False
    assert config.multistep_milestones == [20, 40]
    assert config.source == config_path
    assert load_config(config_path, ["multistep_milestones=[7]"]).multistep_milestones == [7]
    assert load_config(config_path).learning_rate == 0.5
    assert load_config(None, ["sample_size=64.0"], require_paths=()).sample_size == 64
    with pytest.raises(ConfigError, match="--set: key 'sample_size' must be int, got 2.5"):
        load_config(None, ["sample_size=2.5"], require_paths=())

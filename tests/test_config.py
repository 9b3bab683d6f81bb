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
    ("model: vgg\n", "bad.yaml: key 'model' must be one of resnet, r2plus1d, i3d, i3d_mszoo, s3d_tf, ip_csn, ir_csn, "
                      "densenet, i3d_resnet, preresnet, resnext, s3d, tsn_resnet50, tsn_bninception, wideresnet, "
                      "got 'vgg'"),
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


@pytest.mark.parametrize("setting, message", [
    ("batch_size=0", "key 'batch_size' must be at least 1, got 0"),
    ("batch_size=-4", "key 'batch_size' must be at least 1, got -4"),
    ("n_threads=-1", "key 'n_threads' must be at least 0, got -1"),
    ("learning_rate=-1", "key 'learning_rate' must be above 0, got -1.0"),
    ("sample_duration=0", "key 'sample_duration' must be at least 1, got 0"),
    ("sample_size=0", "key 'sample_size' must be at least 1, got 0"),
    ("checkpoint=0", "key 'checkpoint' must be at least 1, got 0"),
    ("max_bad_clips=1.5", "key 'max_bad_clips' must be between 0 and 1, got 1.5"),
    ("multistep_milestones=[10, -1]", "key 'multistep_milestones' must be a list of epochs, each at least 1"),
    ("model_depth=11", "key 'model_depth': model_depth 11 is not available for model 'resnet' (choose from 10, 18, 34"),
    ("ft_begin_module=layer5", "key 'ft_begin_module' is 'layer5', not a module of resnet18 (conv1, bn1, layer1"),
    ("ft_begin_module=FC", "key 'ft_begin_module' is 'FC', not a module of resnet18"),
    ("batch_size=[1,", "--set: 'batch_size=[1,' is not a valid YAML value"),
])
def test_out_of_range_settings_are_one_line_errors(tmp_path, data, setting, message):
    with pytest.raises(ConfigError) as error:
        load_config(ok_yaml(tmp_path, data), [setting])
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)
    assert str(error.value).startswith("--set: ")


def test_ft_begin_module_of_each_family_is_checked_against_its_tree(tmp_path, data):
    assert load_config(ok_yaml(tmp_path, data), ["model=i3d", "ft_begin_module=Mixed_5b"]).ft_begin_module == "Mixed_5b"
    assert load_config(ok_yaml(tmp_path, data), ["model=r2plus1d", "ft_begin_module=conv1_t"]).model == "r2plus1d"
    with pytest.raises(ConfigError, match="not a module of i3d"):
        load_config(ok_yaml(tmp_path, data), ["model=i3d", "ft_begin_module=layer4"])


def test_a_frames_root_of_videos_is_refused(tmp_path, data):
    (tmp_path / "videos" / "Walk").mkdir(parents=True)
    (tmp_path / "videos" / "Walk" / "v_1.avi").write_bytes(b"x")
    config_path = ok_yaml(tmp_path, {**data, "video_path": str(tmp_path / "videos")})
    with pytest.raises(ConfigError) as error:
        load_config(config_path)
    assert str(error.value) == (f"{config_path}: key 'video_path' points to '{tmp_path / 'videos'}', which holds "
                                f"video files ({tmp_path / 'videos' / 'Walk' / 'v_1.avi'}), not frame folders: "
                                "extract them first (python -m core.extract_frames)")
    with pytest.raises(ConfigError, match="which is a file, not a frames directory"):
        load_config(ok_yaml(tmp_path, {**data, "video_path": str(tmp_path / "videos" / "Walk" / "v_1.avi")}))


def test_set_with_nothing_after_the_equals_sign_restores_the_default(tmp_path, data):
    path = ok_yaml(tmp_path, data, "ft_begin_module: layer4\nmodel_depth: 50\n")
    assert load_config(path)["ft_begin_module"] == "layer4"
    config = load_config(path, ["ft_begin_module=", "model_depth="])
    assert (config["ft_begin_module"], config["model_depth"]) == ("", 18)


def _kenshohara(argv, modes=True):
    import argparse

    from core.config import add_config_arguments, add_kenshohara_arguments, config_from_args
    parser = add_kenshohara_arguments(add_config_arguments(argparse.ArgumentParser()), modes=modes)
    return config_from_args(parser.parse_args(argv), require_paths=())


def test_kenshohara_command_line_is_the_config(tmp_path):
    # His README's fine-tuning line (main.py get_opt joins root_path to the paths).
    (tmp_path / "ucf101_videos" / "jpg").mkdir(parents=True)
    (tmp_path / "ucf101_01.json").write_text("{}")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "r3d50_K_200ep.pth").write_bytes(b"")
    config = _kenshohara(["--root_path", str(tmp_path), "--video_path", "ucf101_videos/jpg", "--annotation_path",
                          "ucf101_01.json", "--result_path", "results", "--dataset", "ucf101", "--n_classes", "101",
                          "--n_pretrain_classes", "700", "--pretrain_path", "models/r3d50_K_200ep.pth",
                          "--ft_begin_module", "fc", "--model", "resnet", "--model_depth", "50", "--batch_size",
                          "128", "--n_threads", "4", "--checkpoint", "5", "--multistep_milestones", "15", "25",
                          "--no_hflip", "--inference_subset", "test", "--input_type", "flow", "--no_cuda"])
    assert config["video_path"] == str(tmp_path / "ucf101_videos" / "jpg")
    assert config["pretrain_path"] == str(tmp_path / "models" / "r3d50_K_200ep.pth")
    assert config["result_path"] == str(tmp_path / "results")
    assert (config["n_classes"], config["n_pretrain_classes"], config["model_depth"], config["checkpoint"]) == \
        (101, 700, 50, 5)
    assert config["multistep_milestones"] == [15, 25] and config["no_hflip"] is True
    assert (config["inference_subset"], config["modality"], config["device"]) == ("testing", "flow", "cpu")
    # --set comes after his flags and wins.
    assert _kenshohara(["--model_depth", "50", "--set", "model_depth=34"])["model_depth"] == 34


def test_kenshohara_options_without_equivalent_answer_in_one_line(capsys):
    with pytest.raises(SystemExit, match="--distributed: run under torchrun"):
        _kenshohara(["--distributed"])
    _kenshohara(["--tensorboard", "--accimage"])
    assert "TensorBoard event files are always written" in capsys.readouterr().err

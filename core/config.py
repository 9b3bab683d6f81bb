"""One experiment schema shared by the three backends.

Keys follow kenshohara/3D-ResNets-PyTorch's `opts.py` where they exist, so a
user's command line `--model_depth 50` becomes `model_depth: 50` in YAML.
A config is a YAML file plus `--set key=value` overrides; every value is
checked against the schema, and errors name the key and the file.
"""
import argparse
import os
from dataclasses import dataclass

import yaml

from core import archs


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


@dataclass(frozen=True)
class Key:
    type: type          # int, float, str, bool, list (of numbers) or "path"
    default: object
    help: str
    choices: tuple = ()


PATH = "path"

SCHEMA = {
    # model
    "model": Key(str, "resnet", "architecture family", archs.MODELS),
    "model_depth": Key(int, 18, "depth of " + " / ".join(f"{model} ({', '.join(map(str, archs.depths(model)))})"
                                                         for model in archs.MODELS if archs.depths(model))),
    "n_classes": Key(int, 400, "number of classes of the model trained or evaluated "
                               "(at least the annotation's label count)"),
    "n_pretrain_classes": Key(int, 0, "classes of the pretrained file's head (0: not checked); a head of "
                                      "another size is an error listing the mis-shaped keys"),
    "pretrain_path": Key(PATH, None, "pretrained weights to fine-tune from, in any format convert reads "
                                     "(.pth/.pt, .pdparams, .ckpt, .npz, .safetensors; community layouts)"),
    "ft_begin_module": Key(str, "", "train only this module and those after it (e.g. layer4, fc); '' trains all"),
    # the builder options of the registered architectures (core.archs), with the models that read them
    **{key: Key(type(option.default), option.default, f"{option.help} ({', '.join(models)})", option.choices)
       for key, (option, models) in archs.config_options().items()},
    "modality": Key(str, "rgb", "input modality", ("rgb", "flow")),
    # data
    "video_path": Key(PATH, None, "root of the extracted frames: <root>/<class>/<video_id>/image_00001.jpg"),
    "flow_path": Key(PATH, None, "root of the optical-flow frames (modality flow, joint evaluation)"),
    "annotation_path": Key(PATH, None, "annotation JSON (kenshohara's format)"),
    "result_path": Key(str, "results", "directory for logs, checkpoints and results"),
    "flow_template": Key(str, "image_{:05d}{}.jpg", "flow frame names: '{:05d}' is the index, '{}' is x or y "
                         "(MindSpore zoo 'image_{:05d}{}.jpg', dense_flow 'flow_{}_{:05d}.jpg' with '{}' first)"),
    "sample_size": Key(int, 112, "height and width of the clips fed to the model"),
    "sample_duration": Key(int, 16, "frames per clip"),
    "sample_t_stride": Key(int, 1, "temporal stride between sampled frames"),
    "train_crop": Key(str, "random", "spatial crop for training", ("random", "corner", "center")),
    "train_crop_min_scale": Key(float, 0.25, "min area scale of the random resized crop"),
    "train_crop_min_ratio": Key(float, 0.75, "min aspect ratio of the random resized crop"),
    "train_t_crop": Key(str, "random", "temporal crop for training", ("random", "center")),
    "no_hflip": Key(bool, False, "disable horizontal flip in training"),
    "value_scale": Key(int, 1, "pixel value scale before normalisation: 1 or 255"),
    "mean_dataset": Key(str, "kinetics", "mean/std statistics", ("kinetics", "activitynet", "0.5", "i3d")),
    "no_mean_norm": Key(bool, False, "do not subtract the mean"),
    "no_std_norm": Key(bool, False, "do not divide by the std"),
    "bgr": Key(bool, False, "feed RGB frames in BGR order (the MindSpore zoo's I3D reads frames with cv2.imread)"),
    "n_val_samples": Key(int, 3, "clips per video in the per-epoch validation"),
    "inference_subset": Key(str, "validation", "subset evaluated by evaluate", ("training", "validation", "testing")),
    "inference_stride": Key(int, 16, "stride of the sliding window in evaluation"),
    "inference_crop": Key(str, "center", "spatial crop in evaluation", ("center", "nocrop")),
    "inference_batch_size": Key(int, 0, "batch size in evaluation (0: batch_size)"),
    "output_topk": Key(int, 5, "top-k labels written per video to val.json"),
    # optimisation
    "optimizer": Key(str, "sgd", "optimizer", ("sgd", "adam")),
    "learning_rate": Key(float, 0.1, "initial learning rate"),
    "momentum": Key(float, 0.9, "SGD momentum"),
    "dampening": Key(float, 0.0, "SGD dampening (ignored with nesterov, as in kenshohara's main.py)"),
    "weight_decay": Key(float, 1e-3, "weight decay (L2, added to the gradient)"),
    "nesterov": Key(bool, False, "Nesterov momentum (needs momentum > 0)"),
    "lr_scheduler": Key(str, "multistep", "learning-rate schedule", ("multistep", "plateau", "cosine")),
    "multistep_milestones": Key(list, [50, 100, 150], "epochs where multistep multiplies the rate by 0.1"),
    "plateau_patience": Key(int, 10, "epochs without improvement before plateau lowers the rate"),
    "n_epochs": Key(int, 200, "number of training epochs"),
    "batch_size": Key(int, 128, "clips per batch"),
    "n_threads": Key(int, 4, "data-loading worker processes (0: load in the main process)"),
    "checkpoint": Key(int, 10, "save a checkpoint every this many epochs"),
    "resume_path": Key(PATH, None, "checkpoint to resume training from (or to evaluate)"),
    "manual_seed": Key(int, 1, "seed for weights, data order and augmentation"),
    "no_val": Key(bool, False, "skip validation after each epoch"),
    # runtime
    "device": Key(str, "auto", "auto (GPU when present), cpu or gpu", ("auto", "cpu", "gpu")),
    "amp": Key(bool, False, "mixed precision on GPU"),
    "ms_mode": Key(str, "pynative", "MindSpore execution mode: pynative, or graph (ms.jit on the train step)",
                   ("pynative", "graph")),
    "batchnorm_sync": Key(bool, False, "SyncBatchNorm in distributed training"),
}

# The frames root each modality reads; a run never reads the other one (a flow run needs no video_path).
FRAMES_ROOT = {"rgb": "video_path", "flow": "flow_path"}


def required_paths(modality):
    """The path keys a training or evaluation run of `modality` must have: the annotation and its frames."""
    return ("annotation_path", FRAMES_ROOT[modality])


class Config(dict):
    """A validated config: a dict whose keys are also attributes."""

    source = "<defaults>"

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _coerce(key, value, where):
    spec = SCHEMA[key]
    if value is None:
        if spec.type is PATH or spec.default is None:
            return None
        raise ConfigError(f"{where}: key '{key}' must not be empty")
    kind = spec.type
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                value = value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise TypeError
        elif kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            value = int(value)
        elif kind is float:
            if isinstance(value, bool):
                raise TypeError
            value = float(value)
        elif kind is list:
            if isinstance(value, str):
                value = yaml.safe_load(value if value.startswith("[") else f"[{value}]")
            if not isinstance(value, list) or not all(isinstance(v, (int, float)) for v in value):
                raise TypeError
        elif kind in (str, PATH):
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise TypeError
            value = str(value)
    except (TypeError, ValueError):
        name = "path" if kind is PATH else kind.__name__
        raise ConfigError(f"{where}: key '{key}' must be {name}, got {value!r}") from None
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{where}: key '{key}' must be one of {', '.join(spec.choices)}, got {value!r}")
    return value


def parse_override(text):
    """'key=value' -> (key, YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"--set: expected key=value, got {text!r}")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def load_config(path=None, overrides=(), require_paths=None):
    """Read a YAML config, apply `key=value` overrides and validate.

    `require_paths` names the path keys that must be set and exist on disk
    (None: `required_paths(modality)`). Any other path that is set must exist,
    except the frames root of the modality the run does not read.
    """
    raw = {}
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: config file not found")
        with open(path) as f:
            try:
                raw = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of keys to values")
    where = path or "<no config file>"
    values = {k: spec.default for k, spec in SCHEMA.items()}
    sources = {}  # key -> where its value came from, for the messages of the path checks
    entries = [(k, v, where) for k, v in raw.items()]
    entries += [(*parse_override(o), "--set") for o in overrides]
    for key, value, source in entries:
        if key not in SCHEMA:
            raise ConfigError(f"{source}: unknown key '{key}'" + _suggest(key))
        values[key] = _coerce(key, value, source)
        sources[key] = source
    if require_paths is None:
        require_paths = required_paths(values["modality"])
    for key in require_paths:
        if not values[key]:
            raise ConfigError(f"{where}: required key '{key}' is not set")
    unread = set(FRAMES_ROOT.values()) - {FRAMES_ROOT[values["modality"]]} - set(require_paths)
    for key, spec in SCHEMA.items():
        value = values[key]
        if spec.type is PATH and value and key not in unread and not os.path.exists(value):
            raise ConfigError(f"{sources[key]}: key '{key}' points to {value!r}, which does not exist")
    config = Config(values)
    config.source = where
    return config


def _suggest(key):
    import difflib
    close = difflib.get_close_matches(key, SCHEMA, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def add_config_arguments(parser):
    parser.add_argument("--config", help="YAML experiment config (keys: see README or --help-config)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key; repeatable")
    parser.add_argument("--help-config", action="store_true", help="list every config key and exit")
    return parser


def schema_table():
    """The README's table of config keys (tests/test_docs.py checks the README holds exactly this)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, spec in SCHEMA.items():
        kind = "path" if spec.type is PATH else spec.type.__name__
        choices = f" ({' / '.join(spec.choices)})" if spec.choices else ""
        rows.append(f"| `{key}` | {kind} | `{spec.default!r}` | {spec.help}{choices} |")
    return "\n".join(rows)


def describe_schema():
    lines = []
    for key, spec in SCHEMA.items():
        kind = "path" if spec.type is PATH else spec.type.__name__
        choices = f" [{'|'.join(spec.choices)}]" if spec.choices else ""
        lines.append(f"  {key} ({kind}, default {spec.default!r}){choices}: {spec.help}")
    return "\n".join(lines)


def config_from_args(args, require_paths=None):
    """Turn parsed `--config/--set` arguments into a Config; exit with a message on error."""
    if args.help_config:
        print(describe_schema())
        raise SystemExit(0)
    try:
        return load_config(args.config, args.set, require_paths)
    except ConfigError as e:
        raise SystemExit(f"config error: {e}") from None


def main():
    parser = argparse.ArgumentParser(description="Validate a config and print the resolved values.")
    add_config_arguments(parser)
    config = config_from_args(parser.parse_args(), require_paths=())
    print(yaml.safe_dump(dict(config), sort_keys=False))


if __name__ == "__main__":
    main()

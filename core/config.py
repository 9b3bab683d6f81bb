"""One experiment schema shared by the three backends.

Keys follow kenshohara/3D-ResNets-PyTorch's `opts.py` where they exist, so a
user's command line `--model_depth 50` becomes `model_depth: 50` in YAML.
A config is a YAML file plus `--set key=value` overrides; every value is
checked against the schema, and errors name the key and the file.
"""
import argparse
import itertools
import os
import sys
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
    "frozen_bn": Key(str, "none", "BatchNorm layers frozen in training (running statistics kept, in eval mode): "
                                  "partial: all but the first, their weights fixed too (TSN's partialBN, "
                                  "yjxiong's default; MMAction2's partial_bn); all: every one, weights fixed "
                                  "(MMAction2's norm_eval with bn_frozen); statistics: every one, weights "
                                  "trained (norm_eval alone)", ("none", "partial", "all", "statistics")),
    # the builder options of the registered architectures (core.archs), with the models that read them
    **{key: Key(type(option.default), option.default, f"{option.help} ({', '.join(models)})", option.choices)
       for key, (option, models) in archs.config_options().items()},
    "modality": Key(str, "rgb", "input modality", ("rgb", "flow")),
    # data
    "video_path": Key(PATH, None, "root of the extracted frames: <root>/<class>/<video_id>/image_00001.jpg"),
    "flow_path": Key(PATH, None, "root of the optical-flow frames (modality flow, joint evaluation)"),
    "frame_source": Key(str, "frames", "what video_path holds: extracted JPEG frames, or the video files "
                                       "<root>/<class>/<video_id>.<mp4|mkv|webm|avi> decoded clip by clip with PyAV "
                                       "(RGB only)", ("frames", "video")),
    "frame_cache": Key(str, "", "folder where JPEG frames are kept once decoded (raw pixels, H x W x 3 bytes a "
                                "frame: ~10x the JPEGs) and read back instead of decoded again: the same pixels, "
                                "about 2x faster clip loading; checked against each JPEG's stat, safe to delete; "
                                "'' (default): decode every time (core.frame_cache)"),
    "annotation_path": Key(PATH, None, "annotation JSON (kenshohara's format)"),
    "result_path": Key(str, "results", "directory for logs, checkpoints and results"),
    "flow_template": Key(str, "image_{:05d}{}.jpg", "flow frame names: '{:05d}' is the index, '{}' is x or y "
                         "(core.flow's 'image_{:05d}{}.jpg', file k = frame k -> k + 1; dense_flow "
                         "'flow_{}_{:05d}.jpg' with '{}' first); 'ms-zoo' reads the MindSpore zoo's "
                         "convert_rgb_to_flow.py folders aligned (same names, file k = frame k - 1 -> k)"),
    "flow_method": Key(str, "tvl1", "optical-flow method that made the flow frames (core.flow --method); predict "
                                    "computes a flow model's input with it", ("tvl1", "farneback", "dis")),
    "flow_bound": Key(float, 20.0, "pixels the flow frames were clipped to before their 0..255 quantisation "
                                   "(core.flow --bound); predict quantises with it"),
    "flow_size": Key(int, 240, "short side that larger frames were shrunk to before their flow was computed "
                               "(core.extract_frames --size, whose frames core.flow reads); predict shrinks the "
                               "decoded frames alike; 0 keeps every size"),
    "sample_size": Key(int, 112, "height and width of the clips fed to the model"),
    "sample_duration": Key(int, 16, "frames per clip"),
    "sample_t_stride": Key(int, 1, "temporal stride between sampled frames"),
    "train_crop": Key(str, "random", "spatial crop for training", ("random", "corner", "center")),
    "train_crop_min_scale": Key(float, 0.25, "min area scale of the random resized crop"),
    "train_crop_min_ratio": Key(float, 0.75, "min aspect ratio of the random resized crop"),
    "train_t_crop": Key(str, "random", "temporal crop for training", ("random", "center")),
    "no_hflip": Key(bool, False, "disable horizontal flip in training"),
    "value_scale": Key(int, 1, "pixel value scale before normalisation: 1 or 255"),
    "mean_dataset": Key(str, None, "mean/std statistics; unset: the model family's (" + "; ".join(
        f"{', '.join(models)}: {statistics}" for statistics, models in archs.normalisations().items())
        + "); vmz: VMZ's, for the CSN files MMAction2 ported from VMZ; a warning when set to another",
        ("kinetics", "activitynet", "0.5", "i3d", "imagenet", "bninception", "vmz")),
    "no_mean_norm": Key(bool, False, "do not subtract the mean"),
    "no_std_norm": Key(bool, False, "do not divide by the std"),
    "bgr": Key(bool, False, "feed RGB frames in BGR order (the MindSpore zoo's I3D reads frames with cv2.imread; "
                            "unset: on for tsn_bninception, whose weights take BGR)"),
    "num_segments": Key(int, 3, "TSN models: frames per clip, one from each of this many equal segments of the video "
                                "(random offset in training, the centre in validation; yjxiong/tsn-pytorch's "
                                "--num_segments)"),
    "test_segments": Key(int, 25, "TSN models: segments per video in evaluate (one clip, the centre frame of each; "
                                  "his test_models.py --test_segments)"),
    "n_val_samples": Key(int, 3, "clips per video in the per-epoch validation"),
    "inference_subset": Key(str, "validation", "subset evaluated by evaluate", ("training", "validation", "testing")),
    "inference_stride": Key(int, 16, "stride of the sliding window in evaluation"),
    "inference_crop": Key(str, "center", "spatial crop in evaluation (three: MMAction2's ThreeCrop, three "
                                         "sample_size squares along the longer side, scores averaged)",
                          ("center", "nocrop", "three")),
    "n_inference_clips": Key(int, 0, "evaluation clips per video, evenly spaced as MMAction2's test-mode "
                                     "SampleFrames (10 with inference_crop three: its 3 x 10 views); 0: "
                                     "sliding windows every inference_stride frames"),
    "inference_batch_size": Key(int, 0, "batch size in evaluation (0: batch_size)"),
    "output_topk": Key(int, 5, "top-k labels written per video to val.json"),
    "max_bad_clips": Key(float, 0.05, "fraction of the clips of an epoch (training, validation or evaluation) "
                                      "that may be unreadable (corrupt, missing or wrong-sized frames) and "
                                      "skipped before the run stops"),
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
    "accumulation_steps": Key(int, 1, "optimizer step every this many batches, on their mean gradient (an "
                                      "effective batch of batch_size x accumulation_steps; BatchNorm still "
                                      "normalises each batch alone)"),
    "label_smoothing": Key(float, 0.0, "training targets (1 - e) one-hot + e / n_classes, as torch's "
                                       "cross_entropy(label_smoothing=e)"),
    "mixup_alpha": Key(float, 0.0, "mixup: mix each training batch with a permutation of itself, weight ~ "
                                   "Beta(alpha, alpha) (0: off)"),
    "cutmix_alpha": Key(float, 0.0, "cutmix: paste a box of a permuted batch into every frame, area ~ "
                                    "Beta(alpha, alpha) (0: off; with mixup too, each batch picks one)"),
    "colorjitter": Key(list, [0, 0, 0, 0], "RGB training: [brightness, contrast, saturation, hue] strengths of "
                                           "torchvision's ColorJitter, one draw per clip (kenshohara's "
                                           "ColorJitter(); all 0: off, his --colorjitter's values)"),
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

_AT_LEAST_0 = ("at least 0", lambda value: value >= 0)
_AT_LEAST_1 = ("at least 1", lambda value: value >= 1)
_ABOVE_0 = ("above 0", lambda value: value > 0)
_FRACTION = ("between 0 and 1", lambda value: 0 <= value <= 1)
# Numeric keys and the values they admit; one outside stops the run before anything is read or built.
RANGES = {
    "n_classes": _AT_LEAST_1, "n_pretrain_classes": _AT_LEAST_0, "conv1_t_size": _AT_LEAST_1,
    "conv1_t_stride": _AT_LEAST_1, "resnet_widen_factor": _ABOVE_0, "dropout": ("in [0, 1)", lambda v: 0 <= v < 1),
    "sample_size": _AT_LEAST_1, "sample_duration": _AT_LEAST_1, "sample_t_stride": _AT_LEAST_1,
    "num_segments": _AT_LEAST_1, "test_segments": _AT_LEAST_1,
    "train_crop_min_scale": ("in (0, 1]", lambda v: 0 < v <= 1), "train_crop_min_ratio": _ABOVE_0,
    "value_scale": ("1 or 255", lambda value: value in (1, 255)), "n_val_samples": _AT_LEAST_1,
    "inference_stride": _AT_LEAST_1, "inference_batch_size": _AT_LEAST_0, "output_topk": _AT_LEAST_1,
    "max_bad_clips": _FRACTION, "learning_rate": _ABOVE_0, "momentum": ("in [0, 1)", lambda v: 0 <= v < 1),
    "dampening": _FRACTION, "weight_decay": _AT_LEAST_0, "plateau_patience": _AT_LEAST_0,
    "multistep_milestones": ("a list of epochs, each at least 1", lambda value: all(v >= 1 for v in value)),
    "n_epochs": _AT_LEAST_1, "batch_size": _AT_LEAST_1, "n_threads": _AT_LEAST_0, "checkpoint": _AT_LEAST_1,
    "accumulation_steps": _AT_LEAST_1, "label_smoothing": ("in [0, 1)", lambda v: 0 <= v < 1),
    "mixup_alpha": _AT_LEAST_0, "cutmix_alpha": _AT_LEAST_0, "n_inference_clips": _AT_LEAST_0,
    "colorjitter": ("[brightness, contrast, saturation, hue], each at least 0, hue at most 0.5",
                    lambda v: len(v) == 4 and min(v) >= 0 and v[3] <= 0.5),
    "flow_bound": _ABOVE_0, "flow_size": _AT_LEAST_0,
}
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".gif", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")

# The frames root each modality reads; a run never reads the other one (a flow run needs no video_path).
FRAMES_ROOT = {"rgb": "video_path", "flow": "flow_path"}


def required_paths(modality):
    """The path keys a training or evaluation run of `modality` must have: the annotation and its frames."""
    return ("annotation_path", FRAMES_ROOT[modality])


class Config(dict):
    """A validated config: a dict whose keys are also attributes."""

    source = "<defaults>"
    sources = {}  # key -> the config file or "--set" that set it; keys left at their default are absent

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
        raise ConfigError(f"{where}: key '{key}' must be one of {', '.join(map(str, spec.choices))}, got {value!r}")
    if key in RANGES and not RANGES[key][1](value):
        raise ConfigError(f"{where}: key '{key}' must be {RANGES[key][0]}, got {value!r}")
    return value


def parse_override(text):
    """'key=value' -> (key, YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"--set: expected key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        problem = str(error).splitlines()[0]
        raise ConfigError(f"--set: {text!r} is not a valid YAML value ({problem})") from None


def load_config(path=None, overrides=(), require_paths=None, base=None, base_source="<base>", also_require=()):
    """Read a YAML config, apply `key=value` overrides and validate.

    `base` ({key: value}, e.g. the config stored in a checkpoint) replaces the defaults before the
    file and the overrides apply.

    `require_paths` names the path keys that must be set and exist on disk
    (None: `required_paths(modality)` and `also_require`). Any other path that is set must exist,
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
    entries = [(k, v, base_source) for k, v in (base or {}).items()]
    entries += [(k, v, where) for k, v in raw.items()]
    entries += [(*parse_override(o), "--set") for o in overrides]
    for key, value, source in entries:
        if key not in SCHEMA:
            raise ConfigError(f"{source}: unknown key '{key}'" + _suggest(key))
        # `--set key=` (nothing after '=') restores the key's default, e.g. ft_begin_module after a file set it.
        values[key] = SCHEMA[key].default if value is None and source == "--set" else _coerce(key, value, source)
        sources[key] = source
    if require_paths is None:
        require_paths = required_paths(values["modality"]) + tuple(also_require)
    for key in require_paths:
        if not values[key]:
            raise ConfigError(f"{where}: required key '{key}' is not set")
    unread = set(FRAMES_ROOT.values()) - {FRAMES_ROOT[values["modality"]]} - set(require_paths)
    for key, spec in SCHEMA.items():
        value = values[key]
        if spec.type is PATH and value and key not in unread and not os.path.exists(value):
            raise ConfigError(f"{sources[key]}: key '{key}' points to {value!r}, which does not exist")
    _check_architecture(values, lambda key: sources.get(key, where))
    if values["frame_source"] == "video" and values["modality"] != "rgb":
        raise ConfigError(f"{sources.get('frame_source', where)}: frame_source 'video' reads RGB clips from the video "
                          f"files; modality {values['modality']} needs its frames (core.flow writes them)")
    for key in FRAMES_ROOT.values():
        # With frame_source: video, video_path holds the video files themselves.
        if values[key] and key not in unread and not (key == "video_path" and values["frame_source"] == "video"):
            _check_frames_root(key, values[key], sources.get(key, where))
    _resolve_normalisation(values, sources)
    config = Config(values)
    config.source = where
    config.sources = sources
    return config


def _check_architecture(values, source_of):
    """model_depth and ft_begin_module name something the architecture has (asks core.archs, the one list)."""
    try:
        arch = archs.arch_name(values)
    except ValueError as error:
        raise ConfigError(f"{source_of('model_depth')}: key 'model_depth': {error}") from None
    if values["ft_begin_module"]:
        modules = list(dict.fromkeys(name.split(".")[0] for name in archs.expected_shapes(arch)))
        if values["ft_begin_module"] not in modules:
            raise ConfigError(f"{source_of('ft_begin_module')}: key 'ft_begin_module' is "
                              f"{values['ft_begin_module']!r}, not a module of {arch} ({', '.join(modules)})")


def _check_frames_root(key, root, where):
    """A frames root is a directory of <class>/<video_id>/ frame folders; video files there need extracting first."""
    if not os.path.isdir(root):
        raise ConfigError(f"{where}: key '{key}' points to {root!r}, which is a file, not a frames directory")
    # A few class folders tell: a tree of thousands of videos is not listed just to start a run.
    for entry in itertools.islice(sorted(os.scandir(root), key=lambda entry: entry.name), 3):
        inside = itertools.islice(os.scandir(entry.path), 20) if entry.is_dir() else [entry]
        videos = [item.path for item in inside if item.is_file() and item.name.lower().endswith(VIDEO_EXTENSIONS)]
        if videos:
            raise ConfigError(f"{where}: key '{key}' points to {root!r}, which holds video files ({videos[0]}), not "
                              "frame folders: extract them first (python -m core.extract_frames)")


def _resolve_normalisation(values, sources):
    """mean_dataset unset: the architecture's (its spec's); set to another (RGB): warn, since the family's
    weights expect it."""
    from core.spatial import MEAN_STD
    spec = archs.get(archs.arch_name(values))
    family_default = spec.normalisation
    if "bgr" not in sources:
        values["bgr"] = spec.bgr
    if values["mean_dataset"] is None:
        values["mean_dataset"] = family_default
    elif MEAN_STD[values["mean_dataset"]] != MEAN_STD[family_default] and values["modality"] == "rgb":
        print(f"warning: {sources['mean_dataset']}: mean_dataset '{values['mean_dataset']}' replaces the "
              f"{values['model']} family's '{family_default}': weights trained with the family's normalisation "
              f"(community checkpoints) see other inputs", file=sys.stderr)


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
        choices = f" ({' / '.join(map(str, spec.choices))})" if spec.choices else ""
        rows.append(f"| `{key}` | {kind} | `{spec.default!r}` | {spec.help}{choices} |")
    return "\n".join(rows)


# kenshohara/3D-ResNets-PyTorch's command line (opts.py and main.py's get_opt, master 540a0ea): every option
# with a config key of the same name is an alias of `--set key=value`, and --root_path is joined to these
# paths as get_opt does (root_path / video_path ...), for the ones given on the command line.
ROOT_JOINED = ("video_path", "annotation_path", "result_path", "resume_path", "pretrain_path")
KENSHOHARA_SUBSETS = {"train": "training", "val": "validation", "test": "testing"}
# His options that are another key here, or a run mode that train handles (--no_train, --inference...).
KENSHOHARA_RENAMED = {"input_type": "modality"}
KENSHOHARA_MODES = {"no_train": "skip training (with --inference: evaluate resume_path)",
                    "inference": "after training, evaluate inference_subset and write <subset>.json (his names)",
                    "inference_no_average": "with --inference: the results JSON lists every clip's top-k"}
# His options without an equivalent: (takes a value, stops the run, the one-line answer).
KENSHOHARA_ANSWERS = {
    "dataset": (True, False, "not needed: every dataset is read through its annotation JSON "
                             "(python -m core.annotations ucf101|hmdb51|kinetics|folders writes it)"),
    "no_cuda": (False, False, "use --set device=cpu (applied)"),
    "accimage": (False, False, "not needed: frames are decoded with libjpeg-turbo (OpenCV)"),
    "tensorboard": (False, False, "not needed: TensorBoard event files are always written to result_path"),
    "file_type": (True, False, "jpg frame folders are what is read (hdf5 is not supported)"),
    "colorjitter": (False, False, "his main.py appends ColorJitter() with brightness = contrast = saturation = "
                                  "hue = 0, which changes no pixel: nothing to apply; set colorjitter: [0.4, 0.4, "
                                  "0.4, 0.1] (for instance) for a colour jitter"),
    "overwrite_milestones": (False, False, "not needed: a resumed run always uses multistep_milestones of its "
                                           "config"),
    "distributed": (False, True, "run under torchrun / paddle.distributed.launch / msrun instead "
                                 "(docs/distributed.md)"),
    "dist_url": (True, True, "the launchers' --master_addr / --master_port set it (docs/distributed.md)"),
    "world_size": (True, True, "the launchers' --nnodes / --nproc_per_node set it (docs/distributed.md)"),
}


_answered = set()


def add_kenshohara_arguments(parser, modes=False):
    """kenshohara's options as aliases of the config keys (those the parser does not define already);
    `modes` adds --no_train, --inference and --inference_no_average (train's)."""
    group = parser.add_argument_group("kenshohara/3D-ResNets-PyTorch options (aliases of the config keys; "
                                      "--root_path is joined to the paths as his main.py does)")
    group.add_argument("--root_path", default=None, help="directory joined to video_path, annotation_path, "
                                                         "result_path, resume_path, pretrain_path")
    for key, spec in SCHEMA.items():
        if f"--{key}" in parser._option_string_actions or key in KENSHOHARA_ANSWERS:  # his flag, answered below
            continue
        if spec.type is bool:
            group.add_argument(f"--{key}", dest=f"ken_{key}", action="store_true", default=None,
                               help=argparse.SUPPRESS)
        else:
            group.add_argument(f"--{key}", dest=f"ken_{key}", nargs="+" if spec.type is list else None,
                               default=None, metavar=key.upper(), help=argparse.SUPPRESS)
    group.add_argument("--input_type", dest="ken_input_type", default=None, metavar="TYPE",
                       help="rgb | flow: the modality key")
    for name, help_text in KENSHOHARA_MODES.items() if modes else ():
        group.add_argument(f"--{name}", action="store_true", help=help_text)
    for name, (takes_value, _, answer) in KENSHOHARA_ANSWERS.items():
        group.add_argument(f"--{name}", dest=f"answer_{name}", default=None, help=argparse.SUPPRESS,
                           **({"metavar": "VALUE"} if takes_value else {"action": "store_true"}))
    return parser


def kenshohara_overrides(args, log=None):
    """`key=value` overrides of the kenshohara options given in `args` (before --set, which wins)."""
    import json
    import sys
    log = log or (lambda line: print(line, file=sys.stderr))
    given = {name[len("ken_"):]: value for name, value in vars(args).items()
             if name.startswith("ken_") and value is not None}
    for name, (_, stops, answer) in KENSHOHARA_ANSWERS.items():
        value = getattr(args, f"answer_{name}", None)
        if value not in (None, False):
            if stops or (name == "file_type" and value != "jpg"):
                raise ConfigError(f"--{name}: {answer}")
            if name not in _answered:  # a command reads its config more than once
                log(f"note: --{name}: {answer}")
                _answered.add(name)
            if name == "no_cuda":
                given["device"] = "cpu"
    for old, new in KENSHOHARA_RENAMED.items():
        if old in given:
            given[new] = given.pop(old)
    if given.get("inference_subset") in KENSHOHARA_SUBSETS:
        given["inference_subset"] = KENSHOHARA_SUBSETS[given["inference_subset"]]
    root = getattr(args, "root_path", None)
    if root:
        given.update({key: os.path.join(root, given[key]) for key in ROOT_JOINED if key in given})
    # YAML reads "15" as 15: list items need it (the schema wants numbers); scalars stay text for _coerce.
    given = {key: [yaml.safe_load(v) for v in value] if isinstance(value, list) else value
             for key, value in given.items()}
    return [f"{key}={json.dumps(value)}" for key, value in given.items()]


def describe_schema():
    lines = []
    for key, spec in SCHEMA.items():
        kind = "path" if spec.type is PATH else spec.type.__name__
        choices = f" [{'|'.join(map(str, spec.choices))}]" if spec.choices else ""
        lines.append(f"  {key} ({kind}, default {spec.default!r}){choices}: {spec.help}")
    return "\n".join(lines)


def config_from_args(args, require_paths=None, also_require=()):
    """Turn parsed `--config/--set` arguments into a Config (load_config's `require_paths`, `also_require`);
    exit with a message on error."""
    if args.help_config:
        print(describe_schema())
        raise SystemExit(0)
    try:
        overrides = kenshohara_overrides(args) if hasattr(args, "root_path") else []
        return load_config(args.config, [*overrides, *args.set], require_paths, also_require=also_require)
    except ConfigError as e:
        raise SystemExit(f"config error: {e}") from None


def main():
    parser = argparse.ArgumentParser(description="Validate a config and print the resolved values.")
    add_config_arguments(parser)
    config = config_from_args(parser.parse_args(), require_paths=())
    print(yaml.safe_dump(dict(config), sort_keys=False))


if __name__ == "__main__":
    main()

"""The architecture registry: every model the project builds, described once, by name.

One module per family in this package (`resnet.py`, `i3d.py`, ...) registers its `ArchSpec`s when it is
imported; the package imports every such module, so adding a family is one spec module here plus one
model file of the same name in each backend's `models/` (docs/architecture.md). Every list of
architectures (config choices, convert's shape inference, parity tests, README tables) reads `SPECS`.
"""
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable, Optional

from core.archs._shapes import scaled  # noqa: F401  (the width rule every family and model file uses)


@dataclass(frozen=True)
class Option:
    """A builder keyword argument beyond n_classes / n_input_channels: the config key it comes from, the
    builder's default (the reference's), and the key's help and choices for the config schema."""
    config_key: str
    default: object
    help: str
    choices: tuple = ()


# The width multiplier every family takes (kenshohara's opts name it after ResNets).
WIDEN_FACTOR = Option("resnet_widen_factor", 1.0, "channel width multiplier")

# Every builder takes these; n_input_channels follows the config's modality.
COMMON_DEFAULTS = {"n_classes": 400, "n_input_channels": 3}
INPUT_CHANNELS = {"rgb": 3, "flow": 2}


@dataclass(frozen=True)
class ArchSpec:
    """One registered architecture.

    name       registry name ('resnet18'), what checkpoints and --arch say
    family     the module that describes it here and builds it in every backend (backends/<fw>/models/<family>.py)
    model      config `model` value; with `depth` (config `model_depth`, None for one-depth models) it selects
               the spec
    structure  what the family's model files build from (blocks per stage, endpoints, ...): the module tree
    options    builder keyword -> Option(config key, default)
    head       the classifier's parameter names (replaced when fine-tuning to other classes)
    shapes     shapes(spec, **builder kwargs) -> {neutral parameter name: shape}
    infer      infer(spec, shapes) -> the builder kwargs a checkpoint's shapes show
    identify   identify(shapes) -> the name of the family's arch those shapes are, or None
    normalisation  the mean_dataset (core.spatial.MEAN_STD) its community weights were trained with, the
               config's default: kenshohara's nets the Kinetics statistics (his opts.py default), piergiaj's
               I3D values in [-1, 1] (pytorch-i3d's videotransforms: x / 255 * 2 - 1)
    kenshohara arch string in kenshohara's checkpoints ('resnet-18'), None if he has no such model
    bgr        the config's default `bgr`: its community weights take BGR frames (TSN's BN-Inception)
    segments   its clips are one frame from each of `num_segments` segments of the video (TSN,
               core.temporal.TemporalSegments) instead of consecutive frames
    """
    name: str
    family: str
    model: str
    depth: Optional[int]
    structure: dict
    options: dict
    head: tuple
    shapes: Callable
    infer: Callable
    identify: Callable
    normalisation: str = "kinetics"
    kenshohara: Optional[str] = None
    bgr: bool = False
    segments: bool = False

    def builder_kwargs(self, kwargs):
        """kwargs completed with the defaults; an unknown keyword is a ValueError naming the ones it takes."""
        known = {**COMMON_DEFAULTS, **{name: option.default for name, option in self.options.items()}}
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise ValueError(f"{self.name} takes no {', '.join(unknown)} (its builder keywords: {', '.join(known)})")
        return {**known, **kwargs}

    def expected_shapes(self, **kwargs):
        """{neutral name: shape} of this arch built with `kwargs` in every backend."""
        return self.shapes(self, **self.builder_kwargs(kwargs))

    def config_overrides(self, kwargs):
        """`--set` values of a config that builds this arch with `kwargs` (inverse of model_kwargs)."""
        sets = [f"model={self.model}"] + ([f"model_depth={self.depth}"] if self.depth is not None else [])
        for name, value in kwargs.items():
            if name == "n_classes":
                sets.append(f"n_classes={value}")
            elif name == "n_input_channels":
                sets.append(f"modality={next(m for m, c in INPUT_CHANNELS.items() if c == value)}")
            else:
                sets.append(f"{self.options[name].config_key}={value}")
        return sets


SPECS = {}


def register(spec):
    if spec.name in SPECS:
        raise ValueError(f"architecture '{spec.name}' is registered twice")
    SPECS[spec.name] = spec
    return spec


for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

ARCHS = tuple(SPECS)
MODELS = tuple(dict.fromkeys(spec.model for spec in SPECS.values()))  # config `model` choices


def config_options():
    """{config key: (Option, the config `model`s that read it)} of every registered architecture's options."""
    keys = {}
    for spec in SPECS.values():
        for option in spec.options.values():
            known, models = keys.setdefault(option.config_key, (option, []))
            if known != option:
                raise ValueError(f"config key '{option.config_key}' is described twice, differently ({spec.name})")
            if spec.model not in models:
                models.append(spec.model)
    return keys


def normalisations():
    """{mean_dataset: the config `model`s whose default it is}."""
    models = {}
    for spec in SPECS.values():
        if spec.model not in models.setdefault(spec.normalisation, []):
            models[spec.normalisation].append(spec.model)
    return models


def get(arch):
    if arch not in SPECS:
        raise ValueError(f"unknown architecture '{arch}' (known: {', '.join(ARCHS)})")
    return SPECS[arch]


def depths(model):
    """The `model_depth` values of config `model` (empty for one-depth models)."""
    return [spec.depth for spec in SPECS.values() if spec.model == model and spec.depth is not None]


def arch_name(config):
    """Registry name from kenshohara-style `model` + `model_depth` (the depth is ignored where a model has one)."""
    candidates = [spec for spec in SPECS.values() if spec.model == config["model"]]
    if not candidates:
        raise ValueError(f"unknown model '{config['model']}' (choose from {', '.join(MODELS)})")
    if len(candidates) == 1 and candidates[0].depth is None:
        return candidates[0].name
    for spec in candidates:
        if spec.depth == config["model_depth"]:
            return spec.name
    raise ValueError(f"model_depth {config['model_depth']} is not available for model '{config['model']}' "
                     f"(choose from {', '.join(map(str, depths(config['model'])))})")


def model_kwargs(config, n_classes=None):
    """Builder keyword arguments of the config's architecture."""
    spec = get(arch_name(config))
    return {"n_classes": n_classes or config["n_classes"], "n_input_channels": INPUT_CHANNELS[config["modality"]],
            **{name: config[option.config_key] for name, option in spec.options.items()}}


def build(models_package, arch, kwargs):
    """A backend's model of `arch`: `<models_package>.<family>.build(spec, **complete kwargs)`."""
    spec = get(arch)
    return importlib.import_module(f"{models_package}.{spec.family}").build(spec, **spec.builder_kwargs(kwargs))


def frozen_batchnorms(arch, frozen_bn, **kwargs):
    """Module paths of the BatchNorm layers config `frozen_bn` freezes, in the model's order (the first is the
    stem's): [] for 'none', all but the first for 'partial' (yjxiong/tsn-pytorch models.py TSN.train, 2f0468e),
    all for 'all' and 'statistics' (MMAction2 resnet3d_csn.py ResNet3dCSN.train, 06c11e3)."""
    norms = [name[:-len(".running_mean")] for name in expected_shapes(arch, **kwargs) if name.endswith(".running_mean")]
    return {"none": [], "partial": norms[1:], "all": norms, "statistics": norms}[frozen_bn]


def expected_shapes(arch, **kwargs):
    return get(arch).expected_shapes(**kwargs)


def infer_arch(shapes):
    """(arch, builder kwargs) from a neutral {name: shape} (or {name: array}) dict.

    Each family's `identify` proposes an arch; the first whose expected shapes (with the kwargs the shapes
    show) are exactly the file's wins, so families with similar names (a ResNeXt has a ResNet's) cannot be
    confused. Without an exact fit, the first proposal is returned and the caller's shape check lists the
    misfits."""
    shapes = {name: tuple(getattr(value, "shape", value)) for name, value in shapes.items()}
    proposals = [arch for arch in (identify(shapes) for identify in dict.fromkeys(s.identify for s in SPECS.values()))
                 if arch]
    for arch in proposals:
        kwargs = infer_kwargs(arch, shapes)
        if without_absent_head(arch, expected_shapes(arch, **kwargs), shapes) == shapes:
            return arch, kwargs
    if proposals:
        return proposals[0], infer_kwargs(proposals[0], shapes)
    raise ValueError("cannot tell the architecture from the parameter names and shapes; pass --arch")


def without_absent_head(arch, expected, found):
    """`expected` {name: shape} as tuples, less the head where `found` has none of it (a backbone-only file,
    such as MMAction2's IG-65M CSN backbones: the model's own head is initialised instead)."""
    head = get(arch).head
    absent = not any(name in found for name in head)
    return {name: tuple(shape) for name, shape in expected.items() if not (absent and name in head)}


def infer_kwargs(arch, shapes):
    """The builder kwargs of `arch` that show in a checkpoint's shapes (the others keep their defaults)."""
    spec = get(arch)
    return spec.infer(spec, {name: tuple(getattr(value, "shape", value)) for name, value in shapes.items()})


def kenshohara_arch(arch):
    """'resnet50' -> 'resnet-50', 'r2plus1d_18' -> 'resnet2p1d-18' (his main.py: f'{model}-{depth}')."""
    spec = SPECS.get(arch)
    return spec.kenshohara if spec and spec.kenshohara else arch


def arch_from_kenshohara(name, source):
    """The registry name of the arch string of a kenshohara checkpoint (or of ours)."""
    for spec in SPECS.values():
        if name in (spec.kenshohara, spec.name):
            return spec.name
    known = ", ".join(spec.kenshohara for spec in SPECS.values() if spec.kenshohara)
    raise ValueError(f"{source}: arch '{name}' is not supported (known: {known})")

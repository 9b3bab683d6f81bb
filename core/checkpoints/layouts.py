"""Named checkpoint layouts: how the community projects arrange parameters in their files.

A layout turns a file's tree (see formats.py) into neutral parameters plus what the file says
about itself (`Meta`), and back:
  neutral           a flat {name: array} in the format's own spelling; `.pdparams` as paddle.save
                    writes it (with its name table)
  kenshohara        3D-ResNets-PyTorch `.pth`: {'epoch', 'arch', 'state_dict', 'optimizer', 'scheduler'},
                    keys possibly prefixed `module.` (DataParallel)
  piergiaj          pytorch-i3d `.pt`: the bare I3D state dict
  ms-zoo-i3d        MindSpore model zoo I3D `.ckpt`: flat names such as `Mixed_3b_b0.conv3d.weight`,
                    `Conv3d_1a_7x7_bn.bn2d.gamma`, `logits_conv3d.bias` (its tools/pt2ckpt.py); a head
                    fine-tuned with the zoo's replace_logits is `logits.logits_conv3d.*`
  hassony2          hassony2/kinetics_i3d_pytorch `.pth` (src/i3dpt.py, commit 786fbae): the bare state dict
                    of its I3D, names such as `conv3d_1a_7x7.batch3d.weight`, `mixed_3b.branch_1.0.conv3d.weight`,
                    `conv3d_0c_1x1.conv3d.bias`; the same network as piergiaj's at the sizes it pads right
                    (its "SAME" padding assumes H and W divisible by the stride)
  kylemin           kylemin/S3D `.pt` (S3D_kinetics400.pt): the bare S3D state dict (`base.0.conv_s.weight`,
                    `fc.0.bias`), keys possibly prefixed `module.` (its main.py strips it)
  vcp-s3d           video_classification_pytorch S3D `.pth` (zeal-up, models/S3D/Inceptionv1_S3D.py and
                    utils/utils_3d.py, commit 40531b5): its module names carry TF scopes, e.g.
                    `Mixed_3b.b1b.s3dMixed_3b/Branch_1/Conv3d_0b_3x3x3_s_conv.unit_3d_conv.weight`,
                    `Conv3d_2b_1x1.s3dConv3d_2b_1x1_bn.running_mean`, `logits.logits_conv.bias` (arch s3d_tf)
  mmaction2         MMAction2 `.pth` (mmaction/models/backbones/resnet3d.py, resnet3d_csn.py; heads/i3d_head.py):
                    {'meta', 'state_dict', ...}, parameters `backbone.<name>` and `cls_head.fc_cls.*`; our trees of
                    its networks use its names without `backbone.` and `cls_head.`
  paddle-3dresnets  Paddle port of 3D-ResNets `.pdparams`: a bare pickled dict in Paddle spelling,
                    fc transposed, no name table (its model/convert_to_paddle.py)
"""
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from core.archs import ARCHS, arch_from_kenshohara, expected_shapes, get, kenshohara_arch
from core.state_dict import drop_batch_counters, strip_prefix

PADDLE_NAME_TABLE = "StructuredToParameterName@@"
# What MindSpore training adds to a .ckpt next to the weights (optimizer moments, counters; our
# MindSpore engine's `optimizer.*` state and its text entries arch, epoch, scheduler, config).
_MINDSPORE_OPTIMIZER_PREFIXES = ("moments.", "moment1.", "moment2.", "accum.", "optimizer.")
_MINDSPORE_TRAINING_SCALARS = {"learning_rate", "global_step", "momentum", "beta1_power", "beta2_power",
                               "epoch_num", "step_num", "scale_sense", "current_iterator_step",
                               "last_overflow_iterator_step"}
# The config `model`s whose trees follow MMAction2's names: I3D-ResNet (resnet3d.py) and CSN (resnet3d_csn.py).
MMACTION2_MODELS = ("i3d_resnet", "ip_csn", "ir_csn")
_ZOO_STEM = ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3")


@dataclass
class Meta:
    """What a file says besides its parameters."""
    arch: Optional[str] = None
    epoch: Optional[int] = None
    dropped: list = field(default_factory=list)  # optimizer / scheduler entries left out


def _parameters(tree, source):
    """The flat {name: array} of a file, without batch counters and DataParallel's prefix."""
    if not isinstance(tree, dict) or not tree:
        raise ValueError(f"{source}: expected a dict of parameters, found {type(tree).__name__}")
    not_arrays = [name for name, value in tree.items() if not isinstance(value, np.ndarray)]
    if not_arrays:
        raise ValueError(f"{source}: entries {', '.join(map(str, not_arrays[:8]))} are not arrays; "
                         "is this a training checkpoint in another layout? (see --layout-in)")
    return strip_prefix(drop_batch_counters(tree))


def _read_flat(tree, fmt, source):
    if not isinstance(tree, dict):
        raise ValueError(f"{source}: expected a dict of parameters, found {type(tree).__name__}")
    tree = {name: value for name, value in tree.items() if name != PADDLE_NAME_TABLE}
    if fmt.name != "ckpt":
        return fmt.from_native(_parameters(tree, source)), Meta()
    text = {name: value for name, value in tree.items() if isinstance(value, str)}
    dropped = [name for name in tree if name in text or name in _MINDSPORE_TRAINING_SCALARS
               or name.startswith(_MINDSPORE_OPTIMIZER_PREFIXES)]
    for name in dropped:
        del tree[name]
    arch = text.get("arch") if text.get("arch") in ARCHS else None
    epoch = int(text["epoch"]) if text.get("epoch", "").isdigit() else None
    return fmt.from_native(_parameters(tree, source)), Meta(arch, epoch, dropped)


def _write_flat(state, fmt, meta):
    tree = fmt.to_native(state)
    if fmt.name == "pdparams":
        # paddle.save maps structured names to variable names; paddle.load only needs the keys.
        tree[PADDLE_NAME_TABLE] = {name: name for name in tree}
    return tree


def _read_kenshohara(tree, fmt, source):
    if not isinstance(tree, dict) or not isinstance(tree.get("state_dict"), dict):
        raise ValueError(f"{source}: not a 3D-ResNets-PyTorch checkpoint (no 'state_dict' entry)")
    arch = arch_from_kenshohara(tree["arch"], source) if "arch" in tree else None
    meta = Meta(arch, tree.get("epoch"), [key for key in tree if key not in ("epoch", "arch", "state_dict")])
    return fmt.from_native(_parameters(tree["state_dict"], source)), meta


def _write_kenshohara(state, fmt, meta):
    # No optimizer / scheduler entries: his resume() loads them only when present.
    return {"epoch": meta.epoch or 0, "arch": kenshohara_arch(meta.arch), "state_dict": fmt.to_native(state)}


def _from_zoo(name):
    head, _, rest = name.partition(".")
    if head == "logits" and rest.startswith("logits_conv3d."):
        # The zoo's replace_logits assigns the new head as `self.logits`, which prefixes its names.
        return f"logits.conv3d.{rest[len('logits_conv3d.'):]}"
    if head in _ZOO_STEM:
        return f"{head}.conv3d.{rest}"
    if head.endswith("_bn") and head[:-3] in _ZOO_STEM:
        return f"{head[:-3]}.bn.{rest}"
    if head.startswith(("Mixed_", "logits_")):
        module, _, child = head.rpartition("_")
        return f"{module}.{child}.{rest}"
    return name


def _to_zoo(name):
    module, _, rest = name.partition(".")
    if module in _ZOO_STEM:
        child, _, leaf = rest.partition(".")
        return f"{module}.{leaf}" if child == "conv3d" else f"{module}_{child}.{leaf}"
    child, _, leaf = rest.partition(".")
    return f"{module}_{child}.{leaf}"


def _read_zoo(tree, fmt, source):
    # The zoo keeps MindSpore's BatchNorm leaves (bn2d.gamma ...): undo those, then the flat names.
    state, meta = _read_flat(tree, fmt, source)
    return {_from_zoo(name): value for name, value in state.items()}, meta


def _write_zoo(state, fmt, meta):
    return fmt.to_native({_to_zoo(name): value for name, value in state.items()})


# hassony2's module names -> piergiaj's, applied to the name's dotted parts in order (src/i3dpt.py: Unit3Dpy
# keeps its BatchNorm as `batch3d`, Mixed its branches as branch_0 and Sequentials branch_1 .. branch_3, whose
# branch_3.0 is the parameterless max pool; the logits are `conv3d_0c_1x1`).
_HASSONY2_BRANCHES = {"branch_0": "b0", "branch_1.0": "b1a", "branch_1.1": "b1b", "branch_2.0": "b2a",
                      "branch_2.1": "b2b", "branch_3.1": "b3b"}


def _from_hassony2(name):
    module, _, rest = name.partition(".")
    # conv3d_1a_7x7 -> Conv3d_1a_7x7, mixed_3b -> Mixed_3b
    module = "logits" if module == "conv3d_0c_1x1" else module[:1].upper() + module[1:]
    for theirs, ours in _HASSONY2_BRANCHES.items():
        if rest.startswith(theirs + "."):
            rest = ours + rest[len(theirs):]
            break
    return f"{module}.{rest.replace('batch3d.', 'bn.')}"


def _to_hassony2(name):
    module, _, rest = name.partition(".")
    module = "conv3d_0c_1x1" if module == "logits" else module[0].lower() + module[1:]
    for theirs, ours in _HASSONY2_BRANCHES.items():
        if rest.startswith(ours + "."):
            rest = theirs + rest[len(ours):]
            break
    return f"{module}.{rest.replace('bn.', 'batch3d.')}"


def _read_hassony2(tree, fmt, source):
    state, meta = _read_flat(tree, fmt, source)
    return {_from_hassony2(name): value for name, value in state.items()}, meta


def _write_hassony2(state, fmt, meta):
    return fmt.to_native({_to_hassony2(name): value for name, value in state.items()})


# video_classification_pytorch's Unit3D names its conv and BatchNorm `<scope>_conv` / `<scope>_bn`, where the
# scope is 's3d' + endpoint (+ '/Branch_k/Conv3d_...' in a Mixed block); its STConv3d holds two Unit3Ds
# `<scope>_s_conv` and `<scope>_t_conv`, each with the default scope 'unit_3d'.
_VCP_BRANCHES = {"b0": "Branch_0/Conv3d_0a_1x1x1", "b1a": "Branch_1/Conv3d_0a_1x1x1",
                 "b1b": "Branch_1/Conv3d_0b_3x3x3", "b2a": "Branch_2/Conv3d_0a_1x1x1",
                 "b2b": "Branch_2/Conv3d_0b_3x3x3", "b3b": "Branch_3/Conv3d_0b_1x1x1"}


def _to_vcp(name):
    parts = name.split(".")
    if parts[0] == "logits":
        return f"logits.logits_conv.{parts[-1]}"
    layer, leaf = {"conv3d": "conv", "bn": "bn"}[parts[-2]], parts[-1]
    if parts[0].startswith("Mixed_"):
        path, scope, inner = f"{parts[0]}.{parts[1]}", f"s3d{parts[0]}/{_VCP_BRANCHES[parts[1]]}", parts[2:-2]
    else:
        path, scope, inner = parts[0], f"s3d{parts[0]}", parts[1:-2]
    if inner:  # spatial / temporal half of an STConv3d
        return f"{path}.{scope}_{inner[0][0]}_conv.unit_3d_{layer}.{leaf}"
    return f"{path}.{scope}_{layer}.{leaf}"


def _read_vcp(tree, fmt, source):
    state, meta = _read_flat(tree, fmt, source)
    ours = {_to_vcp(name): name for name in expected_shapes("s3d_tf")}
    return {ours.get(name, name): value for name, value in state.items()}, meta


def _write_vcp(state, fmt, meta):
    return fmt.to_native({_to_vcp(name): value for name, value in state.items()})


_MMACTION2_PARTS = ("backbone.", "cls_head.")


def _read_mmaction2(tree, fmt, source):
    if not isinstance(tree, dict) or not isinstance(tree.get("state_dict"), dict):
        raise ValueError(f"{source}: not an MMAction2 checkpoint (no 'state_dict' entry)")
    meta = Meta(dropped=[key for key in tree if key != "state_dict"])
    state = fmt.from_native(_parameters(tree["state_dict"], source))
    return {_strip_part(name): value for name, value in state.items()}, meta


def _strip_part(name):
    part = next((part for part in _MMACTION2_PARTS if name.startswith(part)), "")
    return name[len(part):]


def _write_mmaction2(state, fmt, meta):
    # The head's parameter names (the spec's, e.g. fc_cls.weight): cls_head.*, the rest backbone.*
    head = set(get(meta.arch).head) if meta.arch else {"fc_cls.weight", "fc_cls.bias"}
    return {"meta": {}, "state_dict": fmt.to_native(
        {f"{'cls_head' if name in head else 'backbone'}.{name}": value for name, value in state.items()})}


def _write_paddle_port(state, fmt, meta):
    return OrderedDict(fmt.to_native(state))


@dataclass(frozen=True)
class Layout:
    name: str
    format: Optional[str]  # the one file format of this layout; None: any
    archs: tuple  # architectures it holds
    read: object
    write: object


LAYOUTS = {layout.name: layout for layout in (
    Layout("neutral", None, ARCHS, _read_flat, _write_flat),
    Layout("kenshohara", "pth", ARCHS, _read_kenshohara, _write_kenshohara),
    Layout("piergiaj", "pth", ("i3d",), _read_flat, _write_flat),
    Layout("ms-zoo-i3d", "ckpt", ("i3d", "i3d_mszoo"), _read_zoo, _write_zoo),
    Layout("hassony2", "pth", ("i3d",), _read_hassony2, _write_hassony2),
    Layout("kylemin", "pth", ("s3d",), _read_flat, _write_flat),
    Layout("vcp-s3d", "pth", ("s3d_tf",), _read_vcp, _write_vcp),
    Layout("mmaction2", "pth", tuple(a for a in ARCHS if get(a).model in MMACTION2_MODELS), _read_mmaction2,
           _write_mmaction2),
    Layout("paddle-3dresnets", "pdparams", tuple(a for a in ARCHS if a.startswith("resnet")), _read_flat,
           _write_paddle_port),
)}


def get_layout(name, fmt, arch=None, source=""):
    """The layout `name`, checked against the file format and the architecture."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown layout '{name}' (choose from {', '.join(LAYOUTS)})")
    layout = LAYOUTS[name]
    if layout.format not in (None, fmt.name):
        raise ValueError(f"{source}: layout '{name}' is a .{layout.format} layout, not .{fmt.name}")
    if arch is not None and arch not in layout.archs:
        raise ValueError(f"{source}: layout '{name}' holds {', '.join(layout.archs)}, not {arch}")
    return layout


def detect_layout(tree, fmt):
    """The layout a file read as `tree` is in (its format's community layout when it fits)."""
    if not isinstance(tree, dict):
        return "neutral"
    names = strip_prefix({name: None for name in tree if isinstance(name, str)})
    if fmt.name == "pth" and isinstance(tree.get("state_dict"), dict):
        inner = strip_prefix({name: None for name in tree["state_dict"] if isinstance(name, str)})
        return "mmaction2" if any(name.startswith(_MMACTION2_PARTS) for name in inner) else "kenshohara"
    if fmt.name == "pth" and "Conv3d_1a_7x7.conv3d.weight" in names:
        return "piergiaj"
    if fmt.name == "pth" and "Conv3d_1a_7x7.s3dConv3d_1a_7x7_s_conv.unit_3d_conv.weight" in names:
        return "vcp-s3d"
    if fmt.name == "pth" and "base.0.conv_s.weight" in names:
        return "kylemin"
    if fmt.name == "pth" and "conv3d_1a_7x7.conv3d.weight" in names:
        return "hassony2"
    if fmt.name == "ckpt" and "Conv3d_1a_7x7.weight" in names:
        return "ms-zoo-i3d"
    if fmt.name == "pdparams" and PADDLE_NAME_TABLE not in tree and "conv1.weight" in names:
        return "paddle-3dresnets"
    return "neutral"

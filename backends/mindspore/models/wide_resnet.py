"""Wide ResNet, as kenshohara/3D-ResNets-PyTorch models/wide_resnet.py (core/archs/wide_resnet.py): ResNeXt's
tree with ungrouped bottlenecks, built by the same model."""
from backends.mindspore.models.resnext import build  # noqa: F401

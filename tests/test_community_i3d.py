"""I3D files of the MindSpore model zoo and of hassony2/kinetics_i3d_pytorch, and the zoo's own I3D variant.

- A zoo .ckpt (pt2ckpt.py's names, or the project's `--layout-out ms-zoo-i3d` output, or a zoo fine-tuning's
  `logits.logits_conv3d.*` head) is pretrain_path and evaluate's resume_path in every backend.
- hassony2's .pth (`conv3d_1a_7x7.batch3d.*`, `mixed_3b.branch_1.0.*`) reads as piergiaj's tree.
- `i3d_mszoo` computes the zoo's head (mindspore-ai/models research/cv/I3D/src/i3d.py, commit eab643f51: a max
  pool of (T / 8, 7, 7), stride 1, on Mixed_5c, then the logits conv) with BatchNorm eps 1e-5.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backends import BACKENDS, load
from convert import convert, read_checkpoint
from core.config import load_config
from tests._training_data import tiny_config, write_colour_dataset
from tests.community import hassony2_name, random_model, write_hassony2_pth, write_zoo_ckpt

KWARGS = dict(n_classes=5, widen_factor=0.125)


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def zoo_files(tmp_path_factory):
    """(neutral state, {kind: path}) of one seeded I3D written three ways as zoo .ckpt files."""
    root = tmp_path_factory.mktemp("zoo")
    write_colour_dataset(str(root))
    model = random_model("i3d", seed=3, **KWARGS)
    state = load("torch", "interop").to_numpy_state(model)
    torch.save(model.state_dict(), root / "rgb.pt")
    files = {"pt2ckpt": root / "pt2ckpt.ckpt", "replace_logits": root / "finetuned.ckpt",
             "layout-out": root / "converted.ckpt"}
    write_zoo_ckpt(files["pt2ckpt"], state)
    write_zoo_ckpt(files["replace_logits"], state, replaced_logits=True)
    convert(str(root / "rgb.pt"), str(files["layout-out"]), layout_out="ms-zoo-i3d", log=quiet)
    return root, state, files


def test_zoo_fine_tuned_head_is_read_as_the_logits(zoo_files):
    _, state, files = zoo_files
    import mindspore
    names = set(mindspore.load_checkpoint(str(files["replace_logits"])))
    assert {"logits.logits_conv3d.weight", "logits.logits_conv3d.bias", "Mixed_5c_b3b.bn.bn2d.gamma"} <= names
    for kind, path in files.items():
        checkpoint = read_checkpoint(str(path))
        assert (checkpoint.layout, checkpoint.arch, checkpoint.model_kwargs["n_classes"]) == ("ms-zoo-i3d", "i3d", 5)
        assert sorted(checkpoint.state) == sorted(state), kind
        for name, value in state.items():
            np.testing.assert_array_equal(checkpoint.state[name], value, err_msg=f"{kind}: {name}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_zoo_ckpt_is_pretrain_path_and_resume_path_in_every_backend(backend, zoo_files):
    root, state, files = zoo_files
    engine_class, to_numpy_state = load(backend, "engine").Engine, load(backend, "interop").to_numpy_state
    # evaluate --resume_path: the file's weights, exactly (the zoo script's names and convert's output).
    for kind in ("pt2ckpt", "layout-out"):
        config = load_config(tiny_config(str(root), root / f"{backend}_eval", model="i3d", n_classes=5,
                                         resume_path=str(files[kind])), (), ())
        evaluated = to_numpy_state(engine_class(config, training=False).model)
        for name, value in state.items():
            np.testing.assert_array_equal(evaluated[name], value, err_msg=f"{kind}: {name}")
    # pretrain_path: a zoo fine-tuning's file gives the body, and a new head for 4 classes.
    config = load_config(tiny_config(str(root), root / f"{backend}_ft", model="i3d", n_classes=4,
                                     n_pretrain_classes=5, pretrain_path=str(files["replace_logits"])), (), ())
    tuned = to_numpy_state(engine_class(config).model)
    assert tuned["logits.conv3d.weight"].shape[0] == 4
    for name, value in state.items():
        if not name.startswith("logits."):
            np.testing.assert_array_equal(tuned[name], value, err_msg=name)


def test_hassony2_file_reads_as_piergiaj_tree_and_gives_the_same_logits(tmp_path):
    path = tmp_path / "model_rgb.pth"
    model = write_hassony2_pth(str(path), n_classes=5, seed=4, widen_factor=0.125)
    saved = torch.load(path, weights_only=True)
    # Its names as hassony2's src/i3dpt.py has them.
    assert {"conv3d_1a_7x7.conv3d.weight", "conv3d_1a_7x7.batch3d.running_var", "mixed_3b.branch_1.0.conv3d.weight",
            "mixed_5c.branch_2.1.batch3d.bias", "mixed_4f.branch_3.1.conv3d.weight", "conv3d_0c_1x1.conv3d.bias",
            "mixed_3b.branch_0.batch3d.num_batches_tracked"} <= set(saved)
    checkpoint = read_checkpoint(str(path))
    assert (checkpoint.layout, checkpoint.arch, checkpoint.model_kwargs["n_classes"]) == ("hassony2", "i3d", 5)
    reloaded = load("torch", "models").build_model("i3d", **KWARGS).eval()
    load("torch", "interop").load_numpy_state(reloaded, checkpoint.state)
    clip = torch.from_numpy(np.random.default_rng(5).uniform(-1, 1, (2, 3, 16, 64, 64)).astype(np.float32))
    with torch.no_grad():
        expected, logits = model(clip), reloaded(clip)
    assert expected.abs().max() > 0.1
    assert (logits - expected).abs().max() <= 1e-6 * expected.abs().max()

    # And back: convert writes hassony2's names.
    convert(str(path), str(tmp_path / "again.pth"), layout_out="hassony2", log=quiet)
    again = torch.load(tmp_path / "again.pth", weights_only=True)
    assert sorted(again) == sorted(hassony2_name(name) for name in checkpoint.state)


def test_i3d_mszoo_is_the_zoo_head_and_batchnorm():
    """At 224 x 224 and T = 16 frames (Mixed_5c: 2 x 7 x 7), i3d_mszoo's logits are the zoo's
    squeeze(logits(MaxPool3D((T / 8, 7, 7), stride 1, valid)(Mixed_5c))); i3d's differ on the same weights."""
    zoo = random_model("i3d_mszoo", seed=6, n_classes=6, widen_factor=0.0625)
    assert all(module.eps == 1e-5 and module.momentum == 0.9 for module in zoo.modules()
               if isinstance(module, torch.nn.BatchNorm3d))
    piergiaj = load("torch", "models").build_model("i3d", n_classes=6, widen_factor=0.0625).eval()
    piergiaj.load_state_dict(zoo.state_dict())
    features = {}
    zoo.Mixed_5c.register_forward_hook(lambda module, inputs, output: features.setdefault("x", output))
    clip = torch.from_numpy(np.random.default_rng(7).uniform(-1, 1, (1, 3, 16, 224, 224)).astype(np.float32))
    with torch.no_grad():
        logits = zoo(clip)
        x = features["x"]
        assert x.shape[2:] == (2, 7, 7)
        reference = zoo.logits(F.max_pool3d(x, (16 // 8, 7, 7), stride=1)).flatten(1)
        other = piergiaj(clip)
    assert reference.abs().max() > 0.1
    torch.testing.assert_close(logits, reference, rtol=0, atol=1e-6 * float(reference.abs().max()))
    assert (other - logits).abs().max() > 0.05 * reference.abs().max()

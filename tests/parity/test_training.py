"""One optimiser step and ten steps through each backend's engine agree across torch, Paddle and MindSpore.

Random weights and a 4-clip batch of 4 x 64 x 64 (BatchNorm in training mode sees at least 16 values per
channel in every layer). ResNet-10 is the model: its training forward is well conditioned, so float32
rounding stays at 1e-7. In deeper random nets a channel with a nearly constant batch makes BatchNorm
amplify rounding, and an activation within rounding of zero can fall on either side of a ReLU; then one
step already differs by more than 1e-5 although every backend is right (torch itself differs that much
from its own float64 result).
"""
import numpy as np
import pytest

from convert.compare import random_state
from tests.parity.run_backend import BACKENDS, run_backends

KWARGS = dict(n_classes=3, widen_factor=0.125)
ARCH = "resnet10"
STATS = ("running_mean", "running_var")


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((4, 3, 4, 64, 64)).astype(np.float32), np.array([0, 1, 2, 1])


def one_step(tmp_path, batch, task, lr):
    weights = {ARCH: random_state(ARCH, seed=0, **KWARGS)}
    clip, labels = batch
    results = run_backends(BACKENDS, task, [ARCH], KWARGS, weights, clip, str(tmp_path), labels=labels, lr=lr,
                           momentum=0.9, weight_decay=1e-3)
    prefix = f"{ARCH}/state/"
    states = {backend: {k[len(prefix):]: v for k, v in out.items() if k.startswith(prefix)}
              for backend, out in results.items()}
    return weights[ARCH], states, {backend: float(out[f"{ARCH}/loss"]) for backend, out in results.items()}


def relative_error(a, b):
    return np.abs(a - b).max() / max(1.0, np.abs(a).max())


def test_sgd_step_updates_parameters_and_batchnorm_statistics_alike(tmp_path, batch):
    before, states, losses = one_step(tmp_path, batch, "sgd", lr=0.01)
    reference = states["torch"]
    assert not np.allclose(reference["conv1.weight"], before["conv1.weight"])
    # Paddle keeps the unbiased batch variance too (backends/paddle/models BatchNorm3D): n / (n - 1) would show.
    assert not np.allclose(reference["bn1.running_var"], before["bn1.running_var"])
    for backend in ("paddle", "mindspore"):
        assert abs(losses[backend] - losses["torch"]) <= 1e-5 * losses["torch"]
        assert states[backend].keys() == reference.keys()
        for name, value in reference.items():
            assert relative_error(value, states[backend][name]) <= 1e-5, (backend, name)


@pytest.fixture(scope="module")
def adam_step(tmp_path_factory, batch):
    return one_step(tmp_path_factory.mktemp("adam"), batch, "adam", lr=1e-3)


@pytest.mark.parametrize("backend", ["paddle", "mindspore"])
def test_adam_step_agrees_except_where_the_gradient_is_rounding_noise(adam_step, backend):
    before, states, losses = adam_step
    reference = states["torch"]
    assert abs(losses[backend] - losses["torch"]) <= 1e-5 * losses["torch"]
    moved = np.abs(reference["fc.weight"] - before["fc.weight"])
    assert np.allclose(np.median(moved), 1e-3, rtol=0.01)  # Adam's first step is lr * sign(gradient)
    off = total = 0
    for name, value in reference.items():
        other = states[backend][name]
        if name.endswith(STATS):
            assert relative_error(value, other) <= 1e-5, name
            continue
        # Adam moves every element by about lr whatever its gradient's size, so an element whose
        # gradient is rounding noise may step either way; such elements must be rare.
        assert np.abs(value - other).max() <= 2.5e-3, name
        off += int((np.abs(value - other) > 1e-5 * max(1.0, np.abs(value).max())).sum())
        total += value.size
    assert off <= 1e-3 * total, (off, total)


def test_ten_sgd_steps_give_the_same_loss_curve(tmp_path, batch):
    weights = {ARCH: random_state(ARCH, seed=0, **KWARGS)}
    clip, labels = batch
    results = run_backends(BACKENDS, "steps", [ARCH], KWARGS, weights, clip, str(tmp_path), labels=labels,
                           steps=10, lr=0.01, momentum=0.9, weight_decay=1e-3)
    reference = results["torch"][f"{ARCH}/losses"]
    assert len(reference) == 10 and reference[-1] < 0.5 * reference[0]  # it learns the batch
    for backend in ("paddle", "mindspore"):
        np.testing.assert_allclose(results[backend][f"{ARCH}/losses"], reference, rtol=1e-3, err_msg=backend)

"""core.mixing: target distributions, mixup and cutmix on numpy batches."""
import numpy as np

from core.mixing import batch_rng, mix_batch, one_hot

CONFIG = {"n_classes": 4, "label_smoothing": 0.0, "mixup_alpha": 0.0, "cutmix_alpha": 0.0}


def test_label_smoothing_is_torchs():
    targets = one_hot(np.array([2, 0]), 4, 0.1)
    np.testing.assert_allclose(targets[0], [0.025, 0.025, 0.925, 0.025])
    np.testing.assert_allclose(targets.sum(1), 1, rtol=1e-6)


def test_mixup_blends_clips_and_targets_with_one_weight():
    x = np.random.default_rng(0).normal(size=(6, 3, 2, 8, 8)).astype(np.float32)
    labels = np.arange(6) % 4
    mixed, targets = mix_batch(x, labels, dict(CONFIG, mixup_alpha=0.4), np.random.default_rng(1))
    lam = targets[np.arange(6), labels].min()  # each clip's own class keeps weight lam (or more, if shared)
    order = np.random.default_rng(1)
    order.integers(1), order.beta(0.4, 0.4)
    permutation = order.permutation(6)
    np.testing.assert_allclose(mixed, lam * x + (1 - lam) * x[permutation], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(targets.sum(1), 1, rtol=1e-6)


def test_cutmix_pastes_one_box_in_every_frame_and_weights_by_its_area():
    x = np.zeros((4, 3, 2, 16, 16), np.float32)
    x += np.arange(4, dtype=np.float32)[:, None, None, None, None]  # clip i is all i
    labels = np.array([0, 1, 2, 3])
    mixed, targets = mix_batch(x, labels, dict(CONFIG, cutmix_alpha=1.0), np.random.default_rng(5))
    pasted = (mixed != x)[:, 0, 0]  # the box, where another clip's value shows
    assert pasted.any()
    for clip in range(4):
        box = pasted[clip]
        assert (mixed[clip][:, :, box] != clip).all() or not box.any()
        np.testing.assert_allclose(targets[clip, clip], 1 - box.mean() if box.any() else 1, rtol=1e-6)
    assert (mixed[:, :, 0] == mixed[:, :, 1]).all()  # the same box in every frame


def test_draws_depend_only_on_seed_epoch_and_batch():
    x = np.random.default_rng(0).normal(size=(4, 3, 2, 8, 8)).astype(np.float32)
    config = dict(CONFIG, mixup_alpha=1.0, cutmix_alpha=1.0)
    first = mix_batch(x, np.arange(4), config, batch_rng(1, 3, 7))
    again = mix_batch(x, np.arange(4), config, batch_rng(1, 3, 7))
    other = mix_batch(x, np.arange(4), config, batch_rng(1, 4, 7))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], other[1])

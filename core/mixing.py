"""Training targets beyond class indices, made once on the numpy batch so every backend sees the same clips.

label_smoothing: (1 - e) one-hot + e / n_classes (torch's cross_entropy(label_smoothing=e)). mixup (Zhang et
al. 2018) and cutmix (Yun et al. 2019) as MMAction2's MixupBlending / CutmixBlending apply them to video:
each batch is blended with a permutation of itself, weight lam ~ Beta(alpha, alpha); cutmix pastes one
spatial box (the same in every frame) covering 1 - lam of the area and recomputes lam from the box as
clipped. With both on, each batch takes one of the two with equal chance. Draws depend on (seed, epoch,
batch, rank) only, so a resumed run mixes as the uninterrupted one did.
"""
import numpy as np


def mixes(config):
    return bool(config["label_smoothing"] or config["mixup_alpha"] or config["cutmix_alpha"])


def one_hot(labels, n_classes, smoothing=0.0):
    targets = np.full((len(labels), n_classes), smoothing / n_classes, np.float32)
    targets[np.arange(len(labels)), labels] += 1 - smoothing
    return targets


def mix_batch(x, labels, config, rng):
    """(clips, target distributions) of a training batch (B, C, T, H, W) with class indices `labels`."""
    targets = one_hot(labels, config["n_classes"], config["label_smoothing"])
    kinds = [kind for kind in ("mixup", "cutmix") if config[f"{kind}_alpha"] > 0]
    if not kinds or len(x) < 2:
        return x, targets
    kind = kinds[rng.integers(len(kinds))]
    lam = float(rng.beta(config[f"{kind}_alpha"], config[f"{kind}_alpha"]))
    order = rng.permutation(len(x))
    if kind == "mixup":
        x = (lam * x + (1 - lam) * x[order]).astype(x.dtype)
    else:
        height, width = x.shape[-2:]
        cut_h, cut_w = int(height * np.sqrt(1 - lam)), int(width * np.sqrt(1 - lam))
        cy, cx = rng.integers(height), rng.integers(width)
        top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
        left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
        x = x.copy()
        x[..., top:bottom, left:right] = x[order][..., top:bottom, left:right]
        lam = 1 - (bottom - top) * (right - left) / (height * width)
    return x, (lam * targets + (1 - lam) * targets[order]).astype(np.float32)


def batch_rng(seed, epoch, index, rank=0):
    return np.random.default_rng([seed, epoch, index, 11, rank])

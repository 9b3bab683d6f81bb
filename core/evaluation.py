"""Video-level evaluation every backend runs, written once.

A backend supplies `predict(x) -> logits` (numpy in, numpy out). Every
sliding-window clip of every video of a subset is scored; a video's score
is the mean of its clips' softmax (kenshohara's inference), and the mean of
its clips' logits is kept for logit-sum fusion. Outputs in result_path:
`val.json` (kenshohara's format, top-k), `scores_<tag>.npz` (core.scores,
read by core.fuse), `confusion_<tag>.png` (of the labelled videos; none without any).
"""
import os

import numpy as np
from tqdm import tqdm

from core import metrics
from core.datasets import evaluation_set, load_annotations
from core.fuse import accuracies, accuracy_table, fuse
from core.loader import BatchLoader
from core.scores import Scores, save_scores


def score_videos(config, predict, subset, desc="evaluate"):
    """Run every clip of `subset` through `predict`; return (Scores, clip accuracy top-1, top-5)."""
    dataset = evaluation_set(config, subset)
    batch_size = config["inference_batch_size"] or config["batch_size"]
    loader = BatchLoader(dataset, batch_size, shuffle=False, seed=config["manual_seed"],
                         n_workers=config["n_threads"], drop_last=False)
    n_videos, n_classes = len(dataset.video_ids), len(dataset.class_names)
    logit_sums, prob_sums = metrics.VideoScoreSums(n_videos, n_classes), metrics.VideoScoreSums(n_videos, n_classes)
    clip_top1 = clip_top5 = n_labelled = 0
    for x, y, video_index in tqdm(loader, desc=desc, dynamic_ncols=True, disable=None):
        logits = np.asarray(predict(x), np.float64)
        logit_sums.add(logits, video_index)
        prob_sums.add(metrics.softmax(logits), video_index)
        labelled = y >= 0  # testing videos (label -1) have no accuracy
        if labelled.any():
            y, logits = y[labelled], logits[labelled]
            clip_top1 += metrics.topk_accuracy(logits, y, 1) * len(y)
            clip_top5 += metrics.topk_accuracy(logits, y, min(5, n_classes)) * len(y)
            n_labelled += len(y)
    scores = Scores(video_ids=list(dataset.video_ids), labels=np.asarray(dataset.labels),
                    class_names=list(dataset.class_names),
                    logits=logit_sums.means().astype(np.float32), probs=prob_sums.means().astype(np.float32))
    if not n_labelled:
        return scores, float("nan"), float("nan")
    return scores, clip_top1 / n_labelled, clip_top5 / n_labelled


def write_outputs(config, scores, tag):
    result_path = config["result_path"]
    os.makedirs(result_path, exist_ok=True)
    suffix = "" if tag == "rgb" else f"_{tag}"
    metrics.write_val_json(os.path.join(result_path, f"val{suffix}.json"), scores.video_ids, scores.probs,
                           scores.class_names, config["output_topk"])
    save_scores(os.path.join(result_path, f"scores_{tag}.npz"), scores.video_ids, scores.labels,
                scores.class_names, scores.logits, scores.probs)
    labelled = scores.labels >= 0  # testing videos (label -1) have no place in a confusion matrix
    if labelled.any():
        cm = metrics.confusion_matrix(scores.labels[labelled], scores.probs[labelled].argmax(1),
                                      len(scores.class_names))
        metrics.plot_confusion_matrix(cm, scores.class_names, os.path.join(result_path, f"confusion_{tag}.png"))


def evaluate(config, predict, tag="rgb", subset=None, log=print):
    """Score one model on a subset, write its outputs and print its accuracy."""
    subset = subset or config["inference_subset"]
    scores, clip1, clip5 = score_videos(config, predict, subset, desc=f"evaluate {tag}")
    write_outputs(config, scores, tag)
    video = accuracies(scores)
    log(f"[{tag}] {len(scores.video_ids)} videos of '{subset}': clip top-1 {clip1:.4f} top-5 {clip5:.4f} | "
        f"video top-1 {video['top1']:.4f} top-5 {video['top5']:.4f} mean class {video['mean_class']:.4f}")
    n_listed = len(load_annotations(config["annotation_path"], subset)[1])
    if n_listed > len(scores.video_ids) and (scores.labels >= 0).any():
        # The line above is eval_accuracy --ignore's protocol; the reference's default also counts the listed
        # videos without frames (wrong).
        share = len(scores.video_ids) / n_listed
        log(f"[{tag}] {n_listed - len(scores.video_ids)} of {n_listed} listed videos have no frames; counting them "
            f"wrong (eval_accuracy without --ignore): video top-1 {video['top1'] * share:.4f} "
            f"top-5 {video['top5'] * share:.4f}")
    return scores, video


def evaluate_joint(rgb_config, rgb_predict, flow_config, flow_predict, method="softmax", subset=None,
                   log=print):
    """RGB, flow and fused accuracy side by side (the MindSpore zoo's --test_mode joint)."""
    rgb_scores, rgb = evaluate(rgb_config, rgb_predict, "rgb", subset, log)
    flow_scores, flow = evaluate(flow_config, flow_predict, "flow", subset, log)
    joint_scores = fuse(rgb_scores, flow_scores, method)
    write_outputs(rgb_config, joint_scores, "joint")
    joint = accuracies(joint_scores)
    log(f"{len(joint_scores.video_ids)} videos of '{subset or rgb_config['inference_subset']}'")
    log(accuracy_table({"rgb": rgb, "flow": flow, f"joint ({method})": joint}))
    return {"rgb": rgb, "flow": flow, "joint": joint}

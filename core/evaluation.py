"""Video-level evaluation every backend runs, written once.

A backend supplies `predict(x) -> logits` (numpy in, numpy out). Every
sliding-window clip of every video of a subset is scored; a video's score
is the mean of its clips' softmax (kenshohara's inference), and the mean of
its clips' logits is kept for logit-sum fusion. With `n_inference_clips` and
`inference_crop: three` the views are MMAction2's (core.temporal
EvenlySpacedClips x core.spatial ThreeCrop) and the mean of their softmax is
its average_clips='prob', the setting of its released recognition configs. Outputs in result_path:
`val.json` (kenshohara's format, top-k), `scores_<tag>.npz` (core.scores,
read by core.fuse), `confusion_<tag>.png` (of the labelled videos; none without any).
"""
import json
import os

import numpy as np
from tqdm import tqdm

from core import metrics
from core.datasets import evaluation_set
from core.fuse import accuracies, accuracy_table, fuse
from core.loader import BatchLoader, TooManyBadClips
from core.scores import Scores, save_scores
from core.training import atomic_write


def score_videos(config, predict, subset, desc="evaluate", clip_records=None, dataset=None):
    """Run every clip (view) of `subset` through `predict`; return (Scores, clip accuracy top-1, top-5).

    `clip_records`, a list, receives (video id, [first frame, last frame + 1], softmax) per clip (view).
    `dataset`: the subset's evaluation_set when already built.
    """
    dataset = dataset or evaluation_set(config, subset)
    batch_size = config["inference_batch_size"] or config["batch_size"]
    loader = BatchLoader(dataset, batch_size, shuffle=False, seed=config["manual_seed"],
                         n_workers=config["n_threads"], drop_last=False, max_bad_clips=config["max_bad_clips"])
    n_videos = len(dataset.video_ids)
    logit_sums = prob_sums = None  # sized by the model's classes, which may outnumber the annotation's labels
    clip_top1 = clip_top5 = n_labelled = 0
    for x, y, video_index in tqdm(loader, desc=desc, dynamic_ncols=True, disable=None):
        logits = np.asarray(predict(x), np.float64)
        if logit_sums is None:
            logit_sums, prob_sums = (metrics.VideoScoreSums(n_videos, logits.shape[1]) for _ in range(2))
        if clip_records is not None:
            for probs in metrics.softmax(logits):
                clip_video, frames, _ = dataset.view(len(clip_records))
                clip_records.append((dataset.video_ids[clip_video], [min(frames), max(frames) + 1], probs))
        logit_sums.add(logits, video_index)
        prob_sums.add(metrics.softmax(logits), video_index)
        labelled = y >= 0  # testing videos (label -1) have no accuracy
        if labelled.any():
            y, logits = y[labelled], logits[labelled]
            clip_top1 += metrics.topk_accuracy(logits, y, 1) * len(y)
            clip_top5 += metrics.topk_accuracy(logits, y, min(5, logits.shape[1])) * len(y)
            n_labelled += len(y)
    # A video with an unreadable clip is left out of the video-level results (its other clips still counted).
    bad = {video for video, _ in loader.skipped}
    kept = [video for video in range(n_videos) if video not in bad]
    if logit_sums is None:
        raise TooManyBadClips(f"no clip of the '{subset}' videos could be read")
    n_classes = logit_sums.sums.shape[1]
    # Classes of the model beyond the annotation's labels (e.g. a 400-class file on 5 labels) are named by index.
    class_names = list(dataset.class_names) + [f"class_{c}" for c in range(len(dataset.class_names), n_classes)]
    scores = Scores(video_ids=[dataset.video_ids[v] for v in kept], labels=np.asarray(dataset.labels)[kept],
                    class_names=class_names, logits=logit_sums.means()[kept].astype(np.float32),
                    probs=prob_sums.means()[kept].astype(np.float32))
    if not n_labelled:
        return scores, float("nan"), float("nan")
    return scores, clip_top1 / n_labelled, clip_top5 / n_labelled


# kenshohara's inference writes <inference_subset>.json with his subset names (train / val / test).
RESULT_NAMES = {"training": "train", "validation": "val", "testing": "test"}


def output_names(tag, subset):
    """{"results", "scores", "confusion"} file names: val.json, scores_rgb.npz, confusion_rgb.png for the
    validation subset, train.json / test.json and scores_rgb_train.npz ... for the others."""
    short = RESULT_NAMES[subset]
    suffix = "" if subset == "validation" else f"_{short}"
    return {"results": f"{short}{'' if tag == 'rgb' else '_' + tag}.json", "scores": f"scores_{tag}{suffix}.npz",
            "confusion": f"confusion_{tag}{suffix}.png"}


def write_outputs(config, scores, tag, subset=None):
    """Write the results JSON, the scores and the confusion matrix; return the confusion matrix (None
    when no video has a label)."""
    result_path = config["result_path"]
    os.makedirs(result_path, exist_ok=True)
    names = output_names(tag, subset or config["inference_subset"])
    metrics.write_val_json(os.path.join(result_path, names["results"]), scores.video_ids, scores.probs,
                           scores.class_names, config["output_topk"] if config["output_topk"] > 0 else
                           len(scores.class_names))  # kenshohara: output_topk <= 0 writes every class
    save_scores(os.path.join(result_path, names["scores"]), scores.video_ids, scores.labels,
                scores.class_names, scores.logits, scores.probs)
    labelled = scores.labels >= 0  # testing videos (label -1) have no place in a confusion matrix
    if not labelled.any():
        return None
    cm = metrics.confusion_matrix(scores.labels[labelled], scores.probs[labelled].argmax(1), len(scores.class_names))
    metrics.plot_confusion_matrix(cm, scores.class_names, os.path.join(result_path, names["confusion"]))
    return cm


def write_clip_results(path, clip_records, class_names, top_k):
    """kenshohara's --inference_no_average results: {"results": {video: [{"segment", "result": top-k}, ...]}}."""
    results = {}
    for video_id, segment, probs in clip_records:
        entry = metrics.video_results([video_id], probs[None], class_names, top_k)[video_id]
        results.setdefault(video_id, []).append({"segment": segment, "result": entry})
    atomic_write(path, lambda tmp: open(tmp, "w").write(json.dumps({"results": results})))


def evaluate(config, predict, tag="rgb", subset=None, log=print, no_average=False, dataset=None):
    """Score one model on a subset, write its outputs and print its accuracy.

    `no_average` (kenshohara's --inference_no_average): the results JSON lists every clip's top-k with its
    segment instead of the video's average (the scores and accuracies are still the video's). `dataset`: the
    subset's evaluation_set when already built.
    """
    subset = subset or config["inference_subset"]
    dataset = dataset or evaluation_set(config, subset)
    clip_records = [] if no_average else None
    scores, clip1, clip5 = score_videos(config, predict, subset, desc=f"evaluate {tag}", clip_records=clip_records,
                                        dataset=dataset)
    cm = write_outputs(config, scores, tag, subset)
    if no_average:
        write_clip_results(os.path.join(config["result_path"], output_names(tag, subset)["results"]), clip_records,
                           scores.class_names, config["output_topk"] if config["output_topk"] > 0 else
                           len(scores.class_names))
    video = accuracies(scores)
    written = output_names(tag, subset)["results"]
    if cm is None:  # no labels (the testing subset): scores only, no accuracy to print
        log(f"[{tag}] {len(scores.video_ids)} videos of '{subset}', none labelled: scores in {written}")
        return scores, video
    top5 = len(scores.class_names) > 5  # top-5 of 5 classes or fewer is always 1
    log(f"[{tag}] {len(scores.video_ids)} videos of '{subset}' ({int(cm.sum())} labelled): clip top-1 {clip1:.4f}"
        + (f" top-5 {clip5:.4f}" if top5 else "") + f" | video top-1 {video['top1']:.4f}"
        + (f" top-5 {video['top5']:.4f}" if top5 else "") + f" mean class {video['mean_class']:.4f} -> {written}")
    log(metrics.per_class_table(cm, scores.class_names))
    n_listed = dataset.n_listed
    if n_listed > len(scores.video_ids):
        # The line above is eval_accuracy --ignore's protocol; the reference's default also counts the listed
        # videos without frames (wrong).
        share = len(scores.video_ids) / n_listed
        log(f"[{tag}] {n_listed - len(scores.video_ids)} of {n_listed} listed videos have no frames; counting them "
            f"wrong (eval_accuracy without --ignore): video top-1 {video['top1'] * share:.4f}"
            + (f" top-5 {video['top5'] * share:.4f}" if top5 else ""))
    return scores, video


def evaluate_joint(rgb_config, rgb_predict, flow_config, flow_predict, method="softmax", subset=None,
                   log=print, datasets=(None, None)):
    """RGB, flow and fused accuracy side by side (the MindSpore zoo's --test_mode joint); `datasets`: the RGB
    and flow evaluation_sets when already built."""
    rgb_scores, rgb = evaluate(rgb_config, rgb_predict, "rgb", subset, log, dataset=datasets[0])
    flow_scores, flow = evaluate(flow_config, flow_predict, "flow", subset, log, dataset=datasets[1])
    joint_scores = fuse(rgb_scores, flow_scores, method)
    write_outputs(rgb_config, joint_scores, "joint", subset)
    joint = accuracies(joint_scores)
    log(f"{len(joint_scores.video_ids)} videos of '{subset or rgb_config['inference_subset']}'")
    log(accuracy_table({"rgb": rgb, "flow": flow, f"joint ({method})": joint}))
    return {"rgb": rgb, "flow": flow, "joint": joint}

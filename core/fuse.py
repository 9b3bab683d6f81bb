"""Two-stream fusion of per-video scores: RGB + optical flow (I3D joint evaluation).

    python -m core.fuse results_rgb/scores_rgb.npz results_flow/scores_flow.npz \\
        --annotation ucf101_01.json --subset validation

prints video-level top-1, top-5 and mean class accuracy of RGB, flow and the
fusion side by side, like the MindSpore model zoo's `eval.py --test_mode
joint`. Fusion is the mean of the two softmax scores (default) or the sum of
the logits (`--method logits`, what the zoo's eval.py does). Labels come from
the annotation JSON; videos of the subset that have no scores are reported
and left out.
"""
import argparse
import sys

import numpy as np

from core.datasets import load_annotations
from core.metrics import mean_class_accuracy, softmax, topk_accuracy, write_val_json
from core.scores import Scores, load_scores, save_scores

FUSION_METHODS = ("softmax", "logits")


def _some(ids, n=10):
    shown = ", ".join(ids[:n])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > n else "")


def select(scores, video_ids, labels=None):
    """The rows of `video_ids` in that order, with new `labels` if given."""
    row = {video_id: i for i, video_id in enumerate(scores.video_ids)}
    index = [row[video_id] for video_id in video_ids]
    return Scores(list(video_ids), scores.labels[index] if labels is None else np.asarray(labels, np.int64),
                  list(scores.class_names), scores.logits[index], scores.probs[index])


def fused(rgb_logits, rgb_probs, flow_logits, flow_probs, method="softmax"):
    """(logits, probs) of the two streams' video scores fused: evaluate --mode joint, core.fuse and predict
    --mode joint all fuse here. The logits are summed; the probs are the mean of the two ('softmax') or the
    softmax of the summed logits ('logits')."""
    if method not in FUSION_METHODS:
        raise ValueError(f"unknown fusion method {method!r}; choose from {', '.join(FUSION_METHODS)}")
    logits = rgb_logits + flow_logits
    return logits, (rgb_probs + flow_probs) / 2 if method == "softmax" else softmax(logits)


def fuse(rgb, flow, method="softmax"):
    """Fused Scores of the same videos (in rgb's order): mean of probs, or sum of logits.

    The fused logits are always the sum of the two; the fused probs, which
    rank the classes, are the mean of the two softmax scores ('softmax') or
    the softmax of the summed logits ('logits').
    """
    if list(rgb.class_names) != list(flow.class_names):
        differ = [f"{i}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(rgb.class_names, flow.class_names)) if a != b]
        raise ValueError(f"RGB and flow scores have different classes ({len(rgb.class_names)} vs "
                         f"{len(flow.class_names)}; differing: {_some(differ, 5) or 'none in the common part'})")
    only_rgb = sorted(set(rgb.video_ids) - set(flow.video_ids))
    only_flow = sorted(set(flow.video_ids) - set(rgb.video_ids))
    if only_rgb or only_flow:
        raise ValueError(f"RGB and flow scores cover different videos: only in RGB: {_some(only_rgb) or 'none'}; "
                         f"only in flow: {_some(only_flow) or 'none'}")
    flow = select(flow, rgb.video_ids)
    conflict = (rgb.labels >= 0) & (flow.labels >= 0) & (rgb.labels != flow.labels)
    if conflict.any():
        disagree = [video_id for video_id, bad in zip(rgb.video_ids, conflict) if bad]
        raise ValueError(f"RGB and flow scores disagree on the labels of {_some(disagree)}")
    labels = np.where(rgb.labels >= 0, rgb.labels, flow.labels)
    logits, probs = fused(rgb.logits, rgb.probs, flow.logits, flow.probs, method)
    return Scores(list(rgb.video_ids), labels, list(rgb.class_names), logits, probs.astype(np.float32))


def accuracies(scores):
    """Video-level {'top1', 'top5', 'mean_class'} accuracy, classes ranked by probs.

    Videos without a label (-1, the testing subset) are left out; all NaN when none has one.
    """
    labelled = scores.labels >= 0
    if not labelled.any():
        return dict.fromkeys(("top1", "top5", "mean_class"), float("nan"))
    probs, labels = scores.probs[labelled], scores.labels[labelled]
    top5 = min(5, len(scores.class_names))
    return {"top1": topk_accuracy(probs, labels, 1), "top5": topk_accuracy(probs, labels, top5),
            "mean_class": mean_class_accuracy(probs, labels)}


def accuracy_table(rows):
    """A side-by-side table of {row name: accuracies(...)}, e.g. RGB, flow and joint, as one string."""
    lines = [f"{'':16}{'top-1':>8}{'top-5':>8}{'mean class':>12}"]
    for name, accuracy in rows.items():
        lines.append(f"{name:16}{accuracy['top1']:8.4f}{accuracy['top5']:8.4f}{accuracy['mean_class']:12.4f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m core.fuse", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("rgb_scores", help="scores .npz of the RGB model (written by evaluate)")
    parser.add_argument("flow_scores", help="scores .npz of the flow model")
    parser.add_argument("--annotation", required=True, help="annotation JSON (kenshohara's format)")
    parser.add_argument("--subset", default="validation", choices=("training", "validation", "testing"),
                        help="annotation subset to evaluate")
    parser.add_argument("--method", default="softmax", choices=FUSION_METHODS,
                        help="mean of softmax scores, or sum of logits")
    parser.add_argument("--output", help="write the fused scores of the evaluated videos to this .npz")
    parser.add_argument("--val-json", help="write the fused top-5 per video in kenshohara's val.json format")
    args = parser.parse_args(argv)
    try:
        rgb, flow = load_scores(args.rgb_scores), load_scores(args.flow_scores)
        class_names, videos = load_annotations(args.annotation, args.subset)
        joint = fuse(rgb, flow, args.method)
    except ValueError as e:  # AnnotationError included
        parser.exit(2, f"error: {e}\n")
    if class_names != joint.class_names:
        parser.exit(2, f"error: {args.annotation} has {len(class_names)} labels that differ from the "
                       f"{len(joint.class_names)} class names of the scores\n")
    class_index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({label for _, label, _ in videos if label is not None and label not in class_index})
    if unknown:
        parser.exit(2, f"error: {args.annotation}: labels not in its 'labels' list: {_some(unknown)}\n")
    scored = set(joint.video_ids)
    labelled = [(video_id, class_index[label]) for video_id, label, _ in videos if label is not None]
    missing = [video_id for video_id, _ in labelled if video_id not in scored]
    labelled = [(video_id, label) for video_id, label in labelled if video_id in scored]
    if missing:
        print(f"warning: {len(missing)} labelled videos of '{args.subset}' have no scores and are left out: "
              f"{_some(missing)}", file=sys.stderr)
    if not labelled:
        parser.exit(2, f"error: no labelled video of '{args.subset}' in {args.annotation} has scores\n")
    ids, labels = [video_id for video_id, _ in labelled], [label for _, label in labelled]
    rows = {"rgb": select(rgb, ids, labels), "flow": select(flow, ids, labels),
            f"joint ({args.method})": select(joint, ids, labels)}
    print(f"{len(ids)} videos of '{args.subset}'")
    print(accuracy_table({name: accuracies(scores) for name, scores in rows.items()}))
    fused = rows[f"joint ({args.method})"]
    if args.output:
        save_scores(args.output, fused.video_ids, fused.labels, fused.class_names, fused.logits, fused.probs)
    if args.val_json:
        write_val_json(args.val_json, fused.video_ids, fused.probs, fused.class_names, 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())

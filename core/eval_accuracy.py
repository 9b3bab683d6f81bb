"""Top-k video accuracy of a results JSON against an annotation JSON.

The same semantics and printed lines as kenshohara's
util_scripts/eval_accuracy.py:

    python -m core.eval_accuracy ucf101_01.json results/val.json -k 1 --subset validation

Videos of the subset missing from the results count as wrong, unless
--ignore leaves them out of the denominator; when some are missing, the
accuracy of the other protocol is printed too (on stderr). --save writes the accuracy to
top<k>.txt next to the results file.
"""
import argparse
import json
import os
import sys


class EvalError(ValueError):
    """A ground-truth or results file that cannot be evaluated."""


def _load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise EvalError(f"{path}: cannot read JSON ({e})") from None


def load_ground_truth(ground_truth_path, subset):
    """([(video_id, class index)] of `subset`, {class name: index})."""
    data = _load_json(ground_truth_path)
    try:
        class_index = {name: i for i, name in enumerate(data["labels"])}
        ground_truth = [(video_id, class_index[entry["annotations"]["label"]])
                        for video_id, entry in data["database"].items() if entry["subset"] == subset]
    except (KeyError, TypeError) as e:
        raise EvalError(f"{ground_truth_path}: not a valid annotation file (missing or unknown {e})") from None
    return ground_truth, class_index


def load_result(result_path, top_k, class_index):
    """{video_id: tuple of the top_k class indices, highest score first}."""
    data = _load_json(result_path)
    result = {}
    try:
        for video_id, entries in data["results"].items():
            labels_and_scores = sorted(((class_index[e["label"]], e["score"]) for e in entries),
                                       key=lambda pair: pair[1], reverse=True)
            result[video_id] = tuple(label for label, _ in labels_and_scores[:top_k])
    except (KeyError, TypeError) as e:
        raise EvalError(f"{result_path}: not a valid results file (missing or unknown {e})") from None
    return result


def evaluate(ground_truth_path, result_path, subset, top_k, ignore):
    print("load ground truth")
    ground_truth, class_index = load_ground_truth(ground_truth_path, subset)
    print(f"number of ground truth: {len(ground_truth)}")

    print("load result")
    result = load_result(result_path, top_k, class_index)
    print(f"number of result: {len(result)}")

    n_ground_truth = len(ground_truth)
    listed = ground_truth
    ground_truth = [(video_id, label) for video_id, label in ground_truth if video_id in result]
    if ignore:
        n_ground_truth = len(ground_truth)
    if n_ground_truth == 0:
        raise EvalError(f"{ground_truth_path}: no '{subset}' video to evaluate"
                        + (f" that is also in {result_path}" if ignore else ""))

    print(f"calculate top-{top_k} accuracy")
    correct = sum(label in result[video_id] for video_id, label in ground_truth)
    accuracy = correct / n_ground_truth
    print(f"top-{top_k} accuracy: {accuracy}")
    n_listed, n_with_result = len(listed), len(ground_truth)
    if n_listed > n_with_result and n_with_result:
        # Both protocols (Kinetics and ActivityNet list videos that were never downloaded), the other one on
        # stderr: stdout stays the reference's lines.
        other = correct / (n_listed if ignore else n_with_result)
        print(f"({n_listed - n_with_result} of {n_listed} videos have no result; top-{top_k} accuracy "
              f"{'without' if ignore else 'with'} --ignore: {other})", file=sys.stderr)
    return accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ground_truth_path", help="annotation JSON (kenshohara's format)")
    parser.add_argument("result_path", help="results JSON ({'results': {video_id: [{label, score}, ...]}})")
    parser.add_argument("-k", type=int, default=1, help="top-k (default 1)")
    parser.add_argument("--subset", default="validation", help="subset of the annotation to evaluate")
    parser.add_argument("--save", action="store_true", help="write the accuracy to top<k>.txt next to the results")
    parser.add_argument("--ignore", action="store_true", help="ignore nonexistent videos in result")
    args = parser.parse_args(argv)
    try:
        accuracy = evaluate(args.ground_truth_path, args.result_path, args.subset, args.k, args.ignore)
    except EvalError as e:
        raise SystemExit(f"error: {e}") from None
    if args.save:
        with open(os.path.join(os.path.dirname(os.path.abspath(args.result_path)), f"top{args.k}.txt"), "w") as f:
            f.write(str(accuracy))
    return accuracy


if __name__ == "__main__":
    main()

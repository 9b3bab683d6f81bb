"""The train and evaluate command lines, identical for every backend.

`python -m backends.<fw>.train` and `python -m backends.<fw>.evaluate` call
these with their framework's engine / predictor builders, so options,
messages and outputs are the same in PyTorch, Paddle and MindSpore.
"""
import argparse
import importlib
import os
import pickle
import sys
import time

import yaml

from core.class_names import read_checkpoint_meta
from core.config import ConfigError, add_config_arguments, add_kenshohara_arguments, config_from_args
from core.archs import arch_name
from core.datasets import (AnnotationError, evaluation_set, load_annotations, read_once, training_set,
                           validation_set)
from core.evaluation import evaluate, evaluate_joint
from core.loader import BatchLoader, TooManyBadClips, WorkerDied
from core.result_path import CheckpointWriteError, ResultPathBusy, claim_result_path, release_result_path
from core.state_dict import StateDictMismatch
from core.engine import ResumeError, WeightsFileError
from core.training import fit, writes


def _with_sets(args, *overrides):
    return argparse.Namespace(**{**vars(args), "set": [*args.set, *overrides]})


def _load(args, extra_required=(), training=False):
    config = config_from_args(args, also_require=extra_required)  # read once: its warnings are said once
    _check_n_classes(config, training)
    return config


def _check_n_classes(config, training=False):
    """Up front: a head smaller than the label list fails mid-training ('Target 2 is out of bounds')."""
    try:
        labels, _ = load_annotations(config["annotation_path"], config["inference_subset"])
    except AnnotationError as e:
        raise SystemExit(f"annotation error: {e}") from None
    if config["n_classes"] < len(labels):
        raise SystemExit(f"config error: {config.source}: n_classes is {config['n_classes']}, but "
                         f"{config['annotation_path']} has {len(labels)} labels; set n_classes: {len(labels)}")
    if training and "n_classes" not in config.sources and config["n_classes"] != len(labels):
        # The default 400 (Kinetics) on a smaller label set trains a head with hundreds of classes never seen.
        raise SystemExit(f"config error: {config.source}: n_classes is not set (default {config['n_classes']}), "
                         f"but {config['annotation_path']} has {len(labels)} labels; set n_classes: {len(labels)} "
                         f"(or n_classes: {config['n_classes']} to keep the larger head)")


def _check_class_names(config):
    """Warn when the checkpoint was trained on other class names (or another order) than the annotation's
    labels: every accuracy would then compare the wrong classes."""
    try:
        stored = read_checkpoint_meta(config["resume_path"])["class_names"]
    except (OSError, ValueError, pickle.UnpicklingError):
        return  # the predictor's reader names the file's problem
    labels, _ = load_annotations(config["annotation_path"], config["inference_subset"])
    if stored and stored != labels:
        print(f"warning: {config['resume_path']} was trained on the classes {stored[:5]}{' ...' * (len(stored) > 5)}, "
              f"but {config['annotation_path']} lists {labels[:5]}{' ...' * (len(labels) > 5)}: its scores are "
              "compared with the annotation's label order", file=sys.stderr)


def _save_config(config, name):
    os.makedirs(config["result_path"], exist_ok=True)
    with open(os.path.join(config["result_path"], name), "w") as f:
        yaml.safe_dump(dict(config), f, sort_keys=False)


def train_main(framework, engine_module, argv=None):
    """`engine_module` (e.g. 'backends.torch.engine') is imported after the arguments are parsed: --help and
    config errors need no framework."""
    parser = argparse.ArgumentParser(
        prog=f"python -m backends.{framework}.train",
        description=f"Train a 3D CNN with {framework}: train + validation every epoch, CSV logs "
                    "(train.log, val.log), checkpoints every `checkpoint` epochs, curves.png at the end. "
                    "Set resume_path to continue an interrupted run. Under the framework's launcher (torchrun, "
                    "paddle.distributed.launch, msrun) it trains data-parallel: see docs/distributed.md.")
    add_config_arguments(parser)
    add_kenshohara_arguments(parser, modes=True)
    args = parser.parse_args(argv)
    if (args.no_train or args.inference_no_average) and not args.inference:
        parser.error("--no_train / --inference_no_average without --inference: nothing to run (kenshohara's "
                     "inference is --no_train --inference --resume_path CKPT)")
    if args.no_train:
        return _inference(framework, engine_module, _load(args, ("resume_path",)), args.inference_no_average)
    started = time.time()
    # Config and data first, the framework after (its import takes seconds): the first line says what runs.
    with read_once():  # the annotation JSON is parsed once for the label check and both sets
        config = _load(args, training=True)
        try:
            train_set = training_set(config)
            val_set = None if config["no_val"] else validation_set(config)
        except AnnotationError as e:  # e.g. no video of a subset has frames
            raise SystemExit(f"annotation error: {e}") from None
    package = engine_module.rpartition(".")[0] or f"backends.{framework}"  # a test gives a bare fake engine
    rank, world_size = importlib.import_module(package).launched()[:2]
    if rank == 0:
        validation = f" (validation: {len(val_set.video_ids)} videos)" if val_set is not None else ""
        print(f"[{framework}] training {arch_name(config)}: {len(train_set)} clips{validation}, {config['n_epochs']} "
              f"epochs -> {config['result_path']}; starting {framework}", flush=True)
    # Each process loads its share of every batch (core.loader.rank_share). The workers start now, before the
    # framework is imported: the first epoch's batches load on the core its import leaves idle, and the workers
    # fork from a process without the framework's threads and memory.
    share = dict(seed=config["manual_seed"], n_workers=config["n_threads"], drop_last=False, rank=rank,
                 world_size=world_size, max_bad_clips=config["max_bad_clips"])
    train_loader = BatchLoader(train_set, config["batch_size"], shuffle=True, **share)
    val_loader = None
    if val_set is not None:
        # Validation runs no collective per step, so every clip is scored once even if ranks' steps differ.
        val_loader = BatchLoader(val_set, config["batch_size"], shuffle=False, equal_steps=False, **share)
    for loader in filter(None, (train_loader, val_loader)):
        loader.set_epoch(1)  # a resumed run's first epoch is later: its iteration drops these batches
        loader.start()
    Engine = importlib.import_module(engine_module).Engine
    try:
        engine = Engine(config)  # in a data-parallel launch, joins the other processes
        if (engine.rank, engine.world_size) != (rank, world_size):
            raise SystemExit(f"cannot train: the launcher's environment says process {rank} of {world_size}, "
                             f"{framework} says {engine.rank} of {engine.world_size}")
        if writes(engine):
            claim_result_path(config["result_path"])  # a second training into it stops here, naming this one
            _save_config(config, "opts.yaml")
            processes = f" x {engine.world_size} processes" if engine.world_size > 1 else ""
            print(f"[{framework}] {framework} ready in {time.time() - started:.1f} s: {engine.arch} on "
                  f"{engine.device_name}{processes}")
            for line in engine.weights_report:
                print(f"[{framework}] {line}")
        history = fit(config, engine, train_loader, val_loader)
        engine.finish()
    except (StateDictMismatch, ResumeError, WeightsFileError) as e:  # pretrain/resume file unreadable or unfit
        raise SystemExit(f"cannot train: {e}") from None
    except TooManyBadClips as e:
        raise SystemExit(f"cannot train: {e} (max_bad_clips sets the fraction tolerated)") from None
    except (ResultPathBusy, CheckpointWriteError, WorkerDied) as e:
        raise SystemExit(f"cannot train: {e}") from None
    except ConfigError as e:  # settings that clash only when the optimizer is built (core.training.sgd_options)
        raise SystemExit(f"config error: {e}") from None
    finally:
        release_result_path(config["result_path"])
    if writes(engine):
        print(f"[{framework}] training done in {time.time() - started:.0f}s")
        if args.inference:  # kenshohara's --inference after training: the last epoch's model
            last = os.path.join(config["result_path"], f"save_{config['n_epochs']}{engine.checkpoint_suffix}")
            _inference(framework, engine_module, _load(_with_sets(args, f"resume_path={last}")),
                       args.inference_no_average)
    return history


def _inference(framework, engine_module, config, no_average):
    """kenshohara's --inference: evaluate resume_path on inference_subset, results in <subset>.json."""
    try:
        predict = importlib.import_module(engine_module).build_predictor(config)
    except (StateDictMismatch, WeightsFileError) as e:
        raise SystemExit(f"cannot evaluate: {e}") from None
    print(f"[{framework}] inference of {config['resume_path']} on '{config['inference_subset']}'")
    return evaluate(config, predict, config["modality"], no_average=no_average)


def evaluate_main(framework, engine_module, argv=None):
    """`engine_module` (e.g. 'backends.torch.engine', whose build_predictor is used) is imported after the
    arguments are parsed: --help and config errors need no framework."""
    parser = argparse.ArgumentParser(
        prog=f"python -m backends.{framework}.evaluate",
        description=f"Video-level evaluation with {framework}: every sliding-window clip of every video (or "
                    "MMAction2's views: n_inference_clips, inference_crop three), video score = mean of clip softmax. Writes val.json, scores_<mode>.npz and "
                    "confusion_<mode>.png to result_path; --mode joint also fuses RGB and flow.")
    add_config_arguments(parser)
    parser.add_argument("--resume_path", help="checkpoint of the model to evaluate (RGB model in joint mode)")
    parser.add_argument("--mode", choices=("rgb", "flow", "joint"), default=None,
                        help="rgb (frames from video_path), flow (from flow_path) or joint: both models and their "
                             "fusion side by side (default: the config's modality)")
    parser.add_argument("--flow_resume_path", help="checkpoint of the flow model (joint mode)")
    parser.add_argument("--fusion", choices=("softmax", "logits"), default="softmax",
                        help="joint mode: mean of softmax scores (default) or sum of logits")
    parser.add_argument("--subset", choices=("training", "validation", "testing"),
                        help="subset to evaluate (default: the config's inference_subset)")
    add_kenshohara_arguments(parser)
    args = parser.parse_args(argv)
    # --mode rgb / flow decides which frames root is read (and must exist), whatever the file's modality.
    base = config_from_args(_with_sets(args, *([f"modality={args.mode}"] if args.mode in ("rgb", "flow") else [])),
                            require_paths=())
    mode = args.mode or base["modality"]
    if mode != "joint" and args.flow_resume_path:
        parser.error(f"--flow_resume_path is for --mode joint; with --mode {mode} give the checkpoint as "
                     "--resume_path")
    if not (args.resume_path or base["resume_path"]):
        parser.error("no checkpoint to evaluate: give --resume_path" + (" (the RGB model)" if mode == "joint" else ""))
    if mode == "joint" and not args.flow_resume_path:
        parser.error("--mode joint needs --flow_resume_path, the checkpoint of the flow model "
                     "(--resume_path is the RGB model)")
    if mode in ("flow", "joint") and not base["flow_path"]:
        parser.error(f"--mode {mode} reads optical-flow frames from flow_path, which is not set: add "
                     "'flow_path: DIR' to the config or --set flow_path=DIR (python -m core.flow writes them)")

    def model_config(modality, resume_path):
        # Each model is built for its own modality, whatever the config file's `modality` says.
        overrides = [f"modality={modality}"] + ([f"resume_path={resume_path}"] if resume_path else [])
        return _load(_with_sets(args, *overrides), ("resume_path",))

    build_predictor = importlib.import_module(engine_module).build_predictor

    def predictor(config):
        _check_class_names(config)
        try:
            return build_predictor(config)
        except (StateDictMismatch, WeightsFileError) as e:  # e.g. a flow checkpoint given as the RGB model
            raise SystemExit(f"cannot evaluate the {config['modality']} model: {e}") from None

    try:
        # The annotation JSON is parsed once for the checks and the sets (not kept during the evaluation: the
        # loader's forked workers would copy it).
        with read_once():
            if mode == "joint":
                rgb, flow = model_config("rgb", args.resume_path), model_config("flow", args.flow_resume_path)
                predictors = predictor(rgb), predictor(flow)
                datasets = tuple(evaluation_set(c, args.subset) for c in (rgb, flow))
            else:
                config = model_config(mode, args.resume_path)
                predict, dataset = predictor(config), evaluation_set(config, args.subset)
        if mode == "joint":
            return evaluate_joint(rgb, predictors[0], flow, predictors[1], args.fusion, args.subset, datasets=datasets)
        return evaluate(config, predict, mode, args.subset, dataset=dataset)
    except AnnotationError as e:  # e.g. no video of the subset has frames
        raise SystemExit(f"annotation error: {e}") from None
    except TooManyBadClips as e:
        raise SystemExit(f"cannot evaluate: {e} (max_bad_clips sets the fraction tolerated)") from None
    except WorkerDied as e:
        raise SystemExit(f"cannot evaluate: {e}") from None

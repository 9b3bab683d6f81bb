"""One backend's side of the parity tests, run in its own process (MindSpore cannot share one with the others).

    python -m tests.parity.run_backend --backend paddle --task forward \\
        --models '{"resnet10": ["resnet10", {"n_classes": 5, "widen_factor": 0.125}]}' \\
        --weights W.npz --input X.npy --output OUT.npz

--models maps a model's name to its arch and its builder kwargs; every model given is run in this one process
(framework imports and MindSpore's start-up are paid once). W.npz holds each model's neutral state under
`<model>/<name>`. A model with n_input_channels C (2 for flow) gets the first C channels of the clip. Tasks:
  forward  eval-mode logits                                   -> <model>/logits
  sgd      one engine.train_batch with SGD (momentum, L2)      -> <model>/loss, <model>/state/<name>
  adam     the same with Adam                                  -> <model>/loss, <model>/state/<name>
  steps    --steps train_batch calls (SGD) on the same batch   -> <model>/losses
  accumulate  one SGD update accumulated over the batch's two halves (accumulation_steps 2, BatchNorm on its
           running statistics)                                 -> <model>/loss, <model>/state/<name>
--labels holds class indices (B,) or target distributions (B, n_classes): label smoothing, mixup, cutmix.
Training goes through the backend's real engine (backends.<fw>.engine), with dropout 0.
The parent side, `run_backends`, starts one process per backend at once and returns their outputs;
`torch_float64_step` is the exact reference of one step, in the calling process.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

from backends import BACKENDS, load
from core.archs import get

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def arch_kwargs(arch, kwargs):
    """The builder kwargs `arch` takes out of a set shared by all archs (I3D has no conv1 options, only I3D dropout)."""
    takes = get(arch).builder_kwargs({})
    return {key: value for key, value in kwargs.items() if key in takes}


def engine_config(arch, kwargs, optimizer, lr, momentum, weight_decay):
    """A config whose model is `arch` built with `kwargs`, for the backends' engines."""
    from core.config import load_config

    overrides = get(arch).config_overrides(arch_kwargs(arch, kwargs))
    overrides += ["dropout=0", "device=cpu", f"optimizer={optimizer}", f"learning_rate={lr}",
                  f"momentum={momentum}", f"weight_decay={weight_decay}"]
    return load_config(None, overrides, require_paths=())


def _forward(backend, arch, kwargs, state, clip):
    interop = load(backend, "interop")
    model = load(backend, "models").build_model(arch, **arch_kwargs(arch, kwargs))
    interop.load_numpy_state(model, state)
    return {"logits": np.asarray(interop.forward(model, clip), np.float32)}


def _train(backend, arch, kwargs, state, clip, labels, optimizer, steps, lr, momentum, weight_decay,
           accumulation_steps=1):
    """`steps` train_batch calls on the whole batch; with accumulation_steps N, one update made of N slices
    of the batch, BatchNorm on its running statistics (so that it equals the one step of the whole batch)."""
    interop = load(backend, "interop")
    config = engine_config(arch, kwargs, optimizer, lr, momentum, weight_decay)
    config["accumulation_steps"] = accumulation_steps
    engine = load(backend, "engine").Engine(config)
    interop.load_numpy_state(engine.model, state)  # in place: the optimizer keeps its parameters
    engine.set_lr(lr)
    if accumulation_steps > 1:
        engine.begin_epoch(1, False, accumulation_steps)
        losses = [engine.train_batch(part, part_labels)[0] for part, part_labels in
                  zip(np.array_split(clip, accumulation_steps), np.array_split(labels, accumulation_steps))]
        losses = [float(np.mean(losses))]
    else:
        engine.begin_epoch(1, True)
        losses = [engine.train_batch(clip, labels)[0] for _ in range(steps)]
    return {"loss": np.float64(losses[0]), "losses": np.asarray(losses, np.float64),
            "state": interop.to_numpy_state(engine.model)}


def torch_float64_step(arch, kwargs, state, clip, labels, optimizer, lr, momentum=0.9, weight_decay=1e-3):
    """One step of torch's model and optimizer in float64, in this process: what the float32 backends
    approximate. Returns (neutral state after the step, the gradient the optimizer saw: d loss / d p +
    weight_decay * p)."""
    import torch
    import torch.nn.functional as F
    from backends.torch.engine import Engine
    from backends.torch.interop import load_numpy_state, to_numpy_state

    engine = Engine(engine_config(arch, kwargs, optimizer, lr, momentum, weight_decay))
    model = engine.model
    load_numpy_state(model, state)
    model.double().train()
    logits = model(torch.from_numpy(clip.astype(np.float64)))
    F.cross_entropy(logits, torch.from_numpy(labels.astype(np.int64))).backward()
    gradient = {name: (param.grad + weight_decay * param).detach().numpy() for name, param in model.named_parameters()}
    engine.optimizer.step()
    return to_numpy_state(model), gradient


def run(backend, task, models, weights_path, input_path, labels_path=None, steps=10, lr=0.01, momentum=0.9,
        weight_decay=1e-3):
    """{'<model>/<key>': array} for every model {name: (arch, kwargs)} (see the module docstring)."""
    all_weights = np.load(weights_path)
    clip = np.load(input_path)
    outputs = {}
    for model, (arch, kwargs) in models.items():
        state = {key.split("/", 1)[1]: all_weights[key] for key in all_weights.files if key.startswith(model + "/")}
        model_clip = clip[:, :kwargs.get("n_input_channels", 3)]
        if task == "forward":
            result = _forward(backend, arch, kwargs, state, model_clip)
        else:
            labels = np.load(labels_path)  # class indices, or target distributions (float)
            labels = labels.astype(np.int64) if labels.ndim == 1 else labels.astype(np.float32)
            result = _train(backend, arch, kwargs, state, model_clip, labels, "adam" if task == "adam" else "sgd",
                            steps if task == "steps" else 1, lr, momentum, weight_decay,
                            2 if task == "accumulate" else 1)
            result = {"losses": result["losses"]} if task == "steps" else \
                {"loss": result["loss"], **{f"state/{k}": v for k, v in result["state"].items()}}
        outputs.update({f"{model}/{key}": value for key, value in result.items()})
    return outputs


def run_backends(backends, task, models, weights, clip, work_dir, labels=None, **options):
    """Run `task` on every backend, each in its own process, all at once.

    models: {name: (arch, builder kwargs)}; weights: {name: neutral state}; clip, labels: numpy arrays.
    Returns {backend: {'<model>/<key>': array}}.
    """
    weights_path, input_path = os.path.join(work_dir, "weights.npz"), os.path.join(work_dir, "input.npy")
    np.savez(weights_path, **{f"{model}/{name}": value
                              for model, state in weights.items() for name, value in state.items()})
    np.save(input_path, clip)
    extra = []
    if labels is not None:
        np.save(os.path.join(work_dir, "labels.npy"), labels)
        extra += ["--labels", os.path.join(work_dir, "labels.npy")]
    for option, value in options.items():
        extra += [f"--{option.replace('_', '-')}", str(value)]
    # One thread each: the processes run side by side on few cores, and spinning thread pools then crawl.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = {}
    for backend in backends:
        output = os.path.join(work_dir, f"{task}_{backend}.npz")
        command = [sys.executable, "-m", "tests.parity.run_backend", "--backend", backend, "--task", task,
                   "--models", json.dumps(models), "--weights", weights_path,
                   "--input", input_path, "--output", output, *extra]
        processes[backend] = (subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True), output)
    results, failures = {}, []
    for backend, (process, output) in processes.items():
        _, stderr = process.communicate()
        if process.returncode != 0:
            failures.append(f"{backend} ({task}) failed:\n{stderr[-4000:]}")
        else:
            with np.load(output) as data:
                results[backend] = {key: data[key] for key in data.files}
    if failures:
        raise RuntimeError("\n".join(failures))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.parity.run_backend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", required=True, choices=BACKENDS)
    parser.add_argument("--task", required=True, choices=("forward", "sgd", "adam", "steps", "accumulate"))
    parser.add_argument("--models", required=True,
                        help='JSON {model name: [arch (core.archs.ARCHS name), builder kwargs]}')
    parser.add_argument("--weights", required=True, help=".npz of neutral states, keys <model>/<name>")
    parser.add_argument("--input", required=True, help=".npy clip batch (B, C, T, H, W)")
    parser.add_argument("--labels", help=".npy class indices (B,), for the training tasks")
    parser.add_argument("--output", required=True, help=".npz for the results")
    parser.add_argument("--steps", type=int, default=10, help="train steps of the steps task")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    args = parser.parse_args(argv)
    if args.task != "forward" and not args.labels:
        parser.error(f"--task {args.task} needs --labels")
    outputs = run(args.backend, args.task, json.loads(args.models), args.weights, args.input, args.labels, args.steps,
                  args.lr, args.momentum, args.weight_decay)
    np.savez(args.output, **outputs)


if __name__ == "__main__":
    main()

"""MindSpore side of the shared training loop (core.training) and evaluation (core.evaluation).

PyNative mode; `ms_mode: graph` compiles the train step with ms.jit (on CPU
PyNative is the faster one: bench/ms_mode.py). The device is whatever
MindSpore targets (CPU, GPU or Ascend) unless the config says cpu or gpu.
"""
import json

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from backends.mindspore import distributed
from backends.mindspore.models import build_model
from backends.mindspore.optim import Adam
from backends.mindspore import weights
from backends.mindspore.weights import OPTIMIZER_PREFIX
from core.archs import arch_name, model_kwargs
from core.state_dict import neutral_name_from_mindspore
from core.training import Engine, ResumeError, atomic_write, epoch_seed, load_weights, sgd_options, trainable_names


def pick_device(config):
    if config["device"] != "auto":
        ms.set_context(device_target="CPU" if config["device"] == "cpu" else "GPU")
    target = ms.get_context("device_target")
    if target == "CPU":
        # On CPU the "device" is the host's cores: asynchronous launch only adds queue threads that compete
        # with oneDNN's workers, and a kernel split over 2 threads waits for the descheduled one (the stem's
        # weight gradient: 5.8 s instead of 0.2 s on 2 busy cores). Synchronous launch: 3-4x faster steps.
        ms.runtime.launch_blocking()
    return target


def create_model(config):
    """The config's model, with pretrained weights (new head for n_classes) when pretrain_path is set."""
    ms.set_seed(config["manual_seed"])
    model = build_model(arch_name(config), **model_kwargs(config))
    if config["pretrain_path"]:
        load_weights(model, weights, config["pretrain_path"], config["n_pretrain_classes"])
    return model


def build_optimizer(config, params):
    """SGD (momentum, dampening, Nesterov) or Adam (PyTorch's), with PyTorch's L2 weight decay on every parameter.

    One parameter group with its own weight_decay: ungrouped MindSpore optimizers
    skip BatchNorm gamma/beta, PyTorch (the reference) decays every parameter.
    """
    groups = [{"params": params, "weight_decay": config["weight_decay"]}]
    lr = config["learning_rate"]
    if config["optimizer"] == "sgd":
        sgd = sgd_options(config)
        return nn.SGD(groups, learning_rate=lr, momentum=sgd["momentum"], dampening=sgd["dampening"],
                      nesterov=sgd["nesterov"])
    return Adam(groups, learning_rate=lr)


class MindSporeEngine(Engine):
    checkpoint_suffix = ".ckpt"

    def __init__(self, config):
        self.config = config
        self.arch = arch_name(config)
        self.device_name = pick_device(config)
        if config["batchnorm_sync"] and distributed.launched()[1] > 1:
            raise SystemExit("batchnorm_sync: not available with MindSpore (its nn.SyncBatchNorm supports Ascend "
                             "only, and the models' BatchNorm3d is not converted); set batchnorm_sync: false")
        self.rank, self.world_size = distributed.init()
        self.model = create_model(config)
        named = {neutral_name_from_mindspore(p.name): p for p in self.model.trainable_params()}
        trainable = set(trainable_names(named, config["ft_begin_module"]))
        for name, param in named.items():
            param.requires_grad = name in trainable
        self.optimizer = build_optimizer(config, self.model.trainable_params())

        def forward(x, y):
            logits = self.model(x)
            return ops.cross_entropy(logits, y), logits

        grad_fn = ms.value_and_grad(forward, None, self.optimizer.parameters, has_aux=True)
        # Averages the gradients over the data-parallel processes.
        reduce_grads = nn.DistributedGradReducer(self.optimizer.parameters, mean=True, degree=self.world_size) \
            if self.world_size > 1 else None

        def train_step(x, y):
            (loss, logits), grads = grad_fn(x, y)
            if reduce_grads is not None:
                grads = reduce_grads(grads)
            self.optimizer(grads)
            return loss, logits

        self.forward = forward
        self.train_step = ms.jit(train_step) if config["ms_mode"] == "graph" else train_step

    def begin_epoch(self, epoch, train):
        self.model.set_train(train)
        if train:
            ms.set_seed(epoch_seed(self.config["manual_seed"], epoch, self.rank))
        elif self.world_size > 1:  # validate with the statistics rank 0's checkpoint saves
            distributed.broadcast_batchnorm_statistics(self.model)

    def set_lr(self, lr):
        # In place: after the first step, the optimizer's compiled update ignores a set_data() rate.
        ops.assign(self.optimizer.learning_rate, ms.Tensor(lr, ms.float32))

    def all_reduce_sum(self, values):
        return distributed.all_reduce_sum(values) if self.world_size > 1 else list(values)

    def train_batch(self, x, y):
        loss, logits = self.train_step(ms.Tensor(x), ms.Tensor(y.astype(np.int32)))
        return float(loss.asnumpy()), logits.asnumpy()

    def eval_batch(self, x, y):
        loss, logits = self.forward(ms.Tensor(x), ms.Tensor(y.astype(np.int32)))
        return float(loss.asnumpy()), logits.asnumpy()

    def save(self, path, meta):
        """save_N.ckpt: model parameters, optimizer state as `optimizer.<name>`, and the metadata as
        strings (arch, epoch, JSON scheduler, config and class names): numbers would read back as parameters."""
        model_params = list(self.model.get_parameters())
        model_names = {p.name for p in model_params}
        params = [{"name": p.name, "data": p} for p in model_params]
        params += [{"name": OPTIMIZER_PREFIX + p.name, "data": p} for p in self.optimizer.get_parameters()
                   if p.name not in model_names]
        extra = {"arch": meta["arch"], "epoch": str(meta["epoch"]), "scheduler": json.dumps(meta["scheduler"]),
                 "config": json.dumps(meta["config"]), "class_names": json.dumps(meta.get("class_names"))}
        atomic_write(path, lambda tmp: ms.save_checkpoint(params, tmp, append_dict=extra))

    def load(self, path):
        load_weights(self.model, weights, path)
        checkpoint = ms.load_checkpoint(path)
        model_names = {p.name for p in self.model.get_parameters()}
        for param in self.optimizer.get_parameters():
            if param.name in model_names:
                continue
            if OPTIMIZER_PREFIX + param.name not in checkpoint:
                raise ResumeError(f"{path}: no optimizer state '{param.name}' (a checkpoint of another optimizer "
                                 "or ft_begin_module?)")
            param.set_data(checkpoint[OPTIMIZER_PREFIX + param.name])
        return {"epoch": int(checkpoint["epoch"]), "arch": checkpoint["arch"],
                "scheduler": json.loads(checkpoint["scheduler"]), "config": json.loads(checkpoint["config"])}


def build_predictor(config):
    """predict(x numpy) -> logits numpy for the checkpoint at config.resume_path."""
    pick_device(config)
    model = build_model(arch_name(config), **model_kwargs(config))
    load_weights(model, weights, config["resume_path"])
    model.set_train(False)

    def predict(x):
        return model(ms.Tensor(np.ascontiguousarray(x))).asnumpy()

    return predict

"""MindSpore side of the shared training loop (core.training) and evaluation (core.evaluation).

PyNative mode; `ms_mode: graph` compiles the train step with ms.jit. The
device is whatever MindSpore targets (CPU, GPU or Ascend) unless the config
says cpu or gpu.
"""
import json

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from backends.mindspore.models import build_model
from backends.mindspore.weights import OPTIMIZER_PREFIX, load_numpy_state, load_pretrained, to_numpy_state
from core.archs import arch_name, model_kwargs
from core.state_dict import neutral_name_from_mindspore
from core.training import Engine, atomic_write, epoch_seed, fit_pretrained, trainable_names


def pick_device(config):
    if config["device"] != "auto":
        ms.set_context(device_target="CPU" if config["device"] == "cpu" else "GPU")
    return ms.get_context("device_target")


def create_model(config):
    """The config's model, with pretrained weights (new head for n_classes) when pretrain_path is set."""
    ms.set_seed(config["manual_seed"])
    model = build_model(arch_name(config), **model_kwargs(config))
    if config["pretrain_path"]:
        pretrained = load_pretrained(config["pretrain_path"])
        load_numpy_state(model, fit_pretrained(pretrained, to_numpy_state(model)))
    return model


class MindSporeEngine(Engine):
    checkpoint_suffix = ".ckpt"

    def __init__(self, config):
        self.config = config
        self.arch = arch_name(config)
        self.device_name = pick_device(config)
        self.model = create_model(config)
        named = {neutral_name_from_mindspore(p.name): p for p in self.model.trainable_params()}
        trainable = set(trainable_names(named, config["ft_begin_module"]))
        params = []
        for name, param in named.items():
            param.requires_grad = name in trainable
            if param.requires_grad:
                params.append(param)
        # One group with its own weight_decay: ungrouped MindSpore optimizers skip BN gamma/beta,
        # PyTorch (the reference) decays every parameter.
        groups = [{"params": params, "weight_decay": config["weight_decay"]}]
        lr = config["learning_rate"]
        if config["optimizer"] == "sgd":
            self.optimizer = nn.SGD(groups, learning_rate=lr, momentum=config["momentum"],
                                    dampening=config["dampening"], nesterov=config["nesterov"])
        else:
            self.optimizer = nn.Adam(groups, learning_rate=lr)

        def forward(x, y):
            logits = self.model(x)
            return ops.cross_entropy(logits, y), logits

        grad_fn = ms.value_and_grad(forward, None, self.optimizer.parameters, has_aux=True)

        def train_step(x, y):
            (loss, logits), grads = grad_fn(x, y)
            self.optimizer(grads)
            return loss, logits

        self.forward = forward
        self.train_step = ms.jit(train_step) if config["ms_mode"] == "graph" else train_step

    def begin_epoch(self, epoch, train):
        self.model.set_train(train)
        if train:
            ms.set_seed(epoch_seed(self.config["manual_seed"], epoch))

    def set_lr(self, lr):
        self.optimizer.learning_rate.set_data(ms.Tensor(lr, ms.float32))

    def train_batch(self, x, y):
        loss, logits = self.train_step(ms.Tensor(x), ms.Tensor(y.astype(np.int32)))
        return float(loss.asnumpy()), logits.asnumpy()

    def eval_batch(self, x, y):
        loss, logits = self.forward(ms.Tensor(x), ms.Tensor(y.astype(np.int32)))
        return float(loss.asnumpy()), logits.asnumpy()

    def save(self, path, meta):
        """save_N.ckpt: model and optimizer parameters, with arch, epoch, scheduler and config."""
        params = [{"name": p.name, "data": p} for p in self.model.get_parameters()]
        params += [{"name": OPTIMIZER_PREFIX + p.name, "data": p} for p in self.optimizer.get_parameters()
                   if not any(p is q for q in self.model.get_parameters())]
        extra = {"arch": meta["arch"], "epoch": meta["epoch"], "scheduler": json.dumps(meta["scheduler"]),
                 "config": json.dumps(meta["config"])}
        atomic_write(path, lambda tmp: ms.save_checkpoint(params, tmp, append_dict=extra))

    def load(self, path):
        checkpoint = ms.load_checkpoint(path)
        load_numpy_state(self.model, load_pretrained(path))
        optimizer_state = {k[len(OPTIMIZER_PREFIX):]: v for k, v in checkpoint.items()
                           if k.startswith(OPTIMIZER_PREFIX)}
        for param in self.optimizer.get_parameters():
            if param.name in optimizer_state:
                param.set_data(optimizer_state[param.name])
        return {"epoch": int(checkpoint["epoch"]), "arch": str(checkpoint["arch"]),
                "scheduler": json.loads(str(checkpoint["scheduler"])), "config": json.loads(str(checkpoint["config"]))}


def build_predictor(config):
    """predict(x numpy) -> logits numpy for the checkpoint at config.resume_path."""
    pick_device(config)
    model = build_model(arch_name(config), **model_kwargs(config))
    load_numpy_state(model, load_pretrained(config["resume_path"]))
    model.set_train(False)

    def predict(x):
        return model(ms.Tensor(np.ascontiguousarray(x))).asnumpy()

    return predict

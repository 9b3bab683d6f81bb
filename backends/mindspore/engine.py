"""MindSpore primitives of the engine template (core.engine) that core.training and core.evaluation drive.

PyNative mode; `ms_mode: graph` compiles the train step with ms.jit (on CPU
PyNative is the faster one: bench/ms_mode.py). The device is whatever
MindSpore targets (CPU, GPU or Ascend) unless the config says cpu or gpu.
"""
import json

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from backends.mindspore import NATIVE_FORMAT, distributed, interop
from backends.mindspore.models import build_model
from backends.mindspore.optim import Adam
from core import engine
from core.checkpoints.reader import OPTIMIZER_PREFIX
from core.state_dict import neutral_name_from_mindspore
from core.training import atomic_write, sgd_options


class Engine(engine.Engine):
    framework = "mindspore"
    native_format = NATIVE_FORMAT
    interop = interop
    distributed = distributed

    def pick_device(self):
        if self.config["device"] != "auto":
            # set_device: set_context's device_target is deprecated (a warning at every run).
            ms.set_device("CPU" if self.config["device"] == "cpu" else "GPU")
        target = ms.get_context("device_target")
        if target == "CPU":
            # On CPU the "device" is the host's cores: asynchronous launch only adds queue threads that compete
            # with oneDNN's workers, and a kernel split over 2 threads waits for the descheduled one (the stem's
            # weight gradient: 5.8 s instead of 0.2 s on 2 busy cores). Synchronous launch: 3-4x faster steps.
            ms.runtime.launch_blocking()
        return target

    def seed(self, value):
        ms.set_seed(value)

    def build_model(self, arch, kwargs):
        return build_model(arch, **kwargs)

    def batchnorm_sync_unavailable(self):
        return ("not available with MindSpore (its nn.SyncBatchNorm supports Ascend only, and the models' "
                "BatchNorm3d is not converted)")

    def named_parameters(self):
        return [(neutral_name_from_mindspore(param.name), param) for param in self.model.trainable_params()]

    def set_trainable(self, param, trainable):
        param.requires_grad = trainable

    def build_optimizer(self, params):
        """SGD (momentum, dampening, Nesterov) or Adam (PyTorch's), with PyTorch's L2 weight decay on every
        parameter.

        One parameter group with its own weight_decay: ungrouped MindSpore optimizers
        skip BatchNorm gamma/beta, PyTorch (the reference) decays every parameter.
        """
        groups = [{"params": params, "weight_decay": self.config["weight_decay"]}]
        lr = self.config["learning_rate"]
        if self.config["optimizer"] == "sgd":
            sgd = sgd_options(self.config)
            return nn.SGD(groups, learning_rate=lr, momentum=sgd["momentum"], dampening=sgd["dampening"],
                          nesterov=sgd["nesterov"])
        return Adam(groups, learning_rate=lr)

    def amp_unavailable(self):
        return None if self.device_name in ("GPU", "Ascend") else \
            f"MindSpore mixed precision runs on GPU or Ascend, not {self.device_name}"

    def prepare_training(self):
        if self.amp:
            # MindSpore's O2 level, recommended on GPU/Ascend: float16 compute except the BatchNorms, float32
            # master weights and logits. Set with to_float on the cells themselves (auto_mixed_precision would
            # wrap them and rename the module tree). Dynamic loss scaling with torch.amp.GradScaler's defaults
            # (2**16, x2 after 2000 finite steps, /2 on overflow).
            self.model.to_float(ms.float16)
            for _, cell in self.model.cells_and_names():
                if isinstance(cell, tuple(ms.amp.get_black_list())):
                    cell.to_float(ms.float32)
            self.scaler = ms.amp.DynamicLossScaler(2.0 ** 16, 2, 2000)

        def forward(x, y):
            logits = self.model(x)
            if self.amp:
                logits = ops.cast(logits, ms.float32)
            return ops.cross_entropy(logits, y), logits  # y: indices, or target distributions

        def scaled_forward(x, y):
            loss, logits = forward(x, y)
            return self.scaler.scale(loss), loss, logits

        grad_fn = ms.value_and_grad(scaled_forward if self.amp else forward, None, self.optimizer.parameters,
                                    has_aux=True)
        # Averages the gradients over the data-parallel processes.
        reduce_grads = nn.DistributedGradReducer(self.optimizer.parameters, mean=True, degree=self.world_size) \
            if self.world_size > 1 else None

        def step(grads):
            if reduce_grads is not None:
                grads = reduce_grads(grads)
            self.optimizer(grads)

        self.forward = forward
        if self.config["ms_mode"] == "graph":
            compiled_step = ms.jit(step)
            # The gradients as a mutable tuple: a tuple of tensors is otherwise a constant of the compiled graph,
            # and every step (new gradients) compiled it again and printed every gradient in a warning.
            self.gradients, self.step = ms.jit(grad_fn), lambda grads: compiled_step(ms.mutable(grads))
        else:
            self.gradients, self.step = grad_fn, step
        self.accumulated = None

    def set_mode(self, train):
        self.model.set_train(train)

    def set_eval(self, paths):
        cells = dict(self.model.cells_and_names())
        for path in paths:
            cells[path].set_train(False)

    def set_lr(self, lr):
        # In place: after the first step, the optimizer's compiled update ignores a set_data() rate.
        ops.assign(self.optimizer.learning_rate, ms.Tensor(lr, ms.float32))

    def backward(self, x, y, scale):
        outputs, grads = self.gradients(ms.Tensor(x), _targets(y))
        loss, logits = outputs[-2:]
        if self.amp:
            grads = self.scaler.unscale(grads)
        if scale != 1:
            grads = tuple(grad * scale for grad in grads)
        self.accumulated = grads if self.accumulated is None else tuple(
            total + grad for total, grad in zip(self.accumulated, grads))
        return float(loss.asnumpy()), logits.asnumpy()

    def apply_gradients(self):
        """With amp, a step whose gradients overflowed is skipped and the loss scale halved (as GradScaler)."""
        if not self.amp:
            self.step(self.accumulated)
        else:
            finite = ms.amp.all_finite(self.accumulated)
            if bool(finite.asnumpy()):
                self.step(self.accumulated)
            self.scaler.adjust(finite)
        self.accumulated = None

    def eval_batch(self, x, y):
        loss, logits = self.forward(ms.Tensor(x), _targets(y))
        return float(loss.asnumpy()), logits.asnumpy()

    def _optimizer_state(self):
        """The optimizer's own parameters (moments, step counts, learning rate), not the model's it updates."""
        model_names = {param.name for param in self.model.get_parameters()}
        return [param for param in self.optimizer.get_parameters() if param.name not in model_names]

    def write_checkpoint(self, path, meta):
        """save_N.ckpt: model parameters, optimizer state as `optimizer.<name>`, and the metadata as
        strings (arch, epoch, JSON scheduler and config): numbers would read back as parameters."""
        params = [{"name": p.name, "data": p} for p in self.model.get_parameters()]
        params += [{"name": OPTIMIZER_PREFIX + p.name, "data": p} for p in self._optimizer_state()]
        extra = {key: value if isinstance(value, str) else json.dumps(value) for key, value in meta.items()}
        atomic_write(path, lambda tmp: ms.save_checkpoint(params, tmp, append_dict=extra))

    def scaler_state(self):
        return {"scale": float(self.scaler.scale_value.asnumpy()), "counter": int(self.scaler.counter.asnumpy())}

    def load_scaler_state(self, state):
        ops.assign(self.scaler.scale_value, ms.Tensor(state["scale"], ms.float32))
        ops.assign(self.scaler.counter, ms.Tensor(state["counter"], ms.int32))

    def load_training_state(self, checkpoint):
        missing = [param.name for param in self._optimizer_state() if param.name not in checkpoint.optimizer]
        if missing:
            raise ValueError(f"no optimizer state {', '.join(missing[:3])}")
        for param in self._optimizer_state():
            param.set_data(ms.Tensor(checkpoint.optimizer[param.name], dtype=param.dtype))


def _targets(y):
    """Class indices as int32 (ops.cross_entropy's), or target distributions as they are."""
    return ms.Tensor(y.astype(np.int32) if y.ndim == 1 else y)


def build_predictor(config):
    """predict(x numpy) -> logits numpy for the checkpoint at config.resume_path."""
    return engine.build_predictor(Engine, config)

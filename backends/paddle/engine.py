"""Paddle side of the shared training loop (core.training) and evaluation (core.evaluation)."""
import json

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle.base.unique_name import UniqueNameGenerator
from paddle.utils import unique_name

from backends.paddle import distributed
from backends.paddle.models import build_model
from backends.paddle import weights
from core.archs import arch_name, model_kwargs
from core.training import Engine, atomic_write, epoch_seed, load_weights, sgd_options, trainable_names


def pick_device(config):
    """cpu, or the GPU of this process (the launcher's FLAGS_selected_gpus)."""
    gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if config["device"] == "gpu" and not gpu:
        raise SystemExit("device: gpu was asked for, but paddle sees no CUDA device")
    device = f"gpu:{distributed.launched()[2]}" if config["device"] != "cpu" and gpu else "cpu"
    paddle.set_device(device)
    return device


def create_model(config):
    """The config's model, with pretrained weights (new head for n_classes) when pretrain_path is set."""
    paddle.seed(config["manual_seed"])
    model = build_model(arch_name(config), **model_kwargs(config))
    if config["pretrain_path"]:
        load_weights(model, weights, config["pretrain_path"], config["n_pretrain_classes"])
    return model


def build_optimizer(config, params):
    """SGD or Adam with PyTorch's update rules.

    Momentum's velocity is PyTorch's momentum buffer (v = mu v + g, Nesterov
    g + mu v) and a float weight_decay is L2Decay, added to the gradient like
    PyTorch's weight_decay. Paddle has no dampening, so it is refused (Nesterov
    runs without it anyway: core.training.sgd_options).
    """
    lr, weight_decay = config["learning_rate"], config["weight_decay"] or None
    if config["optimizer"] == "adam":
        return paddle.optimizer.Adam(learning_rate=lr, parameters=params, weight_decay=weight_decay)
    sgd = sgd_options(config)
    if sgd["dampening"]:
        raise SystemExit(f"dampening: {sgd['dampening']} is not supported by paddle.optimizer.Momentum "
                         "(PyTorch's SGD dampening has no Paddle equivalent); set dampening: 0")
    return paddle.optimizer.Momentum(learning_rate=lr, momentum=sgd["momentum"], parameters=params,
                                     use_nesterov=sgd["nesterov"], weight_decay=weight_decay)


class PaddleEngine(Engine):
    checkpoint_suffix = ".pdparams"

    def __init__(self, config):
        self.config = config
        self.arch = arch_name(config)
        self.device_name = pick_device(config)
        sync_bn = config["batchnorm_sync"] and distributed.launched()[1] > 1
        if sync_bn and self.device_name == "cpu":
            raise SystemExit("batchnorm_sync: Paddle's SyncBatchNorm only runs on GPUs (on CPU: 'The kernel "
                             "`sync_batch_norm` is not registered'); set batchnorm_sync: false")
        self.rank, self.world_size = distributed.init()
        # Paddle names parameters and optimizer accumulators from a process-wide counter, and the .pdopt
        # file is keyed by those names; a counter of the engine's own gives every engine the names a
        # fresh process would, so a checkpoint resumes in any process.
        self.names = UniqueNameGenerator()
        with unique_name.guard(self.names):
            self.model = create_model(config)
            if sync_bn:
                self.model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        named = list(self.model.named_parameters())
        trainable = set(trainable_names((n for n, _ in named), config["ft_begin_module"]))
        for name, param in named:
            param.stop_gradient = name not in trainable
        self.optimizer = build_optimizer(config, [p for p in self.model.parameters() if not p.stop_gradient])
        self.amp = config["amp"] and self.device_name.startswith("gpu")
        self.scaler = paddle.amp.GradScaler(enable=self.amp)
        # The train step runs through DataParallel, which averages the gradients over the processes;
        # evaluation and checkpoints use the model itself (no collectives, no wrapper in the names).
        self.network = self.model if self.world_size == 1 else paddle.DataParallel(self.model)

    def begin_epoch(self, epoch, train):
        self.model.train() if train else self.model.eval()
        if train:
            paddle.seed(epoch_seed(self.config["manual_seed"], epoch, self.rank))
        elif self.world_size > 1:  # validate with the statistics rank 0's checkpoint saves
            distributed.broadcast_batchnorm_statistics(self.model)

    def set_lr(self, lr):
        self.optimizer.set_lr(lr)

    def all_reduce_sum(self, values):
        return distributed.all_reduce_sum(values) if self.world_size > 1 else list(values)

    def _forward(self, network, x, y):
        x, y = paddle.to_tensor(x), paddle.to_tensor(y)
        with paddle.amp.auto_cast(enable=self.amp):
            logits = network(x)
        loss = F.cross_entropy(logits.astype("float32"), y)
        return loss, logits

    def train_batch(self, x, y):
        loss, logits = self._forward(self.network, x, y)
        self.optimizer.clear_grad(set_to_zero=False)
        self.scaler.scale(loss).backward()
        with unique_name.guard(self.names):  # the first step creates the accumulators
            self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss), logits.astype("float32").numpy()

    @paddle.no_grad()
    def eval_batch(self, x, y):
        loss, logits = self._forward(self.model, x, y)
        return float(loss), logits.astype("float32").numpy()

    def save(self, path, meta):
        """save_N.pdparams + save_N.pdopt + save_N.json (arch, epoch, scheduler, config, class_names); json last."""
        stem = path[: -len(self.checkpoint_suffix)]
        atomic_write(path, lambda tmp: paddle.save(self.model.state_dict(), tmp))
        atomic_write(stem + ".pdopt", lambda tmp: paddle.save(self.optimizer.state_dict(), tmp))
        atomic_write(stem + ".json", lambda tmp: _write_json(tmp, meta))

    def load(self, path):
        stem = path[: -len(self.checkpoint_suffix)]
        load_weights(self.model, weights, path)
        self.optimizer.set_state_dict(paddle.load(stem + ".pdopt"))
        with open(stem + ".json") as f:
            return json.load(f)


def _write_json(path, meta):
    with open(path, "w") as f:
        json.dump(meta, f, indent=1)


def build_predictor(config):
    """predict(x numpy) -> logits numpy for the checkpoint at config.resume_path."""
    pick_device(config)
    model = build_model(arch_name(config), **model_kwargs(config))
    load_weights(model, weights, config["resume_path"])
    model.eval()

    @paddle.no_grad()
    def predict(x):
        return model(paddle.to_tensor(np.ascontiguousarray(x))).astype("float32").numpy()

    return predict

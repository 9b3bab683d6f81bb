"""Paddle primitives of the engine template (core.engine) that core.training and core.evaluation drive."""
import numpy as np
import paddle
import paddle.nn.functional as F
from paddle.base.unique_name import UniqueNameGenerator
from paddle.utils import unique_name

from backends.paddle import NATIVE_FORMAT, distributed, interop
from backends.paddle.models import build_model
from core import engine
from core.checkpoints.reader import paddle_set_record, write_json
from core.training import atomic_write, sgd_options

# The accumulators Paddle's optimizers keep per parameter, named `<parameter name><suffix>` in the .pdopt.
ACCUMULATORS = {"sgd": ("_velocity_0",), "adam": ("_moment1_0", "_moment2_0", "_beta1_pow_acc_0", "_beta2_pow_acc_0")}


class Engine(engine.Engine):
    framework = "paddle"
    native_format = NATIVE_FORMAT
    interop = interop
    distributed = distributed

    def __init__(self, config, training=True, log=print):
        # Paddle names parameters and optimizer accumulators from a process-wide counter, and the .pdopt
        # file is keyed by those names; a counter of the engine's own gives every engine the names a
        # fresh process would, so a checkpoint resumes in any process.
        self.names = UniqueNameGenerator()
        super().__init__(config, training, log)

    def pick_device(self):
        """cpu, or the GPU of this process (the launcher's FLAGS_selected_gpus)."""
        gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        if self.config["device"] == "gpu" and not gpu:
            raise SystemExit("device: gpu was asked for, but paddle sees no CUDA device")
        device = f"gpu:{distributed.launched()[2]}" if self.config["device"] != "cpu" and gpu else "cpu"
        paddle.set_device(device)
        return device

    def seed(self, value):
        paddle.seed(value)

    def build_model(self, arch, kwargs):
        with unique_name.guard(self.names):
            return build_model(arch, **kwargs)

    def batchnorm_sync_unavailable(self):
        return None if self.device_name.startswith("gpu") else (
            "Paddle's SyncBatchNorm only runs on GPUs (on CPU: 'The kernel `sync_batch_norm` is not registered')")

    def sync_batchnorm(self, model):
        with unique_name.guard(self.names):
            return paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def named_parameters(self):
        # Paddle lists BatchNorm's running statistics among the parameters; they are no optimizer's business.
        return [(name, param) for name, param in self.model.named_parameters()
                if not name.endswith(("._mean", "._variance"))]

    def set_trainable(self, param, trainable):
        param.stop_gradient = not trainable

    def build_optimizer(self, params):
        """SGD or Adam with PyTorch's update rules.

        Momentum's velocity is PyTorch's momentum buffer (v = mu v + g, Nesterov
        g + mu v) and a float weight_decay is L2Decay, added to the gradient like
        PyTorch's weight_decay. Paddle has no dampening, so it is refused (Nesterov
        runs without it anyway: core.training.sgd_options).
        """
        config = self.config
        lr, weight_decay = config["learning_rate"], config["weight_decay"] or None
        if config["optimizer"] == "adam":
            return paddle.optimizer.Adam(learning_rate=lr, parameters=params, weight_decay=weight_decay)
        sgd = sgd_options(config)
        if sgd["dampening"]:
            raise SystemExit(f"dampening: {sgd['dampening']} is not supported by paddle.optimizer.Momentum "
                             "(PyTorch's SGD dampening has no Paddle equivalent); set dampening: 0")
        return paddle.optimizer.Momentum(learning_rate=lr, momentum=sgd["momentum"], parameters=params,
                                         use_nesterov=sgd["nesterov"], weight_decay=weight_decay)

    def amp_unavailable(self):
        return None if self.device_name.startswith("gpu") else "paddle.amp needs a GPU, not cpu"

    def prepare_training(self):
        self.scaler = paddle.amp.GradScaler(enable=self.amp)
        # The train step runs through DataParallel, which averages the gradients over the processes;
        # evaluation and checkpoints use the model itself (no collectives, no wrapper in the names).
        self.network = self.model if self.world_size == 1 else paddle.DataParallel(self.model)

    def set_mode(self, train):
        self.model.train() if train else self.model.eval()

    def set_eval(self, paths):
        layers = dict(self.model.named_sublayers())
        for path in paths:
            layers[path].eval()

    def set_lr(self, lr):
        self.optimizer.set_lr(lr)

    def _forward(self, network, x, y):
        x, y = paddle.to_tensor(x), paddle.to_tensor(y)
        with paddle.amp.auto_cast(enable=self.amp):
            logits = network(x)
        # y: indices, or target distributions (soft labels). Log-softmax written out: Paddle's CPU F.log_softmax
        # (and so F.cross_entropy) stops at -64, which capped a clip's loss at 64 (exploding logits reported 42.67
        # where torch says 135).
        shifted = logits.astype("float32") - logits.astype("float32").max(axis=-1, keepdim=True)
        log_probs = shifted - paddle.log(paddle.exp(shifted).sum(axis=-1, keepdim=True))
        loss = -(y * log_probs).sum(axis=-1).mean() if y.ndim == 2 else F.nll_loss(log_probs, y)
        return loss, logits

    def backward(self, x, y, scale):
        loss, logits = self._forward(self.network, x, y)
        self.scaler.scale(loss if scale == 1 else loss * scale).backward()
        return float(loss), logits.astype("float32").numpy()

    def apply_gradients(self):
        with unique_name.guard(self.names):  # the first step creates the accumulators
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.clear_grad(set_to_zero=False)

    @paddle.no_grad()
    def eval_batch(self, x, y):
        loss, logits = self._forward(self.model, x, y)
        return float(loss), logits.astype("float32").numpy()

    def write_checkpoint(self, path, meta):
        """save_N.pdparams + save_N.pdopt, then save_N.json (arch, epoch, scheduler, config and the digests of
        the other two): the json's rename commits the set (core.checkpoints.reader reads only complete sets)."""
        stem = path[: -len(self.checkpoint_suffix)]
        atomic_write(path, lambda tmp: paddle.save(self.model.state_dict(), tmp))
        atomic_write(stem + ".pdopt", lambda tmp: paddle.save(self.optimizer.state_dict(), tmp))
        meta = {**meta, "members": paddle_set_record(stem)}
        atomic_write(stem + ".json", lambda tmp: write_json(tmp, meta))

    def load_training_state(self, checkpoint):
        state = checkpoint.optimizer
        expected = {param.name + suffix for param in self.optimizer._parameter_list
                    for suffix in ACCUMULATORS[self.config["optimizer"]]}
        accumulators = {name for name in state if isinstance(state[name], np.ndarray)}
        if accumulators != expected:
            raise ValueError(f"{len(accumulators - expected)} of its accumulators are not this optimizer's, "
                             f"{len(expected - accumulators)} of this optimizer's are missing "
                             f"(e.g. {', '.join(sorted(accumulators ^ expected)[:3])})")
        self.optimizer.set_state_dict(state)

    def scaler_state(self):
        return {key: np.asarray(value).item() if np.size(value) == 1 else value
                for key, value in self.scaler.state_dict().items()}

    def load_scaler_state(self, state):
        self.scaler.load_state_dict({**state, "scale": np.array([state["scale"]], np.float32)})


def build_predictor(config):
    """predict(x numpy) -> logits numpy for the checkpoint at config.resume_path."""
    return engine.build_predictor(Engine, config)

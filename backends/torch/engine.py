"""PyTorch primitives of the engine template (core.engine) that core.training and core.evaluation drive."""
import numpy as np
import torch
import torch.nn.functional as F

from backends.torch import NATIVE_FORMAT, distributed, interop
from backends.torch.models import build_model
from core import engine
from core.checkpoints.formats import map_arrays
from core.training import atomic_write, sgd_options


class Engine(engine.Engine):
    framework = "torch"
    native_format = NATIVE_FORMAT
    interop = interop
    distributed = distributed

    def pick_device(self):
        """CPU, or the GPU of this process (LOCAL_RANK under torchrun)."""
        if self.config["device"] == "gpu" and not torch.cuda.is_available():
            raise SystemExit("device: gpu was asked for, but torch sees no CUDA device")
        if self.config["device"] == "cpu" or not torch.cuda.is_available():
            self.device = torch.device("cpu")
        else:
            self.device = torch.device("cuda", distributed.launched()[2])
            torch.cuda.set_device(self.device)
        return str(self.device)

    def seed(self, value):
        torch.manual_seed(value)

    def build_model(self, arch, kwargs):
        return build_model(arch, **kwargs).to(self.device)

    def batchnorm_sync_unavailable(self):
        return None if self.device.type == "cuda" else (
            "torch's SyncBatchNorm only works on GPUs (DistributedDataParallel refuses it on CPU: "
            "'SyncBatchNorm layers only work with GPU modules')")

    def sync_batchnorm(self, model):
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def named_parameters(self):
        return list(self.model.named_parameters())

    def set_trainable(self, param, trainable):
        param.requires_grad = trainable

    def build_optimizer(self, params):
        """SGD (momentum, dampening, Nesterov, L2 weight decay) or Adam, as the reference builds them."""
        if self.config["optimizer"] == "sgd":
            return torch.optim.SGD(params, lr=self.config["learning_rate"], **sgd_options(self.config))
        return torch.optim.Adam(params, lr=self.config["learning_rate"], weight_decay=self.config["weight_decay"])

    def amp_unavailable(self):
        return None if self.device.type == "cuda" else f"torch autocast with a GradScaler needs a GPU, not {self.device}"

    def prepare_training(self):
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        # The train step runs through DDP, which averages the gradients over the processes; evaluation and
        # checkpoints use the model itself (no collectives, no `module.` prefix).
        self.network = self.model if self.world_size == 1 else torch.nn.parallel.DistributedDataParallel(
            self.model, device_ids=[self.device] if self.device.type == "cuda" else None)

    def set_mode(self, train):
        self.model.train(train)

    def set_eval(self, paths):
        for path in paths:
            self.model.get_submodule(path).eval()

    def set_lr(self, lr):
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _forward(self, network, x, y):
        x = torch.from_numpy(x).to(self.device, non_blocking=True)
        y = torch.from_numpy(y).to(self.device, non_blocking=True)  # indices, or target distributions
        with torch.autocast(self.device.type, enabled=self.amp):
            logits = network(x)
            loss = F.cross_entropy(logits.float(), y)
        return loss, logits

    def backward(self, x, y, scale):
        loss, logits = self._forward(self.network, x, y)
        self.scaler.scale(loss if scale == 1 else loss * scale).backward()
        return loss.item(), logits.detach().float().cpu().numpy()

    def apply_gradients(self):
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def eval_batch(self, x, y):
        loss, logits = self._forward(self.model, x, y)
        return loss.item(), logits.float().cpu().numpy()

    def write_checkpoint(self, path, meta):
        """kenshohara's save_N.pth {epoch, arch, state_dict, optimizer, scheduler} plus the config (and the
        GradScaler's state as `scaler` with amp)."""
        state = {**meta, "state_dict": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def load_training_state(self, checkpoint):
        # The neutral weights leave out num_batches_tracked; a resumed run continues the saved counts.
        self.model.load_state_dict(_tensors(checkpoint.counters), strict=False)
        self.optimizer.load_state_dict(_tensors(checkpoint.optimizer))

    def scaler_state(self):
        return self.scaler.state_dict()

    def load_scaler_state(self, state):
        self.scaler.load_state_dict(state)


def _tensors(tree):
    return map_arrays(tree, lambda array: torch.from_numpy(np.array(array)))


def build_predictor(config):
    """predict(x numpy) -> logits numpy for the checkpoint at config.resume_path."""
    return engine.build_predictor(Engine, config)

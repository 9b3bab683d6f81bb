"""PyTorch side of the shared training loop (core.training) and evaluation (core.evaluation)."""
import numpy as np
import torch
import torch.nn.functional as F

from backends.torch import distributed
from backends.torch.models import build_model
from backends.torch import weights
from core.archs import arch_name, model_kwargs
from core.state_dict import strip_prefix
from core.training import Engine, ResumeError, atomic_write, epoch_seed, load_weights, sgd_options, trainable_names


def pick_device(config):
    """CPU, or the GPU of this process (LOCAL_RANK under torchrun)."""
    if config["device"] == "gpu" and not torch.cuda.is_available():
        raise SystemExit("device: gpu was asked for, but torch sees no CUDA device")
    if config["device"] == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda", distributed.launched()[2])
    torch.cuda.set_device(device)
    return device


def create_model(config):
    """The config's model, with pretrained weights (new head for n_classes) when pretrain_path is set."""
    torch.manual_seed(config["manual_seed"])
    model = build_model(arch_name(config), **model_kwargs(config))
    if config["pretrain_path"]:
        load_weights(model, weights, config["pretrain_path"], config["n_pretrain_classes"])
    return model


def build_optimizer(config, params):
    """SGD (momentum, dampening, Nesterov, L2 weight decay) or Adam, as the reference builds them."""
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=config["learning_rate"], **sgd_options(config))
    return torch.optim.Adam(params, lr=config["learning_rate"], weight_decay=config["weight_decay"])


class TorchEngine(Engine):
    checkpoint_suffix = ".pth"

    def __init__(self, config):
        self.config = config
        self.arch = arch_name(config)
        self.device = pick_device(config)
        self.device_name = str(self.device)
        sync_bn = config["batchnorm_sync"] and distributed.launched()[1] > 1
        if sync_bn and self.device.type != "cuda":
            raise SystemExit("batchnorm_sync: torch's SyncBatchNorm only works on GPUs (DistributedDataParallel "
                             "refuses it on CPU: 'SyncBatchNorm layers only work with GPU modules'); "
                             "set batchnorm_sync: false")
        self.rank, self.world_size = distributed.init()
        self.model = create_model(config).to(self.device)
        if sync_bn:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        trainable = set(trainable_names((n for n, _ in self.model.named_parameters()), config["ft_begin_module"]))
        for name, param in self.model.named_parameters():
            param.requires_grad = name in trainable
        self.optimizer = build_optimizer(config, [p for p in self.model.parameters() if p.requires_grad])
        self.amp = config["amp"] and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        # The train step runs through DDP, which averages the gradients over the processes; evaluation and
        # checkpoints use the model itself (no collectives, no `module.` prefix).
        self.network = self.model if self.world_size == 1 else torch.nn.parallel.DistributedDataParallel(
            self.model, device_ids=[self.device] if self.device.type == "cuda" else None)

    def begin_epoch(self, epoch, train):
        self.model.train(train)
        if train:
            torch.manual_seed(epoch_seed(self.config["manual_seed"], epoch, self.rank))
        elif self.world_size > 1:  # validate with the statistics rank 0's checkpoint saves
            distributed.broadcast_batchnorm_statistics(self.model)

    def set_lr(self, lr):
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def all_reduce_sum(self, values):
        return distributed.all_reduce_sum(values) if self.world_size > 1 else list(values)

    def finish(self):
        distributed.finish()

    def _forward(self, network, x, y):
        x = torch.from_numpy(x).to(self.device, non_blocking=True)
        y = torch.from_numpy(y).to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, enabled=self.amp):
            logits = network(x)
            loss = F.cross_entropy(logits.float(), y)
        return loss, logits

    def train_batch(self, x, y):
        loss, logits = self._forward(self.network, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item(), logits.detach().float().cpu().numpy()

    @torch.no_grad()
    def eval_batch(self, x, y):
        loss, logits = self._forward(self.model, x, y)
        return loss.item(), logits.float().cpu().numpy()

    def save(self, path, meta):
        """kenshohara's save_N.pth {epoch, arch, state_dict, optimizer, scheduler} plus the config and
        class names, and with amp the GradScaler's state (its scale and growth count) as `scaler`."""
        state = {"epoch": meta["epoch"], "arch": meta["arch"], "state_dict": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scheduler": meta["scheduler"],
                 "config": meta["config"], "class_names": meta.get("class_names")}
        if self.amp:
            state["scaler"] = self.scaler.state_dict()
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def load(self, path):
        """Model, BatchNorm counters, optimizer and scaler from our save_N.pth or kenshohara's."""
        load_weights(self.model, weights, path)
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        # The neutral weights leave out num_batches_tracked; a resumed run continues the saved counts.
        counters = {name: value for name, value in strip_prefix(checkpoint["state_dict"]).items()
                    if name.endswith("num_batches_tracked")}
        self.model.load_state_dict(counters, strict=False)
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except ValueError as error:  # e.g. saved with another ft_begin_module: other parameter groups
            raise ResumeError(f"{path}: its optimizer state does not fit this run's optimizer ({error})") from None
        if "scaler" in checkpoint:
            self.scaler.load_state_dict(checkpoint["scaler"])
        return checkpoint


def build_predictor(config):
    """predict(x numpy) -> logits numpy for the checkpoint at config.resume_path."""
    device = pick_device(config)
    model = build_model(arch_name(config), **model_kwargs(config))
    load_weights(model, weights, config["resume_path"])
    model.to(device).eval()

    @torch.no_grad()
    def predict(x):
        return model(torch.from_numpy(np.ascontiguousarray(x)).to(device)).float().cpu().numpy()

    return predict

"""The engine template: what every backend's training and evaluation engine does, written once.

core.training.fit drives an Engine (epochs, schedule, logs); core.evaluation drives a predictor. The
template builds the model (seeded, pretrained weights through the one checkpoint reader, a new head for
n_classes), marks the trainable parameters (ft_begin_module), decides amp, saves and resumes checkpoints
(one read of the file) and turns every misfit into a message naming the file. A backend's
`Engine(core.engine.Engine)` supplies only the framework primitives listed under "primitives" below, and
its `interop` (state in/out, forward) and `distributed` modules.
"""
import contextlib

import numpy as np

from core.archs import arch_name, expected_shapes, frozen_batchnorms, get, kenshohara_arch, model_kwargs
from core.checkpoints import NotATrainingCheckpoint, float32_state, read_checkpoint, read_training_checkpoint
from core.state_dict import StateDictMismatch


class ResumeError(ValueError):
    """A checkpoint that cannot continue this run: another architecture or another optimizer's state."""


class WeightsFileError(ValueError):
    """A pretrain_path / resume_path file that cannot be read; the message names the file."""


def epoch_seed(seed, epoch, rank=0):
    """Framework RNG seed for one epoch (dropout), independent of resume; each process its own."""
    return int(np.random.default_rng([seed, epoch, 7] + [rank] * (rank > 0)).integers(2**31 - 1))


def module_name(name):
    """kenshohara's get_module_name (model.py): a parameter's top-level module, or for a DenseNet the module
    inside `features` ('features.denseblock4.denselayer1.conv.1.weight' -> 'denseblock4')."""
    parts = name.split(".")
    return parts[1] if parts[0] == "features" and len(parts) > 2 else parts[0]


def trainable_names(names, ft_begin_module):
    """kenshohara's get_fine_tuning_parameters: parameters from the first one whose
    module (module_name) is `ft_begin_module` on; all when it is empty."""
    names = list(names)
    if not ft_begin_module:
        return names
    tops = [module_name(n) for n in names]
    if ft_begin_module not in tops:
        raise ValueError(f"ft_begin_module '{ft_begin_module}' is not a module of the model "
                         f"(top-level modules: {', '.join(dict.fromkeys(tops))})")
    return names[tops.index(ft_begin_module):]


def fit_pretrained(pretrained, model_state, head, n_pretrain_classes=0, source=""):
    """Pretrained weights ready to load into a model with a new head.

    Keeps the model's own (freshly initialised) head where the pretrained head's shape differs (the
    reference replaces `fc` for n_classes) or where the file has no head at all. Every other key must fit. `n_pretrain_classes` (0: unchecked)
    is the head size the file must have; a head of another size is a StateDictMismatch listing its keys.
    """
    state = dict(pretrained)
    if not any(name in state for name in head):  # a backbone-only file: the model's own head
        state.update({name: model_state[name] for name in head if name in model_state})
    heads = [name for name in head if name in model_state and name in state]
    wrong = [(name, (n_pretrain_classes,) + state[name].shape[1:], state[name].shape) for name in heads
             if n_pretrain_classes and len(state[name]) != n_pretrain_classes]
    if wrong:
        raise StateDictMismatch(mis_shaped=wrong, source=f"{source} (n_pretrain_classes: {n_pretrain_classes})")
    for name in heads:
        if state[name].shape != model_state[name].shape:
            state[name] = model_state[name]
    return state


@contextlib.contextmanager
def naming_file(path):
    """Name `path` in a StateDictMismatch raised while its weights are loaded into a model."""
    try:
        yield
    except StateDictMismatch as error:
        raise StateDictMismatch(error.missing, error.unexpected, error.mis_shaped, source=path) from None


@contextlib.contextmanager
def reading(path):
    """Turn whatever a reader raises on a missing, cut, foreign, unsafe or unfitting file into an error naming it."""
    try:
        yield
    except StateDictMismatch:
        raise  # the reader names the file
    except NotATrainingCheckpoint as error:
        raise ResumeError(str(error)) from None
    except Exception as error:  # noqa: BLE001 - whatever a format's reader raises
        message = str(error) if str(path) in str(error) else f"{path}: cannot be read ({type(error).__name__}: {error})"
        raise WeightsFileError(message) from None


def weights_report(config, pretrained=None):
    """Lines saying what training does to the weights: the pretrained file read (architecture, classes),
    the head replaced (old -> new classes), the trainable modules and their parameter count.
    Framework-free: shapes from the reader (the file, or `pretrained`, the Checkpoint read from it) and the
    architecture registry (the model)."""
    arch = arch_name(config)
    shapes = expected_shapes(arch, **model_kwargs(config))
    lines = []
    if config["pretrain_path"]:
        pretrained = pretrained or read_checkpoint(config["pretrain_path"])
        old, new = pretrained.model_kwargs.get("n_classes"), config["n_classes"]
        has_head = get(arch).head[0] in pretrained.state
        epoch = f", epoch {pretrained.epoch}" if pretrained.epoch is not None else ""
        lines.append(f"pretrained weights: {config['pretrain_path']} (layout {pretrained.layout}, "
                     f"{pretrained.arch}, {f'{old} classes' if has_head else 'no classifier'}{epoch})")
        head = get(arch).head[0].rsplit(".", 1)[0]
        lines.append(f"head {head}: not in the file (a backbone), freshly initialised ({new} classes)" if not has_head
                     else f"head {head}: replaced, {old} -> {new} classes, freshly initialised" if old != new else
                     f"head {head}: kept from the file ({new} classes)")
    else:
        lines.append(f"weights: random initialisation (seed {config['manual_seed']}), no pretrain_path")
        if config["ft_begin_module"]:
            lines.append(f"warning: ft_begin_module '{config['ft_begin_module']}' without pretrain_path freezes the "
                         "modules before it at their random initialisation (kenshohara applies it only when "
                         "fine-tuning); set ft_begin_module: '' to train everything")
    parameters = {name: int(np.prod(shape)) for name, shape in shapes.items()
                  if not name.endswith(("running_mean", "running_var"))}
    frozen = frozen_batchnorms(arch, config["frozen_bn"], **model_kwargs(config))
    trainable = trainable_parameters(parameters, config, frozen)
    modules = list(dict.fromkeys(name.split(".")[0] for name in trainable))
    lines.append(f"trainable: {', '.join(modules)}: {sum(parameters[n] for n in trainable):,} of "
                 f"{sum(parameters.values()):,} parameters")
    if frozen:
        lines.append(f"frozen BatchNorm ({config['frozen_bn']}): {len(frozen)} layers in eval mode, from {frozen[0]}")
    return lines


def trainable_parameters(names, config, frozen_norms):
    """The parameter names training updates: from ft_begin_module on, without the weights of `frozen_norms`
    (frozen_batchnorms) when frozen_bn is 'partial' or 'all' (TSN and MMAction2 leave them out of the optimizer)."""
    trainable = trainable_names(names, config["ft_begin_module"])
    if config["frozen_bn"] not in ("partial", "all"):
        return trainable
    return [name for name in trainable if not name.startswith(tuple(f"{norm}." for norm in frozen_norms))]


class Engine:
    """The shared part of a backend's engine; see the module docstring."""

    framework = ""  # the backend's name, for messages
    native_format = ""  # its checkpoint format (core.checkpoints.formats)
    interop = None  # backends.<fw>.interop: to_numpy_state, load_numpy_state, forward
    distributed = None  # backends.<fw>.distributed: launched, init, all_reduce_sum, broadcast_batchnorm_statistics,
    # finish

    @property
    def checkpoint_suffix(self):
        return f".{self.native_format}"

    def __init__(self, config, training=True, log=print):
        self.config = config
        self.arch = arch_name(config)
        self.device_name = self.pick_device()
        self.rank, self.world_size = 0, 1
        if not training:  # a predictor: the weights of resume_path, strictly
            self.model = self.build_model(self.arch, model_kwargs(config))
            self.load_weights(self.model, config["resume_path"])
            self.set_mode(False)
            return
        sync_batchnorm = config["batchnorm_sync"] and self.distributed.launched()[1] > 1
        if sync_batchnorm and self.batchnorm_sync_unavailable():  # before joining the other processes
            raise SystemExit(f"batchnorm_sync: {self.batchnorm_sync_unavailable()}; set batchnorm_sync: false")
        self.rank, self.world_size = self.distributed.init()
        self.model = self.create_model()
        if sync_batchnorm:
            self.model = self.sync_batchnorm(self.model)
        # frozen_bn: these BatchNorm layers stay in eval mode in training (begin_epoch).
        self.frozen_norms = frozen_batchnorms(self.arch, config["frozen_bn"], **model_kwargs(config))
        named = self.named_parameters()
        trainable = set(trainable_parameters([name for name, _ in named], config, self.frozen_norms))
        for name, param in named:
            self.set_trainable(param, name in trainable)
        self.optimizer = self.build_optimizer([param for name, param in named if name in trainable])
        reason = self.amp_unavailable() if config["amp"] else None
        if reason and self.rank == 0:
            log(f"[{self.framework}] amp: {reason}; training in float32")
        self.amp = config["amp"] and reason is None
        self.accumulation_steps = config["accumulation_steps"]
        self.pending, self.group, self.batches_left = 0, 1, None  # micro-batches of the current update
        self.prepare_training()

    # ---- shared ----

    def load_weights(self, model, path, n_pretrain_classes=None):
        """Load weights file `path` (any format and layout) into `model`.

        n_pretrain_classes None: the file must fit exactly (a checkpoint). Otherwise it is a pretrained
        file whose head is replaced where its size differs (fit_pretrained). Errors name the file.
        """
        with reading(path):
            checkpoint = read_checkpoint(path)
        state = float32_state(checkpoint)
        if n_pretrain_classes is not None:
            state = fit_pretrained(state, self.interop.to_numpy_state(model), get(self.arch).head,
                                   n_pretrain_classes, path)
        with naming_file(path):
            self.interop.load_numpy_state(model, state)
        return checkpoint

    def create_model(self):
        """The config's model, with pretrained weights (new head for n_classes) when pretrain_path is set;
        `weights_report` says what was loaded, from the file read once."""
        self.seed(self.config["manual_seed"])
        model = self.build_model(self.arch, model_kwargs(self.config))
        pretrained = None
        if self.config["pretrain_path"]:
            pretrained = self.load_weights(model, self.config["pretrain_path"], self.config["n_pretrain_classes"])
        self.weights_report = weights_report(self.config, pretrained)
        return model

    def begin_epoch(self, epoch, train, n_batches=None):
        """Switch train/eval mode; in train mode reseed the framework RNG with epoch_seed(). `n_batches`, the
        epoch's training batches, lets the last update of the epoch average the micro-batches it has."""
        self.set_mode(train)
        self.pending, self.batches_left = 0, n_batches
        if train:
            self.set_eval(self.frozen_norms)
            self.seed(epoch_seed(self.config["manual_seed"], epoch, self.rank))
        elif self.world_size > 1:  # validate with the statistics rank 0's checkpoint saves
            self.distributed.broadcast_batchnorm_statistics(self.model)

    def train_batch(self, x, y):
        """One batch of training: forward and backward; the optimizer steps once every accumulation_steps
        batches (and after the epoch's last one), on the mean gradient of the batches since its last step.

        y: class indices (B,), or target distributions (B, n_classes) (label smoothing, mixup, cutmix:
        core.mixing). Returns (mean loss, logits as numpy)."""
        if self.pending == 0:
            left = self.batches_left if self.batches_left is not None else self.accumulation_steps
            self.group = max(1, min(self.accumulation_steps, left))
        loss, logits = self.backward(x, y, 1.0 / self.group)
        self.pending += 1
        if self.batches_left is not None:
            self.batches_left -= 1
        if self.pending == self.group:
            self.apply_gradients()
            self.pending = 0
        return loss, logits

    def all_reduce_sum(self, values):
        """The element-wise sums of `values` (floats) over all processes."""
        return list(values) if self.world_size == 1 else self.distributed.all_reduce_sum(values)

    def finish(self):
        """After training: leave the data-parallel group, where the framework needs that done explicitly."""
        if self.world_size > 1:
            self.distributed.finish()

    def save(self, path, meta):
        """Write model + optimizer + `meta` (epoch, arch, scheduler, config; the amp scaler's state) atomically."""
        self.write_checkpoint(path, {**meta, "scaler": self.scaler_state()} if self.amp else meta)

    def load(self, path):
        """Restore model, optimizer and counters from a training checkpoint (ours or kenshohara's): one read.
        Returns its meta (epoch, arch, scheduler, config)."""
        with reading(path):
            checkpoint = read_training_checkpoint(path)
        with naming_file(path):  # lists the offending keys of a checkpoint of another model
            self.interop.load_numpy_state(self.model, checkpoint.state)
        # kenshohara writes his arch as '{model}-{depth}' ('resnet-10'), we as 'resnet10'.
        if kenshohara_arch(checkpoint.arch) != kenshohara_arch(self.arch):
            raise ResumeError(f"{path}: checkpoint of {checkpoint.arch}, the config builds {self.arch}")
        try:
            self.load_training_state(checkpoint)
        except (ValueError, KeyError, TypeError) as error:  # e.g. saved with another ft_begin_module or optimizer
            raise ResumeError(f"{path}: its optimizer state does not fit this run's optimizer ({error}); "
                              "was it saved with another optimizer or ft_begin_module?") from None
        if self.amp and checkpoint.scaler:
            self.load_scaler_state(checkpoint.scaler)
        return {"epoch": checkpoint.epoch, "arch": checkpoint.arch, "scheduler": checkpoint.scheduler,
                "config": checkpoint.config}

    # ---- primitives: each backend's Engine implements these ----

    def pick_device(self):
        """Select the device (config `device`); return its name."""
        raise NotImplementedError

    def seed(self, value):
        """Seed the framework's RNG (weights, dropout)."""
        raise NotImplementedError

    def build_model(self, arch, kwargs):
        """The backend's model of `arch` (backends.<fw>.models.build_model), on the device."""
        raise NotImplementedError

    def batchnorm_sync_unavailable(self):
        """Why synchronised BatchNorm cannot run here (None: it can)."""
        raise NotImplementedError

    def sync_batchnorm(self, model):
        """The model with synchronised BatchNorm."""
        raise NotImplementedError

    def named_parameters(self):
        """[(neutral name, parameter)] of the model's parameters, in order."""
        raise NotImplementedError

    def set_trainable(self, param, trainable):
        raise NotImplementedError

    def build_optimizer(self, params):
        """SGD or Adam with the reference's (PyTorch's) update rules over `params`."""
        raise NotImplementedError

    def amp_unavailable(self):
        """Why mixed precision cannot run on this device (None: it can)."""
        raise NotImplementedError

    def prepare_training(self):
        """Whatever the framework needs before the first step (data-parallel wrapper, scaler, compiled step)."""

    def set_mode(self, train):
        raise NotImplementedError

    def set_eval(self, paths):
        """Put the model's modules at `paths` (dotted, as in the state dict) in eval mode."""
        raise NotImplementedError

    def set_lr(self, lr):
        raise NotImplementedError

    def backward(self, x, y, scale):
        """Forward and backward of numpy inputs, adding `scale` x the gradient of the mean loss to the
        accumulated gradients (y: indices or target distributions); returns (mean loss, logits as numpy)."""
        raise NotImplementedError

    def apply_gradients(self):
        """One optimizer step with the accumulated gradients, then clear them."""
        raise NotImplementedError

    def eval_batch(self, x, y):
        """Forward without gradients; returns (mean loss, logits as numpy)."""
        raise NotImplementedError

    def write_checkpoint(self, path, meta):
        """Write the model, the optimizer and `meta` at `path` (+ sidecars) atomically, in native_format."""
        raise NotImplementedError

    def load_training_state(self, checkpoint):
        """Restore the optimizer (and counters) of a core.checkpoints.TrainingCheckpoint."""
        raise NotImplementedError

    def scaler_state(self):
        """The amp loss scaler's state as plain numbers (only called with amp on)."""
        raise NotImplementedError

    def load_scaler_state(self, state):
        raise NotImplementedError


def build_predictor(engine_class, config):
    """predict(x numpy) -> logits numpy of the checkpoint at config.resume_path, with `engine_class`'s framework."""
    engine = engine_class(config, training=False)
    return lambda x: engine.interop.forward(engine.model, x)

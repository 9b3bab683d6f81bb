"""`python -m convert`'s operation: read a checkpoint in any format and layout, optionally give it a new
head, write it in another (the reading and writing are core.checkpoints')."""
from core.checkpoints import read_checkpoint, replace_head, write_checkpoint
from core.checkpoints.formats import format_of
from core.checkpoints.reader import holds_meta


def convert(src, dst, from_fmt=None, to_fmt=None, layout_in=None, layout_out="neutral", arch=None,
            n_classes=None, drop_head=False, log=print):
    """Convert `src` to `dst`; returns the Checkpoint written."""
    checkpoint = read_checkpoint(src, from_fmt, layout_in, arch)
    stored = dict(checkpoint.stored)
    kwargs = ", ".join(f"{key}={value}" for key, value in checkpoint.model_kwargs.items())
    log(f"read {src}: {checkpoint.arch}({kwargs}), layout {checkpoint.layout}, "
        f"{len(checkpoint.state)} arrays")
    keeps = holds_meta(format_of(dst, to_fmt), layout_out)
    # The class names and config are written again where the output can hold them.
    dropped = [name for name in checkpoint.dropped if not (keeps and name in checkpoint.stored)]
    if dropped:
        more = len(dropped) - 10
        log(f"dropping training state (not needed to run or fine-tune the model): {', '.join(dropped[:10])}"
            + (f" and {more} more" if more > 0 else ""))
    if drop_head:
        if n_classes is None:
            raise ValueError("--drop-head needs --n_classes N: the number of classes of the new head")
        checkpoint = replace_head(checkpoint, n_classes)
        log(f"replaced the classifier: {n_classes} classes, freshly initialised")
    elif n_classes is not None and n_classes != checkpoint.model_kwargs.get("n_classes"):
        raise ValueError(f"{src}: has {checkpoint.model_kwargs['n_classes']} classes, not {n_classes}; "
                         "add --drop-head to replace the classifier")
    if drop_head:
        stored["class_names"] = None  # the new head's classes are not the file's
    kept = [name.replace("_", " ") for name, value in stored.items() if value is not None]
    write_checkpoint(dst, checkpoint, to_fmt, layout_out, stored)
    if kept and not keeps:
        log(f"not stored in {dst}: the {' and '.join(kept)} of {src} (a flat file holds parameters only; .ckpt, "
            ".pdparams and --layout-out kenshohara .pth keep them)")
    elif kept:
        log(f"kept the {' and '.join(kept)}")
    log(f"wrote {dst} (layout {layout_out})")
    return checkpoint

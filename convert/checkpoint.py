"""`python -m convert`'s operation: read a checkpoint in any format and layout, optionally give it a new
head, write it in another (the reading and writing are core.checkpoints')."""
from core.checkpoints import read_checkpoint, replace_head, write_checkpoint


def convert(src, dst, from_fmt=None, to_fmt=None, layout_in=None, layout_out="neutral", arch=None,
            n_classes=None, drop_head=False, log=print):
    """Convert `src` to `dst`; returns the Checkpoint written."""
    checkpoint = read_checkpoint(src, from_fmt, layout_in, arch)
    kwargs = ", ".join(f"{key}={value}" for key, value in checkpoint.model_kwargs.items())
    log(f"read {src}: {checkpoint.arch}({kwargs}), layout {checkpoint.layout}, "
        f"{len(checkpoint.state)} arrays")
    if checkpoint.dropped:
        more = len(checkpoint.dropped) - 10
        log(f"dropping training state (not needed to run or fine-tune the model): {', '.join(checkpoint.dropped[:10])}"
            + (f" and {more} more" if more > 0 else ""))
    if drop_head:
        if n_classes is None:
            raise ValueError("--drop-head needs --n_classes N: the number of classes of the new head")
        checkpoint = replace_head(checkpoint, n_classes)
        log(f"replaced the classifier: {n_classes} classes, freshly initialised")
    elif n_classes is not None and n_classes != checkpoint.model_kwargs["n_classes"]:
        raise ValueError(f"{src}: has {checkpoint.model_kwargs['n_classes']} classes, not {n_classes}; "
                         "add --drop-head to replace the classifier")
    write_checkpoint(dst, checkpoint, to_fmt, layout_out)
    log(f"wrote {dst} (layout {layout_out})")
    return checkpoint

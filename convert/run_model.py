"""Run one checkpoint on one backend and save the logits (a worker of `python -m convert --verify`).

Each backend runs in its own process: MindSpore cannot be imported after torch or paddle, and a
fresh process shows that the file alone carries the weights.

    python -m convert.run_model --backend paddle --weights r3d18.pdparams --input x.npy --output y.npy
"""
import argparse

import numpy as np

from backends import BACKENDS, load


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convert.run_model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", required=True, choices=BACKENDS)
    parser.add_argument("--weights", required=True, help="checkpoint file (any format convert reads)")
    parser.add_argument("--format", help="checkpoint format when the extension does not tell")
    parser.add_argument("--layout", help="checkpoint layout (default: detected)")
    parser.add_argument("--arch", help="architecture (default: from the file or its shapes)")
    parser.add_argument("--input", required=True, help=".npy clip of shape (batch, channels, T, H, W)")
    parser.add_argument("--output", required=True, help=".npy file for the logits (batch, n_classes)")
    args = parser.parse_args(argv)
    from core.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(args.weights, args.format, args.layout, args.arch)
    interop = load(args.backend, "interop")
    model = load(args.backend, "models").build_model(checkpoint.arch, **checkpoint.model_kwargs)
    interop.load_numpy_state(model, checkpoint.state)
    logits = interop.forward(model, np.load(args.input))
    np.save(args.output, np.asarray(logits, dtype=np.float32))


if __name__ == "__main__":
    main()

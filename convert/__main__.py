"""Convert 3D-CNN checkpoints between PyTorch, PaddlePaddle and MindSpore.

Formats (from the extension, or --from / --to): pth (.pth, .pt: PyTorch), pdparams (Paddle),
ckpt (MindSpore), npz and safetensors (framework-free interchange). Only .pth imports its
framework (torch); .ckpt, .pdparams, .npz and .safetensors are read and written without one.

Layouts (--layout-in is detected when left out; --layout-out defaults to neutral):
  neutral           flat parameter dict in the framework's own spelling (any format)
  kenshohara        3D-ResNets-PyTorch .pth {'epoch', 'arch', 'state_dict', ...}
  piergiaj          pytorch-i3d .pt (bare I3D state dict)
  ms-zoo-i3d        MindSpore model zoo I3D .ckpt (Mixed_3b_b0.conv3d.weight, ...; a fine-tuned
                    head logits.logits_conv3d.*); for the zoo's own trained files pass --arch i3d_mszoo
  hassony2          kinetics_i3d_pytorch I3D .pth (conv3d_1a_7x7.batch3d.weight, mixed_3b.branch_1.0...)
  kylemin           kylemin/S3D .pt (S3D_kinetics400.pt: base.0.conv_s.weight, fc.0.bias)
  vcp-s3d           video_classification_pytorch S3D .pth (Mixed_3b.b0.s3dMixed_3b/Branch_0/..._conv.weight,
                    logits.logits_conv.bias; arch s3d_tf)
  paddle-3dresnets  Paddle port of 3D-ResNets .pdparams (bare pickled dict)

The architecture comes from the file (kenshohara's 'arch'), else --arch, else the parameter
shapes (depth, block, width, classes, input channels, conv1_t_size, shortcut). Optimizer and
scheduler state are dropped. A checkpoint that does not fit its architecture is refused with
the missing, unexpected and mis-shaped keys; so is a pickle that would run code.

examples:
  python -m convert r3d50_K_200ep.pth r3d50_K_200ep.pdparams --verify
  python -m convert r3d50_K_200ep.pth r3d50_ucf101.ckpt --n_classes 101 --drop-head
  python -m convert rgb_imagenet.pt rgb_imagenet.ckpt --layout-out ms-zoo-i3d --verify
  python -m convert resnet50.pdparams resnet50.pth --layout-out kenshohara
  python -m convert weights.bin weights.safetensors --from pth --arch resnet18
"""
import argparse
import pickle
import sys

from tqdm import tqdm

from convert.checkpoint import convert
from core.checkpoints.formats import FORMATS
from core.checkpoints.layouts import LAYOUTS
from convert.verify import verify
from core.archs import ARCHS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", metavar="SRC", help="checkpoint to read")
    parser.add_argument("dst", metavar="DST", help="checkpoint to write (atomically)")
    parser.add_argument("--from", dest="from_fmt", choices=sorted(FORMATS), help="format of SRC")
    parser.add_argument("--to", dest="to_fmt", choices=sorted(FORMATS), help="format of DST")
    parser.add_argument("--layout-in", choices=sorted(LAYOUTS), help="layout of SRC (default: detected)")
    parser.add_argument("--layout-out", choices=sorted(LAYOUTS), default="neutral", help="layout of DST")
    parser.add_argument("--arch", choices=ARCHS, help="architecture, when neither the file nor its shapes tell")
    parser.add_argument("--n_classes", type=int, help="classes the output must have")
    parser.add_argument("--drop-head", action="store_true",
                        help="replace the classifier by a freshly initialised one for --n_classes")
    parser.add_argument("--verify", action="store_true",
                        help="run SRC and DST in their frameworks (one process each) on the same seeded clip "
                             "and compare the logits; .npz / .safetensors run on torch")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="--verify fails when max |difference| > TOLERANCE * max(1, max |source logits|)")
    parser.add_argument("--clip-size", type=int, nargs=3, default=(16, 112, 112), metavar=("T", "H", "W"),
                        help="frames, height and width of the --verify clip")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.verify and args.drop_head:
        sys.exit("error: --verify compares logits, which a replaced classifier changes; verify without --drop-head")
    with tqdm(total=2 if args.verify else 1, desc="convert", unit="step", file=sys.stderr) as progress:
        try:
            checkpoint = convert(args.src, args.dst, args.from_fmt, args.to_fmt, args.layout_in, args.layout_out,
                                 args.arch, args.n_classes, args.drop_head, log=tqdm.write)
            progress.update()
            if not args.verify:
                return
            progress.set_description("verify")
            result = verify(args.src, args.dst, checkpoint.model_kwargs["n_input_channels"], args.from_fmt,
                            args.to_fmt, checkpoint.layout, args.layout_out, checkpoint.arch, args.tolerance,
                            tuple(args.clip_size))
            progress.update()
        except (ValueError, OSError, RuntimeError, pickle.UnpicklingError) as error:
            progress.close()
            sys.exit(f"error: {error}")
    print(f"verify: max abs difference {result.max_abs:.3g}, max relative difference {result.max_rel:.3g} "
          f"(threshold {result.threshold:.3g})")
    if not result.passed:
        sys.exit(f"error: {args.dst} does not compute what {args.src} computes")


if __name__ == "__main__":
    main()

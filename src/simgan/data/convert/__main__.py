"""``python -m simgan.data.convert FORMAT SRC DST [options]``: one dataset -> one store.

    python -m simgan.data.convert kaggle-gaze gaze.h5 data/stores/unityeyes_kaggle.h5
    python -m simgan.data.convert kaggle-gaze real_gaze.h5 data/stores/mpiigaze_kaggle.h5
    python -m simgan.data.convert unityeyes UnityEyes/imgs data/stores/unityeyes.h5 --size 36x60
    python -m simgan.data.convert mpiigaze MPIIGaze/Data/Normalized data/stores/mpiigaze.h5 [--labels]
    python -m simgan.data.convert nyu-hand nyu/train data/stores/nyu_real.h5 --kind real --size 64x64
    python -m simgan.data.convert nyu-hand nyu/train data/stores/nyu_synth.h5 --kind synthetic --size 64x64
    python -m simgan.data.convert folder my_images/ data/stores/mine.h5 [--grayscale] [--size 36x60]
    python -m simgan.data.convert npz arrays.npz data/stores/arrays.h5 [--pixel-range 0,1]

Bad input ends with ``error: <what is wrong, naming the file>`` on stderr and exit
status 2, and nothing is left at DST. SIGINT (Ctrl-C) or SIGTERM stops the conversion
after the current batch, removes the partial file and exits with 130 / 143.
"""

from __future__ import annotations

import argparse
import sys

from simgan.data.convert import FORMATS
from simgan.data.convert._common import parse_size
from simgan.errors import SimganError
from simgan.reliability.signals import StopSignals
from simgan.utils.cli import exit_now_if_hdf5_is_broken, report

_COMMON = ("format", "src", "dst", "size", "overwrite", "limit")


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _limit(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"--limit must be >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simgan.data.convert",
                                     description="Convert a dataset to a simgan HDF5 store (docs/data_formats.md).")
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name, module in FORMATS.items():
        sub = formats.add_parser(name, help=module.HELP, description=module.__doc__.splitlines()[0])
        sub.add_argument("src", metavar="SRC", help="source file or folder")
        sub.add_argument("dst", metavar="DST", help="store to write (.h5)")
        default = getattr(module, "DEFAULT_SIZE", None)
        sub.add_argument("--size", type=_size, default=None, metavar="HxW",
                         help=f"output size (default {'x'.join(map(str, default)) if default else 'as the source'})")
        sub.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
        sub.add_argument("--limit", type=_limit, default=None, metavar="N", help="convert the first N images only")
        module.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in _COMMON}
    try:
        with StopSignals():
            meta = FORMATS[args.format].convert(args.src, args.dst, size=args.size, overwrite=args.overwrite,
                                               limit=args.limit, **options)
    except SimganError as err:
        code = report(err)
        exit_now_if_hdf5_is_broken(code)
        return code
    except KeyboardInterrupt:  # a second Ctrl-C: the writer has removed its partial file
        print(f"Conversion aborted; nothing was written at {args.dst}.", file=sys.stderr, flush=True)
        return 130
    labels = ", ".join(f"{k} {list(v)}" for k, v in meta["labels"].items()) or "none"
    print(f"wrote {meta['path']}: {meta['count']} images {'x'.join(map(str, meta['shape']))} {meta['dtype']}, "
          f"pixel_range {list(meta['pixel_range'])}, labels: {labels}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

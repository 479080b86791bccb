"""``python -m simgan.bench``: the platform against a plain PyTorch loop, the fast paths, the data layer.

    python -m simgan.bench --quick                          # small setting, a few min on 2 CPU cores
    python -m simgan.bench                                  # paper gaze nets, batch 64, 35x55, CPU
    python -m simgan.bench --device cuda                    # batch 512 on a GPU
    python -m simgan.bench --variants eager compile+channels_last --repeats 5
    python -m simgan.bench --parts train --threads 1 --out logs/bench/one-thread
    python -m simgan.bench --quick --parts refine           # refine export vs bare forward, peak memory
    python -m simgan.bench --parts scale                    # 1.2M-eye and 224x224 depth stores, streamed

See docs/benchmark.md for what each row means.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from simgan.bench.settings import DEFAULT_VARIANTS, PARTS, BenchSettings, parse_size, quick


def parse(argv: list[str]) -> BenchSettings:
    p = argparse.ArgumentParser(prog="python -m simgan.bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--quick", action="store_true", help="small setting: batch 16, refiner 2 blocks of 32")
    p.add_argument("--batch", type=int, help="images per batch (default 64; 512 with --device cuda)")
    p.add_argument("--size", type=parse_size, help="HxW, default 35x55 (the paper's eyes)")
    p.add_argument("--channels", type=int)
    p.add_argument("--width", type=int, help="refiner feature maps (paper: 64)")
    p.add_argument("--blocks", type=int, help="refiner ResNet blocks (paper: 4)")
    p.add_argument("--repeats", type=int, help="timed rounds; medians are reported")
    p.add_argument("--steps", type=int, help="timed steps per network per window")
    p.add_argument("--warmup", type=int, help="untimed refiner+discriminator cycles per window")
    p.add_argument("--variants", nargs="+", help=f"fast-path sets (default: {' '.join(DEFAULT_VARIANTS)})")
    p.add_argument("--optimizer", choices=("adam", "sgd"))
    p.add_argument("--device", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--parts", nargs="+", choices=PARTS)
    p.add_argument("--pipeline-workers", type=int)
    p.add_argument("--pipeline-images", type=int)
    p.add_argument("--pipeline-batches", type=int)
    p.add_argument("--refine-batches", type=int, help="the refine export's store, in batches")
    p.add_argument("--refine-repeats", type=int, help="alternating bare forward / export runs")
    p.add_argument("--refine-memory-scales", type=int, nargs="*",
                   help="peak memory of stores this many times the refine store, each in a fresh process (none: skip)")
    p.add_argument("--history-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="output folder (default logs/bench/<date>_<time>/)")
    args = p.parse_args(argv)
    s = quick() if args.quick else BenchSettings()
    if args.device and args.device.startswith("cuda") and args.batch is None and not args.quick:
        s.batch = 512  # the paper's batch; a GPU needs it to be busy
    if args.size:
        s.height, s.width_px = args.size
    for key in ("batch", "channels", "width", "blocks", "repeats", "steps", "warmup", "optimizer", "device", "threads",
                "pipeline_workers", "pipeline_images", "pipeline_batches", "refine_batches", "refine_repeats",
                "history_size", "seed", "out"):
        if getattr(args, key) is not None:
            setattr(s, key, getattr(args, key))
    for key in ("variants", "parts"):
        if getattr(args, key):
            setattr(s, key, tuple(getattr(args, key)))
    if args.refine_memory_scales is not None:
        s.refine_memory_scales = tuple(args.refine_memory_scales)
    s.parsed_variants()  # fail now on a misspelt fast path, not after minutes of measuring
    return s


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    from simgan.bench.runner import run_benchmark

    return run_benchmark(parse(argv), command=shlex.join(["python", "-m", "simgan.bench", *argv]))


if __name__ == "__main__":
    main()

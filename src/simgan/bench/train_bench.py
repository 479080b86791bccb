"""Training throughput: the plain loop and the platform, every variant, interleaved.

Every (variant, loop) pair is built once (same seed: same weights) and first *primed*:
one untimed window that compiles, grows the allocator, records the start-up time, the
losses of its first steps (the plain loop's and the platform's must agree: the same
maths) and the peak memory of one refiner and one discriminator step. Then ``repeats``
rounds: in each round every variant runs one timed window in each loop, the variant
order rotated and the loop order alternated from round to round, so that load from
other processes hits all of them alike; ratios are taken within a round (side by side)
and the medians over rounds are reported.

A window is ``2 * warmup`` untimed steps, then ``steps`` refiner and ``steps``
discriminator steps (K_g = K_d = 1, adversarial phase), then one more (the last timed
step ends where it starts).
"""

from __future__ import annotations

from pathlib import Path

import torch

from simgan.bench.data import loaders, make_batches
from simgan.bench.platform_loop import PlatformLoop
from simgan.bench.reference import PlainLoop
from simgan.bench.settings import BenchSettings
from simgan.bench.timing import median
from simgan.bench.window import Window
from simgan.schedule import DISCRIMINATOR, REFINER

IMPLS = ("plain", "platform")
NETWORKS = (REFINER, DISCRIMINATOR)


def _loss_agreement(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> float:
    """Largest relative difference of the two loops' losses, step by step."""
    assert [n for n, _ in a] == [n for n, _ in b], "the loops stepped different networks"
    return max(abs(x - y) / max(abs(x), 1e-12) for (_, x), (_, y) in zip(a, b))


def bench_training(s: BenchSettings, device: torch.device, workdir: Path, log=print) -> dict:
    variants = s.parsed_variants()
    batches = make_batches(s.batch, s.image_shape, s.seed)
    skip = 2 * s.warmup
    window_steps = skip + 2 * s.steps + 1
    loops, prime, failed = {}, {}, {}
    for v in list(variants):
        try:
            loops[v.name] = {"plain": PlainLoop(s, v, device), "platform": PlatformLoop(s, v, device, workdir)}
            prime[v.name] = {}
            for impl in IMPLS:
                window = Window(skip, device, probe_steps=(skip, skip + 1), record_losses=True)
                torch.manual_seed(s.seed + 1)  # the history buffer draws from torch's RNG: same draws in both loops
                loops[v.name][impl].run(loaders(batches, skip + 2), window)
                prime[v.name][impl] = window
        except Exception as err:  # a fast path this machine lacks: report it, measure the others
            if v.name == "eager":
                raise
            failed[v.name] = f"{type(err).__name__}: {err}"
            variants.remove(v)
            loops.pop(v.name, None)
            log(f"  {v.name} FAILED, left out: {failed[v.name]}")
            continue
        log(f"  primed {v.name:<28} start-up plain {prime[v.name]['plain'].clock.startup_s:6.1f} s, "
            f"platform {prime[v.name]['platform'].clock.startup_s:6.1f} s")

    rounds: list[dict] = []  # rounds[r][variant][impl][clock][network] = images per (wall or CPU) second
    for r in range(s.repeats):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        result = {}
        for i, v in enumerate(order):
            impls = IMPLS if (r + i) % 2 == 0 else IMPLS[::-1]
            result[v.name] = {}
            for impl in impls:
                window = Window(skip, device)
                loops[v.name][impl].run(loaders(batches, window_steps), window)
                result[v.name][impl] = {clock: {n: s.batch / median(times[n]) for n in NETWORKS}
                                        for clock, times in window.clock.times.items()}
        rounds.append(result)
        log(f"  round {r + 1}/{s.repeats}: " + ", ".join(
            f"{name} {res['plain']['wall'][REFINER]:.1f}/{res['platform']['wall'][REFINER]:.1f}"
            for name, res in result.items()) + "  (refiner images/s, plain/platform)")
    out = summarize(variants, rounds, prime)
    out["failed"] = failed
    return out


def summarize(variants, rounds: list[dict], prime: dict) -> dict:
    """Medians over rounds of rates and of within-round ratios, per variant and loop."""
    out = {"variants": {}, "rounds": rounds}
    for v in variants:
        name = v.name
        entry = {"fast_paths": {k: getattr(v, k) for k in ("compile", "channels_last", "bf16", "fused")}}
        for impl in IMPLS:
            p = prime[name][impl]
            rate = lambda clock, n, rd, nm=name, im=impl: rd[nm][im][clock][n]  # noqa: E731
            entry[impl] = {
                **{f"{n}_images_per_s": median([rate("wall", n, rd) for rd in rounds]) for n in NETWORKS},
                **{f"{n}_images_per_cpu_s": median([rate("cpu", n, rd) for rd in rounds]) for n in NETWORKS},
                **{f"{n}_vs_plain_eager": median([rate("wall", n, rd) / rd["eager"]["plain"]["wall"][n]
                                                  for rd in rounds]) for n in NETWORKS},
                **{f"{n}_vs_plain_eager_cpu": median([rate("cpu", n, rd) / rd["eager"]["plain"]["cpu"][n]
                                                      for rd in rounds]) for n in NETWORKS},
                **{f"{n}_peak_mib": p.memory_mib.get(n) for n in NETWORKS},
                "startup_s": p.clock.startup_s,
            }
        for clock in ("wall", "cpu"):
            entry[f"platform_vs_plain_{clock}"] = {
                n: median([rd[name]["platform"][clock][n] / rd[name]["plain"][clock][n] for rd in rounds])
                for n in NETWORKS}
        entry["loss_max_rel_diff"] = _loss_agreement(prime[name]["plain"].losses, prime[name]["platform"].losses)
        entry["losses"] = {impl: prime[name][impl].losses for impl in IMPLS}
        out["variants"][name] = entry
    # the platform's code around the nets is the same for every fast path: pooled over
    # variants, rounds and networks, its side-by-side ratio has many samples, not three
    out["platform_vs_plain_pooled"] = {
        clock: median([rd[v.name]["platform"][clock][n] / rd[v.name]["plain"][clock][n]
                       for rd in rounds for v in variants for n in NETWORKS]) for clock in ("wall", "cpu")}
    # ranked by the within-round ratio to the plain eager loop: steadier than raw rates on a shared machine
    out["best"] = max(out["variants"], key=lambda n: out["variants"][n]["platform"][f"{REFINER}_vs_plain_eager"])
    return out

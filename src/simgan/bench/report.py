"""The benchmark's outputs: ``results.json`` (everything) and ``results.md`` (the tables).

Targets, each checked from the medians of this run:

- the platform's step throughput >= 0.95x the plain loop's, eager, side by side;
- the best variant (platform) >= 3x the plain eager loop;
- the data pipeline >= 10x what the fastest measured training consumes;
- refine export >= 0.9x the bare refiner forward.
"""

from __future__ import annotations

import json
from pathlib import Path

from simgan.bench.refine_export import refine_markdown, refine_setting
from simgan.bench.scale import scale_markdown

TARGETS = {"platform_vs_plain": 0.95, "best_vs_eager": 3.0, "pipeline_vs_training": 10.0, "refine_vs_forward": 0.9,
           # images/s: a streamed paper-scale eye store with 2 workers; a 224x224 depth store
           "streamed_eyes_images_per_s": 30_000, "streamed_depth_images_per_s": 2_000}


def _f(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def targets(results: dict) -> dict:
    out = {}
    train = results.get("train")
    if train:
        eager = train["variants"]["eager"]["platform_vs_plain_wall"]
        out["platform_vs_plain"] = {"value": min(eager.values()), "target": TARGETS["platform_vs_plain"],
                                    "detail": "eager, wall clock, min over refiner/discriminator steps"}
        out["platform_vs_plain_pooled"] = {
            "value": train["platform_vs_plain_pooled"]["wall"], "target": TARGETS["platform_vs_plain"],
            "detail": "wall clock, median of the side-by-side ratios of every variant, round and network"}
        cpu = train["variants"]["eager"]["platform_vs_plain_cpu"]
        out["platform_vs_plain_cpu"] = {"value": min(cpu.values()), "target": TARGETS["platform_vs_plain"],
                                        "detail": "eager, CPU time, min over refiner/discriminator steps"}
        best = train["variants"][train["best"]]["platform"]
        ceiling = results.get("ceiling", {}).get("summary", {}).get("max_speedup_over_plain_eager")
        limit = "" if ceiling is None else f"; the convolution ceiling allows at most {ceiling:.2f}x here"
        out["best_vs_eager"] = {"value": best["refiner_vs_plain_eager"], "target": TARGETS["best_vs_eager"],
                                "detail": f"refiner step, {train['best']} (platform) / eager (plain), wall clock{limit}"}
        out["best_vs_eager_cpu"] = {"value": best["refiner_vs_plain_eager_cpu"], "target": TARGETS["best_vs_eager"],
                                    "detail": f"refiner step, {train['best']} (platform) / eager (plain), CPU time"}
    implied = results.get("overhead", {}).get("implied_platform_vs_plain")
    if implied:
        out["platform_vs_plain_from_overhead"] = {
            "value": min(implied.values()), "target": TARGETS["platform_vs_plain"],
            "detail": "eager plain step time + the platform's per-step overhead measured with tiny nets"}
    pipe = results.get("pipeline")
    if pipe and train:
        out["pipeline_vs_training"] = {"value": pipe["vs_training"], "target": TARGETS["pipeline_vs_training"],
                                       "detail": f"{pipe['workers_for_target']} workers vs {train['best']} steps/s"}
    refine = results.get("refine")
    if refine:
        out["refine_vs_forward"] = {"value": refine["ratio"], "target": TARGETS["refine_vs_forward"],
                                    "detail": f"best export / best bare forward, {refine_setting(refine)}"}
    scale = results.get("scale")
    if scale:
        for store, key in (("eyes", "streamed_eyes_images_per_s"), ("depth", "streamed_depth_images_per_s")):
            best = max(scale["streamed"][store], key=lambda r: r["workers"])
            size = scale["sizes"]["eyes" if store == "eyes" else "crops"]
            out[key] = {"value": best["images_per_s"], "target": TARGETS[key],
                        "detail": f"{size:,} {'eyes' if store == 'eyes' else 'depth crops'}, chunk-aware order, "
                                  f"{best['workers']} workers"}
        out["render_peak_rss_below_1_gb"] = {
            "value": 1024 / scale["render_eyes"]["peak_rss_mb"], "target": 1.0,
            "detail": f"1 GiB / peak RSS of rendering {scale['render_eyes']['n']:,} eyes "
                      f"({scale['render_eyes']['peak_rss_mb']:,.0f} MB)"}
    for t in out.values():
        t["met"] = None if t["value"] is None else bool(t["value"] >= t["target"])
    return out


def _train_tables(train: dict, flops: dict, ceiling_gflop_per_s: float | None) -> list[str]:
    wall = [
        "| variant | loop | R step img/s | D step img/s | R vs plain eager | D vs plain eager | platform/plain R | "
        "platform/plain D | R GFLOP/s | R % of ceiling | D GFLOP/s | R step peak MiB | D step peak MiB | start-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cpu = [
        "| variant | loop | R img/CPU-s | D img/CPU-s | R vs plain eager | D vs plain eager | platform/plain R | "
        "platform/plain D |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in train["variants"].items():
        for impl in ("plain", "platform"):
            e = entry[impl]
            label = f"**{name}**" if name == train["best"] and impl == "platform" else name
            ratio = {clock: entry[f"platform_vs_plain_{clock}"] if impl == "platform" else {} for clock in ("wall", "cpu")}
            wall.append("| " + " | ".join([
                label, impl, _f(e["refiner_images_per_s"]), _f(e["discriminator_images_per_s"]),
                _f(e["refiner_vs_plain_eager"], 2), _f(e["discriminator_vs_plain_eager"], 2),
                _f(ratio["wall"].get("refiner"), 3), _f(ratio["wall"].get("discriminator"), 3),
                _f(e["refiner_images_per_s"] * flops["refiner_step"] / 1e9),
                _f(None if not ceiling_gflop_per_s
                   else 100 * e["refiner_images_per_s"] * flops["refiner_step"] / 1e9 / ceiling_gflop_per_s, 0),
                _f(e["discriminator_images_per_s"] * flops["discriminator_step"] / 1e9),
                _f(e["refiner_peak_mib"]), _f(e["discriminator_peak_mib"]), _f(e["startup_s"]),
            ]) + " |")
            cpu.append("| " + " | ".join([
                label, impl, _f(e["refiner_images_per_cpu_s"]), _f(e["discriminator_images_per_cpu_s"]),
                _f(e["refiner_vs_plain_eager_cpu"], 2), _f(e["discriminator_vs_plain_eager_cpu"], 2),
                _f(ratio["cpu"].get("refiner"), 3), _f(ratio["cpu"].get("discriminator"), 3),
            ]) + " |")
    return (["Wall clock (medians over rounds; ratios taken within a round):", ""] + wall
            + ["", "CPU time of this process (all its threads), same steps:", ""] + cpu)


def _ceiling_table(ceiling: dict) -> list[str]:
    lines = [f"## Ceiling: the refiner's main convolution alone ({ceiling['layer']})", "",
             "| format | dtype | pass | GFLOP/s |", "|---|---|---|---|"]
    lines += [f"| {r['format']} | {r['dtype']} | {r['pass']} | {_f(r['gflop_per_s'])} |" for r in ceiling["rows"]]
    summary = ceiling["summary"]
    lines += ["", f"Best forward+backward in one format: {_f(summary['best_forward_backward_gflop_per_s'])} GFLOP/s; "
              f"the fastest forward plus the fastest backward, each in its best format: "
              f"{_f(summary['split_gflop_per_s'])} GFLOP/s. At that rate a refiner step would run at "
              f"{_f(summary['refiner_images_per_s'])} images/s"
              + (f": at most {summary['max_speedup_over_plain_eager']:.2f}x the plain eager loop."
                 if summary.get("max_speedup_over_plain_eager") else "."), ""]
    return lines


def markdown(results: dict) -> str:
    s, m, flops = results["settings"], results["machine"], results["flops"]
    lines = [
        f"# simgan benchmark {results['started']}",
        "",
        f"`{results['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads, "
        f"{m['cpu_capability']}, native CPU bf16: {m['cpu_bf16_native']}), device {m['device']}"
        + (f" ({m['gpu']})" if m.get("gpu") else "") + f"; load average at start {m['load_average']}, "
        f"at end {results['load_average_end']}.",
        "",
        f"Setting: batch {s['batch']}, {s['channels']}x{s['height']}x{s['width_px']}, refiner {s['blocks']} blocks of "
        f"{s['width']}, paper gaze D, {s['optimizer']} lr {s['lr']}, history {s['history_size']}, K_g:K_d 1:1; "
        f"{s['repeats']} rounds x {s['steps']} timed steps per network, medians.",
        "",
        f"FLOPs per image (counted): R forward {flops['refiner_forward'] / 1e9:.3f} GFLOP, D forward "
        f"{flops['discriminator_forward'] / 1e6:.1f} MFLOP; refiner step {flops['refiner_step'] / 1e9:.3f} GFLOP, "
        f"discriminator step {flops['discriminator_step'] / 1e9:.3f} GFLOP.",
        "",
    ]
    ceiling = results.get("ceiling")
    if ceiling:
        lines += _ceiling_table(ceiling)
    train = results.get("train")
    if train:
        best_rate = ceiling["summary"]["split_gflop_per_s"] if ceiling else None
        lines += ["## Training steps", ""] + _train_tables(train, flops, best_rate) + [
            "",
            *(f"Failed and left out: {name}: {why}\n" for name, why in train.get("failed", {}).items()),
            *(f"Left out: {name}: {why}\n" for name, why in train.get("left_out", {}).items()),
            f"Best (platform, refiner step): **{train['best']}**. Plain vs platform losses over the priming steps, "
            "largest relative difference: " + ", ".join(
                f"{n} {e['loss_max_rel_diff']:.1e}" for n, e in train["variants"].items()) + ".",
            "",
        ]
    overhead = results.get("overhead")
    if overhead:
        lines += ["## Platform overhead per step (tiny nets: " + ", ".join(
                      f"{k} {v}" for k, v in overhead["setting"].items()) + ")", "",
                  "| network | plain ms/step | platform ms/step | added ms/step | platform/plain it allows at the nets above |",
                  "|---|---|---|---|---|"]
        implied = overhead.get("implied_platform_vs_plain", {})
        for n, added in overhead["added_ms_per_step"].items():
            lines.append(f"| {n} | {_f(overhead['plain_ms_per_step'][n], 2)} | "
                         f"{_f(overhead['platform_ms_per_step'][n], 2)} | {_f(added, 2)} | {_f(implied.get(n), 4)} |")
        lines.append("")
    pipe = results.get("pipeline")
    if pipe:
        lines += ["## Data pipeline (HDF5 stores -> DataModule -> batches)", "",
                  "| workers | batches/s | images/s (synthetic + real) | vs training steps/s |", "|---|---|---|---|"]
        for run in pipe["runs"]:
            lines.append(f"| {run['workers']} | {_f(run['batches_per_s'])} | {_f(run['images_per_s'])} | "
                         f"{_f(run['batches_per_s'] / pipe['training_steps_per_s'])}x |")
        lines += ["", f"Training consumption: {pipe['training_steps_per_s']:.2f} steps/s ({pipe['training_from']}).", ""]
    if results.get("refine"):
        lines += refine_markdown(results["refine"])
    if results.get("scale"):
        lines += [scale_markdown(results["scale"])]
    lines += ["## Targets", "", "| target | value | needed | met |", "|---|---|---|---|"]
    for name, t in results["targets"].items():
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {name} ({t['detail']}) | {_f(t['value'], 2)} | >= {t['target']} | {met} |")
    return "\n".join(lines) + "\n"


def write(results: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(results, indent=1, default=str))
    md_path.write_text(markdown(results))
    return json_path, md_path

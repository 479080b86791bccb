"""``python -m simgan.bench`` runs end to end and writes its JSON and markdown.

Not a timing test: the smallest setting (tiny nets, 1 round of 1 step per network)
runs in seconds and every expected key is checked, not any speed. It also checks that
the benchmark's plain PyTorch loop is the same maths as the platform (identical losses,
eager fp32) and the FLOPs it counts for the paper's gaze nets.
"""

from __future__ import annotations

import json

import pytest
import torch

from simgan.bench.__main__ import main, parse
from simgan.bench.ceiling import best_rate, best_split_rate, measure_ceiling, summarize
from simgan.bench.flops import step_flops
from simgan.bench.refine_export import bench_export, refine_markdown
from simgan.bench.runner import _without_slow_bf16
from simgan.bench.settings import BenchSettings, Variant

SMALLEST = ["--variants", "eager", "--batch", "4", "--size", "16x24", "--width", "4", "--blocks", "1",
            "--repeats", "1", "--steps", "1", "--warmup", "1", "--history-size", "16", "--pipeline-images", "64",
            "--pipeline-batches", "3", "--pipeline-workers", "0", "--refine-batches", "2", "--refine-repeats", "1",
            "--refine-memory-scales"]


def test_smallest_setting_writes_json_and_markdown(tmp_path, capsys):
    results = main([*SMALLEST, "--parts", "train", "overhead", "pipeline", "refine", "--out", str(tmp_path / "bench")])
    data = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert set(data) >= {"settings", "machine", "flops", "ceiling", "train", "overhead", "pipeline", "refine", "targets",
                         "command"}
    assert set(data["flops"]) == {"refiner_forward", "discriminator_forward", "refiner_step", "discriminator_step"}
    eager = data["train"]["variants"]["eager"]
    for impl in ("plain", "platform"):
        for key in ("refiner_images_per_s", "discriminator_images_per_s", "refiner_images_per_cpu_s",
                    "refiner_vs_plain_eager", "refiner_peak_mib", "discriminator_peak_mib", "startup_s"):
            assert eager[impl][key] > 0, (impl, key)
    assert set(eager["platform_vs_plain_wall"]) == set(eager["platform_vs_plain_cpu"]) == {"refiner", "discriminator"}
    assert eager["loss_max_rel_diff"] < 1e-6  # the reference loop is the module's maths, step for step
    assert data["train"]["best"] == "eager"
    assert data["pipeline"]["runs"][0]["batches_per_s"] > 0 and data["pipeline"]["vs_training"] > 0
    refine = data["refine"]
    assert refine["measured"] is True
    assert refine["ratio"] > 0 and refine["paired_ratio_median"] > 0 and refine["cpu_ratio"] > 0
    assert refine["bare_forward_images_per_s"] > 0 and refine["export_images_per_s"] > 0
    assert refine["setting"]["images"] == 8 and refine["setting"]["refiner"]["width"] == 4
    assert refine["memory"] == []  # --refine-memory-scales with no scale: skipped
    assert set(data["targets"]) >= {"platform_vs_plain", "best_vs_eager", "pipeline_vs_training", "refine_vs_forward"}
    markdown = (tmp_path / "bench" / "results.md").read_text()
    assert data["ceiling"]["summary"]["max_speedup_over_plain_eager"] > 0
    overhead = data["overhead"]
    for network in ("refiner", "discriminator"):
        assert overhead["plain_ms_per_step"][network] > 0 and overhead["platform_ms_per_step"][network] > 0
        assert 0 < overhead["implied_platform_vs_plain"][network] <= 1
    assert 0 < data["train"]["platform_vs_plain_pooled"]["wall"]
    assert "refine_vs_forward (best export / best bare forward, 8 images of 1x16x24, batch 4" in markdown
    for heading in ("## Ceiling", "## Training steps", "## Platform overhead", "## Data pipeline", "## Refine export", "## Targets",
                    "| eager | plain |"):
        assert heading in markdown
    assert results["paths"]["json"].endswith("results.json")
    assert "## Targets" in capsys.readouterr().out  # the tables are printed too


def test_refine_export_measures_peak_memory_per_store_size_in_fresh_processes(tmp_path):
    s = BenchSettings(batch=4, height=16, width_px=24, width=4, blocks=1, refine_batches=4, refine_repeats=1,
                      refine_memory_scales=(1, 2))
    result = bench_export(s, tmp_path)
    assert [(m["scale"], m["images"], m["chunk_size"]) for m in result["memory"]] == [(1, 16, 4), (2, 32, 4)]
    assert all(m["peak_rss_mib"] >= m["rss_before_mib"] > 0 and m["tracemalloc_peak_mib"] > 0 for m in result["memory"])
    assert result["memory_peak_rss_ratio"] > 0
    assert "| 32 images (2x) | 4 |" in "\n".join(refine_markdown(result))


def test_a_failing_refine_export_fails_the_benchmark(tmp_path, monkeypatch):
    def broken(cfg):
        raise RuntimeError("refine broke")

    monkeypatch.setattr("simgan.bench.refine_export.refine", broken)
    with pytest.raises(RuntimeError, match="refine broke"):
        main([*SMALLEST, "--parts", "refine", "--out", str(tmp_path / "bench")])


def test_options():
    assert parse(["--quick"]).batch == 16
    assert parse(["--refine-memory-scales"]).refine_memory_scales == ()
    assert parse(["--refine-memory-scales", "1", "10"]).refine_memory_scales == (1, 10)
    assert parse(["--device", "cuda"]).batch == 512  # the paper's batch on a GPU
    assert parse(["--device", "cuda", "--batch", "64"]).batch == 64
    s = parse(["--size", "36x60", "--variants", "compile+channels_last", "fused"])
    assert (s.height, s.width_px) == (36, 60)
    assert [v.name for v in s.parsed_variants()] == ["eager", "compile+channels_last", "fused"]  # eager always
    assert Variant.parse("channels_last+compile") == Variant(compile=True, channels_last=True)
    with pytest.raises(ValueError, match="unknown fast path"):
        Variant.parse("compile+turbo")
    with pytest.raises(SystemExit):
        parse(["--size", "35by55"])


def test_counted_flops_of_the_paper_gaze_nets():
    flops = step_flops(BenchSettings())  # 4 blocks of 64, 1x35x55
    assert flops["refiner_forward"] / 1e9 == pytest.approx(1.138, abs=1e-3)
    assert flops["discriminator_forward"] / 1e6 == pytest.approx(19.7, abs=0.1)
    assert flops["refiner_step"] > 2.9 * flops["refiner_forward"]  # forward + backward (x2) + D


def test_ceiling_times_the_main_convolution_in_each_format_dtype_and_pass():
    s = BenchSettings(batch=2, height=8, width_px=12, width=8)
    ceiling = measure_ceiling(s, torch.device("cpu"))
    keys = {(r["format"], r["dtype"], r["pass"]) for r in ceiling["rows"]}
    assert keys == {(f, d, p) for f in ("nchw", "channels_last") for d in ("fp32", "bf16")
                    for p in ("forward", "forward+backward")}
    assert all(r["gflop_per_s"] > 0 for r in ceiling["rows"])


def test_ceiling_bounds_the_speedup_and_slow_bf16_is_left_out():
    row = lambda fmt, dtype, pass_, rate: {"format": fmt, "dtype": dtype, "pass": pass_, "gflop_per_s": rate,  # noqa: E731
                                           "gflop": 3.0 if pass_ == "forward+backward" else 1.0}
    rows = [row("nchw", "fp32", "forward", 50.0), row("nchw", "fp32", "forward+backward", 75.0),
            row("channels_last", "fp32", "forward", 100.0), row("channels_last", "fp32", "forward+backward", 60.0),
            row("nchw", "bf16", "forward", 2.0), row("nchw", "bf16", "forward+backward", 3.0)]
    ceiling = {"rows": rows}
    assert best_rate(ceiling) == 75.0 and best_rate(ceiling, "bf16") == 3.0
    # forward 1/100 s (channels_last), backward 3/75 - 1/50 = 1/50 s (nchw): 3 GFLOP in 0.03 s
    assert best_split_rate(ceiling) == pytest.approx(100.0)
    summary = summarize(ceiling, refiner_step_flops=2e9, plain_eager_refiner_images_per_s=25.0)
    assert summary["refiner_images_per_s"] == pytest.approx(50.0)  # 100 GFLOP/s / 2 GFLOP per image
    assert summary["max_speedup_over_plain_eager"] == pytest.approx(2.0)
    s = BenchSettings(variants=("eager", "bf16", "compile+bf16", "channels_last"))
    kept, left_out = _without_slow_bf16(s, ceiling)
    assert [v.name for v in kept.parsed_variants()] == ["eager", "channels_last"]
    assert set(left_out) == {"bf16", "compile+bf16"} and "3.0 GFLOP/s" in left_out["bf16"]
    rows[-1]["gflop_per_s"] = 200.0  # native bf16: kept
    assert _without_slow_bf16(s, ceiling)[1] == {}


def test_scale_part_is_measured_reported_and_judged(tmp_path):
    """The scale section through the runner, on stores small enough for a test (the figures are not)."""
    from simgan.bench.runner import run_benchmark

    s = BenchSettings(batch=4, height=16, width_px=24, width=4, blocks=1, parts=("scale",), scale_quick=True,
                      scale_sizes={"eyes": 2048, "crops": 600, "preloaded": 1024, "eye_batches": 2, "depth_batches": 1},
                      out=str(tmp_path / "bench"))
    results = run_benchmark(s, log=lambda message: None)
    assert results["scale"]["streamed"]["eyes"][-1]["workers"] == 2
    assert {"streamed_eyes_images_per_s", "streamed_depth_images_per_s", "render_peak_rss_below_1_gb"} <= set(
        results["targets"])
    assert all(results["targets"][k]["value"] > 0 for k in ("streamed_eyes_images_per_s", "render_peak_rss_below_1_gb"))
    markdown = (tmp_path / "bench" / "results.md").read_text()
    assert "## Data at scale (quick)" in markdown and "| 2,048 eyes 1x36x60 uint8, streamed | 2 |" in markdown

"""Streaming stores at scale: the chunk-aware order, batched chunk-wise reads, bounded rendering.

Order (:class:`~simgan.data.samplers.ChunkedBatchSampler`): every stream epoch is a
permutation of each rank's indices, ranks are disjoint, batches draw from few chunks,
``start`` resumes bit for bit, and the shuffle stays close to a full permutation's by
the mean |distance in the file| of consecutive samples: at least 0.9 of a full
permutation's with the default 16-chunk buffer (about ``1 - 1/16``: only consecutive
samples of one chunk are near).

Reads (``StoreDataset.__getitems__``): equal to item-by-item reads, for streamed,
preloaded, old (gzip + shuffle, unfiltered, contiguous) layouts; a damaged chunk and a
NaN pixel are still errors naming the file and the sample. Rendering
(``RenderedStore``) block-wise gives the store a one-shot render gives. Real HDF5 files.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from simgan.data import sources
from simgan.data.samplers import ChunkedBatchSampler, ResumableBatchSampler
from simgan.data.simulators.eyes import render_eyes
from simgan.data.sources import RenderedStore
from simgan.data.store import StoreDataset, StoreWriter, write_store
from simgan.errors import DataError

N, ROWS = 5000, 64


def _split(n: int = N, keep: float = 0.8, seed: int = 0) -> np.ndarray:
    """A training split as the DataModule makes it: a sorted subset of store rows."""
    return np.sort(np.random.default_rng(seed).permutation(n)[: int(n * keep)])


def _sampler(indices, rank=0, world=1, start=0, batch=64, buffer=16, seed=3):
    return ChunkedBatchSampler(len(indices), batch, seed, 1, rank, world, start=start, chunks=indices // ROWS,
                               buffer_chunks=buffer)


# ---------------------------------------------------------------- the order
@pytest.mark.parametrize("world", [1, 3])
def test_every_epoch_is_a_permutation_of_each_rank_s_indices_and_ranks_are_disjoint(world):
    idx = _split()
    samplers = [_sampler(idx, r, world) for r in range(world)]
    for epoch in (0, 1):
        orders = [s.epoch_order(epoch) for s in samplers]
        for order in orders:
            assert len(order) == len(idx) // world and len(np.unique(order)) == len(order)
        together = np.concatenate(orders)
        assert len(np.unique(together)) == len(together)  # disjoint
        if world == 1:
            assert np.array_equal(np.sort(together), np.arange(len(idx)))
    assert not np.array_equal(samplers[0].epoch_order(0), samplers[0].epoch_order(1))


def test_batches_draw_from_few_chunks_yet_samples_are_spread_like_a_full_permutation():
    idx = _split(60_000, 0.95)
    batch = 512
    chunked = _sampler(idx, batch=batch).epoch_order(0)
    full = ResumableBatchSampler(len(idx), batch, 3, 1).epoch_order(0)
    usable = len(chunked) // batch * batch

    def chunks_per_batch(order):
        rows = idx[order[:usable]].reshape(-1, batch)
        return np.mean([len(np.unique(r // ROWS)) for r in rows])

    # a batch spans its ~16-chunk window (and a piece of the next); a random one ~395 of the 937
    assert chunks_per_batch(chunked) <= 34 < 350 <= chunks_per_batch(full)
    spread = np.abs(np.diff(idx[chunked])).mean() / np.abs(np.diff(idx[full])).mean()
    assert spread >= 0.9, spread


def test_resuming_at_start_continues_the_same_batches_bitwise():
    idx = _split()
    whole = iter(_sampler(idx, 1, 2))
    batches = [next(whole) for _ in range(80)]  # past an epoch end (31 batches per rank-epoch)
    for start in (0, 7, 31, 45):
        resumed = iter(_sampler(idx, 1, 2, start=start))
        assert [next(resumed) for _ in range(80 - start)] == batches[start:]
        assert _sampler(idx, 1, 2).batch(start) == batches[start]


def test_the_order_is_a_function_of_seed_and_chunks():
    idx = _split()
    a = _sampler(idx).epoch_order(0)
    assert np.array_equal(a, _sampler(idx).epoch_order(0))
    assert not np.array_equal(a, _sampler(idx, seed=4).epoch_order(0))
    assert not np.array_equal(a, _sampler(idx, buffer=4).epoch_order(0))


# ---------------------------------------------------------------- batched reads
def _eyes(tmp_path, n=700, **writer):
    images, labels = render_eyes(n, seed=1)
    path = tmp_path / "eyes.h5"
    specs = {k: (v.shape[1:], v.dtype) for k, v in labels.items()}
    with StoreWriter(path, images.shape[1:], images.dtype, specs, **writer) as w:
        for s in range(0, n, 256):
            w.append(images[s:s + 256], {k: v[s:s + 256] for k, v in labels.items()})
    return path


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("layout", [
    {},                                                              # the current default (LZF)
    {"compression": "gzip", "compression_level": 4, "shuffle": True},  # stores written before
    {"compression": False},
])
@pytest.mark.parametrize("preload", [False, True])
def test_batched_reads_equal_item_by_item_reads(tmp_path, layout, preload):
    path = _eyes(tmp_path, **layout)
    ds = StoreDataset(path, ("gaze", "pupil"), _split(700), preload=preload)
    positions = [17, 3, 400, 401, 402, 5, 200, 18, 555, 0, 401 - 1]
    _same(default_collate(ds.__getitems__(positions)), default_collate([ds[i] for i in positions]))
    run = list(range(64, 192))  # whole chunks, in order: read without a gather
    _same(default_collate(ds.__getitems__(run)), default_collate([ds[i] for i in run]))


def test_a_dataloader_with_the_chunked_sampler_yields_item_by_item_batches(tmp_path):
    path = _eyes(tmp_path)
    ds = StoreDataset(path, ("gaze",), _split(700), preload=False)
    chunks = ds.chunk_ids()
    assert chunks is not None and StoreDataset(path, ("gaze",), preload=True).chunk_ids() is None
    sampler = ChunkedBatchSampler(len(ds), 50, 0, 0, chunks=chunks)
    loader = iter(DataLoader(ds, batch_sampler=sampler, num_workers=1))
    for number in range(3):
        _same(next(loader), default_collate([ds[i] for i in sampler.batch(number)]))


def test_an_unchunked_old_store_reads_alike(tmp_path):
    images, labels = render_eyes(100, seed=2)
    path = write_store(tmp_path / "s.h5", images, labels)
    with h5py.File(path, "r") as f, h5py.File(tmp_path / "contiguous.h5", "w") as g:
        for key, value in f.attrs.items():
            g.attrs[key] = value
        g["images"] = f["images"][:]  # no chunks, no filters
        for name in f["labels"]:
            g[f"labels/{name}"] = f["labels"][name][:]
    ds = StoreDataset(tmp_path / "contiguous.h5", ("gaze",), preload=False)
    assert ds.chunk_ids() is None
    positions = [9, 2, 50, 51, 3]
    _same(default_collate(ds.__getitems__(positions)), default_collate([ds[i] for i in positions]))
    assert torch.equal(ds[7]["image"], StoreDataset(path, ("gaze",))[7]["image"])


def test_a_damaged_chunk_read_in_a_batch_is_named_by_file_and_samples(tmp_path):
    path = _eyes(tmp_path)
    with h5py.File(path, "r") as f:
        rows = f["images"].chunks[0]
        info = f["images"].id.get_chunk_info(3)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + info.size // 2)
        data = f.read(16)
        f.seek(info.byte_offset + info.size // 2)
        f.write(bytes(b ^ 0xFF for b in data))
    ds = StoreDataset(path, (), preload=False)
    ds.__getitems__(list(range(0, 3 * rows)))  # the chunks before it read fine
    with pytest.raises(DataError) as err:
        ds.__getitems__([5, 2 * rows + 1, 3 * rows + 2, 4 * rows + 1])
    message = str(err.value)
    assert str(path) in message and "corrupt store" in message
    assert f"samples {3 * rows}..{4 * rows - 1}" in message  # the damaged chunk, not the whole range


def test_a_nan_pixel_read_in_a_batch_is_named_by_file_and_sample(tmp_path):
    images = np.random.default_rng(0).uniform(-1, 1, (200, 1, 20, 20)).astype(np.float32)
    clean = StoreDataset(write_store(tmp_path / "clean.h5", images), (), preload=False)
    positions = [3, 130, 7, 64, 65]  # float pixels: the same arithmetic, batched or not
    _same(default_collate(clean.__getitems__(positions)), default_collate([clean[i] for i in positions]))
    path = write_store(tmp_path / "f.h5", images)
    with h5py.File(path, "r+") as f:
        f["images"][130, 0, 4, 4] = np.nan
    ds = StoreDataset(path, (), preload=False)
    with pytest.raises(DataError, match="sample 130 has NaN or inf pixels"):
        ds.__getitems__([3, 130, 7])


# ---------------------------------------------------------------- bounded rendering
def test_block_wise_rendering_writes_the_store_a_one_shot_render_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "RENDER_BLOCK", 48)  # 5 blocks, the last one short
    n = 230
    source = RenderedStore("simgan.data.simulators.eyes.render_eyes", n=n, height=36, width=60, seed=4,
                           cache_dir=str(tmp_path))
    path = source.prepare()
    images, labels = render_eyes(n, seed=4)
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["images"][:], images)
        for name, values in labels.items():
            assert np.array_equal(f["labels"][name][:], values)
        assert f.attrs["count"] == n
    assert not list(tmp_path.glob("*.partial"))
    # the cache key did not change: the same arguments find the same file
    assert RenderedStore("simgan.data.simulators.eyes.render_eyes", n=n, height=36, width=60, seed=4,
                         cache_dir=str(tmp_path)).path == path


def test_a_render_failing_midway_leaves_no_store(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "RENDER_BLOCK", 32)
    calls = []

    def failing(n, height, width, seed, start=0):
        calls.append(start)
        if start >= 64:
            raise RuntimeError("renderer crashed")
        return render_eyes(n, height, width, seed, start=start)

    monkeypatch.setattr(sources, "_import", lambda dotted: failing)
    source = RenderedStore("simgan.data.simulators.eyes.render_eyes", n=200, height=36, width=60, seed=0,
                           cache_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match="renderer crashed"):
        source.prepare()
    assert calls == [0, 32, 64]  # lazily, one block at a time
    assert not source.path.exists() and not list(tmp_path.iterdir())


def test_scale_benchmark_quick_section_runs(tmp_path):
    from simgan.bench.scale import run_scale, scale_markdown

    result = run_scale(quick=True, workers=(0, 1), root=tmp_path, progress=lambda m: None,
                       sizes={"eyes": 4096, "crops": 600, "preloaded": 2048, "eye_batches": 4, "depth_batches": 1})
    assert not list(tmp_path.iterdir())  # the stores are gone
    for store in ("eyes", "depth"):
        assert [r["workers"] for r in result["streamed"][store]] == [0, 1]
        assert all(r["images_per_s"] > 0 and r["reader_peak_rss_mb"] > 0 for r in result["streamed"][store])
    assert result["render_eyes"]["n"] == 4096
    text = scale_markdown(result)
    assert "| 4,096 eyes 1x36x60 uint8, streamed | 1 |" in text and "TFLOP/s needs" in text

"""History buffer (Sec. 2.3): fill, half/half, replacement, size 0, state_dict round trip."""

import torch

from simgan.history import HistoryBuffer


def batch(value: float, b: int = 8) -> torch.Tensor:
    return torch.full((b, 1, 4, 4), value)


def test_fills_from_first_refined_batches_half_a_batch_per_step():
    buf = HistoryBuffer(size=12, image_shape=(1, 4, 4))
    assert len(buf) == 0
    buf.push(batch(1.0))
    assert len(buf) == 4
    buf.push(batch(2.0))
    buf.push(batch(3.0))
    assert len(buf) == 12
    assert (buf.images[:4] == 1).all() and (buf.images[4:8] == 2).all() and (buf.images[8:] == 3).all()
    buf.push(batch(4.0))
    assert len(buf) == 12  # full: slots are replaced, not appended


def test_mix_is_half_current_half_history():
    buf = HistoryBuffer(size=16, image_shape=(1, 4, 4))
    current = batch(7.0)
    assert torch.equal(buf.mix(current), current)  # empty: all current
    for _ in range(4):
        buf.push(batch(1.0))
    mixed = buf.mix(current)
    assert mixed.shape == current.shape
    values = mixed.flatten(1)[:, 0]
    assert (values == 7).sum() == 4 and (values == 1).sum() == 4


def test_partially_filled_buffer_gives_what_it_has():
    buf = HistoryBuffer(size=16, image_shape=(1, 4, 4))
    buf.push(batch(1.0, b=4))  # 2 images stored
    values = buf.mix(batch(7.0)).flatten(1)[:, 0]
    assert (values == 1).sum() == 2 and (values == 7).sum() == 6


def test_full_buffer_replaces_half_a_batch_of_random_slots():
    torch.manual_seed(0)
    buf = HistoryBuffer(size=40, image_shape=(1, 4, 4))
    for _ in range(10):
        buf.push(batch(1.0))
    buf.push(batch(9.0))
    new = (buf.images.flatten(1)[:, 0] == 9)
    assert new.sum() == 4
    assert not torch.equal(new.nonzero().flatten(), torch.arange(4))  # not just the first slots


def test_size_zero_disables_history():
    buf = HistoryBuffer(size=0, image_shape=(1, 4, 4))
    buf.push(batch(1.0))
    current = batch(7.0)
    assert len(buf) == 0 and torch.equal(buf.mix(current), current)


def test_state_dict_round_trip_restores_history():
    buf = HistoryBuffer(size=8, image_shape=(1, 4, 4))
    buf.push(torch.randn(8, 1, 4, 4))
    state = buf.state_dict()
    assert set(state) == {"images", "filled"}
    restored = HistoryBuffer(size=8, image_shape=(1, 4, 4))
    restored.load_state_dict(state)
    assert len(restored) == 4 and torch.equal(restored.images, buf.images)

"""Label preservation for eyes: does refinement move the pupil or the gaze?

SimGAN's self-regularization exists so that refined images keep their synthetic labels
(paper Sec. 2.1, Eq. 4). The paper checks this for gaze by eye (Sec. 3.1, Fig. 5: refined
eyes "preserve the annotations" of pupil and eyelids) and by the downstream gaze error
(Table 2). This module measures it directly and per image:

1. Fit a :class:`PupilRegressor` on the simulator's *labeled synthetic* images only
   (labels ``pupil`` = x, y in pixels, ``gaze`` = yaw, pitch in radians). It never sees
   a refined image and does not depend on the refiner, so every refiner is measured
   with the same ruler.
2. :func:`label_shift_per_image`: predict on each synthetic image and on its refined
   version; the distance between the two predicted pupil centres (px) and the angle
   between the two predicted gaze vectors (degrees). :func:`label_shift` summarises it.

A perfect label-preserving refiner gives 0 up to how much the estimator's output reacts
to the appearance change itself (it was trained on synthetic images only), so the
numbers are an upper bound on the label drift. Training with label-preserving
:func:`appearance_jitter` keeps that reaction small (on the project's eye simulator,
300 steps: Gaussian noise of std 0.05 moved the prediction by 0.1 px / 1.0 deg on
average, a 3x3 blur by 0.26 px / 1.9 deg; a 2 px shift read as 1.98 px). Compare refiners
with the same estimator, and read the numbers next to :func:`regressor_error` (its error
on held-out synthetic images: the resolution of the ruler).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from simgan.metrics.fitting import Deadline, minibatches, predict, progress, recalibrate_batchnorm, seeded
from simgan.metrics.images import check_images


def _conv(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation),
                         nn.BatchNorm2d(cout), nn.ReLU())


class PupilRegressor(nn.Module):
    """``(N, C, H, W)`` in [-1, 1] -> ``(N, 4)``: pupil x, y (px), gaze yaw, pitch (rad).

    The pupil comes from a spatial soft-argmax: a heatmap over positions at half
    resolution, whose softmax-weighted mean position is a sub-pixel coordinate that moves
    exactly with the image content (a plain conv+dense regressor quantises position by
    its pooling and generalises worse to shifts). Dilated convs give a ~33 px receptive
    field, enough to see a whole iris in a 36x60 eye. A learned per-axis scale and offset
    absorbs the labels' pixel convention (centre of pixel 0 at 0 or at 0.5). Gaze is
    regressed from pooled features plus the pupil position, and de-standardised with
    the training labels' mean/std (buffers, so they travel with the state dict).
    """

    def __init__(self, channels: int = 1, width: int = 16):
        super().__init__()
        w = width
        self.full = _conv(channels, w)
        self.coarse = nn.Sequential(_conv(w, 2 * w), _conv(2 * w, 2 * w, dilation=2), _conv(2 * w, 2 * w, dilation=4))
        self.heatmap = nn.Conv2d(2 * w, 1, 1)
        self.pool = nn.AdaptiveAvgPool2d((3, 5))
        self.gaze_head = nn.Sequential(nn.Linear(2 * w * 15 + 2, 64), nn.ReLU(), nn.Linear(64, 2))
        self.pupil_scale = nn.Parameter(torch.ones(2))
        self.pupil_offset = nn.Parameter(torch.zeros(2))
        self.register_buffer("gaze_mean", torch.zeros(2))
        self.register_buffer("gaze_std", torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        f = self.coarse(F.max_pool2d(self.full(x), 2))
        logits = self.heatmap(f).flatten(1)  # N x (h' w')
        prob = logits.softmax(dim=1).view(-1, *f.shape[2:])
        # Centre of half-res cell j, in input pixel units: pixels 2j and 2j+1 -> 2j + 0.5.
        ys = torch.arange(f.shape[2], device=x.device, dtype=x.dtype) * (h / f.shape[2]) + 0.5
        xs = torch.arange(f.shape[3], device=x.device, dtype=x.dtype) * (w / f.shape[3]) + 0.5
        pupil = torch.stack([(prob.sum(1) * xs).sum(1), (prob.sum(2) * ys).sum(1)], dim=1)
        pupil = pupil * self.pupil_scale + self.pupil_offset
        rel = pupil / torch.tensor([w, h], device=x.device, dtype=x.dtype) - 0.5
        gaze = self.gaze_head(torch.cat([self.pool(f).flatten(1), rel], dim=1))
        return torch.cat([pupil, gaze * self.gaze_std + self.gaze_mean], dim=1)


def _targets(labels: dict[str, torch.Tensor], n: int) -> torch.Tensor:
    missing = {"pupil", "gaze"} - set(labels)
    if missing:
        raise ValueError(f"label regressor: labels {sorted(missing)} missing (has {sorted(labels)})")
    out = []
    for name in ("pupil", "gaze"):
        v = torch.as_tensor(labels[name], dtype=torch.float32)
        if v.shape != (n, 2):
            raise ValueError(f"label regressor: label '{name}' must be ({n}, 2), got {tuple(v.shape)}")
        out.append(v)
    return torch.cat(out, dim=1)


def appearance_jitter(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Label-preserving appearance changes: contrast/brightness, blur, sensor noise.

    These are the kinds of change a refiner makes on purpose (paper Fig. 5: noise,
    softer edges, skin texture). Training the estimator to ignore them keeps
    :func:`label_shift` about geometry: without them, a little added noise alone moved
    the predicted gaze by several degrees.
    """
    n = len(x)
    u = lambda lo, hi: torch.rand(n, 1, 1, 1, generator=gen) * (hi - lo) + lo  # noqa: E731
    x = x * u(0.7, 1.3) + u(-0.2, 0.2)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mix = u(0.0, 1.0) * (torch.rand(n, 1, 1, 1, generator=gen) < 0.5)
    x = x + mix * (blurred - x)
    x = x + u(0.0, 0.1) * torch.randn(x.shape, generator=gen)
    return x.clamp(-1.0, 1.0)


def fit_label_regressor(images: torch.Tensor, labels: dict[str, torch.Tensor], seed: int = 0,
                        steps: int = 2000, time_budget_s: float | None = 300.0, batch_size: int = 64,
                        lr: float = 2e-3, width: int = 16, augment: bool = True,
                        device: str | torch.device = "cpu", show_progress: bool = True) -> PupilRegressor:
    """Trains a :class:`PupilRegressor` on labeled synthetic eyes; returns it in eval mode.

    ``images``: float N x C x H x W in [-1, 1]; ``labels``: ``{"pupil": (N, 2) x, y px,
    "gaze": (N, 2) yaw, pitch rad}`` (numpy or tensors; extra labels are ignored).
    Loss: Huber (delta 1 px) on the pupil + MSE on the standardised gaze. With
    ``augment``, each batch gets :func:`appearance_jitter` (geometry untouched). Stops
    after ``steps`` optimizer steps or ``time_budget_s`` seconds. Deterministic for ``seed``.
    """
    check_images(images, "label regressor: images")
    images = images.detach().float()
    y = _targets(labels, len(images))
    gen = torch.Generator().manual_seed(seed)
    with seeded(seed):
        model = PupilRegressor(images.shape[1], width)
    model.gaze_mean.copy_(y[:, 2:].mean(0))
    model.gaze_std.copy_(y[:, 2:].std(0).clamp_min(1e-6) if len(y) > 1 else torch.ones(2))
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # Cosine decay: the last steps refine sub-pixel positions with small updates.
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    deadline = Deadline(time_budget_s)
    step = 0
    model.train()
    with progress(steps, "pupil regressor", show_progress) as bar:
        while step < steps and not deadline.passed:
            for idx in minibatches(len(images), batch_size, gen):
                x = appearance_jitter(images[idx], gen) if augment else images[idx]
                x, t = x.to(device), y[idx].to(device)
                out = model(x)
                # Huber in px: robust to a few badly occluded pupils. Gaze in std units, so
                # yaw and pitch weigh alike and ~1 px of pupil error ~ 1 std of gaze.
                gaze_err = (out[:, 2:] - t[:, 2:]) / model.gaze_std
                loss = F.huber_loss(out[:, :2], t[:, :2], delta=1.0) + gaze_err.pow(2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
                if step >= steps or deadline.passed:
                    break
    recalibrate_batchnorm(model, images, 256)
    return model


def gaze_vectors(yaw_pitch: torch.Tensor) -> torch.Tensor:
    """(N, 2) yaw, pitch (rad) -> (N, 3) unit gaze vectors (yaw about the vertical axis)."""
    yaw, pitch = yaw_pitch[:, 0], yaw_pitch[:, 1]
    return torch.stack([torch.cos(pitch) * torch.sin(yaw), torch.sin(pitch), torch.cos(pitch) * torch.cos(yaw)], 1)


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row angle in degrees between the gaze directions ``a`` and ``b`` (N, 2 yaw/pitch)."""
    cos = (gaze_vectors(a.double()) * gaze_vectors(b.double())).sum(1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos)).float()


def label_shift_per_image(model: nn.Module, synthetic: torch.Tensor, refined: torch.Tensor,
                          batch_size: int = 256) -> dict[str, torch.Tensor]:
    """How far refinement moves the *predicted* labels of each image pair.

    ``synthetic[i]`` and ``refined[i]`` must be the same sample before/after the refiner
    (float N x C x H x W in [-1, 1]); ``model`` answers ``(N, 4)``: pupil x, y (px), gaze
    yaw, pitch (rad), as :class:`PupilRegressor` does. Returns ``pupil_shift_px``
    (Euclidean distance between the predicted pupil centres, px) and ``gaze_drift_deg``
    (angle between the predicted gaze vectors, degrees), each ``(N,)``.
    """
    check_images(synthetic, "label_shift: synthetic")
    check_images(refined, "label_shift: refined")
    if synthetic.shape != refined.shape:
        raise ValueError(f"label_shift: synthetic {tuple(synthetic.shape)} and refined {tuple(refined.shape)} "
                         "must be the same images before/after refinement")
    before = predict(model, synthetic, batch_size)
    after = predict(model, refined, batch_size)
    return {"pupil_shift_px": (after[:, :2] - before[:, :2]).norm(dim=1),
            "gaze_drift_deg": angle_deg(before[:, 2:], after[:, 2:])}


def label_shift(model: nn.Module, synthetic: torch.Tensor, refined: torch.Tensor,
                batch_size: int = 256) -> dict[str, float]:
    """:func:`label_shift_per_image`, summarised over the images.

    Returns ``pupil_shift_px_{mean,std}``, ``gaze_drift_deg_{mean,std}`` (std: the
    population std over images) and ``n``.
    """
    per_image = label_shift_per_image(model, synthetic, refined, batch_size)
    return {**summarise(per_image), "n": len(synthetic)}


def summarise(per_image: dict[str, torch.Tensor]) -> dict[str, float]:
    """``{name: values}`` -> ``{name_mean, name_std}`` (population std over the values)."""
    out = {}
    for name, v in per_image.items():
        out[f"{name}_mean"] = float(v.mean())
        out[f"{name}_std"] = float(v.std(unbiased=False))
    return out


def regressor_error(model: PupilRegressor, images: torch.Tensor, labels: dict[str, torch.Tensor],
                    batch_size: int = 256) -> dict[str, float]:
    """The estimator's own error on labeled images (held-out synthetic): its resolution.

    Returns ``pupil_error_px_{mean,std}`` and ``gaze_error_deg_{mean,std}``.
    """
    check_images(images, "regressor_error: images")
    y = _targets(labels, len(images))
    out = predict(model, images, batch_size)
    return summarise({"pupil_error_px": (out[:, :2] - y[:, :2]).norm(dim=1),
                      "gaze_error_deg": angle_deg(out[:, 2:], y[:, 2:])})


"""SimGAN's losses (paper Sec. 2, Eq. 1-4).

Reductions, stated because public SimGAN codes disagree here by orders of magnitude: both terms are
MEANS. The local adversarial loss averages the cross-entropy over every patch of the
logits map and every image in the batch; self-regularization averages |psi(R(x)) -
psi(x)| over every feature element and image. The paper sums over patches (Eq. 2) and
pixels; with means, ``lambda_reg`` does not depend on the image or feature-map size.
To convert a lambda from a code that sums both terms: lambda_here = lambda_there *
(elements of psi per image) / (patches of D per image).

Adversarial loss families (``model.loss``), each on D's per-patch *realism score*
``s = logit_real - logit_refined`` (the log-odds of "real"), all means over patches:

- ``cross_entropy`` (the paper, Eq. 2-3): the two-class cross-entropy of
  :func:`local_adversarial_loss`, which is ``softplus(-s_real) + softplus(s_refined)``
  for D and the non-saturating ``softplus(-s)`` for R.
- ``lsgan`` (Mao et al., ICCV 2017, 0-1 coding, the form CycleGAN adopted for
  stability): D ``(s_real - 1)^2 / 2 + s_refined^2 / 2``; R ``(s - 1)^2 / 2``.
  Squared errors keep pushing refined patches that D already calls real but that lie
  far from the real ones, where a saturated cross-entropy gives no gradient.
- ``hinge`` (Lim & Ye 2017; SN-GAN, BigGAN): D ``relu(1 - s_real) + relu(1 + s_refined)``;
  R ``-s``. D stops learning from patches it already separates by a margin.

A patch counts as judged "real" when ``s`` is above the loss's decision threshold (0;
0.5 for the 0-1 coded LSGAN): that is what the ``d_acc_*`` metrics count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simgan.models.discriminator import REAL, REFINED


def local_adversarial_loss(logits: Tensor, target: int) -> Tensor:
    """Mean per-patch cross-entropy of D's logits map (B, 2, h, w) against one class.

    D's loss (Eq. 2) is ``local_adversarial_loss(D(y), REAL) + local_adversarial_loss(
    D(R(x)), REFINED)``; R's realism loss (Eq. 3, in the non-saturating form
    -log D_real(R(x)) of Sec. 2.1) is ``local_adversarial_loss(D(R(x)), REAL)``.
    """
    b, _, h, w = logits.shape
    targets = torch.full((b, h, w), target, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), targets)  # CE(l) = -log softmax(l)[target], mean over b*h*w


def patch_accuracy(logits: Tensor, target: int, loss: str = "cross_entropy") -> Tensor:
    """Fraction of patches D assigns to ``target`` (its accuracy on that class)."""
    judged_real = realism_score(logits) > DECISION_THRESHOLD[loss]
    return (judged_real == (target == REAL)).float().mean()


# the realism score above which a patch counts as judged "real", per loss family
DECISION_THRESHOLD = {"cross_entropy": 0.0, "lsgan": 0.5, "hinge": 0.0}
LOSSES = tuple(DECISION_THRESHOLD)


def check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ValueError(f"model.loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    return loss


def realism_score(logits: Tensor) -> Tensor:
    """s = logit_real - logit_refined per patch, (B, h, w): D's log-odds that a patch is real."""
    logits = logits.float()
    return logits[:, REAL] - logits[:, REFINED]


def discriminator_loss(logits_real: Tensor, logits_refined: Tensor, loss: str = "cross_entropy") -> Tensor:
    """D's loss on a real and a refined batch (Eq. 2 for ``cross_entropy``), mean over patches."""
    if loss == "cross_entropy":  # -log D_real(y) - log D_refined(R(x))
        return local_adversarial_loss(logits_real, REAL) + local_adversarial_loss(logits_refined, REFINED)
    s_real, s_refined = realism_score(logits_real), realism_score(logits_refined)
    if loss == "lsgan":  # (D(y) - 1)^2 / 2 + D(R(x))^2 / 2
        return 0.5 * (s_real - 1).pow(2).mean() + 0.5 * s_refined.pow(2).mean()
    if loss == "hinge":  # max(0, 1 - D(y)) + max(0, 1 + D(R(x)))
        return F.relu(1 - s_real).mean() + F.relu(1 + s_refined).mean()
    raise ValueError(f"model.loss must be one of {', '.join(LOSSES)}, got {loss!r}")


def refiner_realism_loss(logits_refined: Tensor, loss: str = "cross_entropy") -> Tensor:
    """R's realism loss on D's logits for R(x) (Eq. 3 for ``cross_entropy``), mean over patches."""
    if loss == "cross_entropy":  # -log D_real(R(x)), the non-saturating form
        return local_adversarial_loss(logits_refined, REAL)
    s = realism_score(logits_refined)
    if loss == "lsgan":  # (D(R(x)) - 1)^2 / 2
        return 0.5 * (s - 1).pow(2).mean()
    if loss == "hinge":  # -D(R(x))
        return -s.mean()
    raise ValueError(f"model.loss must be one of {', '.join(LOSSES)}, got {loss!r}")


def r1_penalty(discriminator: nn.Module, real: Tensor, gamma: float, augment=None) -> Tensor:
    """R1 gradient penalty on real images (Mescheder et al., ICML 2018, Eq. 9).

    ``gamma / 2 * E_y ||grad_y sum_p s_p(y)||^2 / P`` over D's P patches: where patches
    do not overlap this is the mean over patches of each patch score's own R1 term, so
    ``gamma`` means what it means for a one-logit D and does not grow with the image
    size. It
    pulls D's surface flat around the real images: D cannot sharpen without bound there,
    which is what lets a GAN converge (their Theorem 4.1). ``augment`` (DiffAugment) is
    applied inside, so the penalty is on what D sees; returns the penalty (a scalar
    with a graph into D's weights) and D's logits on the real batch, to reuse.
    """
    real = real.detach().requires_grad_(True)
    logits = discriminator(augment(real) if augment is not None else real)
    score = realism_score(logits)
    patches = score[0].numel()
    (grad,) = torch.autograd.grad(score.sum(), real, create_graph=True)
    return 0.5 * gamma * grad.float().pow(2).flatten(1).sum(1).mean() / patches, logits


def self_regularization(psi: nn.Module, refined: Tensor, synthetic: Tensor) -> Tensor:
    """|| psi(R(x)) - psi(x) ||_1 as a mean over elements (Eq. 4, without lambda).

    psi is frozen; the synthetic side is a constant target: run under no_grad, and
    detached too, since an identity psi hands back its input tensor itself.
    """
    with torch.no_grad():
        target = psi(synthetic).detach()
    return F.l1_loss(psi(refined), target)


__all__ = ["LOSSES", "REAL", "REFINED", "check_loss", "discriminator_loss", "local_adversarial_loss", "patch_accuracy",
           "r1_penalty", "realism_score", "refiner_realism_loss", "self_regularization"]

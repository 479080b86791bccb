"""SimGAN's losses (paper Sec. 2, Eq. 1-4).

Reductions, stated because peers disagree here by orders of magnitude: both terms are
MEANS. The local adversarial loss averages the cross-entropy over every patch of the
logits map and every image in the batch; self-regularization averages |psi(R(x)) -
psi(x)| over every feature element and image. The paper sums over patches (Eq. 2) and
pixels; with means, ``lambda_reg`` does not depend on the image or feature-map size.
To convert a lambda from a code that sums both terms: lambda_here = lambda_there *
(elements of psi per image) / (patches of D per image).
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


def patch_accuracy(logits: Tensor, target: int) -> Tensor:
    """Fraction of patches D assigns to ``target`` (its accuracy on that class)."""
    return (logits.argmax(dim=1) == target).float().mean()


def self_regularization(psi: nn.Module, refined: Tensor, synthetic: Tensor) -> Tensor:
    """|| psi(R(x)) - psi(x) ||_1 as a mean over elements (Eq. 4, without lambda).

    psi is frozen; the synthetic side is a constant target: run under no_grad, and
    detached too, since an identity psi hands back its input tensor itself.
    """
    with torch.no_grad():
        target = psi(synthetic).detach()
    return F.l1_loss(psi(refined), target)


__all__ = ["REAL", "REFINED", "local_adversarial_loss", "patch_accuracy", "self_regularization"]

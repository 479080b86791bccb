"""The local adversarial discriminator D (paper Sec. 2.2 and Appendix A).

D is fully convolutional and outputs a map of logits, one pair per image patch
(Sec. 2.2 "local adversarial loss"): each output location judges only its receptive
field, which keeps R from introducing artifacts a global D would reward. For gaze the
paper's D is conv3x3-96 stride 2, conv3x3-64 stride 2, max-pool 3x3 stride 1,
conv3x3-32, conv1x1-32, conv1x1-2. Every hidden layer is followed by ReLU; the last
layer's 2 channels are raw logits (class 0 = refined, class 1 = real), with no
activation on them: a ReLU there (as in the most-copied public port) clips the
"refined" evidence to >= 0.

``spectral_norm=True`` divides every convolution's weight by its largest singular value
(Miyato et al., ICLR 2018, "Spectral Normalization for GANs"), estimated by one power
iteration per forward pass: D becomes roughly 1-Lipschitz, so it cannot win by growing
its weights, and R's gradients stay informative. Off by default (the paper's D).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

REFINED, REAL = 0, 1


class LocalDiscriminator(nn.Module):
    """D: image (B, C, H, W) in [-1, 1] -> logits (B, 2, h, w), one pair per patch."""

    def __init__(self, channels: int = 1, widths: tuple[int, int, int, int] = (96, 64, 32, 32),
                 spectral_norm: bool = False):
        super().__init__()
        w1, w2, w3, w4 = widths
        self.net = nn.Sequential(
            nn.Conv2d(channels, w1, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w1, w2, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(w2, w3, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w3, w4, 1), nn.ReLU(inplace=True),
            nn.Conv2d(w4, 2, 1),  # logits: no activation
        )
        if spectral_norm:
            for layer in self.net:
                if isinstance(layer, nn.Conv2d):
                    _spectral_norm(layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def receptive_field(self) -> int:
        """Side in pixels of the input patch one output location sees."""
        field, jump = 1, 1
        for layer in self.net:
            if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
                s = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
                field += (k - 1) * jump
                jump *= s
        return field

"""Networks of SimGAN as plain ``nn.Module`` objects.

- :class:`~simgan.models.refiner.Refiner`: R, fully convolutional ResNet, tanh output.
- :class:`~simgan.models.discriminator.LocalDiscriminator`: D, per-patch logits map.

To add a network, write a plain ``nn.Module`` here with the same input/output
contract and point ``model.refiner._target_`` (or ``model.discriminator._target_``)
at it in a config under ``conf/model/``.
"""

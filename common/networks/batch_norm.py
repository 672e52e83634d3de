"""Batch-norm settings of networks built elsewhere (MONAI backbones), for short training runs."""

from __future__ import annotations

from torch import nn

__all__ = ["with_batch_norm_momentum"]


def with_batch_norm_momentum(network: nn.Module, momentum: float | None) -> nn.Module:
    """Set the running-statistics momentum of every batch-norm layer of ``network`` (in place) and return it.

    MONAI's EfficientNet encoders use 0.01, the TensorFlow default: the running statistics then average over
    roughly the last hundred iterations, which is right for long training but leaves them far from the
    weights after a few hundred iterations at a high learning rate, so evaluation (which uses them) fails.
    ``None`` leaves the network as it is.
    """
    if momentum is None:
        return network
    if not 0.0 < momentum <= 1.0:
        raise ValueError(f"momentum: expected a value in (0, 1], got {momentum}.")
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum
    return network

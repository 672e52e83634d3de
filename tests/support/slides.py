"""Helpers of the whole-slide tests: a stand-in network whose instances are the synthetic cells."""

import torch


def threshold_network(in_channels: int, out_channels: int, gain: float = 40.0, level: float = 0.3) -> torch.nn.Module:
    """A 1x1 convolution whose every output channel is ``gain * (mean input - level)``: on a normalised synthetic
    slide, a probability (after a sigmoid) that is high on the cells and low between them. Output channels after the
    first are the negative of it (e.g. DSB's boundary channel: no boundaries), so the instances are the cells."""
    network = torch.nn.Conv2d(in_channels, out_channels, 1)
    with torch.no_grad():
        network.weight.fill_(gain / in_channels)
        network.bias.fill_(-gain * level)
        network.weight[1:] *= -1
        network.bias[1:] *= -1
    return network.eval()

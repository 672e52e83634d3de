"""Helpers of the whole-slide tests: stand-in networks whose instances are the synthetic cells, networks that kill
the Dask worker running them or watch the run's records, and the same slide inferred in memory (the bundle's
``inferring``) and block by block (its ``inferring_large``)."""

import json
import os
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from common.io import read_image, write_image
from common.io.slides import OmeZarrWriter, open_slide
from common.slides.engine import WORKER_CONFIG


def threshold_network(
    in_channels: int, out_channels: int, gain: float = 40.0, level: float = 0.3, core_level: float | None = None
) -> torch.nn.Module:
    """A 1x1 convolution whose first output channel is ``gain * (mean input - level)``: on a normalised synthetic
    slide, a probability (after a sigmoid) that is high on the cells and low between them. The other channels are
    its negative (e.g. DSB's boundary channel: no boundaries, the instances are the connected cells), or with
    ``core_level`` ``gain * (core_level - mean input)``: a boundary wherever a cell is dimmer than its bright centre,
    so that touching cells are split by the watershed between their centres."""
    network = torch.nn.Conv2d(in_channels, out_channels, 1)
    with torch.no_grad():
        network.weight.fill_(gain / in_channels)
        network.bias.fill_(-gain * level)
        network.weight[1:] *= -1
        network.bias[1:] *= -1
        if core_level is not None:
            network.bias[1:] = gain * core_level
    return network.eval()


class FlowNetwork(torch.nn.Module):
    """A stand-in for a cellpose-style network whose output is real flows: (B, C, H, W) -> (B, 3, H, W)
    ``[dy, dx, cellprob logit]`` (MEDIAR's order). The channel mean is smoothed by a Gaussian of ``sigma``
    pixels; the flows are ``flow_scale`` times its unit gradient, so they point up to the bright centre of each
    cell (on a normalised synthetic slide) and are followed there; the logit is ``gain * (smoothed - level)``.
    Fixed convolutions (separable, replicate padding): local, translation equivariant, and flipped with the image.
    """

    def __init__(
        self, in_channels: int, sigma: float = 2.0, gain: float = 40.0, level: float = 0.3, flow_scale: float = 5.0
    ) -> None:
        super().__init__()
        radius = int(np.ceil(3 * sigma))
        line = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
        size = 2 * radius + 1
        self.smooth_y = torch.nn.Conv2d(1, 1, (size, 1), padding=(radius, 0), padding_mode="replicate", bias=False)
        self.smooth_x = torch.nn.Conv2d(1, 1, (1, size), padding=(0, radius), padding_mode="replicate", bias=False)
        self.gradient = torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode="replicate", bias=False)
        with torch.no_grad():
            self.smooth_y.weight.copy_((line / line.sum()).view(1, 1, size, 1))
            self.smooth_x.weight.copy_((line / line.sum()).view(1, 1, 1, size))
            self.gradient.weight.zero_()
            self.gradient.weight[0, 0, 2, 1], self.gradient.weight[0, 0, 0, 1] = 0.5, -0.5  # d/dy
            self.gradient.weight[1, 0, 1, 2], self.gradient.weight[1, 0, 1, 0] = 0.5, -0.5  # d/dx
        self.in_channels, self.gain, self.level, self.flow_scale = in_channels, gain, level, flow_scale
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"FlowNetwork: expected {self.in_channels} input channels, got {x.shape[1]}.")
        smoothed = self.smooth_x(self.smooth_y(x.mean(1, keepdim=True)))
        gradient = self.gradient(smoothed)
        unit = gradient / torch.sqrt((gradient**2).sum(1, keepdim=True) + 1e-12)
        return torch.cat([self.flow_scale * unit, self.gain * (smoothed - self.level)], 1)


def flow_network(in_channels: int, **kwargs) -> torch.nn.Module:
    """A :class:`FlowNetwork` in eval mode (a config ``_target_``)."""
    return FlowNetwork(in_channels, **kwargs).eval()


class DieOnce(torch.nn.Module):
    """``network``, except that the first process to call it exits at once without a word, as a killed Dask worker
    does; ``marker`` (a file path) records that it happened."""

    def __init__(self, network: torch.nn.Module, marker: Path) -> None:
        super().__init__()
        self.network, self.marker = network, str(marker)

    def forward(self, *args, **kwargs) -> torch.Tensor:
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return self.network(*args, **kwargs)


class WorkerProbe(torch.nn.Module):
    """``network``, which on each call appends to ``log`` a JSON line of what the process running it sees: how many
    blocks the run in ``output`` has recorded as written (its ledger, ``OmeZarrWriter.ledger``: blocks written
    while others are still predicted, or only at the end?), the glibc allocator thresholds in its environment and
    its Dask configuration of the other settings of ``common.slides.engine.WORKER_CONFIG``."""

    def __init__(self, network: torch.nn.Module, output: Path, log: Path) -> None:
        super().__init__()
        partial = Path(output).with_name(Path(output).name + ".partial")
        self.network, self.ledger, self.log = network, str(partial / OmeZarrWriter.LEDGER), str(log)

    def forward(self, *args, **kwargs) -> torch.Tensor:
        import dask

        seen = {
            "recorded": len(list(Path(self.ledger).glob("*_*.json"))),
            "mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
            "trim_threshold": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            "config": {key: dask.config.get(key) for key in WORKER_CONFIG if ".pre-spawn-environ." not in key},
        }
        with open(self.log, "a") as log:
            log.write(json.dumps(seen) + "\n")
        return self.network(*args, **kwargs)


def parse(bundle: Path, names: list[str], overrides: dict) -> ConfigParser:
    """The bundle's configs ``names`` (under configs/) with ``overrides``, which may hold Python objects."""
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / name) for name in names])
    parser.update(overrides)
    return parser


def infer_in_memory(bundle: Path, slide: Path, workdir: Path, overrides: dict, names=("inference.json",)) -> Path:
    """The slide read whole into a TIFF and run through the bundle's ``inferring``; returns the output folder."""
    image = open_slide(slide).array.compute()
    images, output = workdir / "images", workdir / "predictions"
    write_image(images / "slide.tiff", image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1))
    settings = {"dataset_dir": str(images), "output_dir": str(output), "dataloader#num_workers": 0, **overrides}
    parse(bundle, list(names), settings).get_parsed_content("inferring")
    return output


def infer_blockwise(bundle: Path, slide: Path, output: Path, overrides: dict, names=("inference.json",)) -> dict:
    """The bundle's ``inferring_large`` on ``slide`` into the OME-Zarr ``output``; returns its summary. An error is
    raised as itself, not wrapped in the config parser's ``RuntimeError``."""
    settings = {"input": str(slide), "output": str(output), **overrides}
    try:
        return parse(bundle, [*names, "large_image.json"], settings).get_parsed_content("inferring_large")
    except RuntimeError as error:
        if error.__cause__ is None:
            raise
        raise error.__cause__ from error


def read_labels(store: Path, name: str) -> np.ndarray:
    """(Y, X) level-0 labels ``name`` of an OME-Zarr the whole-slide path wrote."""
    return open_slide(store / "labels" / name).array[0].compute()


def read_output(folder: Path, pattern: str) -> np.ndarray:
    """The one file of ``folder`` matching ``pattern``, squeezed."""
    (path,) = sorted(folder.glob(pattern))
    return np.squeeze(read_image(path))


def assert_same_instances(got: np.ndarray, expected: np.ndarray) -> None:
    """Same instances up to renumbering: background where the other has background, and a one-to-one id map."""
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_array_equal(got == 0, expected == 0)
    pairs = np.unique(np.stack([got.ravel(), expected.ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1], "ids do not map one to one"

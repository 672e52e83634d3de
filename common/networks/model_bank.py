"""Several single-channel networks, one per (magnification, fluorescence channel), behind one module.

The Bug Hunters method trains one network per magnification and channel. :class:`MagnificationModels` holds
whichever of them exist and predicts, for a batch of one magnification, every channel it has a network for,
so one evaluator (and one ``SlidingWindowInferer``) serves a folder mixing magnifications:
``network(image, magnification=20)``. ``MagnificationModels.from_checkpoints`` builds it from a folder of
``model_<m>x_c0<c>.pt`` files, saying which ones are missing.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from .weights import load_pretrained

__all__ = ["MagnificationModels"]

logger = logging.getLogger(__name__)


class MagnificationModels(nn.Module):
    """``forward(image, magnification)``: (B, C_in, H, W) -> (B, K, H, W), a channel per network of the magnification.

    Args:
        models: magnification -> {channel number -> network with one output channel}. Channels come out in
            increasing channel number; :attr:`channels` says which.
    """

    def __init__(self, models: Mapping[int, Mapping[int, nn.Module]]) -> None:
        super().__init__()
        self.models = nn.ModuleDict()
        for magnification in sorted(models, key=int):
            networks = models[magnification]
            if networks:
                by_channel = sorted(networks.items(), key=lambda pair: int(pair[0]))
                self.models[str(int(magnification))] = nn.ModuleDict({str(int(c)): net for c, net in by_channel})
        if not self.models:
            raise ValueError("models: expected at least one network.")

    @property
    def channels(self) -> dict[int, list[int]]:
        """Magnification -> channel numbers predicted, in output order."""
        return {int(m): [int(c) for c in self._by_channel(m)] for m in self.models}

    def channels_of(self, magnification) -> list[int]:
        """Channel numbers predicted for ``magnification`` (20, 40, 60); ValueError if it has no network."""
        return [int(c) for c in self._by_channel(self._key(magnification))]

    def _key(self, magnification) -> str:
        """Key of :attr:`models` of ``magnification`` (an int or a one-value tensor), checked."""
        key = str(int(magnification))
        if key not in self.models:
            raise ValueError(f"magnification: no network for {key}x; networks exist for {sorted(self.channels)}.")
        return key

    def _by_channel(self, magnification: str) -> nn.ModuleDict:
        """Channel number -> network, of the magnification ``magnification`` (a key of :attr:`models`)."""
        networks = self.models[magnification]
        assert isinstance(networks, nn.ModuleDict)
        return networks

    def forward(self, image: torch.Tensor, magnification) -> torch.Tensor:
        """Predict every channel of ``magnification`` (an int, or a (B,) tensor holding one value)."""
        values = torch.as_tensor(magnification).reshape(-1).unique()
        if values.numel() != 1:
            raise ValueError(f"magnification: expected one value for the whole batch, got {values.tolist()}.")
        return torch.cat([network(image) for network in self._by_channel(self._key(values[0])).values()], dim=1)

    @classmethod
    def from_checkpoints(
        cls,
        network: nn.Module,
        ckpt_dir: str | os.PathLike,
        magnifications: Sequence[int] = (20, 40, 60),
        channels: Sequence[int] = (1, 2, 3),
        name: str = "model_{magnification}x_c{channel:02d}.pt",
    ) -> MagnificationModels:
        """A copy of ``network`` per checkpoint ``ckpt_dir/name`` found, loaded with its weights by
        :func:`common.networks.load_pretrained`.

        Missing checkpoints are logged (a warning per magnification naming the files); a magnification with
        none is left out, so its images cannot be predicted.

        Raises:
            FileNotFoundError: no checkpoint at all, naming the folder and the expected file names.
        """
        folder = Path(ckpt_dir)
        models: dict[int, dict[int, nn.Module]] = {}
        for magnification in magnifications:
            found, missing = {}, []
            for channel in channels:
                path = folder / name.format(magnification=magnification, channel=channel)
                if not path.is_file():
                    missing.append(path.name)
                    continue
                found[channel] = load_pretrained(copy.deepcopy(network), path)
            if found:
                models[magnification] = found
                logger.info("%dx: predicting channels %s", magnification, ", ".join(f"C{c:02d}" for c in found))
            if missing:
                consequence = "those channels are not predicted" if found else f"{magnification}x images are skipped"
                logger.warning("%dx: no %s in %s; %s.", magnification, ", ".join(missing), folder, consequence)
        if not models:
            example = name.format(magnification=magnifications[0], channel=channels[0])
            raise FileNotFoundError(
                f"{folder}: no trained model found (files named like {example}, for magnifications "
                f"{list(magnifications)} and channels {list(channels)}); train one first."
            )
        return cls(models)

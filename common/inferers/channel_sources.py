"""Prediction assembled channel by channel from several networks, each run by its own inferer."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.inferers import Inferer

__all__ = ["ChannelSourcesInferer"]

logger = logging.getLogger(__name__)


class ChannelSourcesInferer(Inferer):
    """Each output channel taken from the first available network that its preference list names.

    The LMC method predicts nucleus and mitochondria with the base network under test-time augmentation, and
    actin and tubulin with networks fine-tuned on them, without; a fine-tuned network that is not there is
    replaced by the next one in the channel's list. Every network used is run once per batch, in eval mode.

    Args:
        sources: name -> ``{"network": module, "inferer": Inferer or None}`` (None calls the network on the
            whole input).
        preferences: per output channel, source names in order of preference.
        available: names of the sources that may be used (e.g. those whose checkpoint exists); None: all.
        channel_names: names of the channels, for the log.

    Raises:
        ValueError: a channel none of whose sources is available, or a name that is not a source.

    ``__call__(inputs, network=None)``: (B, C_in, H, W) -> (B, len(preferences), H, W); ``network`` (the
    evaluator's) is not used.
    """

    def __init__(
        self,
        sources: Mapping[str, Mapping[str, Any]],
        preferences: Sequence[Sequence[str]],
        available: Sequence[str] | None = None,
        channel_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        unknown = sorted({name for names in preferences for name in names} - set(sources))
        if unknown:
            raise ValueError(f"preferences name sources that are not defined: {unknown}; sources: {sorted(sources)}.")
        usable = set(sources) if available is None else set(available)
        names = list(channel_names) if channel_names is not None else [f"channel {i}" for i in range(len(preferences))]
        self.sources = {name: dict(source) for name, source in sources.items()}
        self.chosen: list[str] = []
        for channel, options in zip(names, preferences):
            found = [name for name in options if name in usable]
            if not found:
                raise ValueError(f"{channel}: none of its networks {list(options)} is available.")
            self.chosen.append(found[0])
            instead = "" if found[0] == options[0] else f" ({options[0]!r} not available)"
            logger.info("%s: predicted by %r%s", channel, found[0], instead)

    def __call__(self, inputs: torch.Tensor, network: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        outputs: dict[str, torch.Tensor] = {}
        for name in dict.fromkeys(self.chosen):
            network, inferer = self.sources[name]["network"], self.sources[name].get("inferer")
            network.eval()
            outputs[name] = inferer(inputs, network, *args, **kwargs) if inferer else network(inputs, *args, **kwargs)
        return torch.stack([outputs[name][:, channel] for channel, name in enumerate(self.chosen)], dim=1)

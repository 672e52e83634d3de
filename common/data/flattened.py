"""A dataset of the samples of a dataset whose items are lists of samples (a cached multi-sample transform)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from monai.data import Dataset

__all__ = ["FlattenedDataset"]


class FlattenedDataset(Dataset):
    """MONAI ``Dataset`` of every sample of ``dataset`` item by item, ``transform`` applied to each when read.

    Made for a ``CacheDataset`` whose deterministic transforms end with a multi-sample transform (such as
    :class:`common.transforms.Tiled`): its item ``i`` is the list of samples cut from input ``i``, computed once;
    this dataset lists them one by one (the samples of item 0 in their order, then those of item 1, ...), so that
    a ``DataLoader`` shuffles and batches samples, and applies the random transforms to each. The samples are the
    ones ``dataset`` holds, not copies.

    Args:
        dataset: a dataset (anything with ``len`` and indexing) whose items are sequences of samples (dicts).
        transform: as for ``Dataset``: applied to a sample each time it is read (e.g. random augmentation).

    Raises:
        TypeError: an item of ``dataset`` is not a sequence of dicts, naming its index.
    """

    def __init__(self, dataset: Sequence[Sequence[Mapping]], transform: Callable | None = None) -> None:
        samples: list[Mapping] = []
        for index in range(len(dataset)):
            item = dataset[index]
            if isinstance(item, Mapping) or not all(isinstance(sample, Mapping) for sample in item):
                raise TypeError(
                    f"dataset[{index}]: expected a list of samples (dicts), got {type(item).__name__}; "
                    "end the dataset's transforms with a multi-sample transform such as Tiled."
                )
            samples += item
        super().__init__(samples, transform)

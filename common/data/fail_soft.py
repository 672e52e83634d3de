"""A dataset whose items that cannot be read become failure records instead of errors, for folder inference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

from monai.data import Dataset

from ..transforms.meta import source_file

__all__ = ["FailSoftDataset", "FAILED", "FAILED_ERROR"]

#: keys of the item a failed read turns into: the input's file, and the error.
FAILED, FAILED_ERROR = "failed_input", "failed_error"


class FailSoftDataset(Dataset):
    """MONAI ``Dataset`` whose item ``i`` is ``{FAILED: input file, FAILED_ERROR: message}`` when reading or
    transforming it raises, so that one bad file does not end a folder inference (and no DataLoader worker dies).

    :class:`common.handlers.FolderRun` records such items as failed inputs and the run goes on.

    Args:
        data: the datalist.
        transform: as for ``Dataset``.
        source_keys: keys of an item naming its input file.
    """

    def __init__(
        self, data: Sequence[Mapping], transform: Callable | None = None, source_keys: Sequence[str] = ("image",)
    ) -> None:
        super().__init__(data, transform)
        self.source_keys = tuple(source_keys)

    def __getitem__(self, index: Any):
        try:
            return super().__getitem__(index)
        except Exception as error:  # any failure of one input is recorded, not fatal
            cause: BaseException = error
            while isinstance(cause, RuntimeError) and cause.__cause__ is not None:  # MONAI's "applying transform"
                cause = cause.__cause__
            return {
                FAILED: source_file(self.data[index], self.source_keys) or f"item {index}",
                FAILED_ERROR: f"{type(cause).__name__}: {cause}",
            }

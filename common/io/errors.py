"""Errors raised for bad input data; each message names the file or key and what was expected."""

__all__ = ["DataError", "ImageFileError", "LayoutError"]


class DataError(ValueError):
    """Input data that cannot be used as given."""


class ImageFileError(DataError):
    """An image or label file that is missing, corrupt, truncated or of an unexpected shape or dtype."""


class LayoutError(DataError):
    """A dataset folder that does not follow its publisher's layout (missing folder, image without labels)."""

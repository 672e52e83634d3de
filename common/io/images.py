"""Reading and writing 2D microscopy images (PNG, BMP, JPEG, TIFF, OME-TIFF), and a MONAI reader over them.

Axes rule, the same for every format: an image comes back as ``(H, W)`` when it has one channel and as
``(H, W, C)`` otherwise, spatial order y, x, in the file's own dtype (16-bit stays 16-bit).

* Pillow formats: grey modes (``L``, ``I;16``, ``I``, ``F``, ``1``) give ``(H, W)``; ``LA``, ``RGB``, ``RGBA``
  give ``(H, W, C)``; palette images are expanded to RGB (RGBA when the palette has transparency), CMYK and
  other colour spaces converted to RGB. 16-bit colour PNGs, which Pillow would cut to 8 bits, are decoded
  with ``imagecodecs`` and stay uint16.
* TIFF / OME-TIFF: the axes come from the file (``tifffile``'s series axes: OME-XML, ImageJ or shaped
  metadata; for plain multi-page files the pages axis comes first and the last two axes are Y, X).
  Singleton axes are dropped; the Y and X axes are the spatial axes, and at most one other axis may remain
  (channels ``C``, samples ``S``, z-planes ``Z``, time ``T`` or pages ``Q``/``I``): it becomes the last axis.
  So a ``(C, H, W)`` stack, a ``(Z, H, W)`` stack and an ``(H, W, 3)`` RGB file all come back as
  ``(H, W, N)``. A file with two non-singleton non-spatial axes (e.g. ``Z`` and ``C``) is refused.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys
from PIL import Image

from .atomic import atomic_path
from .errors import ImageFileError

__all__ = [
    "PILLOW_SUFFIXES",
    "TIFF_SUFFIXES",
    "IMAGE_SUFFIXES",
    "image_suffix",
    "is_image_file",
    "read_image",
    "read_pixel_size",
    "read_tiff_shape",
    "write_image",
    "write_ome_tiff",
    "MicroscopyReader",
]

PathLike = Union[str, os.PathLike]

logger = logging.getLogger(__name__)

PILLOW_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif")
#: every suffix :func:`read_image` reads, longest first so that ``.ome.tif`` wins over ``.tif``.
IMAGE_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES

#: micrometres per unit of OME ``PhysicalSize*Unit`` and ImageJ ``unit`` values.
_MICROMETRES_PER_UNIT = {
    "m": 1e6, "cm": 1e4, "mm": 1e3, "µm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0,
    "\\u00b5m": 1.0, "μm": 1.0, "nm": 1e-3, "å": 1e-4, "pm": 1e-6,
}  # fmt: skip


def image_suffix(path: PathLike) -> str:
    """The lower-case suffix of ``path`` among :data:`IMAGE_SUFFIXES` (``".ome.tif"`` counts as one), or ``""``."""
    name = Path(path).name.lower()
    return next((suffix for suffix in IMAGE_SUFFIXES if name.endswith(suffix)), "")


def is_image_file(path: PathLike) -> bool:
    """Whether ``path`` names a file :func:`read_image` reads (by suffix; hidden files excluded)."""
    return not Path(path).name.startswith(".") and image_suffix(path) != ""


# ----------------------------------------------------------------------------------------------- reading


#: what :func:`read_image` does with NaN or Inf pixels of a float image.
NONFINITE_POLICIES = ("error", "median")


def read_image(path: PathLike, nonfinite: str = "error") -> np.ndarray:
    """Pixels of one 2D image file as ``(H, W)`` or ``(H, W, C)`` in the file's dtype (see the module axes rule).

    Big-endian pixels are returned in native byte order (same values), as torch needs.

    Args:
        path: the file.
        nonfinite: NaN or Inf pixels (float images only) are an error (``"error"``), or are replaced by the
            median of the finite pixels with a warning naming the file and the count (``"median"``).

    Raises:
        ImageFileError: the file is missing, of an unsupported suffix, corrupt or truncated, empty, not 2D, or
            holds NaN / Inf pixels (with ``nonfinite="error"``).
    """
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite: expected one of {NONFINITE_POLICIES}, got {nonfinite!r}.")
    path = Path(path)
    suffix = image_suffix(path)
    if not suffix:
        raise ImageFileError(f"{path}: unsupported image suffix, expected one of {', '.join(IMAGE_SUFFIXES)}.")
    if not path.is_file():
        raise ImageFileError(f"{path}: image file not found.")
    pixels = _read_tiff(path) if suffix in TIFF_SUFFIXES else _read_pillow(path)
    if pixels.size == 0:
        raise ImageFileError(f"{path}: empty image of shape {pixels.shape}, expected at least one pixel.")
    if pixels.ndim not in (2, 3):
        raise ImageFileError(f"{path}: image of shape {pixels.shape}, expected (H, W) or (H, W, C).")
    pixels = pixels if pixels.dtype.isnative else pixels.astype(pixels.dtype.newbyteorder("="))
    return _finite(pixels, path, nonfinite) if np.issubdtype(pixels.dtype, np.inexact) else pixels


def _finite(pixels: np.ndarray, path: Path, policy: str) -> np.ndarray:
    """``pixels`` checked for NaN / Inf, which are refused or replaced by the median of the others
    (see ``read_image``)."""
    bad = ~np.isfinite(pixels)
    count = int(bad.sum())
    if not count:
        return pixels
    if policy == "error" or count == pixels.size:
        raise ImageFileError(
            f"{path}: {count} of {pixels.size} pixels are NaN or Inf; expected finite values "
            f"(the reader's nonfinite='median' replaces them, where that is acceptable)."
        )
    logger.warning(
        "%s: %d of %d pixels are NaN or Inf; replaced by the median of the others.", path, count, pixels.size
    )
    pixels = pixels.copy()
    pixels[bad] = np.median(pixels[~bad])
    return pixels


def _read_pillow(path: Path) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` pixels of a PNG, BMP or JPEG file."""
    if _is_deep_colour_png(path):
        return _read_deep_colour_png(path)
    try:
        with Image.open(path) as image:
            return np.asarray(_grey_or_rgb(image)).copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageFileError(f"{path}: cannot read the image, the file is corrupt or truncated ({error}).") from error


#: Pillow modes whose pixels are not grey or RGB(A) values, and what they are converted to.
_PILLOW_CONVERSIONS = {
    "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "PA": "RGBA", "La": "LA", "RGBa": "RGBA",
}  # fmt: skip


def _grey_or_rgb(image: Image.Image) -> Image.Image:
    """``image`` with grey or RGB(A) pixel values: converted from the modes of :data:`_PILLOW_CONVERSIONS` and
    from palette images."""
    if image.mode in _PILLOW_CONVERSIONS:
        return image.convert(_PILLOW_CONVERSIONS[image.mode])
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image


def _is_deep_colour_png(path: Path) -> bool:
    """Whether ``path`` is a 16-bit PNG with colour or alpha, which Pillow would reduce to 8 bits."""
    with open(path, "rb") as file:
        header = file.read(26)
    is_png = header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return is_png and len(header) == 26 and header[24] == 16 and header[25] in (2, 4, 6)


def _read_deep_colour_png(path: Path) -> np.ndarray:
    """``(H, W, C)`` uint16 pixels of a 16-bit colour PNG, decoded with ``imagecodecs``."""
    try:
        import imagecodecs
    except ImportError as error:
        raise ImageFileError(f"{path}: 16-bit colour PNG; reading it without loss needs imagecodecs.") from error
    try:
        return imagecodecs.png_decode(path.read_bytes())
    except Exception as error:
        raise ImageFileError(f"{path}: cannot read the image, the file is corrupt or truncated ({error}).") from error


def _read_tiff(path: Path) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` pixels of a TIFF or OME-TIFF file (see the module axes rule)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            if len(tiff.series) != 1:
                raise ImageFileError(f"{path}: TIFF holds {len(tiff.series)} image series, expected exactly one.")
            series = tiff.series[0]
            return _channels_last(series.asarray(), series.axes, path)
    except ImageFileError:
        raise
    except Exception as error:  # tifffile and imagecodecs raise many types for damaged files
        raise ImageFileError(f"{path}: cannot read the TIFF, the file is corrupt or truncated ({error}).") from error


def _channels_last(pixels: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """Drop singleton axes of ``pixels`` (axes named by ``axes``, e.g. ``"CYX"``) and move the one other axis last."""
    kept, order = _axes_layout(pixels.shape, axes, path)
    return np.transpose(pixels.reshape([pixels.shape[i] for i in kept]), order)


def _axes_layout(shape: Sequence[int], axes: str, path: Path) -> tuple[list[int], list[int]]:
    """Axes of ``shape`` kept (the non-singleton ones, Y and X always) and the order of the kept ones that puts
    Y, X first (see the module axes rule); ImageFileError naming ``path`` for a file that rule refuses."""
    if "Y" not in axes or "X" not in axes or len(axes) != len(shape):
        raise ImageFileError(f"{path}: TIFF axes {axes!r} of shape {tuple(shape)}, expected Y and X axes.")
    kept = [i for i, axis in enumerate(axes) if axis in "YX" or shape[i] > 1]
    axes = "".join(axes[i] for i in kept)
    others = [i for i, axis in enumerate(axes) if axis not in "YX"]
    if len(others) > 1:
        raise ImageFileError(
            f"{path}: TIFF of axes {axes!r} and shape {tuple(shape[i] for i in kept)}, expected a 2D image with at "
            "most one channel-like axis (C, S, Z, T or pages)."
        )
    return kept, [axes.index("Y"), axes.index("X")] + others


def read_tiff_shape(path: PathLike) -> tuple[int, ...]:
    """The shape :func:`read_image` gives a TIFF or OME-TIFF file, ``(H, W)`` or ``(H, W, C)``, read from its
    header and tags without decoding the pixels: a cheap check of many files before a run.

    Besides the header, it checks that every strip or tile of the image lies within the file, so a file cut
    short (an interrupted copy) fails here too; damage inside the compressed data shows only on reading.

    Raises:
        ImageFileError: naming the file: missing, empty, not a TIFF, truncated, or of axes read_image refuses.
    """
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{path}: image file not found.")
    size = path.stat().st_size
    if size == 0:
        raise ImageFileError(f"{path}: empty file (0 bytes).")
    try:
        with tifffile.TiffFile(path) as tiff:
            if not tiff.series:
                raise ImageFileError(f"{path}: no image in the TIFF, the file is corrupt or truncated.")
            if len(tiff.series) != 1:
                raise ImageFileError(f"{path}: TIFF holds {len(tiff.series)} image series, expected exactly one.")
            series = tiff.series[0]
            shape, axes = tuple(series.shape), series.axes
            end = max(
                (
                    offset + count
                    for page in series.pages
                    if page is not None
                    for offset, count in zip(page.dataoffsets, page.databytecounts)
                ),
                default=0,
            )
    except ImageFileError:
        raise
    except Exception as error:  # tifffile raises many types for damaged headers
        raise ImageFileError(
            f"{path}: cannot read the TIFF header, the file is corrupt or truncated ({error})."
        ) from error
    if end > size:
        raise ImageFileError(f"{path}: truncated, the image data end at byte {end} of a {size}-byte file.")
    kept, order = _axes_layout(shape, axes, path)
    return tuple(shape[kept[i]] for i in order)


def read_pixel_size(path: PathLike) -> tuple[float, float] | None:
    """Physical pixel size ``(y_um, x_um)`` in micrometres stored in a TIFF, or None when the file does not say.

    Looks at OME-XML ``PhysicalSizeY``/``PhysicalSizeX`` first, then the TIFF resolution tags when their unit is
    known: centimetres (``ResolutionUnit`` 3) or an ImageJ ``unit``. Inch resolutions are print dots per inch,
    not a physical pixel size, and are ignored. PNG, BMP and JPEG files give None.
    """
    path = Path(path)
    if image_suffix(path) not in TIFF_SUFFIXES:
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            ome_size = _ome_pixel_size(tiff.ome_metadata) if tiff.is_ome else None
            return ome_size or _tag_pixel_size(tiff.pages.first, tiff.imagej_metadata)
    except Exception as error:
        raise ImageFileError(f"{path}: cannot read the TIFF metadata ({error}).") from error


def ome_pixels_element(ome_xml: str | None) -> ElementTree.Element | None:
    """The first ``Pixels`` element of an OME-XML document, or None."""
    if not ome_xml:
        return None
    root = ElementTree.fromstring(ome_xml)
    return next((element for element in root.iter() if element.tag.split("}")[-1] == "Pixels"), None)


def _ome_pixel_size(ome_xml: str | None) -> tuple[float, float] | None:
    """``(y_um, x_um)`` from the first ``Pixels`` element of an OME-XML document, or None."""
    pixels = ome_pixels_element(ome_xml)
    if pixels is None:
        return None
    sizes = []
    for axis in ("Y", "X"):
        value, unit = pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit", "µm")
        if value is None or unit.lower() not in _MICROMETRES_PER_UNIT:
            return None
        sizes.append(float(value) * _MICROMETRES_PER_UNIT[unit.lower()])
    return sizes[0], sizes[1]


def _tag_pixel_size(page, imagej_metadata: dict | None) -> tuple[float, float] | None:
    """``(y_um, x_um)`` from the resolution tags of a TIFF page when their unit is known, or None."""
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    unit_code = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    imagej_unit = str((imagej_metadata or {}).get("unit", "")).lower()
    if unit_code == 3:
        micrometres_per_unit = 1e4
    elif unit_code == 1 and imagej_unit in _MICROMETRES_PER_UNIT:
        micrometres_per_unit = _MICROMETRES_PER_UNIT[imagej_unit]
    else:
        return None
    sizes = []
    for name in ("YResolution", "XResolution"):
        numerator, denominator = tags[name].value
        if numerator == 0:
            return None
        sizes.append(micrometres_per_unit * denominator / numerator)
    return sizes[0], sizes[1]


# ----------------------------------------------------------------------------------------------- writing


def write_image(
    path: PathLike,
    array: np.ndarray,
    pixel_size: tuple[float, float] | None = None,
    ome: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an ``(H, W)`` or ``(H, W, C)`` array so that :func:`read_image` gives it back unchanged.

    The dtype is kept (float32, uint16, uint32 labels...). TIFF suffixes are written with ``tifffile``
    (channels stored as ``(C, H, W)`` pages, zlib compressed); ``.png`` with Pillow, which holds only uint8
    (grey, grey+alpha, RGB, RGBA) and uint16 grey, so other arrays must go to a TIFF.

    Args:
        path: destination; its parent folders are created.
        array: ``(H, W)`` or ``(H, W, C)`` pixels.
        pixel_size: ``(y_um, x_um)`` stored as OME ``PhysicalSizeY/X`` (OME-TIFF) or centimetre resolution
            tags (plain TIFF); ignored for PNG.
        ome: write OME-XML; by default True exactly when the name ends with ``.ome.tif(f)``.
        overwrite: replace an existing file; without it an existing file is an error.

    Returns:
        ``path`` as a Path.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ImageFileError: unsupported suffix, shape or (for PNG) dtype.
    """
    path, array = Path(path), np.asarray(array)
    suffix = image_suffix(path)
    if suffix not in TIFF_SUFFIXES + (".png",):
        raise ImageFileError(f"{path}: cannot write this suffix, expected .tif, .tiff, .ome.tif, .ome.tiff or .png.")
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageFileError(f"{path}: cannot write an array of shape {array.shape}, expected (H, W) or (H, W, C).")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists; pass overwrite=True to replace it.")
    with atomic_path(path) as partial:
        if suffix == ".png":
            _write_png(partial, array, path)
        else:
            _write_tiff(partial, array, pixel_size, suffix.startswith(".ome") if ome is None else ome)
    return path


def write_ome_tiff(
    path: PathLike, array: np.ndarray, pixel_size: tuple[float, float] | None = None, overwrite: bool = False
) -> Path:
    """Write ``(H, W)`` or ``(H, W, C)`` ``array`` as an OME-TIFF keeping its dtype (see :func:`write_image`)."""
    return write_image(path, array, pixel_size=pixel_size, ome=True, overwrite=overwrite)


def _write_png(path: Path, array: np.ndarray, named: Path) -> None:
    """Write uint8 grey/LA/RGB/RGBA or uint16 grey ``array`` as a PNG at ``path`` (errors name ``named``)."""
    channels = 1 if array.ndim == 2 else array.shape[2]
    if not (array.dtype == np.uint8 and channels in (1, 2, 3, 4) or array.dtype == np.uint16 and array.ndim == 2):
        raise ImageFileError(
            f"{named}: PNG holds uint8 with 1-4 channels or uint16 grey, got {array.dtype} of shape {array.shape};"
            " write a .tif instead."
        )
    if array.ndim == 3 and channels == 1:
        array = array[..., 0]
    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG")


def _write_tiff(path: Path, array: np.ndarray, pixel_size: tuple[float, float] | None, ome: bool) -> None:
    """Write ``(H, W)`` or ``(H, W, C)`` ``array`` as a (OME-)TIFF at ``path``, channels as ``(C, H, W)`` pages."""
    import tifffile

    pixels, axes = (array, "YX") if array.ndim == 2 else (np.moveaxis(array, -1, 0), "CYX")
    options: dict = {"photometric": "minisblack", "compression": "zlib"}
    if ome:
        metadata: dict = {"axes": axes}
        if pixel_size is not None:
            metadata.update(PhysicalSizeY=float(pixel_size[0]), PhysicalSizeYUnit="µm")
            metadata.update(PhysicalSizeX=float(pixel_size[1]), PhysicalSizeXUnit="µm")
        options.update(ome=True, metadata=metadata)
    else:
        options.update(metadata={"axes": axes})
        if pixel_size is not None:  # pixels per centimetre, (x, y) order
            options.update(resolution=(1e4 / float(pixel_size[1]), 1e4 / float(pixel_size[0])), resolutionunit=3)
    tifffile.imwrite(path, np.ascontiguousarray(pixels), **options)


# ----------------------------------------------------------------------------------------------- MONAI reader


class MicroscopyReader(ImageReader):
    """MONAI image reader over :func:`read_image`: PNG, BMP, JPEG, TIFF and OME-TIFF in (y, x) order.

    Unlike MONAI's ``PILReader`` (which swaps to (x, y) by default) spatial axes stay ``(H, W)``: with
    ``LoadImaged(keys="image", reader=MicroscopyReader(), ensure_channel_first=True)`` an image is a
    ``(C, H, W)`` MetaTensor, C = 1 for grey, 3 for RGB, 4 for RGBA. Several files given together (a list of
    paths under one key) are concatenated along the channel axis and must share ``(H, W)``.

    Values are kept; note that ``LoadImage`` casts to its ``dtype`` argument (float32 by default; pass
    ``dtype=None`` to keep the file's dtype, with uint16 held as int32 and uint32 as int64 by MONAI since
    torch lacks those types). Meta data: ``filename_or_obj``, ``spatial_shape`` ``(H, W)``,
    ``original_channel_dim`` (``"no_channel"`` for one grey file, -1 otherwise), identity ``affine`` and
    ``pixel_size_um`` ``(y_um, x_um)`` (NaN when the file does not store it).

    Float pixels that are NaN or Inf are an error naming the file; ``MicroscopyReader(nonfinite="median")``
    replaces them by the median of the others and says so (see :func:`read_image`).

    Errors of a file (missing, corrupt, unsupported) surface as :class:`ImageFileError` from ``get_data`` rather
    than from ``read``, so that ``LoadImage`` does not fall back to a reader with another axis order.

    In a bundle config: ``"reader": "$common.io.MicroscopyReader()"`` or ``"reader": "common.io.MicroscopyReader"``.
    """

    def __init__(self, nonfinite: str = "error") -> None:
        super().__init__()
        if nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"nonfinite: expected one of {NONFINITE_POLICIES}, got {nonfinite!r}.")
        self.nonfinite = nonfinite

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """Whether every file of ``filename`` (one path or several) has a suffix :func:`read_image` reads."""
        names = [filename] if isinstance(filename, (str, os.PathLike)) else list(filename)
        return len(names) > 0 and all(image_suffix(name) for name in names)

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs) -> tuple[Path, ...]:
        """The paths of ``data`` (one path or several); pixels are read by :meth:`get_data`."""
        names = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        if not names:
            raise ImageFileError("MicroscopyReader: no image file given.")
        return tuple(Path(name) for name in names)

    def get_data(self, img: tuple[Path, ...]) -> tuple[np.ndarray, dict]:
        """``(H, W)`` or ``(H, W, C)`` pixels of the files ``img`` and their meta data dict."""
        paths = tuple(img) if isinstance(img, (tuple, list)) else (Path(img),)
        images = [read_image(path, self.nonfinite) for path in paths]
        pixels = images[0] if len(images) == 1 else _concatenate_channels(images, paths)
        pixel_size = read_pixel_size(paths[0])
        meta = {
            MetaKeys.SPATIAL_SHAPE: np.asarray(pixels.shape[:2]),
            MetaKeys.ORIGINAL_CHANNEL_DIM: "no_channel" if pixels.ndim == 2 else -1,
            MetaKeys.AFFINE: np.eye(3),
            MetaKeys.ORIGINAL_AFFINE: np.eye(3),
            "pixel_size_um": np.asarray(pixel_size if pixel_size is not None else (np.nan, np.nan), dtype=float),
            "filename_or_obj": str(paths[0]),
        }
        return pixels, meta


def _concatenate_channels(images: list[np.ndarray], paths: Sequence[Path]) -> np.ndarray:
    """``(H, W, C1 + C2 + ...)`` stack of ``(H, W)`` or ``(H, W, Ci)`` images read from ``paths``."""
    for image, path in zip(images[1:], paths[1:]):
        if image.shape[:2] != images[0].shape[:2]:
            raise ImageFileError(
                f"{path}: image of size {image.shape[:2]}, expected {images[0].shape[:2]} as {paths[0]}."
            )
    return np.concatenate([image[..., None] if image.ndim == 2 else image for image in images], axis=-1)

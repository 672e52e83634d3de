"""Synthetic whole slides of any size, drawn region by region so that none is ever held whole.

    python -m common.data.synthetic_slides OUT.ome.zarr --size 8192 --format ome-zarr-0.4 --chunk 512

Cells (nucleus-like, of :class:`common.data.scene.Morphology` radius, elongation and lobes) sit on a jittered
grid; the parameters of each grid row come from a random stream of its own, so any region is drawn from the few
rows and columns of cells that reach into it. Pixel noise is a hash of the pixel's position and channel. A
region's labels and image are therefore the same whatever tiling draws them: ``slide.image(y0, x0, h, w)`` equals
the same window of the whole slide drawn at once, bit for bit.

``seam_every=B`` puts a row and a column of cells exactly on every seam of the ``B`` block grid (centred on the
line between pixel ``k * B - 1`` and ``k * B``), for testing blockwise processing; :meth:`SyntheticSlide.
seam_crossings` counts the cells that touch across those seams.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from common.data.scene import Morphology, Optics, _dome, _outline_rho
from common.io.atomic import atomic_path
from common.io.slides import OmeZarrWriter, tiff_from_zarr

__all__ = ["SLIDE_FORMATS", "SLIDE_NUCLEI", "SyntheticSlide", "write_slide", "seam_crossings", "main"]

logger = logging.getLogger(__name__)

#: formats :func:`write_slide` writes
SLIDE_FORMATS = ("ome-zarr-0.4", "ome-zarr-0.5", "tiff", "ome-tiff")

#: the default cells: nuclei of 7 to 12 pixels radius, slightly elongated and lobed
SLIDE_NUCLEI = Morphology(cell_radius=(7.0, 12.0), elongation=(1.0, 1.4), irregularity=0.08, nucleus_size=None)

#: camera value of intensity 1 for each dtype
_WHITE = {"uint8": 200.0, "uint16": 4000.0}
#: share of grid places that hold a cell
_PRESENT = 0.85


def _hash(values: np.ndarray) -> np.ndarray:
    """splitmix64 of uint64 ``values``: a well-mixed uint64 per value."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _noise_key(seed: int, plane: int) -> int:
    """64-bit key of the pixel noise of one image plane."""
    return int(
        _hash(np.array([seed & 0xFFFFFFFF, zlib.crc32(f"slide-noise/{seed}/{plane}".encode())], np.uint64)).sum()
    )


def _pixel_normal(key: int, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """(h, w) float32 standard normal values determined by ``key`` and each pixel's position (Box-Muller)."""
    ys = np.arange(y0, y0 + h, dtype=np.uint64)[:, None] << np.uint64(32)
    xs = np.arange(x0, x0 + w, dtype=np.uint64)[None, :] & np.uint64(0xFFFFFFFF)
    first = _hash((ys | xs) ^ np.uint64(key & 0xFFFFFFFFFFFFFFFF))
    second = _hash(first)
    scale = 2.0**-53
    u1 = ((first >> np.uint64(11)).astype(np.float64) + 1.0) * scale  # (0, 1]
    u2 = (second >> np.uint64(11)).astype(np.float64) * scale
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


@dataclass(frozen=True)
class _Cells:
    """Cells of a region, sorted by id: ids (N,), centres (N, 2) y, x, radii, elongations, angles (N,),
    lobes (N, 3, 2) and brightness (N, channels)."""

    ids: np.ndarray
    centres: np.ndarray
    radii: np.ndarray
    elongations: np.ndarray
    angles: np.ndarray
    lobes: np.ndarray
    brightness: np.ndarray


@dataclass(frozen=True)
class SyntheticSlide:
    """A synthetic slide of nuclei, drawn on demand region by region.

    Attributes:
        shape: (Y, X) pixels.
        seed: non-negative integer; same seed, same slide.
        channels: stains: 0 nuclei (bright domes), 1 membranes (bright rims), 2.. per-cell markers.
        z_planes: focal planes per channel, more blurred away from the middle one; image channels are
            ``channels * z_planes``, channel-major.
        dtype: "uint16" or "uint8".
        seam_every: put cells on every seam of this block grid, or None.
        morphology: cell radius, elongation and irregularity are used.
        optics: blur (psf_sigma, defocus_blur per plane away from the middle) and noise (photons, read_noise).
    """

    shape: tuple[int, int]
    seed: int = 0
    channels: int = 1
    z_planes: int = 1
    dtype: str = "uint16"
    seam_every: int | None = None
    morphology: Morphology = SLIDE_NUCLEI
    optics: Optics = field(default_factory=lambda: Optics(psf_sigma=1.0, photons=300.0, read_noise=0.004))

    def __post_init__(self) -> None:
        shape = tuple(int(side) for side in self.shape)
        if len(shape) != 2 or min(shape) < 16:
            raise ValueError(f"shape: expected (Y, X) with both sides at least 16, got {self.shape}.")
        object.__setattr__(self, "shape", shape)
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, got {self.seed!r}.")
        if self.channels < 1 or self.z_planes < 1:
            raise ValueError(f"channels, z_planes: expected at least 1, got {self.channels}, {self.z_planes}.")
        if self.dtype not in _WHITE:
            raise ValueError(f"dtype: expected one of {sorted(_WHITE)}, got {self.dtype!r}.")
        if self.seam_every is not None and self.seam_every < 4 * self.spacing:
            raise ValueError(f"seam_every: {self.seam_every} pixels, expected at least {4 * self.spacing:.0f}.")

    # ------------------------------------------------------------------------------------------------ geometry

    @property
    def spacing(self) -> float:
        """Distance between grid places: neighbouring cells often touch."""
        return 1.8 * self.morphology.cell_radius[1]

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of grid places."""
        return max(1, int(self.shape[0] // self.spacing)), max(1, int(self.shape[1] // self.spacing))

    @property
    def _reach(self) -> float:
        """Largest distance from a cell's centre to its outline, plus the jitter of the centre."""
        m = self.morphology
        return (
            m.cell_radius[1] * math.sqrt(m.elongation[1]) * (1 + 2.4 * m.irregularity) * 1.2 + 2 + 0.25 * self.spacing
        )

    def _places(self, count: int, side: int, jitter: np.ndarray) -> np.ndarray:
        """Centres of the ``count`` grid places along a side of ``side`` pixels: the nominal place plus
        ``jitter`` (count,), except the place nearest each seam line, which sits exactly on it."""
        pitch = side / count
        nominal = (np.arange(count) + 0.5) * pitch
        centres = nominal + jitter
        if self.seam_every is not None:
            seam = np.round(nominal / self.seam_every) * self.seam_every
            offset = nominal - seam
            on_seam = (offset >= -0.5 * pitch) & (offset < 0.5 * pitch) & (seam > 0) & (seam < side)
            centres = np.where(on_seam, seam - 0.5, centres)
        return centres

    def _rows(self, first: int, last: int) -> _Cells:
        """Cells of grid rows ``first`` .. ``last - 1``, all columns; each row drawn from its own stream."""
        rows, columns = self.grid
        m, step = self.morphology, 0.25 * self.spacing
        cells = []
        for row in range(first, last):
            rng = np.random.default_rng([self.seed, zlib.crc32(b"slide-cells"), row])
            jitter = rng.uniform(-step, step, (columns, 2))
            radii = np.exp(rng.uniform(np.log(m.cell_radius[0]), np.log(m.cell_radius[1]), columns))
            elongations = rng.uniform(*m.elongation, columns)
            angles = rng.uniform(0, np.pi, columns)
            amplitudes = m.irregularity * rng.uniform(0.3, 1.0, (columns, 3)) * [0.6, 1.0, 0.8]
            lobes = np.stack([amplitudes, rng.uniform(0, 2 * np.pi, (columns, 3))], axis=-1)
            present = rng.random(columns) < _PRESENT
            brightness = np.stack(
                [
                    np.random.default_rng([self.seed, zlib.crc32(b"slide-brightness"), row, c]).uniform(0.5, 1, columns)
                    for c in range(self.channels)
                ],
                axis=1,
            )
            # the row's places, jittered in y by each cell's jitter unless the row sits on a seam
            y = np.stack([self._places(rows, self.shape[0], np.full(rows, dy))[row] for dy in (0.0, 1.0)])
            y = y[0] + jitter[:, 0] if y[0] != y[1] else np.full(columns, y[0])
            x = self._places(columns, self.shape[1], jitter[:, 1])
            ids = 1 + row * columns + np.arange(columns)
            values = (ids, np.stack([y, x], axis=1), radii, elongations, angles, lobes, brightness)
            cells.append([value[present] for value in values])
        if not cells:
            return _empty_cells(self.channels)
        return _Cells(*(np.concatenate(parts) for parts in zip(*cells)))

    def _cells_near(self, y0: int, x0: int, h: int, w: int) -> _Cells:
        """Cells whose outline may reach into the region."""
        rows, _ = self.grid
        pitch, reach = self.shape[0] / rows, self._reach
        first = max(0, int(math.floor((y0 - reach) / pitch)) - 1)
        last = min(rows, int(math.ceil((y0 + h + reach) / pitch)) + 1)
        cells = self._rows(first, last)
        near = (
            (cells.centres[:, 0] > y0 - reach)
            & (cells.centres[:, 0] < y0 + h + reach)
            & (cells.centres[:, 1] > x0 - reach)
            & (cells.centres[:, 1] < x0 + w + reach)
        )
        return _Cells(*(getattr(cells, name)[near] for name in _Cells.__dataclass_fields__))

    def _geometry(self, y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray, _Cells]:
        """Index into the region's cells (h, w) int32 (-1 background), radial coordinate (h, w) float32 (1 on
        the outline and background) and the cells; each pixel belongs to the cell it lies deepest in."""
        cells = self._cells_near(y0, x0, h, w)
        index = np.full((h, w), -1, np.int32)
        rho = np.full((h, w), np.inf, np.float32)
        for i in range(len(cells.ids)):
            centre, radius, elongation = cells.centres[i], cells.radii[i], cells.elongations[i]
            reach = radius * math.sqrt(elongation) * (1 + cells.lobes[i, :, 0].sum()) * 1.2 + 1
            top, left = max(int(math.floor(centre[0] - reach)), y0), max(int(math.floor(centre[1] - reach)), x0)
            bottom = min(int(math.ceil(centre[0] + reach)) + 1, y0 + h)
            right = min(int(math.ceil(centre[1] + reach)) + 1, x0 + w)
            if top >= bottom or left >= right:
                continue
            dy = (np.arange(top, bottom)[:, None] - centre[0]).astype(np.float32)  # float32: twice as fast
            dx = (np.arange(left, right)[None, :] - centre[1]).astype(np.float32)
            shape = (np.float32(radius), np.float32(elongation), np.float32(cells.angles[i]))
            cell_rho = _outline_rho(dy, dx, *shape, cells.lobes[i].astype(np.float32)).astype(np.float32)
            window = rho[top - y0 : bottom - y0, left - x0 : right - x0]
            deeper = cell_rho < window
            window[deeper] = cell_rho[deeper]
            index[top - y0 : bottom - y0, left - x0 : right - x0][deeper] = i
        outside = rho >= 1
        index[outside] = -1
        rho[outside] = 1
        return index, rho, cells

    # ----------------------------------------------------------------------------------------------- drawing

    @property
    def label_dtype(self) -> np.dtype:
        rows, columns = self.grid
        return np.dtype(np.uint32 if rows * columns < 2**32 else np.uint64)

    def labels(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        """(h, w) ground-truth labels of the region at (y0, x0); ids are unique over the slide, 0 is background."""
        index, _, cells = self._geometry(y0, x0, h, w)
        ids = np.concatenate([[0], cells.ids]).astype(self.label_dtype)
        return ids[index + 1]

    @property
    def n_channels(self) -> int:
        """Image channels: ``channels * z_planes``."""
        return self.channels * self.z_planes

    @property
    def channel_names(self) -> list[str]:
        stains = ["nuclei", "membranes"] + [f"marker {c}" for c in range(2, self.channels)]
        return [
            name if self.z_planes == 1 else f"{name} z{z}"
            for name in stains[: self.channels]
            for z in range(self.z_planes)
        ]

    def _sigma(self, plane: int) -> float:
        return float(np.hypot(self.optics.psf_sigma, self.optics.defocus_blur * (plane - (self.z_planes - 1) / 2)))

    def image(self, y0: int, x0: int, h: int, w: int, planes: Sequence[int] | None = None) -> np.ndarray:
        """(P, h, w) image of the region at (y0, x0) in ``dtype``: all ``n_channels`` planes, or those listed."""
        planes = list(range(self.n_channels)) if planes is None else [int(p) for p in planes]
        margin = max(int(4.0 * self._sigma(p % self.z_planes) + 0.5) for p in planes) if planes else 0
        index, rho, cells = self._geometry(y0 - margin, x0 - margin, h + 2 * margin, w + 2 * margin)
        inside = index >= 0
        out = np.empty((len(planes), h, w), self.dtype)
        for k, plane in enumerate(planes):
            channel, z = divmod(plane, self.z_planes)
            brightness = np.concatenate([[0.0], cells.brightness[:, channel]]).astype(np.float32)[index + 1]
            if channel == 0:
                stain = 0.35 + 0.65 * _dome(rho)
            elif channel == 1:
                stain = 0.15 + np.clip((rho - 0.7) / 0.3, 0, 1) ** 2
            else:
                stain = np.full(rho.shape, 0.6, np.float32)
            intensity = (brightness * stain * inside + 0.03).astype(np.float32)
            intensity = ndimage.gaussian_filter(intensity, self._sigma(z), truncate=4.0, mode="nearest")
            intensity = intensity[margin : margin + h, margin : margin + w]
            noise = _pixel_normal(_noise_key(self.seed, plane), y0, x0, h, w)
            sigma = np.sqrt(np.clip(intensity, 0, None) / self.optics.photons + self.optics.read_noise**2)
            values = np.rint((intensity + sigma * noise) * _WHITE[self.dtype])
            out[k] = np.clip(values, 0, np.iinfo(self.dtype).max)
        return out

    # ------------------------------------------------------------------------------------------------- seams

    def seam_crossings(self, seam_every: int | None = None) -> int:
        """Number of cells that touch across a seam of the ``seam_every`` block grid (default: the slide's own):
        some pixel of the cell lies just before a seam line and the pixel just after it belongs to the same
        cell. Drawn strip by strip, never holding the slide."""
        every = seam_every or self.seam_every
        if not every:
            raise ValueError("seam_every: no block grid given and the slide has none.")
        crossing: set[int] = set()
        height, width = self.shape
        strip = 4096
        for line in range(every, height, every):
            for x in range(0, width, strip):
                pair = self.labels(line - 1, x, 2, min(strip, width - x))
                crossing.update(np.unique(pair[0][(pair[0] == pair[1]) & (pair[0] > 0)]).tolist())
        for line in range(every, width, every):
            for y in range(0, height, strip):
                pair = self.labels(y, line - 1, min(strip, height - y), 2)
                crossing.update(np.unique(pair[:, 0][(pair[:, 0] == pair[:, 1]) & (pair[:, 0] > 0)]).tolist())
        return len(crossing)


def _empty_cells(channels: int) -> _Cells:
    return _Cells(
        np.zeros(0, np.int64),
        np.zeros((0, 2)),
        np.zeros(0),
        np.zeros(0),
        np.zeros(0),
        np.zeros((0, 3, 2)),
        np.zeros((0, channels)),
    )


def seam_crossings(size: int | Sequence[int], seam_every: int, seed: int = 0, **options) -> int:
    """Number of cells touching across the seams of the ``seam_every`` grid on the slide
    ``write_slide(..., size=size, seed=seed, seam_every=seam_every, **options)`` writes."""
    shape = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    return SyntheticSlide(shape, seed=seed, seam_every=seam_every, **options).seam_crossings()


# --------------------------------------------------------------------------------------------------------- writing


def write_slide(
    path,
    size: int | Sequence[int],
    format: str = "ome-zarr-0.4",
    chunk: int = 256,
    pixel_size: Sequence[float] | None = (0.5, 0.5),
    channels: int = 1,
    z_planes: int = 1,
    dtype: str = "uint16",
    seed: int = 0,
    levels: int | None = 1,
    seam_every: int | None = None,
    return_labels: bool = False,
    overwrite: bool = False,
) -> np.ndarray | None:
    """Write a synthetic slide of nuclei chunk by chunk, never holding it whole.

    Args:
        path: the store or file (``.ome.zarr``; ``.tif`` / ``.ome.tif``).
        size: side of a square slide, or (Y, X).
        format: one of :data:`SLIDE_FORMATS`: OME-Zarr NGFF 0.4 or 0.5, plain TIFF (pixel size in resolution
            tags) or OME-TIFF; TIFFs are tiled BigTIFF with ``chunk`` tiles (a multiple of 16).
        chunk: chunk / tile side.
        pixel_size: (y, x) micrometres, or None.
        channels: stains (see :class:`SyntheticSlide`); ``z_planes`` focal planes each. OME-TIFF and single-level
            TIFF keep the planes as a Z axis (``CZYX``); OME-Zarr and pyramidal TIFF merge them into channels.
        dtype: "uint16" or "uint8".
        seed: non-negative integer; same arguments, same pixels.
        levels: pyramid levels (1: none; None: halving until one chunk).
        seam_every: put cells on the seams of this block grid.
        return_labels: also draw the ground-truth labels and return them; only for slides up to 2**26 pixels.
        overwrite: replace an existing ``path``.

    Returns:
        (Y, X) ground-truth labels when ``return_labels``, else None.
    """
    path = Path(path)
    shape = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    slide = SyntheticSlide(shape, seed=seed, channels=channels, z_planes=z_planes, dtype=dtype, seam_every=seam_every)
    if format not in SLIDE_FORMATS:
        raise ValueError(f"format: {format!r}, expected one of {SLIDE_FORMATS}.")
    if return_labels and shape[0] * shape[1] > 2**26:
        raise ValueError(f"return_labels: a {shape[0]} x {shape[1]} slide is too large to return its labels whole.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; pass overwrite=True to replace it.")
    if format.startswith("ome-zarr"):
        _write_zarr(slide, path, chunk, pixel_size, format[-3:], levels, overwrite)
    elif levels == 1:
        _write_tiff(slide, path, chunk, pixel_size, ome=format == "ome-tiff")
    else:  # pyramid: level 0 to a temporary OME-Zarr whose levels are then copied tile by tile
        temporary = path.with_name(f".{path.name}.zarr")
        shutil.rmtree(temporary, ignore_errors=True)
        _write_zarr(slide, temporary, chunk, pixel_size, "0.4", levels, True)
        try:
            tiff_from_zarr(temporary, path, tile=chunk, overwrite=overwrite, ome=format == "ome-tiff")
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    logger.info("%s: %d x %d synthetic slide (%s) written.", path, *shape, format)
    return slide.labels(0, 0, *shape) if return_labels else None


def _block(chunk: int) -> int:
    """Side of the regions drawn at once: a multiple of the chunk near 1024."""
    return chunk * max(1, 1024 // chunk)


def _write_zarr(slide, path, chunk, pixel_size, ngff, levels, overwrite) -> None:
    writer = OmeZarrWriter(
        path,
        slide.shape,
        image=(slide.dtype, slide.n_channels, slide.channel_names),
        chunk=chunk,
        pixel_size=pixel_size,
        ngff=ngff,
        overwrite=overwrite,
        levels=levels,
    )
    block = _block(chunk)
    for y in range(0, slide.shape[0], block):
        for x in range(0, slide.shape[1], block):
            h, w = min(block, slide.shape[0] - y), min(block, slide.shape[1] - x)
            writer.write_image(y, x, slide.image(y, x, h, w))
    writer.finish()


def _write_tiff(slide: SyntheticSlide, path: Path, tile: int, pixel_size, ome: bool) -> None:
    """A single-level tiled BigTIFF, (C, Z, Y, X) pages, tile by tile."""
    import tifffile

    if tile % 16:
        raise ValueError(f"chunk: {tile}, a TIFF tile side must be a multiple of 16.")
    height, width = slide.shape

    def tiles():
        for plane in range(slide.n_channels):
            for y in range(0, height, tile):
                for x in range(0, width, tile):
                    yield slide.image(y, x, min(tile, height - y), min(tile, width - x), planes=[plane])[0]

    shape = (slide.channels, slide.z_planes, height, width)
    metadata: dict = {"axes": "CZYX"}
    options: dict = {}
    if pixel_size is not None:
        if ome:
            metadata.update(PhysicalSizeY=float(pixel_size[0]), PhysicalSizeYUnit="µm")
            metadata.update(PhysicalSizeX=float(pixel_size[1]), PhysicalSizeXUnit="µm")
        options = {"resolution": (1e4 / float(pixel_size[1]), 1e4 / float(pixel_size[0])), "resolutionunit": 3}
    if ome:
        metadata["Channel"] = {"Name": [name.split(" z")[0] for name in slide.channel_names[:: slide.z_planes]]}
    with atomic_path(path) as partial, tifffile.TiffWriter(partial, bigtiff=True, ome=ome) as tiff:
        tiff.write(
            tiles(),
            shape=shape,
            dtype=slide.dtype,
            tile=(tile, tile),
            photometric="minisblack",
            compression="zlib",
            metadata=metadata,
            **options,
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: write one synthetic slide."""
    parser = argparse.ArgumentParser(
        prog="python -m common.data.synthetic_slides", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("path", type=Path, help="output store or file")
    parser.add_argument("--size", type=int, nargs="+", default=[4096], help="side, or Y X (default 4096)")
    parser.add_argument("--format", choices=SLIDE_FORMATS, default="ome-zarr-0.4")
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--pixel-size", type=float, nargs=2, default=(0.5, 0.5), metavar=("Y_UM", "X_UM"))
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--z-planes", type=int, default=1)
    parser.add_argument("--dtype", choices=sorted(_WHITE), default="uint16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels", type=int, default=None, help="pyramid levels (default: halving to one chunk)")
    parser.add_argument("--seam-every", type=int, default=None, help="put cells on the seams of this block grid")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    size = arguments.size[0] if len(arguments.size) == 1 else arguments.size[:2]
    try:
        write_slide(
            arguments.path, size, format=arguments.format, chunk=arguments.chunk, pixel_size=arguments.pixel_size,
            channels=arguments.channels, z_planes=arguments.z_planes, dtype=arguments.dtype, seed=arguments.seed,
            levels=arguments.levels, seam_every=arguments.seam_every,
        )  # fmt: skip
    except (FileExistsError, ValueError) as error:
        parser.exit(1, f"error: {error}\n")
    if arguments.seam_every:
        logger.info("%d cells cross the seams of the %d-pixel block grid.", seam_crossings(
            size, arguments.seam_every, seed=arguments.seed, channels=arguments.channels,
            z_planes=arguments.z_planes, dtype=arguments.dtype), arguments.seam_every)  # fmt: skip


if __name__ == "__main__":
    main()

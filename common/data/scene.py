"""Synthetic cell scenes: instance labels plus fluorescence and label-free images of the same cells.

One scene is a field of view of touching, non-convex cells of varied size. Its geometry (cell and nucleus
labels, lipid droplets) is drawn once; every image channel is rendered from that geometry, so a network can
learn to map a label-free image (bright field at several focal planes, phase contrast, DIC) to a
fluorescence target (nucleus, cytoplasm, lipid droplets, mitochondria, actin, tubulin) or to the labels.

Arrays are NumPy, spatial order y, x. Intensities are float32 in relative units (about 0 to 1.5, background
near 0 for fluorescence, near 0.5 for transmitted light) after blur and shot noise; writers quantise them.
Every random draw comes from a stream named after what it draws, so a scene is the same for a seed whatever
subset of channels is rendered.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Callable, Union

import numpy as np
from scipy import fft, ndimage

__all__ = [
    "CellScene",
    "Morphology",
    "Optics",
    "render_scene",
    "FLUORESCENCE_CHANNELS",
    "LABEL_FREE_CHANNELS",
]

Seed = Union[int, Sequence[int]]


@dataclass(frozen=True)
class Morphology:
    """What the cells of a scene look like; lengths in pixels.

    Attributes:
        cell_radius: range of cell radii, drawn log-uniformly.
        coverage: share of the field of view the cells aim to cover.
        touching: probability that a cell is placed against an already placed one (so they share a boundary).
        elongation: range of the ratio of long to short axis.
        irregularity: amplitude of the lobes on each outline; above about 0.1 outlines become concave.
        nucleus_size: range of nucleus radius / cell radius; ``None`` makes the objects bare nuclei
            (nuclear-stain datasets), so ``nuclei`` equals ``labels``.
        lipid_droplets: mean number of lipid droplets per cell (0 for none).
        droplet_radius: range of droplet radius / mean cell radius.
    """

    cell_radius: tuple[float, float] = (10.0, 20.0)
    coverage: float = 0.45
    touching: float = 0.6
    elongation: tuple[float, float] = (1.0, 1.6)
    irregularity: float = 0.2
    nucleus_size: tuple[float, float] | None = (0.4, 0.6)
    lipid_droplets: float = 2.0
    droplet_radius: tuple[float, float] = (0.08, 0.2)

    def scaled(self, factor: float) -> Morphology:
        """The same cells seen at ``factor`` times the magnification (cell radii multiplied)."""
        low, high = self.cell_radius
        return replace(self, cell_radius=(low * factor, high * factor))


@dataclass(frozen=True)
class Optics:
    """The microscope: blur, shot noise and the focal planes of label-free channels.

    Attributes:
        psf_sigma: in-focus blur (Gaussian sigma, pixels).
        photons: photons collected at intensity 1; fewer means noisier images.
        read_noise: camera read noise, in intensity units.
        defocus: focal planes of the label-free channels, in units where 1 is a clearly visible defocus;
            0 is in focus, the sign selects above or below the cells.
        defocus_blur: extra blur sigma (pixels) per unit of defocus.
    """

    psf_sigma: float = 1.0
    photons: float = 300.0
    read_noise: float = 0.004
    defocus: tuple[float, ...] = (0.0,)
    defocus_blur: float = 1.2


@dataclass(frozen=True)
class CellScene:
    """One rendered field of view.

    Attributes:
        labels: (H, W) int32 cell instances, 0 background, ids 1..N.
        nuclei: (H, W) int32, the nucleus of cell ``i`` carries id ``i``; equals ``labels`` for bare nuclei.
        fluorescence: channel name -> (H, W) float32 image.
        label_free: channel name -> (Z, H, W) float32 images, one per focal plane of ``defocus``.
        defocus: the focal planes of ``label_free``.
    """

    labels: np.ndarray
    nuclei: np.ndarray
    fluorescence: dict[str, np.ndarray] = field(default_factory=dict)
    label_free: dict[str, np.ndarray] = field(default_factory=dict)
    defocus: tuple[float, ...] = (0.0,)


@dataclass(frozen=True)
class _Geometry:
    """Cell geometry every channel is rendered from. Per-cell arrays have N + 1 rows; row 0 is background."""

    labels: np.ndarray  # (H, W) int32 cell ids
    rho: np.ndarray  # (H, W) float32 radial coordinate inside the own cell: 0 centre, 1 outline and background
    nuclei: np.ndarray  # (H, W) int32
    nucleus_rho: np.ndarray  # (H, W) float32 radial coordinate inside the nucleus, 1 outside
    droplets: np.ndarray  # (H, W) float32 height of lipid droplets, 0..1
    nucleus_centres: np.ndarray  # (N + 1, 2) float32 y, x
    orientations: np.ndarray  # (N + 1,) float32 long-axis angle, radians
    mean_radius: float

    @property
    def n_cells(self) -> int:
        return len(self.orientations) - 1


# ---------------------------------------------------------------------------------------------------------------
# random streams and noise fields


def _stream(seed: Seed, name: str) -> np.random.Generator:
    """Generator of the random stream ``name`` of a scene seed; streams are independent of each other."""
    entropy = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
    if any(int(value) < 0 for value in entropy):
        raise ValueError(f"seed: expected non-negative integers, got {seed!r}.")
    return np.random.default_rng([*map(int, entropy), zlib.crc32(name.encode())])


def _frequencies(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (cycles per pixel) of a real 2-D FFT: fy (H, 1), fx (1, W // 2 + 1)."""
    return fft.fftfreq(shape[0]).astype(np.float32)[:, None], fft.rfftfreq(shape[1]).astype(np.float32)[None, :]


def _shaped_noise(shape: tuple[int, int], rng: np.random.Generator, gain: np.ndarray) -> np.ndarray:
    """(H, W) white noise filtered by ``gain`` (H, W // 2 + 1) in Fourier space, zero mean, unit std."""
    white = rng.standard_normal(shape, dtype=np.float32)
    field_ = fft.irfft2(fft.rfft2(white) * gain, s=shape)
    return ((field_ - field_.mean()) / max(float(field_.std()), 1e-12)).astype(np.float32)


def _gaussian_gain(fy: np.ndarray, fx: np.ndarray, sigma_y: float, sigma_x: float) -> np.ndarray:
    """Fourier transfer of a Gaussian blur with sigmas (pixels) along y and x."""
    return np.exp(-2 * np.pi**2 * ((sigma_y * fy) ** 2 + (sigma_x * fx) ** 2))


def _smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) Gaussian random field of correlation length ``sigma`` pixels, zero mean, unit std."""
    fy, fx = _frequencies(shape)
    return _shaped_noise(shape, rng, _gaussian_gain(fy, fx, sigma, sigma))


def _streak_noise(shape: tuple[int, int], angle: float, length: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) random field of thin streaks along ``angle`` (radians from the x axis), ``length`` pixels long."""
    fy, fx = _frequencies(shape)
    along = fx * np.cos(angle) + fy * np.sin(angle)
    across = -fx * np.sin(angle) + fy * np.cos(angle)
    return _shaped_noise(shape, rng, _gaussian_gain(along, across, length, 0.8))


def _dome(rho: np.ndarray) -> np.ndarray:
    """Height of a hemisphere at radial coordinate ``rho`` (1 at the centre, 0 at and beyond the outline)."""
    return np.sqrt(np.clip(1.0 - rho * rho, 0.0, 1.0))


# ---------------------------------------------------------------------------------------------------------------
# geometry


def _log_uniform(rng: np.random.Generator, low: float, high: float, size=None) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def _place_cells(shape: tuple[int, int], morphology: Morphology, rng: np.random.Generator):
    """Cell centres (N, 2) y, x and radii (N,): some placed against earlier cells, the rest anywhere free."""
    low, high = morphology.cell_radius
    mean_area = np.pi * (high**2 - low**2) / (2 * np.log(high / low)) if high > low else np.pi * low**2
    target = max(1, int(round(morphology.coverage * shape[0] * shape[1] / mean_area)))
    centres = np.empty((target, 2), np.float64)
    radii = np.empty(target, np.float64)
    count = 0
    for _ in range(20 * target):
        if count == target:
            break
        radius = _log_uniform(rng, low, high)
        if count and rng.random() < morphology.touching:
            neighbour = rng.integers(count)
            angle = rng.uniform(0, 2 * np.pi)
            distance = (radius + radii[neighbour]) * rng.uniform(0.78, 0.92)
            centre = centres[neighbour] + distance * np.array([np.sin(angle), np.cos(angle)])
            min_gap = 0.75
        else:
            centre = rng.uniform((0, 0), shape)
            min_gap = 1.05
        if not (0 <= centre[0] < shape[0] and 0 <= centre[1] < shape[1]):
            continue
        gaps = np.hypot(*(centres[:count] - centre).T) / (radii[:count] + radius)
        if count and gaps.min() < min_gap:
            continue
        centres[count], radii[count] = centre, radius
        count += 1
    return centres[:count], radii[:count]


def _outline_rho(dy, dx, radius, elongation, angle, lobes: np.ndarray) -> np.ndarray:
    """Radial coordinate (1 on the outline) of a lobed ellipse at offsets dy, dx from its centre; the shape
    parameters (radius, elongation, angle in radians) are numbers or arrays broadcasting with dy, dx.

    ``lobes`` (K, 2) holds the amplitude and phase of the harmonics 2..K + 1 of the outline radius.
    """
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / (radius * np.sqrt(elongation))
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) * (np.sqrt(elongation) / radius)
    polar = np.arctan2(v, u)
    outline = 1.0 + sum(amp * np.cos((k + 2) * polar - phase) for k, (amp, phase) in enumerate(lobes))
    return np.hypot(u, v) / outline


def _partition(shape, centres, radii, elongations, angles, lobes) -> tuple[np.ndarray, np.ndarray]:
    """Labels (H, W) int32 and radial coordinate (H, W) float32: each pixel goes to the cell it lies deepest in.

    Overlapping outlines become shared, curved boundaries (a multiplicatively weighted Voronoi split).
    """
    labels = np.zeros(shape, np.int32)
    rho = np.full(shape, np.inf, np.float32)
    for index, (centre, radius, elongation, angle, lobe) in enumerate(zip(centres, radii, elongations, angles, lobes)):
        reach = radius * np.sqrt(elongation) * (1 + lobe[:, 0].sum()) * 1.2 + 1
        y0, x0 = np.maximum(np.floor(centre - reach).astype(int), 0)
        y1, x1 = np.minimum(np.ceil(centre + reach).astype(int) + 1, shape)
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(centre[0])
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(centre[1])
        cell_rho = _outline_rho(dy, dx, radius, elongation, angle, lobe)
        window = rho[y0:y1, x0:x1]
        deeper = cell_rho < window
        window[deeper] = cell_rho[deeper]
        labels[y0:y1, x0:x1][deeper] = index + 1
    return labels, rho


def _keep_largest_parts(labels: np.ndarray) -> np.ndarray:
    """(H, W) labels where every cell keeps only its largest 4-connected part; the other parts become background."""
    labels = labels.copy()
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        parts, count = ndimage.label(labels[box] == index)
        if count > 1:
            largest = np.argmax(np.bincount(parts.ravel())[1:]) + 1
            labels[box][(parts > 0) & (parts != largest)] = 0
    return labels


def _relabel(labels: np.ndarray, min_area: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop cells smaller than ``min_area`` pixels and renumber the rest 1..N in order.

    Returns:
        (H, W) int32 labels, and (N + 1,) old id of every new id (entry 0 is 0).
    """
    areas = np.bincount(labels.ravel())
    kept = np.flatnonzero(areas >= min_area)
    kept = kept[kept > 0]
    new_id = np.zeros(len(areas), np.int32)
    new_id[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return new_id[labels], np.concatenate([[0], kept])


def _interior(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose whole 3x3 neighbourhood belongs to the same cell."""
    return (labels > 0) & (ndimage.minimum_filter(labels, 3) == ndimage.maximum_filter(labels, 3))


def _per_pixel(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(H, W) float32 value of each pixel's cell, from per-cell ``values`` (N,); 1 on the background."""
    return np.concatenate([[1.0], values]).astype(np.float32)[labels]


def _nuclei(labels, centres, radii, elongations, angles, nucleus_size: tuple[float, float], rng):
    """Nucleus labels (H, W) int32, their radial coordinate (H, W) float32 and centres (N + 1, 2).

    Each nucleus is an ellipse, rounder than its cell, slightly off its centre and at least a pixel inside it.
    """
    n = len(radii)
    scale = rng.uniform(*nucleus_size, n)
    shift_angle = rng.uniform(0, 2 * np.pi, n)
    shift = (1 - scale) * radii * rng.uniform(0, 0.35, n)
    nucleus_centres = centres + shift[:, None] * np.stack([np.sin(shift_angle), np.cos(shift_angle)], axis=1)
    nucleus_centres = np.concatenate([np.zeros((1, 2)), nucleus_centres]).astype(np.float32)
    yy, xx = np.indices(labels.shape, dtype=np.float32)
    rho = _outline_rho(
        yy - nucleus_centres[labels, 0],
        xx - nucleus_centres[labels, 1],
        _per_pixel(labels, scale * radii),
        _per_pixel(labels, np.sqrt(elongations)),
        _per_pixel(labels, angles),
        np.zeros((0, 2)),
    )
    inside = _interior(labels) & (rho < 1)
    return np.where(inside, labels, 0).astype(np.int32), np.where(inside, rho, 1).astype(np.float32), nucleus_centres


def _droplets(labels: np.ndarray, nuclei: np.ndarray, morphology: Morphology, mean_radius: float, rng) -> np.ndarray:
    """(H, W) float32 height (0..1) of spherical lipid droplets scattered through the cytoplasm."""
    cytoplasm = (labels > 0) & (nuclei == 0)
    candidates = np.flatnonzero(cytoplasm)
    n_cells = int(labels.max())
    count = rng.poisson(morphology.lipid_droplets * n_cells) if len(candidates) else 0
    if count == 0:
        return np.zeros(labels.shape, np.float32)
    where = candidates[rng.integers(len(candidates), size=count)]
    radius = np.zeros(labels.size, np.float32)
    radius[where] = mean_radius * rng.uniform(*morphology.droplet_radius, count)
    distance, nearest = ndimage.distance_transform_edt(radius.reshape(labels.shape) == 0, return_indices=True)
    nearest_radius = radius.reshape(labels.shape)[nearest[0], nearest[1]]
    return np.where(cytoplasm, _dome(distance / nearest_radius), 0).astype(np.float32)


def _draw_geometry(shape: tuple[int, int], morphology: Morphology, rng: np.random.Generator) -> _Geometry:
    """Cells placed, shaped, split along shared boundaries and cleaned; then nuclei and droplets inside them."""
    centres, radii = _place_cells(shape, morphology, rng)
    n = len(radii)
    elongations = rng.uniform(*morphology.elongation, n)
    angles = rng.uniform(0, np.pi, n)
    lobes = np.stack(
        [morphology.irregularity * rng.uniform(0.3, 1.0, (n, 3)) * [0.6, 1.0, 0.8], rng.uniform(0, 2 * np.pi, (n, 3))],
        axis=-1,
    )
    labels, rho = _partition(shape, centres, radii, elongations, angles, lobes)
    mean_radius = float(np.sqrt(np.mean(radii**2))) if n else float(np.mean(morphology.cell_radius))
    rho *= 1 + 0.08 * _smooth_noise(shape, 0.3 * mean_radius, rng)  # ragged outer outlines
    labels[rho >= 1] = 0
    labels, old_id = _relabel(_keep_largest_parts(labels), min_area=0.25 * np.pi * morphology.cell_radius[0] ** 2)
    rho = np.where(labels > 0, rho, 1).astype(np.float32)
    centres, radii, elongations, angles = (values[old_id[1:] - 1] for values in (centres, radii, elongations, angles))
    if morphology.nucleus_size is None:
        nuclei, nucleus_rho = labels, rho
        nucleus_centres = np.concatenate([np.zeros((1, 2)), centres]).astype(np.float32)
    else:
        nuclei, nucleus_rho, nucleus_centres = _nuclei(
            labels, centres, radii, elongations, angles, morphology.nucleus_size, rng
        )
    droplets = (
        _droplets(labels, nuclei, morphology, mean_radius, rng)
        if morphology.lipid_droplets > 0
        else np.zeros(shape, np.float32)
    )
    return _Geometry(
        labels=labels,
        rho=rho,
        nuclei=nuclei,
        nucleus_rho=nucleus_rho,
        droplets=droplets,
        nucleus_centres=nucleus_centres,
        orientations=np.concatenate([[0.0], angles]).astype(np.float32),
        mean_radius=mean_radius,
    )


# ---------------------------------------------------------------------------------------------------------------
# fluorescence: the stained structure of each channel, (H, W) float32 before optics


def _random_per_cell(geometry: _Geometry, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """(N + 1,) float32 random value per cell (row 0 for background), e.g. a staining brightness."""
    return rng.uniform(low, high, geometry.n_cells + 1).astype(np.float32)


def _nucleus_stain(g: _Geometry, rng: np.random.Generator) -> np.ndarray:
    """DNA stain: nuclei of varied brightness, domed, with chromatin texture."""
    chromatin = np.clip(1 + 0.3 * _smooth_noise(g.labels.shape, 0.1 * g.mean_radius + 0.5, rng), 0, None)
    profile = 0.6 + 0.4 * _dome(g.nucleus_rho)
    return _random_per_cell(g, rng, 0.45, 1.0)[g.nuclei] * profile * chromatin * (g.nuclei > 0)


def _cytoplasm_stain(g: _Geometry, rng: np.random.Generator) -> np.ndarray:
    """Whole-cell stain: brightest where the cell is thickest, excluded from lipid droplets."""
    texture = np.clip(1 + 0.2 * _smooth_noise(g.labels.shape, 0.25 * g.mean_radius, rng), 0, None)
    profile = (0.35 + 0.65 * _dome(g.rho)) * (1 - 0.8 * g.droplets)
    return _random_per_cell(g, rng, 0.35, 0.8)[g.labels] * profile * texture * (g.labels > 0)


def _lipid_stain(g: _Geometry, rng: np.random.Generator) -> np.ndarray:
    """Neutral-lipid stain: the droplets, brightness varying between cells."""
    return _random_per_cell(g, rng, 0.6, 1.0)[g.labels] * np.sqrt(g.droplets)


def _mitochondria_stain(g: _Geometry, rng: np.random.Generator) -> np.ndarray:
    """Mitochondria: a fragmented tubular network, densest around the nucleus, absent from it."""
    shape, width = g.labels.shape, max(1.2, 0.08 * g.mean_radius)
    fy, fx = _frequencies(shape)
    band = _gaussian_gain(fy, fx, width, width) - _gaussian_gain(fy, fx, 2 * width, 2 * width)
    tubes = np.exp(-((_shaped_noise(shape, rng, band) / 0.35) ** 2))
    fragments = _smooth_noise(shape, 3 * width, rng) > -0.3
    density = np.sqrt(1 - g.rho) * ((g.labels > 0) & (g.nuclei == 0))
    return _random_per_cell(g, rng, 0.5, 1.0)[g.labels] * tubes * fragments * density


def _actin_stain(g: _Geometry, rng: np.random.Generator, n_directions: int = 6) -> np.ndarray:
    """Actin: a cortical rim plus stress fibres along each cell's long axis."""
    shape = g.labels.shape
    directions = np.arange(n_directions) * np.pi / n_directions
    fibres = np.stack([_streak_noise(shape, angle, 0.5 * g.mean_radius, rng) for angle in directions])
    direction_of_cell = np.round(g.orientations / (np.pi / n_directions)).astype(np.intp) % n_directions
    fibres = np.take_along_axis(fibres, direction_of_cell[g.labels][None], axis=0)[0]
    rim = np.clip((g.rho - 0.75) / 0.25, 0, 1) ** 2
    structure = 0.8 * rim + 0.6 * np.clip(fibres - 0.7, 0, None) * _dome(g.rho) + 0.1
    return _random_per_cell(g, rng, 0.5, 1.0)[g.labels] * structure * (g.labels > 0)


def _tubulin_stain(g: _Geometry, rng: np.random.Generator, n_rays: int = 64) -> np.ndarray:
    """Microtubules: curved filaments radiating from beside the nucleus, fainter towards the cell edge."""
    rays = (rng.random((g.n_cells + 1, n_rays)) < 0.35) * rng.uniform(0.5, 1.0, (g.n_cells + 1, n_rays))
    rays = ndimage.gaussian_filter1d(rays.astype(np.float32), 0.6, axis=1, mode="wrap")
    bend = _random_per_cell(g, rng, -1.5, 1.5)
    yy, xx = np.indices(g.labels.shape, dtype=np.float32)
    centre = g.nucleus_centres[g.labels]
    angle = np.arctan2(yy - centre[..., 0], xx - centre[..., 1]) + bend[g.labels] * g.rho
    position = (angle / (2 * np.pi) % 1.0) * n_rays
    ray, fraction = np.floor(position).astype(np.intp) % n_rays, position - np.floor(position)
    filaments = rays[g.labels, ray] * (1 - fraction) + rays[g.labels, (ray + 1) % n_rays] * fraction
    structure = (0.15 + filaments * (0.4 + 0.6 * (1 - g.rho))) * np.where(g.nuclei > 0, 0.3, 1.0)
    return _random_per_cell(g, rng, 0.5, 1.0)[g.labels] * structure * (g.labels > 0)


_STAINS: dict[str, Callable[[_Geometry, np.random.Generator], np.ndarray]] = {
    "nucleus": _nucleus_stain,
    "cytoplasm": _cytoplasm_stain,
    "lipid": _lipid_stain,
    "mitochondria": _mitochondria_stain,
    "actin": _actin_stain,
    "tubulin": _tubulin_stain,
}
FLUORESCENCE_CHANNELS = tuple(_STAINS)


# ---------------------------------------------------------------------------------------------------------------
# label-free: transmitted light through the cells' optical path, (H, W) float32 per focal plane before noise


@dataclass(frozen=True)
class _Specimen:
    """What transmitted light sees: optical path (phase, radians) and absorbance, both (H, W) float32."""

    phase: np.ndarray
    absorbance: np.ndarray
    mean_radius: float


def _specimen(g: _Geometry, rng: np.random.Generator) -> _Specimen:
    """Cells are thin domes, nuclei and lipid droplets denser; droplets also scatter light away."""
    cells = g.labels > 0
    texture = _smooth_noise(g.labels.shape, 0.15 * g.mean_radius + 0.5, rng)
    phase = (0.25 * _dome(g.rho) + 0.8 * _dome(g.nucleus_rho) + 0.5 * g.droplets + 0.04 * texture) * cells
    absorbance = (0.03 + 0.15 * _dome(g.nucleus_rho) + 0.3 * g.droplets) * cells
    return _Specimen(phase.astype(np.float32), absorbance.astype(np.float32), g.mean_radius)


def _curvature(phase: np.ndarray, mean_radius: float) -> np.ndarray:
    """Scale-normalised Laplacian of the phase at the scale of cell features: what defocus turns into contrast."""
    sigma = 0.15 * mean_radius + 1
    return sigma**2 * ndimage.gaussian_laplace(phase, sigma, truncate=3.0)


def _defocused(image: np.ndarray, z: float, optics: Optics) -> np.ndarray:
    """(H, W) ``image`` blurred by the point spread function at defocus ``z``."""
    sigma = np.hypot(optics.psf_sigma, optics.defocus_blur * z)
    return ndimage.gaussian_filter(image, sigma, truncate=3.0)


def _brightfield(s: _Specimen) -> tuple[np.ndarray, np.ndarray]:
    """Bright field: absorbance in focus; defocus shows the phase (transport of intensity), with opposite
    contrast above and below the focal plane."""
    return 0.55 * (1 - s.absorbance), -0.45 * _curvature(s.phase, s.mean_radius)


def _phase_contrast(s: _Specimen) -> tuple[np.ndarray, np.ndarray]:
    """Positive phase contrast: dense parts dark, surrounded by a bright halo; large phase shifts saturate,
    so thin cytoplasm shows almost as clearly as the nucleus."""
    saturated = 1 - np.exp(-2.5 * s.phase)
    halo = ndimage.gaussian_filter(saturated, 0.2 * s.mean_radius + 2, truncate=3.0)
    contrast = 1 - 1.3 * (saturated - halo) - 0.3 * s.absorbance
    return 0.45 * contrast, -0.15 * _curvature(s.phase, s.mean_radius)


def _dic(s: _Specimen, shear: float = np.pi / 4) -> tuple[np.ndarray, np.ndarray]:
    """Differential interference contrast: the phase gradient along the shear, a relief lit from one side."""
    sigma = 0.05 * s.mean_radius + 1
    gradient = np.cos(shear) * ndimage.gaussian_filter(s.phase, sigma, order=(0, 1), truncate=3.0)
    gradient += np.sin(shear) * ndimage.gaussian_filter(s.phase, sigma, order=(1, 0), truncate=3.0)
    relief = 0.5 * (1 + 0.4 * s.mean_radius * gradient - 0.3 * s.absorbance)
    return relief, -0.1 * _curvature(s.phase, s.mean_radius)


#: each label-free contrast as (in-focus image, change per unit of defocus), both (H, W)
_TRANSMITTED: dict[str, Callable[[_Specimen], tuple[np.ndarray, np.ndarray]]] = {
    "brightfield": _brightfield,
    "phase_contrast": _phase_contrast,
    "dic": _dic,
}
LABEL_FREE_CHANNELS = tuple(_TRANSMITTED)


# ---------------------------------------------------------------------------------------------------------------
# the camera and the public entry point


def _record(image: np.ndarray, rng: np.random.Generator, photons: float, read_noise: float) -> np.ndarray:
    """(H, W) float32 camera reading of an (already blurred) intensity image: shot noise (in its Gaussian
    approximation) plus read noise."""
    sigma = np.sqrt(np.clip(image, 0, None) / photons + read_noise**2)
    return (image + sigma * rng.standard_normal(image.shape, dtype=np.float32)).astype(np.float32)


def _fluorescence(g: _Geometry, name: str, optics: Optics, rng: np.random.Generator) -> np.ndarray:
    background = 0.02
    blurred = ndimage.gaussian_filter(_STAINS[name](g, rng).astype(np.float32), optics.psf_sigma) + background
    return _record(blurred, rng, optics.photons, optics.read_noise)


def _label_free(specimen: _Specimen, name: str, optics: Optics, rng: np.random.Generator) -> np.ndarray:
    in_focus, per_defocus = _TRANSMITTED[name](specimen)
    photons = 4 * optics.photons  # transmitted light is bright
    planes = [
        _record(_defocused(in_focus + z * per_defocus, z, optics), rng, photons, optics.read_noise)
        for z in optics.defocus
    ]
    return np.stack(planes)


def _check_names(requested: Sequence[str], known: Sequence[str], argument: str) -> None:
    unknown = sorted(set(requested) - set(known))
    if unknown:
        raise ValueError(f"{argument}: unknown channel(s) {unknown}, expected some of {list(known)}.")


def render_scene(
    shape: tuple[int, int],
    *,
    morphology: Morphology = Morphology(),
    optics: Optics = Optics(),
    seed: Seed = 0,
    fluorescence: Sequence[str] = FLUORESCENCE_CHANNELS,
    label_free: Sequence[str] = (),
) -> CellScene:
    """Render a field of view of touching cells, its labels and the requested channels.

    Args:
        shape: (H, W) of the images, at least 16 x 16.
        morphology: size, shape, crowding and content of the cells.
        optics: blur, noise and the focal planes of the label-free channels.
        seed: non-negative integer or sequence of them; the same seed gives the same scene, whatever channels
            are asked for.
        fluorescence: names out of :data:`FLUORESCENCE_CHANNELS` to render as (H, W) images.
        label_free: names out of :data:`LABEL_FREE_CHANNELS` to render as (Z, H, W) stacks, one plane per
            ``optics.defocus``.

    Returns:
        the :class:`CellScene`.
    """
    sides = tuple(int(side) for side in shape)
    if len(sides) != 2 or min(sides) < 16:
        raise ValueError(f"shape: expected (H, W) with both sides at least 16, got {sides}.")
    shape = (sides[0], sides[1])
    _check_names(fluorescence, FLUORESCENCE_CHANNELS, "fluorescence")
    _check_names(label_free, LABEL_FREE_CHANNELS, "label_free")
    geometry = _draw_geometry(shape, morphology, _stream(seed, "geometry"))
    stained = {name: _fluorescence(geometry, name, optics, _stream(seed, name)) for name in fluorescence}
    transmitted = {}
    if label_free:
        specimen = _specimen(geometry, _stream(seed, "specimen"))
        transmitted = {name: _label_free(specimen, name, optics, _stream(seed, name)) for name in label_free}
    return CellScene(geometry.labels, geometry.nuclei, stained, transmitted, tuple(optics.defocus))

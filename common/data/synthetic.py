"""Synthetic datasets in the exact file layout and naming of each published dataset the bundles read.

    python -m common.data.synthetic {dsb2018,bbbc039,neurips,livecell,lmc,adipocyte} OUT --n N --size S --seed K

Every image is a :func:`common.data.scene.render_scene` field of view: touching, textured cells of varied size
whose label-free images (bright field, phase contrast, DIC) and fluorescence targets come from the same cells.
The same arguments give byte-identical files. Existing files are never replaced: a clash raises
:class:`FileExistsError` naming the path before anything is written.

``size`` is the image height in pixels. Datasets whose publisher has a single frame size keep its aspect ratio
(BBBC039 520 x 696, LIVECell 520 x 704, adipocyte 2154 x 2554, all height x width); the others are square.
Cell sizes are in pixels of the publisher's magnification and do not change with ``size``.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import logging
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage
from skimage.measure import find_contours

from common.data.folder import DatasetFolder
from common.data.scene import CellScene, Morphology, Optics, render_scene
from common.data.synthetic_slides import SLIDE_FORMATS, SyntheticSlide, seam_crossings, write_slide
from common.io.datalist import split_datalist

__all__ = [
    "write_dataset",
    "write_dsb2018",
    "write_bbbc039",
    "write_neurips",
    "write_livecell",
    "write_lmc",
    "write_adipocyte",
    "WRITERS",
    "LIVECELL_CELL_TYPES",
    "main",
    # whole slides, drawn chunk by chunk (common.data.synthetic_slides)
    "SLIDE_FORMATS",
    "SyntheticSlide",
    "write_slide",
    "seam_crossings",
]

_ROWS = "ABCDEFGHIJKLMNOP"


# ---------------------------------------------------------------------------------------------------------------
# shared helpers: arguments, seeds, names, pixel values


def _check_arguments(n: int, size: int, seed: int) -> None:
    for name, value, minimum in (("n", n, 1), ("size", size, 32), ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}.")


def _plan_rng(layout: str, seed: int) -> np.random.Generator:
    """Random stream for a dataset's names and per-image settings (separate from the scenes' streams)."""
    return np.random.default_rng([seed, zlib.crc32(f"{layout}/plan".encode())])


def _scene_seed(layout: str, seed: int, index: int) -> tuple[int, int, int]:
    return seed, zlib.crc32(layout.encode()), index


def _frame(size: int, aspect: float = 1.0) -> tuple[int, int]:
    """(H, W) of an image ``size`` pixels high with width / height ``aspect``."""
    return size, int(round(size * aspect))


def _digest(*parts) -> bytes:
    return hashlib.sha256("/".join(map(str, parts)).encode()).digest()


def _hex_id(*parts) -> str:
    """64 hexadecimal characters determined by ``parts``, like the ids of the 2018 Data Science Bowl."""
    return _digest(*parts).hex()


def _uuid(*parts) -> str:
    """Upper-case random-form (version 4) UUID determined by ``parts``."""
    return str(uuid.UUID(bytes=_digest(*parts)[:16], version=4)).upper()


def _digitise(image: np.ndarray, dtype, white: float) -> np.ndarray:
    """Camera values of a float intensity image: intensity 1 becomes ``white``, clipped to the dtype's range."""
    return np.clip(np.rint(image * white), 0, np.iinfo(dtype).max).astype(dtype)


def _distinct_picks(rng: np.random.Generator, n: int, choices: int, what: str) -> np.ndarray:
    """``n`` distinct indices out of ``range(choices)``."""
    if n > choices:
        raise ValueError(f"n: at most {choices} distinct {what} exist, asked for {n}.")
    return np.sort(rng.choice(choices, size=n, replace=False))


def _touching_pairs(labels: np.ndarray) -> np.ndarray:
    """(P, 2) distinct label pairs (a < b) that are 8-neighbours somewhere in (H, W) ``labels``."""
    pairs = []
    for first, second in (
        (labels[:, :-1], labels[:, 1:]),
        (labels[:-1, :], labels[1:, :]),
        (labels[:-1, :-1], labels[1:, 1:]),
        (labels[:-1, 1:], labels[1:, :-1]),
    ):
        differ = (first != second) & (first > 0) & (second > 0)
        pairs.append(np.sort(np.stack([first[differ], second[differ]], axis=1), axis=1))
    return np.unique(np.concatenate(pairs), axis=0)


# ---------------------------------------------------------------------------------------------------------------
# 2018 Data Science Bowl

_DSB_NUCLEI = Morphology(
    cell_radius=(6, 11), coverage=0.35, touching=0.75, elongation=(1.0, 1.5), irregularity=0.08,
    nucleus_size=None, lipid_droplets=0,
)  # fmt: skip


def write_dsb2018(out, n: int = 8, size: int = 256, seed: int = 0) -> Path:
    """2018 Data Science Bowl stage 1 training set: fluorescent nuclei, one binary PNG per nucleus.

    Writes ``stage1_train/<id>/images/<id>.png`` (RGBA uint8, R = G = B, A = 255, size x size) and
    ``stage1_train/<id>/masks/<mask id>.png`` (grey uint8, 0 / 255, one nucleus each, disjoint); ids are
    64 hexadecimal characters. Nucleus size varies between images and many nuclei touch.
    """
    _check_arguments(n, size, seed)
    image_ids = [_hex_id("dsb2018", seed, index) for index in range(n)]
    folder = DatasetFolder(out, reserved=[f"stage1_train/{image_id}" for image_id in image_ids])
    magnifications = _plan_rng("dsb2018", seed).uniform(0.6, 1.6, n)
    for index, (image_id, magnification) in enumerate(zip(image_ids, magnifications)):
        scene = render_scene(
            _frame(size),
            morphology=_DSB_NUCLEI.scaled(magnification),
            seed=_scene_seed("dsb2018", seed, index),
            fluorescence=("nucleus",),
        )
        grey = _digitise(scene.fluorescence["nucleus"], np.uint8, white=180)
        rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
        folder.write_image(f"stage1_train/{image_id}/images/{image_id}.png", rgba)
        for label in range(1, int(scene.labels.max()) + 1):
            mask = np.where(scene.labels == label, 255, 0).astype(np.uint8)
            folder.write_image(f"stage1_train/{image_id}/masks/{_hex_id(image_id, label)}.png", mask)
    return folder.finish("dsb2018")


# ---------------------------------------------------------------------------------------------------------------
# BBBC039

_BBBC039_NUCLEI = Morphology(
    cell_radius=(8, 14), coverage=0.3, touching=0.6, elongation=(1.0, 1.6), irregularity=0.08,
    nucleus_size=None, lipid_droplets=0,
)  # fmt: skip

#: distinct RGB colours of BBBC039-style masks, extended by hashing when a nucleus has more neighbours
_MASK_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
)  # fmt: skip


def _palette_colour(index: int) -> tuple[int, int, int]:
    if index < len(_MASK_PALETTE):
        return _MASK_PALETTE[index]
    red, green, blue = _digest("colour", index)[:3]
    return max(red, 1), green, blue


def _colour_instances(labels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 mask: background black, each label a colour, 8-neighbouring labels in different colours.

    Colours repeat between labels that do not touch, so instances are the connected components of each colour.
    """
    neighbours: dict[int, set[int]] = {}
    for first, second in _touching_pairs(labels).tolist():
        neighbours.setdefault(first, set()).add(second)
        neighbours.setdefault(second, set()).add(first)
    colour_of = np.zeros(int(labels.max()) + 1, np.intp)  # palette index + 1, 0 for background
    for label in range(1, len(colour_of)):
        taken = {colour_of[other] for other in neighbours.get(label, ())}
        colour_of[label] = next(colour for colour in range(1, len(colour_of) + 2) if colour not in taken)
    lookup = np.array([(0, 0, 0)] + [_palette_colour(colour - 1) for colour in range(1, colour_of.max() + 1)], np.uint8)
    return lookup[colour_of[labels]]


def _bbbc039_names(n: int, seed: int) -> list[str]:
    """``IXMtest_<well>_s<site>_w1<UUID>`` for distinct wells of a 384-well plate and sites 1..9."""
    sites = 9
    picks = _distinct_picks(_plan_rng("bbbc039", seed), n, len(_ROWS) * 24 * sites, "well/site pairs")
    names = []
    for pick in picks:
        well, site = divmod(int(pick), sites)
        row, column = divmod(well, 24)
        names.append(f"IXMtest_{_ROWS[row]}{column + 1:02d}_s{site + 1}_w1{_uuid('bbbc039', seed, pick)}")
    return names


def write_bbbc039(out, n: int = 8, size: int = 256, seed: int = 0) -> Path:
    """BBBC039 (U2OS nuclei, Hoechst): 16-bit images, colour-coded instance masks and a 50/25/25 split.

    Writes ``images/<name>.tif`` (uint16 grey, size x round(size * 696 / 520)), ``masks/<name>.png``
    (RGB uint8: background black, touching nuclei in different colours) and
    ``metadata/{training,validation,test}.txt`` listing ``<name>.png`` one per line;
    names look like ``IXMtest_A02_s1_w1051DAA7C-7042-435F-99F0-1E847D9B42CB``.
    """
    _check_arguments(n, size, seed)
    names = _bbbc039_names(n, seed)
    splits = {"training": 0.5, "validation": 0.25, "test": 0.25}
    reserved = [f"images/{name}.tif" for name in names] + [f"masks/{name}.png" for name in names]
    folder = DatasetFolder(out, reserved=reserved + [f"metadata/{split}.txt" for split in splits])
    for index, name in enumerate(names):
        scene = render_scene(
            _frame(size, 696 / 520),
            morphology=_BBBC039_NUCLEI,
            seed=_scene_seed("bbbc039", seed, index),
            fluorescence=("nucleus",),
        )
        folder.write_image(f"images/{name}.tif", _digitise(scene.fluorescence["nucleus"], np.uint16, white=4000))
        folder.write_image(f"masks/{name}.png", _colour_instances(scene.labels))
    parts = split_datalist([{"name": name} for name in names], list(splits.values()), seed=seed)
    for split, part in zip(splits, parts):
        folder.write_text(f"metadata/{split}.txt", "".join(f"{item['name']}.png\n" for item in part))
    return folder.finish("bbbc039")


# ---------------------------------------------------------------------------------------------------------------
# NeurIPS 2022 cell segmentation


def _stained_brightfield(scene: CellScene) -> np.ndarray:
    """(H, W, 3) uint8 transmitted-light image of cells stained like haematoxylin (nuclei) and eosin."""
    haematoxylin, eosin = np.array([0.65, 0.70, 0.29]), np.array([0.07, 0.99, 0.11])
    density = scene.fluorescence["nucleus"][..., None] * 1.6 * haematoxylin
    density = density + scene.fluorescence["cytoplasm"][..., None] * 0.8 * eosin
    return _digitise(np.exp(-np.clip(density, 0, None)), np.uint8, white=245)


@dataclass(frozen=True)
class _Modality:
    """One kind of NeurIPS image: file suffix, the channels it needs and how they become pixels."""

    suffix: str
    fluorescence: tuple[str, ...]
    label_free: tuple[str, ...]
    to_pixels: Callable[[CellScene], np.ndarray]


def _grey_fluorescence(scene: CellScene) -> np.ndarray:
    return _digitise(scene.fluorescence["cytoplasm"], np.uint8, 200)


def _phase_contrast_16bit(scene: CellScene) -> np.ndarray:
    return _digitise(scene.label_free["phase_contrast"][0], np.uint16, 40000)


def _multiplexed_fluorescence(scene: CellScene) -> np.ndarray:
    """(H, W, C) uint16, one channel per rendered fluorescence channel."""
    return _digitise(np.stack(list(scene.fluorescence.values()), axis=-1), np.uint16, 20000)


def _two_colour_fluorescence(scene: CellScene) -> np.ndarray:
    """(H, W, 3) uint8: cytoplasm green, nuclei blue."""
    green, blue = scene.fluorescence["cytoplasm"], scene.fluorescence["nucleus"]
    return _digitise(np.stack([np.zeros_like(green), green, blue], axis=-1), np.uint8, 200)


def _dic_8bit(scene: CellScene) -> np.ndarray:
    return _digitise(scene.label_free["dic"][0], np.uint8, 230)


_NEURIPS_MODALITIES = (
    _Modality(".png", ("cytoplasm",), (), _grey_fluorescence),
    _Modality(".bmp", ("nucleus", "cytoplasm"), (), _stained_brightfield),
    _Modality(".tif", (), ("phase_contrast",), _phase_contrast_16bit),
    _Modality(".tif", ("nucleus", "cytoplasm", "actin", "mitochondria"), (), _multiplexed_fluorescence),
    _Modality(".png", ("nucleus", "cytoplasm"), (), _two_colour_fluorescence),
    _Modality(".tif", (), ("dic",), _dic_8bit),
)


def write_neurips(out, n: int = 8, size: int = 256, seed: int = 0) -> Path:
    """NeurIPS 2022 cell segmentation training set: mixed modalities, formats and bit depths.

    Writes ``images/cell_00001.<png|bmp|tif>`` cycling through grey fluorescence PNG (uint8), stained bright
    field BMP (RGB uint8), phase contrast TIFF (uint16 grey), 4-channel fluorescence TIFF (H, W, 4) uint16,
    two-colour fluorescence PNG (RGB uint8) and DIC TIFF (uint8 grey), all size x size; and
    ``labels/cell_00001_label.tiff`` cell instance labels, uint16 for odd numbers and uint32 for even ones.
    """
    _check_arguments(n, size, seed)
    stems = [f"cell_{index + 1:05d}" for index in range(n)]
    modalities = [_NEURIPS_MODALITIES[index % len(_NEURIPS_MODALITIES)] for index in range(n)]
    images = [f"images/{stem}{modality.suffix}" for stem, modality in zip(stems, modalities)]
    folder = DatasetFolder(out, reserved=images + [f"labels/{stem}_label.tiff" for stem in stems])
    magnifications = _plan_rng("neurips", seed).uniform(0.6, 1.8, n)
    for index, (stem, image, modality) in enumerate(zip(stems, images, modalities)):
        scene = render_scene(
            _frame(size),
            morphology=Morphology().scaled(magnifications[index]),
            seed=_scene_seed("neurips", seed, index),
            fluorescence=modality.fluorescence,
            label_free=modality.label_free,
        )
        pixels = modality.to_pixels(scene)
        folder.write_image(image, pixels)
        folder.write_image(f"labels/{stem}_label.tiff", scene.labels.astype(np.uint16 if index % 2 == 0 else np.uint32))
    return folder.finish("neurips")


# ---------------------------------------------------------------------------------------------------------------
# LIVECell

#: the eight LIVECell cell types and how their cells look in 520 x 704 phase-contrast images
LIVECELL_CELL_TYPES: dict[str, Morphology] = {
    "A172": Morphology(cell_radius=(9, 16), coverage=0.45, elongation=(1.5, 3.0), irregularity=0.2),
    "BT474": Morphology(cell_radius=(7, 12), coverage=0.55, touching=0.85, elongation=(1.0, 1.4)),
    "BV2": Morphology(cell_radius=(5, 8), coverage=0.35, touching=0.4, elongation=(1.0, 1.4)),
    "Huh7": Morphology(cell_radius=(9, 15), coverage=0.55, touching=0.7, elongation=(1.0, 1.6)),
    "MCF7": Morphology(cell_radius=(8, 13), coverage=0.55, touching=0.8, elongation=(1.0, 1.5)),
    "SHSY5Y": Morphology(cell_radius=(5, 9), coverage=0.35, elongation=(1.5, 3.5), irregularity=0.25),
    "SkBr3": Morphology(cell_radius=(7, 11), coverage=0.45, elongation=(1.0, 1.3)),
    "SKOV3": Morphology(cell_radius=(11, 18), coverage=0.45, elongation=(1.2, 2.2), irregularity=0.2),
}
_LIVECELL_SPLITS = {"train": 0.6, "val": 0.1, "test": 0.3}  # about LIVECell's 3253 / 570 / 1564 images


def _livecell_names(n: int, seed: int) -> list[tuple[str, str]]:
    """(cell type, ``<CellType>_Phase_<Well>_<Loc>_<ddDhhHmmM>_<crop>.tif``) for ``n`` distinct images."""
    rng = _plan_rng("livecell", seed)
    cell_types = list(LIVECELL_CELL_TYPES)
    first_type = int(rng.integers(len(cell_types)))
    wells, locations, times, crops = 8 * 12, 4, 25, 4
    picks = _distinct_picks(rng, n, wells * locations * times * crops, "LIVECell image names")
    names = []
    for index, pick in enumerate(rng.permutation(picks)):
        rest, crop = divmod(int(pick), crops)
        rest, time = divmod(rest, times)
        well, location = divmod(rest, locations)
        cell_type = cell_types[(first_type + index) % len(cell_types)]
        days, hours = divmod(4 * time, 24)
        well_name = f"{_ROWS[well // 12]}{well % 12 + 1}"
        names.append(
            (cell_type, f"{cell_type}_Phase_{well_name}_{location + 1}_{days:02d}d{hours:02d}h00m_{crop + 1}.tif")
        )
    return names


def _corners(contour: np.ndarray) -> np.ndarray:
    """The (K, 2) vertices of a closed (M, 2) contour (last point = first) where its direction changes."""
    points = contour[:-1]
    incoming = points - np.roll(points, 1, axis=0)
    outgoing = np.roll(points, -1, axis=0) - points
    turns = np.abs(incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0]) > 1e-9
    return points[turns]


def _outline_polygons(mask: np.ndarray, top: int, left: int, shape: tuple[int, int]) -> list[list[float]]:
    """COCO polygon parts ``[[x1, y1, x2, y2, ...], ...]`` around a (h, w) bool object mask at ``top, left``.

    One part per 4-connected piece of the object, traced along its outer boundary (a hole cannot be written
    in COCO polygons). ``find_contours`` puts pixel centres on integers, so its level-0.5 contour runs half a
    pixel inside COCO's, where pixel ``(r, c)`` is the square ``[c, c + 1) x [r, r + 1)``; shifted by +0.5 it
    runs along the pixel edges (cutting corners diagonally), and every pixel centre of the object lies inside
    it: rasterising the parts by the COCO rule (:func:`common.io.coco.polygons_to_mask`) gives the object back.
    Coordinates are in the full (H, W) image, clipped to ``[0, W] x [0, H]``.
    """
    pieces, count = ndimage.label(mask)
    parts = []
    for piece in range(1, count + 1):
        filled = np.pad(ndimage.binary_fill_holes(pieces == piece), 1).astype(np.float32)
        contour = _corners(max(find_contours(filled, 0.5), key=len))
        y = np.clip(contour[:, 0] + top - 1 + 0.5, 0, shape[0])  # -1: the padding
        x = np.clip(contour[:, 1] + left - 1 + 0.5, 0, shape[1])
        if len(contour) >= 3:
            parts.append([round(float(value), 2) for point in zip(x, y) for value in point])
    return parts


def _coco_annotations(labels: np.ndarray, image_id: int, first_id: int) -> list[dict]:
    """One COCO annotation (polygon parts, area, bbox [x, y, w, h]) per cell of (H, W) ``labels``."""
    annotations: list[dict] = []
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == label
        parts = _outline_polygons(mask, box[0].start, box[1].start, labels.shape)
        if not parts:
            continue
        annotations.append({
            "id": first_id + len(annotations),
            "image_id": image_id,
            "category_id": 1,
            "segmentation": parts,
            "area": float(mask.sum()),
            "bbox": [float(box[1].start), float(box[0].start), float(box[1].stop - box[1].start),
                     float(box[0].stop - box[0].start)],
            "iscrowd": 0,
        })  # fmt: skip
    return annotations


def _coco_document(images: list[dict], annotations: list[dict], keyed: bool) -> dict:
    """COCO instance document; ``keyed`` stores annotations as a dict id -> annotation as LIVECell does."""
    return {
        "info": {"description": "Synthetic cells in the LIVECell layout (common.data.synthetic)", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": {str(item["id"]): item for item in annotations} if keyed else annotations,
        "categories": [{"id": 1, "name": "cell"}],
    }


def write_livecell(
    out, n: int = 8, size: int = 256, seed: int = 0, *, annotations: str = "dict", nested_test: bool = False
) -> Path:
    """LIVECell: 8-bit phase-contrast images of eight cell types with COCO polygon annotations.

    Writes ``images/livecell_train_val_images/<name>.tif`` (train and val images) and
    ``images/livecell_test_images/<name>.tif`` (uint8 grey, size x round(size * 704 / 520)), names like
    ``A172_Phase_C7_1_00d04h00m_3.tif``, and ``livecell_coco_{train,val,test}.json`` (about 60/10/30 %).

    Args:
        annotations: ``"dict"`` keys the annotations by id as the official files do; ``"list"`` writes
            the plain COCO list that pycocotools reads.
        nested_test: put test images in one folder per cell type, ``livecell_test_images/<CellType>/<name>.tif``.
    """
    _check_arguments(n, size, seed)
    if annotations not in ("dict", "list"):
        raise ValueError(f"annotations: expected 'dict' or 'list', got {annotations!r}.")
    names = _livecell_names(n, seed)
    parts = split_datalist([{"index": index} for index in range(n)], list(_LIVECELL_SPLITS.values()), seed=seed)
    split_of = {item["index"]: split for split, part in zip(_LIVECELL_SPLITS, parts) for item in part}

    def image_path(index: int) -> str:
        cell_type, name = names[index]
        if split_of[index] != "test":
            return f"images/livecell_train_val_images/{name}"
        return f"images/livecell_test_images/{cell_type + '/' if nested_test else ''}{name}"

    documents = [f"livecell_coco_{split}.json" for split in _LIVECELL_SPLITS]
    folder = DatasetFolder(out, reserved=[image_path(index) for index in range(n)] + documents)
    images: dict[str, list[dict]] = {split: [] for split in _LIVECELL_SPLITS}
    cells: dict[str, list[dict]] = {split: [] for split in _LIVECELL_SPLITS}
    shape = _frame(size, 704 / 520)
    for index, (cell_type, name) in enumerate(names):
        scene = render_scene(
            shape,
            morphology=LIVECELL_CELL_TYPES[cell_type],
            optics=Optics(psf_sigma=1.2),
            seed=_scene_seed("livecell", seed, index),
            fluorescence=(),
            label_free=("phase_contrast",),
        )
        folder.write_image(image_path(index), _digitise(scene.label_free["phase_contrast"][0], np.uint8, 280))
        split = split_of[index]
        images[split].append({"id": index + 1, "file_name": name, "width": shape[1], "height": shape[0]})
        first_id = 1 + sum(len(found) for found in cells.values())
        cells[split] += _coco_annotations(scene.labels, index + 1, first_id)
    for split, document in zip(_LIVECELL_SPLITS, documents):
        folder.write_json(document, _coco_document(images[split], cells[split], keyed=annotations == "dict"))
    return folder.finish("livecell")


# ---------------------------------------------------------------------------------------------------------------
# Light My Cells


_LMC_MODALITIES = {"BF": "brightfield", "PC": "phase_contrast", "DIC": "dic"}
_LMC_ORGANELLES = {"Nucleus": "nucleus", "Mitochondria": "mitochondria", "Actin": "actin", "Tubulin": "tubulin"}
_LMC_TUBULIN_STUDIES = frozenset({4, 7, 17, 20, 21, 24, 29, 30})  # as in the challenge data
_LMC_CELL_RADIUS_UM = (3.5, 7.0)


@dataclass(frozen=True)
class _LmcStudy:
    """How one Light My Cells study was imaged: a single modality and a fixed set of stained organelles."""

    number: int
    modality: str
    organelles: tuple[str, ...]
    planes: int
    pixel_size_um: float
    input_dtype: type

    @classmethod
    def numbered(cls, number: int) -> _LmcStudy:
        organelles = ("Nucleus",) + ("Mitochondria",) * (number % 3 != 0) + ("Actin",) * (number % 3 != 1)
        return cls(
            number=number,
            modality=tuple(_LMC_MODALITIES)[(number - 1) % 3],
            organelles=organelles + ("Tubulin",) * (number in _LMC_TUBULIN_STUDIES),
            planes=(3, 5, 7)[(number - 1) % 3],
            pixel_size_um=(0.325, 0.65, 0.43, 0.27)[(number - 1) % 4],
            input_dtype=np.uint8 if number % 2 == 0 else np.uint16,
        )

    def input_names(self, image: int) -> list[str]:
        return [f"Study_{self.number}/image_{image}_{self.modality}_z{plane}.ome.tiff" for plane in range(self.planes)]

    def target_names(self, image: int) -> list[str]:
        return [f"Study_{self.number}/image_{image}_{organelle}.ome.tiff" for organelle in self.organelles]


def write_lmc(out, n: int = 8, size: int = 256, seed: int = 0, *, studies: int = 4) -> Path:
    """Light My Cells: label-free z-stacks and fluorescence organelle targets as 2-D OME-TIFFs.

    Images 1..n go round-robin to ``Study_1..Study_<studies>``. Each study has one modality (BF, PC, DIC in
    turn), 3, 5 or 7 focal planes, a pixel size (PhysicalSizeX/Y in µm) and a fixed set of organelles:
    Nucleus always, Mitochondria and Actin in some, Tubulin only in LMC's tubulin studies (4, 7, 17, ...).
    Writes ``Study_<s>/image_<i>_<BF|PC|DIC>_z<k>.ome.tiff`` (uint8 in even studies, uint16 in odd ones) and
    ``Study_<s>/image_<i>_<Nucleus|Mitochondria|Actin|Tubulin>.ome.tiff`` (uint16), all size x size.
    """
    _check_arguments(n, size, seed)
    if studies < 1:
        raise ValueError(f"studies: expected at least 1, got {studies}.")
    plan = [(image, _LmcStudy.numbered((image - 1) % studies + 1)) for image in range(1, n + 1)]
    reserved = [name for image, study in plan for name in study.input_names(image) + study.target_names(image)]
    folder = DatasetFolder(out, reserved=reserved)
    for image, study in plan:
        low, high = (radius / study.pixel_size_um for radius in _LMC_CELL_RADIUS_UM)
        morphology = Morphology(cell_radius=(low, high))
        scene = render_scene(
            _frame(size),
            morphology=morphology,
            optics=Optics(defocus=tuple(np.linspace(-2.5, 2.5, study.planes))),
            seed=_scene_seed("lmc", seed, image),
            fluorescence=tuple(_LMC_ORGANELLES[organelle] for organelle in study.organelles),
            label_free=(_LMC_MODALITIES[study.modality],),
        )
        planes = scene.label_free[_LMC_MODALITIES[study.modality]]
        input_white = 250 if study.input_dtype == np.uint8 else 50000
        for name, plane in zip(study.input_names(image), planes):
            pixels = _digitise(plane, study.input_dtype, input_white)
            folder.write_ome_tiff(name, pixels, study.pixel_size_um, _uuid("lmc", seed, name))
        for name, organelle in zip(study.target_names(image), study.organelles):
            pixels = _digitise(scene.fluorescence[_LMC_ORGANELLES[organelle]], np.uint16, 30000)
            folder.write_ome_tiff(name, pixels, study.pixel_size_um, _uuid("lmc", seed, name))
    return folder.finish("lmc")


# ---------------------------------------------------------------------------------------------------------------
# AstraZeneca adipocyte challenge


_ADIPOCYTE_MAGNIFICATIONS = {"20x": 1.0, "40x": 2.0, "60x": 3.0}
_ADIPOCYTE_TARGETS = {"A01Z01C01": "nucleus", "A02Z01C02": "lipid", "A03Z01C03": "cytoplasm"}
_ADIPOCYTES = Morphology(
    cell_radius=(7, 12), coverage=0.55, touching=0.7, elongation=(1.0, 1.5), irregularity=0.1,
    nucleus_size=(0.3, 0.45), lipid_droplets=8, droplet_radius=(0.1, 0.3),
)  # fmt: skip
_ADIPOCYTE_FOVS_PER_WELL = 4


def _adipocyte_fields(n: int) -> list[tuple[str, str]]:
    """(magnification, ``AssayPlate_Greiner_#655090_<Well>_T0001F<fov>L01``) of ``n`` fields of view.

    Fields go round-robin to 20x, 40x and 60x; within a magnification they fill wells B02, B03, ... four
    fields each.
    """
    fields, count = [], dict.fromkeys(_ADIPOCYTE_MAGNIFICATIONS, 0)
    for index in range(n):
        magnification = tuple(_ADIPOCYTE_MAGNIFICATIONS)[index % len(_ADIPOCYTE_MAGNIFICATIONS)]
        well, fov = divmod(count[magnification], _ADIPOCYTE_FOVS_PER_WELL)
        count[magnification] += 1
        row, column = divmod(well, 10)
        prefix = f"AssayPlate_Greiner_#655090_{_ROWS[1 + row]}{column + 2:02d}_T0001F{fov + 1:03d}L01"
        fields.append((magnification, prefix))
    return fields


def write_adipocyte(out, n: int = 8, size: int = 256, seed: int = 0) -> Path:
    """AstraZeneca adipocyte challenge: 7-plane bright-field stacks and three fluorescence targets, 16-bit.

    Fields of view go round-robin to ``20x_images``, ``40x_images``, ``60x_images`` (cells 1, 2, 3 times as
    large). Per field writes ``<mag>_images/<prefix>A04Z0<z>C04.tif`` for z = 1..7 (bright field) and
    ``<prefix>A01Z01C01.tif`` (nuclei), ``A02Z01C02`` (lipid droplets), ``A03Z01C03`` (cytoplasm), where
    ``<prefix>`` is ``AssayPlate_Greiner_#655090_<Well>_T0001F<fov>L01``; all uint16 grey,
    size x round(size * 2554 / 2154).
    """
    _check_arguments(n, size, seed)
    planes = range(1, 8)
    fields = _adipocyte_fields(n)

    def paths(magnification: str, prefix: str) -> tuple[list[str], list[str]]:
        folder_name = f"{magnification}_images"
        inputs = [f"{folder_name}/{prefix}A04Z{z:02d}C04.tif" for z in planes]
        return inputs, [f"{folder_name}/{prefix}{target}.tif" for target in _ADIPOCYTE_TARGETS]

    folder = DatasetFolder(out, reserved=[path for field in fields for group in paths(*field) for path in group])
    for index, (magnification, prefix) in enumerate(fields):
        scene = render_scene(
            _frame(size, 2554 / 2154),
            morphology=_ADIPOCYTES.scaled(_ADIPOCYTE_MAGNIFICATIONS[magnification]),
            optics=Optics(defocus=tuple(np.linspace(-3, 3, len(planes)))),
            seed=_scene_seed("adipocyte", seed, index),
            fluorescence=tuple(_ADIPOCYTE_TARGETS.values()),
            label_free=("brightfield",),
        )
        inputs, targets = paths(magnification, prefix)
        for path, plane in zip(inputs, scene.label_free["brightfield"]):
            folder.write_image(path, _digitise(plane, np.uint16, 20000))
        for path, channel in zip(targets, _ADIPOCYTE_TARGETS.values()):
            folder.write_image(path, _digitise(scene.fluorescence[channel], np.uint16, 12000))
    return folder.finish("adipocyte")


# ---------------------------------------------------------------------------------------------------------------
# entry points

WRITERS: dict[str, Callable[..., Path]] = {
    "dsb2018": write_dsb2018,
    "bbbc039": write_bbbc039,
    "neurips": write_neurips,
    "livecell": write_livecell,
    "lmc": write_lmc,
    "adipocyte": write_adipocyte,
}


def write_dataset(layout: str, out, n: int = 8, size: int = 256, seed: int = 0, **options) -> Path:
    """Write ``n`` synthetic images of height ``size`` in the file layout of ``layout`` under ``out``.

    Args:
        layout: one of :data:`WRITERS` (dsb2018, bbbc039, neurips, livecell, lmc, adipocyte).
        out: dataset folder; created if missing, existing files in it are never replaced.
        n: number of images (fields of view).
        size: image height in pixels (see the module docstring for widths).
        seed: non-negative integer; the same arguments give byte-identical files.
        options: layout-specific keywords, e.g. ``annotations="list"`` or ``nested_test=True`` for livecell,
            ``studies=6`` for lmc.

    Returns:
        the dataset folder.
    """
    if layout not in WRITERS:
        raise ValueError(f"layout: unknown dataset layout {layout!r}, expected one of {sorted(WRITERS)}.")
    return WRITERS[layout](out, n=n, size=size, seed=seed, **options)


def _parser() -> argparse.ArgumentParser:
    introduction, usage, _, sizes = __doc__.split("\n\n")[:4]
    parser = argparse.ArgumentParser(
        prog="python -m common.data.synthetic",
        description=f"{introduction}\n\n{usage}\n\nRun '<layout> --help' for the files a layout writes.",
        epilog=sizes,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("out", type=Path, help="dataset folder (created; existing files are never replaced)")
    common.add_argument("--n", type=int, default=8, help="number of images / fields of view (default 8)")
    common.add_argument("--size", type=int, default=256, help="image height in pixels, at least 32 (default 256)")
    common.add_argument("--seed", type=int, default=0, help="non-negative seed; same seed, same bytes (default 0)")
    layouts = parser.add_subparsers(dest="layout", required=True, metavar="layout")
    for layout, writer in WRITERS.items():
        summary, _, details = (inspect.getdoc(writer) or "").partition("\n\n")
        sub = layouts.add_parser(
            layout, parents=[common], help=summary, description=f"{summary}\n\n{details}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        if layout == "livecell":
            sub.add_argument("--annotations", choices=("dict", "list"), default="dict",
                             help="COCO annotations keyed by id as in LIVECell (dict) or a plain list")  # fmt: skip
            sub.add_argument("--nested-test", action="store_true", help="test images in one folder per cell type")
        if layout == "lmc":
            sub.add_argument("--studies", type=int, default=4, help="number of Study_<s> folders (default 4)")
    return parser


def main(argv: Sequence[str] | None = None) -> Path:
    """Command line: parse ``argv``, write the dataset and log a summary of what was written where."""
    parser = _parser()
    arguments = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return write_dataset(arguments.pop("layout"), **arguments)
    except (FileExistsError, ValueError) as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()

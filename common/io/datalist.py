"""One entry point to every dataset layout, and a seeded, optionally stratified split of a datalist."""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Hashable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import LayoutError

__all__ = ["LAYOUTS", "SPLITS", "build_datalist", "dataset_split", "image_folder_datalist", "split_datalist"]

#: layout name -> "module:function" building its datalist; modules are imported on first use.
LAYOUTS = {
    "dsb2018": "common.io.segmentation_layouts:dsb2018_datalist",
    "bbbc039": "common.io.segmentation_layouts:bbbc039_datalist",
    "neurips": "common.io.segmentation_layouts:neurips_datalist",
    "livecell": "common.io.challenge_layouts:livecell_datalist",
    "lmc": "common.io.challenge_layouts:lmc_datalist",
    "adipocyte": "common.io.challenge_layouts:adipocyte_datalist",
}


def build_datalist(layout: str, root: str, **options) -> list[dict]:
    """Datalist (list of dicts of file paths and metadata) of a dataset stored in its publisher's ``layout``.

    ``options`` go to the layout's builder (for example ``split="training"`` for BBBC039).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout: unknown dataset layout {layout!r}, expected one of {sorted(LAYOUTS)}.")
    module_name, function_name = LAYOUTS[layout].split(":")
    builder: Callable[..., list] = getattr(importlib.import_module(module_name), function_name)
    return builder(root, **options)


#: split names of :func:`dataset_split`, in the order of its ``fractions``.
SPLITS = ("training", "validation", "test")

#: layouts whose publisher ships a split, read by their builder's ``split`` option.
LAYOUTS_WITH_SPLITS = ("bbbc039", "livecell")


def dataset_split(
    layout: str,
    root: str,
    split: str,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    first: int | None = None,
    **options,
) -> list[dict]:
    """The ``split`` part (``"training"``, ``"validation"`` or ``"test"``) of a dataset.

    Layouts that ship their own split (BBBC039's ``metadata/*.txt``, LIVECell's COCO files) use it; for the others
    the whole dataset is split reproducibly with ``fractions`` (training, validation, test) and ``seed``. ``first``
    keeps only the first that many items of the split, in its order (``None``: all).
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}.")
    if first is not None and first < 1:
        raise ValueError(f"first: expected a positive number of items or None, got {first!r}.")
    if layout in LAYOUTS_WITH_SPLITS:
        part = build_datalist(layout, root, split=split, **options)
    else:
        part = split_datalist(build_datalist(layout, root, **options), fractions, seed)[SPLITS.index(split)]
    return part[:first]


def image_folder_datalist(folder: str, key: str = "image", exclude: Sequence[str] | None = ()) -> list[dict]:
    """``[{key: path}, ...]`` of every image file directly in ``folder``, sorted by name (for inference).

    Args:
        folder: the input folder.
        key: datalist key of the image path.
        exclude: glob patterns (``fnmatch``, case-sensitive) of file names that are not inputs, e.g. a layout's
            label files that share the folder with their images (NeurIPS: ``["*_label.tiff"]``).
    """
    from .images import is_image_file  # the readers are only needed here

    path = Path(folder)
    if not path.is_dir():
        raise LayoutError(f"{folder}: input folder not found.")
    exclude = [exclude] if isinstance(exclude, str) else list(exclude or ())
    images = [file for file in sorted(path.iterdir()) if file.is_file() and is_image_file(file)]
    items = [{key: str(file)} for file in images if not any(fnmatchcase(file.name, pattern) for pattern in exclude)]
    if not items:
        skipped = f" ({len(images)} excluded by {exclude})" if images else ""
        raise LayoutError(f"{folder}: no image files (PNG, TIFF, OME-TIFF, BMP, JPEG) in this folder{skipped}.")
    return items


def split_datalist(
    items: Sequence[dict],
    fractions: Sequence[float],
    seed: int = 0,
    stratify: str | Callable[[dict], Hashable] | None = None,
) -> list[list[dict]]:
    """Split ``items`` into ``len(fractions)`` disjoint parts, reproducibly for a ``seed``.

    Args:
        items: the datalist.
        fractions: share of each part, summing to 1 (e.g. ``(0.9, 0.1)``).
        seed: seed of the shuffle.
        stratify: key of each item (or a function of it) whose groups are split separately so that every
            part keeps their proportions (e.g. the set of organelles an LMC image has).

    Returns:
        one list per fraction; every item lands in exactly one part, order within a part follows ``items``.
    """
    shares = np.asarray(fractions, dtype=float)
    if shares.ndim != 1 or (shares < 0).any() or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"fractions: expected non-negative shares summing to 1, got {shares.tolist()}.")
    group_of = (lambda item: item[stratify]) if isinstance(stratify, str) else (stratify or (lambda item: None))
    groups: dict = defaultdict(list)
    for index, item in enumerate(items):
        key = group_of(item)
        groups[tuple(sorted(key)) if isinstance(key, (set, frozenset, list)) else key].append(index)
    rng = np.random.default_rng(seed)
    part_of = np.empty(len(items), dtype=int)
    for key in sorted(groups, key=repr):
        members = np.asarray(groups[key])[rng.permutation(len(groups[key]))]
        bounds = np.round(np.cumsum(shares) * len(members)).astype(int)
        for part, chunk in enumerate(np.split(members, bounds[:-1])):
            part_of[chunk] = part
    return [[item for item, p in zip(items, part_of) if p == part] for part in range(len(shares))]
